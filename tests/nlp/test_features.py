"""The batch featuriser: a document's features never depend on its batch neighbours, and the families are right."""

from __future__ import annotations

import numpy as np

from nlp.features import Doc, FeatureSpec, Featurizer, hash_strings
from nlp.tokenize import segment

TEXTS = ["小区噪音扰民[怒]，住建局不作为！", "", "ABC公司拖欠工资[泪][泪]", "學校İstanbul門口", "😀😀", "好" * 3000,
         "感谢[哈哈", "]医护人员"]


def docs(texts: list[str]) -> list[Doc]:
    return [Doc(t, segment(t), segment(t[:6])) for t in texts]


def counts_of(fz: Featurizer, batch: list[Doc]) -> np.ndarray:
    return fz(batch).matrix().toarray()


def test_batch_does_not_change_a_documents_features():
    fz = Featurizer(FeatureSpec())
    together = counts_of(fz, docs(TEXTS))
    for i, text in enumerate(TEXTS):
        alone = counts_of(fz, docs([text]))[0]
        assert np.array_equal(together[i], alone), text


def test_families_and_counts():
    spec = FeatureSpec()
    fz = Featurizer(spec)
    row = counts_of(fz, [Doc("好好", ["好好"], [])])[0]
    assert row[spec.block("char1")].sum() == 2 and row[spec.block("char1")].max() == 2  # one column, counted twice
    assert row[spec.block("char2")].sum() == 1 and row[spec.block("char3")].sum() == 0
    assert row[spec.block("word")].sum() == 1 and row[spec.block("word2")].sum() == 0
    emo = counts_of(fz, docs(["[怒]太气人了", "感谢[哈哈", "]医护"]))
    assert emo[0][spec.block("emoticon")].sum() == 1
    assert emo[1][spec.block("emoticon")].sum() == 0 and emo[2][spec.block("emoticon")].sum() == 0  # not across docs


def test_hash_is_stable_and_case_insensitive():
    a, b, c = hash_strings(["WiFi信号", "wifi信号", "信号"])
    assert a == b and a != c
    assert hash_strings(["住建局"])[0] == np.uint64(hash_strings(["x", "住建局"])[1])


def test_lexicon_family_marks_negation():
    spec = FeatureSpec(lexicon={"满意": "pos", "愤怒": "neg"})
    fz = Featurizer(spec)
    plain, negated = counts_of(fz, [Doc("", ["很", "满意"], []), Doc("", ["不", "满意"], [])])
    assert plain[spec.block("lexicon")].sum() == 1 == negated[spec.block("lexicon")].sum()
    assert np.flatnonzero(plain[spec.block("lexicon")]) != np.flatnonzero(negated[spec.block("lexicon")])
