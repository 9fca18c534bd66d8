"""The committed artifacts load, predict sensibly on real-style Chinese examples, and refuse damaged files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.errors import ModelError
from core.paths import REPO_ROOT
from nlp import artifacts, derived
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
    shipped = [p for p in MODELS.rglob("*") if p.is_file() and derived.FOLDER not in p.parts]  # not what serving keeps
    assert sum(p.stat().st_size for p in shipped) < 40 * 1024 * 1024


def test_cards_give_calibration_and_abstention():
    """Every model's card gives its held-out ECE (calibrated below the uncalibrated softmax), its reliability table
    and its abstention rate; the emotion card also macro-F1 with abstentions scored as neutral."""
    for name in artifacts.TASKS:
        cal = json.loads((MODELS / name / "model.json").read_text(encoding="utf-8"))["card"]["calibration"]
        assert 0 <= cal["ece"] < 0.06 and cal["reliability"] and 0 <= cal["abstention_rate"] < 0.5
        assert cal["scale"] == pytest.approx(artifacts.load(MODELS, name).scale, abs=1e-4)
        assert "## Calibration (held out)" in (MODELS / name / "card.md").read_text(encoding="utf-8")
    emotion = json.loads((MODELS / "emotion" / "model.json").read_text(encoding="utf-8"))["card"]["calibration"]
    assert emotion["macro_f1_abstentions_as_neutral"] > 0.59


def test_an_unsure_emotion_is_served_as_neutral():
    clf = get_classifier(MODELS)
    texts = ["请问公交卡在哪里办理？谢谢", "太气人了！物业收钱不办事，投诉多次没人管，愤怒！", "好的", "今天天气不错"]
    for pred in clf.predict(docs(*texts)):
        if pred.emotion_score == 0.0:
            assert pred.emotion == "neutral"
        else:
            assert pred.emotion_score >= clf.emotion_min_confidence
    assert clf.emotion_min_confidence > 0


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


REAL_STYLE = ["A市经济学院强制学生实习，学院与企业合作收取中介费，学生不去就不给毕业证，请教育厅查处",
              "【雨花区魅力之城小区】小区旁工地夜间施工噪音扰民，多次拨打12345没有回复[怒][怒]",
              "感谢社区网格员和志愿者在疫情防控期间的辛苦付出，复工复产工作做得很好，点赞！#武汉加油#",
              "WiFi信号太差，İstanbul旅客投诉😀😀，不满意也不愤怒", "", "好" * 3000, "感谢[哈哈", "]医护人员"]


def test_fused_products_equal_the_per_family_dot_bit_for_bit():
    """The serving product (one CSR, per-family sums added in family order) gives exactly the float32 values of the
    straightforward `transform(docs).dot(...)`, with or without word hashes handed in (titles that are the start of
    the tokens reuse them; others, and docs longer than MAX_TOKENS, are handled on their own)."""
    from itertools import chain

    from nlp.features import MAX_TOKENS, hash_strings

    clf = get_classifier(MODELS)
    batch = [Doc(t, segment(t), segment(t)[:4]) for t in REAL_STYLE]
    batch.append(Doc("标题另切", ["标题", "另", "切"], ["标", "题"]))  # a title that is not the start of the tokens
    batch.append(Doc("长", ["住建局", "不", "满意"] * (MAX_TOKENS // 2), ["住建局"]))
    assert max(len(d.tokens) for d in batch) > MAX_TOKENS
    weights, remap = clf._weights, clf._remap
    expected = clf.featurizer(batch).dot(weights, remap)
    assert expected.dtype == np.float32 and np.abs(expected).sum() > 0
    word_hashes = hash_strings(list(chain.from_iterable(d.tokens for d in batch)))
    for got in (clf.featurizer.products(batch, weights, remap), clf.featurizer.products(batch, weights, remap, word_hashes)):
        assert got.dtype == expected.dtype and np.array_equal(got.view(np.uint32), expected.view(np.uint32))
    with pytest.raises(ValueError):
        clf.featurizer.products(batch, weights, remap, word_hashes[:-1])


def test_products_from_lexicon_ids_equal_the_per_family_dot_bit_for_bit():
    """With the tokens as lexicon ids (`WordIds`), word columns, lexicon categories and negations come from a
    per-id cache: same values bit for bit, as the lexicon grows, for a second lexicon (another generation) and
    after the first one starts over."""
    from analysis.stages import AnalysisState
    from core.config import parse_config
    from nlp.features import MAX_TOKENS

    clf = get_classifier(MODELS)
    weights, remap = clf._weights, clf._remap
    first, second = (AnalysisState(parse_config({}).analysis).lexicon for _ in range(2))
    texts = [*REAL_STYLE, "服务态度很不满意，不是很满意，没有不满意", "非常满意！感谢！", "不 满意 没 愤怒 毫无 办法"]
    batches = [[Doc(t, segment(t), segment(t)[:3]) for t in texts[:5]], [Doc(t, segment(t), []) for t in texts[3:]],
               [Doc("长", ["不", "满意", "住建局"] * (MAX_TOKENS // 2), ["不"]), Doc("新词", ["新词一", "新词二"], [])]]
    assert {"满意", "愤怒"} <= set(clf.topic.spec.lexicon)  # the lexicon family and its negations are exercised
    for lexicon, order in ((first, batches), (second, batches[::-1]), (first, batches)):  # new words, other ids
        for batch in order:
            ids = lexicon.encode([d.tokens for d in batch]).ids
            got = clf.featurizer.products(batch, weights, remap, lexicon.word_ids(ids))
            expected = clf.featurizer(batch).dot(weights, remap)
            assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))
        lexicon._reset()  # ids are given out anew: the cache must not serve the old ones
