"""Retrain-and-evaluate smoke test on a small real subset: the training path works and beats chance."""

from __future__ import annotations

import json

import pytest

from nlp import artifacts, train
from nlp.classify import Classifier


@pytest.mark.data
def test_retrain_small_subset_beats_chance(shared_data, tmp_path):
    results = train.train_all(shared_data, tmp_path, limit=1500, folds=3)
    assert results["topic"]["macro_f1"] > 1 / 7 + 0.3
    assert results["emotion"]["macro_f1"] > 1 / 6 + 0.12
    assert results["polarity"]["macro_f1"] > 0.5 + 0.15
    clf = Classifier.load(tmp_path)
    assert clf.topic.classes and len(clf.emotion.classes) >= 6
    card = json.loads((tmp_path / "topic" / "model.json").read_text(encoding="utf-8"))["card"]
    assert card["evaluation"]["topic"]["n"] >= 200


@pytest.mark.data
def test_topic_from_own_csv(shared_data, tmp_path):
    csv = tmp_path / "mine.csv"
    rows = ["text,label"] + [f"小区停车位不足{i}号楼车辆乱停,停车" for i in range(12)] + \
        [f"学校食堂饭菜质量差第{i}次反映,食堂" for i in range(12)]
    csv.write_text("\n".join(rows), encoding="utf-8")
    art, ev = train.train_topic(shared_data, topic_csv=csv, folds=3)
    assert art.classes == ["停车", "食堂"] and ev["macro_f1"] > 0.9
    artifacts.save(art, tmp_path / "m")
    assert artifacts.load(tmp_path / "m", "topic").classes == ["停车", "食堂"]
