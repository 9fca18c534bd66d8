"""Derived tables kept on disk (`nlp.derived`): read back equal to what was derived, derived again when a source
changes, and derived in memory where the folder cannot be written; the classifier read from them predicts the same."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from core.paths import REPO_ROOT
from nlp import artifacts, derived
from nlp.classify import Classifier
from nlp.features import Doc
from nlp.tokenize import segment


def _derive(calls: list[int]) -> derived.Derived:
    calls.append(1)
    return {"words": ("a", "b"), "n": 2}, {"ids": np.arange(5, dtype=np.int64)}


def test_tables_are_kept_and_derived_again_when_a_source_changes(tmp_path: Path):
    source = tmp_path / "words.txt"
    source.write_text("a b", encoding="utf-8")
    calls: list[int] = []
    first = derived.load_or_derive(tmp_path, "words", [source], lambda: _derive(calls))
    again = derived.load_or_derive(tmp_path, "words", [source], lambda: _derive(calls))
    assert calls == [1]
    assert first[0] == again[0] == {"words": ["a", "b"], "n": 2}  # JSON's values either way
    assert np.array_equal(again[1]["ids"], np.arange(5)) and not again[1]["ids"].flags.writeable
    source.write_text("a b c", encoding="utf-8")
    derived.load_or_derive(tmp_path, "words", [source], lambda: _derive(calls))
    assert calls == [1, 1]
    assert len(list((tmp_path / derived.FOLDER).iterdir())) == 1  # the older derivation is removed


def test_a_folder_that_cannot_be_written_derives_in_memory(tmp_path: Path):
    source = tmp_path / "words.txt"
    source.write_text("a b", encoding="utf-8")
    calls: list[int] = []
    meta, arrays = derived.load_or_derive(source, "words", [source], lambda: _derive(calls))  # no folder in a file
    assert meta == {"words": ["a", "b"], "n": 2} and not arrays["ids"].flags.writeable


def test_a_damaged_derivation_is_derived_again(tmp_path: Path):
    source = tmp_path / "words.txt"
    source.write_text("a b", encoding="utf-8")
    calls: list[int] = []
    derived.load_or_derive(tmp_path, "words", [source], lambda: _derive(calls))
    (folder,) = (tmp_path / derived.FOLDER).iterdir()
    (folder / "ids.npy").write_bytes(b"garbage")
    meta, arrays = derived.load_or_derive(tmp_path, "words", [source], lambda: _derive(calls))
    assert calls == [1, 1] and np.array_equal(arrays["ids"], np.arange(5))
    derived.load_or_derive(tmp_path, "words", [source], lambda: _derive(calls))
    assert calls == [1, 1]  # kept again in its place


def test_the_classifier_read_from_its_derived_tables_is_the_one_derived(tmp_path: Path):
    for name in artifacts.TASKS:
        shutil.copytree(REPO_ROOT / "models" / name, tmp_path / name)
    fresh = Classifier(*(artifacts.load(tmp_path, name) for name in artifacts.TASKS))
    Classifier.load(tmp_path)  # derives and keeps
    kept = Classifier.load(tmp_path)  # reads
    for key, array in fresh.serving_tables().items():
        assert np.array_equal(kept.serving_tables()[key], array) and kept.serving_tables()[key].dtype == array.dtype
    texts = ["小区物业不作为，墙体开裂漏水，住建局请管一管", "太开心了，感谢医护人员的辛苦付出！", ""]
    docs = [Doc(t, segment(t), []) for t in texts]
    assert kept.columns(docs) == fresh.columns(docs)
