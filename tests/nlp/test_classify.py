"""The committed artifacts load, predict sensibly on real-style Chinese examples, and refuse damaged files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.errors import ModelError
from core.paths import REPO_ROOT
from nlp import artifacts
from nlp.classify import EMOTIONS, Classifier, get_classifier
from nlp.features import Doc
from nlp.tokenize import segment

MODELS = REPO_ROOT / "models"


def docs(*texts: str) -> list[Doc]:
    return [Doc(t, segment(t), []) for t in texts]


def test_predictions_are_sensible():
    clf = get_classifier(MODELS)
    preds = clf.predict(docs(
        # (construction noise is 噪音污染 under 环境保护 in the 附件1 taxonomy, so it is no clean 城乡建设 example)
        "小区物业不作为，商品房交房后墙体开裂漏水，开发商拒不维修，住建局请管一管",
        "孩子上小学划片入学不合理，学校招生政策不透明，教育局应该公开",
        "公司拖欠农民工工资半年，社保也没有缴纳，人社局劳动监察请帮忙",
        "医院看病排队太久，医生态度恶劣，乡镇卫生院缺医少药",
        "太开心了，感谢医护人员的辛苦付出，武汉加油！",
        "气死我了，这种黑心商家简直无法无天，必须严惩！",
    ))
    assert [p.topic for p in preds[:4]] == ["城乡建设", "教育文体", "劳动和社会保障", "卫生计生"]
    assert preds[4].emotion == "happiness" and preds[4].polarity == "positive" and preds[4].polarity_score > 0
    assert preds[5].emotion in ("anger", "disgust") and preds[5].polarity == "negative"
    for p in preds:
        assert p.emotion in EMOTIONS and -1 <= p.polarity_score <= 1 and 0 <= p.topic_score <= 1


def test_empty_text_is_neutral():
    (pred,) = get_classifier(MODELS).predict(docs(""))
    assert pred.emotion == "neutral" and pred.polarity == "neutral" and pred.polarity_score == 0.0


def test_cards_have_cross_validated_scores():
    for name in artifacts.TASKS:
        meta = json.loads((MODELS / name / "model.json").read_text(encoding="utf-8"))
        assert meta["format_version"] == artifacts.FORMAT_VERSION
        for ev in meta["card"]["evaluation"].values():
            assert 0.5 < ev["macro_f1"] <= 1 and ev["per_class"]
        assert (MODELS / name / "card.md").read_text(encoding="utf-8").startswith("# Model card")
    size = sum(p.stat().st_size for p in MODELS.rglob("*") if p.is_file())
    assert size < 40 * 1024 * 1024


def test_save_load_roundtrip(tmp_path: Path):
    art = artifacts.load(MODELS, "topic")
    artifacts.save(art, tmp_path)
    again = artifacts.load(tmp_path, "topic")
    d = docs("道路破损严重，公交线路不合理")
    assert np.allclose(art.scores(d), again.scores(d), atol=1e-4)


def test_version_mismatch_and_damage_are_model_errors(tmp_path: Path):
    shutil.copytree(MODELS / "topic", tmp_path / "topic")
    meta_path = tmp_path / "topic" / "model.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["format_version"] = 99
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ModelError, match="format version 99"):
        artifacts.load(tmp_path, "topic")
    (tmp_path / "topic" / "weights.npz").write_bytes(b"garbage")
    meta["format_version"] = artifacts.FORMAT_VERSION
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ModelError):
        artifacts.load(tmp_path, "topic")
    with pytest.raises(ModelError, match="not found"):
        Classifier.load(tmp_path / "missing")
