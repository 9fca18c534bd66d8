"""The batch featuriser: a document's features never depend on its batch neighbours, and the families are right."""

from __future__ import annotations

import numpy as np

from nlp.features import Doc, FeatureSpec, Featurizer, _lex_slot, hash_strings
from nlp.tokenize import segment

TEXTS = ["小区噪音扰民[怒]，住建局不作为！", "", "ABC公司拖欠工资[泪][泪]", "學校İstanbul門口", "😀😀", "好" * 3000,
         "感谢[哈哈", "]医护人员", "又停水了！！", "！！为什么？", "【通报】#武汉# //@某人:", "...真的吗~~~~"]


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


def test_punctuation_family_sees_how_it_is_said():
    """Segmentation and character n-grams drop punctuation; the punct family keeps runs, the last mark and marks of
    form, and a run at the end of one text never joins one at the start of the next."""
    spec = FeatureSpec()
    fz = Featurizer(spec)
    block = spec.block("punct")
    calm, loud, asks, news, nothing = counts_of(fz, docs(["又停水了", "又停水了！！！！", "又停水了？！", "【通报】#停水#",
                                                          ""]))[:, block]
    assert calm.sum() == 1  # only "ends with a word"
    assert loud.sum() == 3  # the run (capped at three), its mark, the last mark
    assert set(np.flatnonzero(loud)) != set(np.flatnonzero(asks))
    assert news.sum() == 3 and nothing.sum() == 0  # 【 and # once each, ends with a mark of form → "word"
    # The same characters, louder, share the run's mark column but not the run's column.
    assert set(np.flatnonzero(loud)) & set(np.flatnonzero(counts_of(fz, docs(["好！"]))[0][block]))
    pair = counts_of(fz, docs(["又停水了！！", "！！为什么？"]))[:, block]
    assert np.array_equal(pair[0], counts_of(fz, docs(["又停水了！！"]))[0][block])


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


def test_lexicon_lookup_matches_a_plain_binary_search():
    """The bucketed lexicon lookup finds exactly the words a search over the sorted hashes finds (crowded buckets
    included), and a negation counts only inside its own document."""
    words = [f"词{i}" for i in range(3000)] + ["满意", "愤怒", "好", "A", "b"]
    spec = FeatureSpec(lexicon={w: ("pos" if i % 2 else "neg") for i, w in enumerate(words)})
    fz = Featurizer(spec)
    hashes = hash_strings(words)
    slots = _lex_slot(hashes)
    crowded = [w for w, h, s in zip(words, hashes.tolist(), slots.tolist(), strict=True)
               if fz._slot_start[s + 1] - fz._slot_start[s] > 1 and int(fz._slot_hashes[fz._slot_start[s]]) != h]
    assert crowded  # words that are not the first of a bucket holding several hashes: the binary-search path
    tokens = [["不", "满意", "a", "词7"], ["词8", "没有", "x", "愤怒"], ["不"], ["满意", "b", "词2999", "其他"],
              ["没", *crowded[:20]]]
    got = counts_of(fz, [Doc("", t, []) for t in tokens])[:, spec.block("lexicon")]
    cats = spec.lexicon_categories()
    negations = set(hash_strings(["不", "没", "没有"]).tolist())
    expected = np.zeros_like(got)
    for row, toks in enumerate(tokens):
        hashes = hash_strings(toks).tolist()
        for i, tok in enumerate(toks):
            if tok.lower() in {w.lower() for w in words}:
                word = next(w for w in words if w.lower() == tok.lower())
                negated = any(i - k >= 0 and hashes[i - k] in negations for k in (1, 2))
                expected[row, (cats.index(spec.lexicon[word]) * 2 + negated) % (1 << spec.bits["lexicon"])] += 1
    assert np.array_equal(got, expected)
    assert got[2].sum() == 0  # a lone negation is no lexicon word


def test_characters_past_the_basic_plane_split_char_ngrams():
    spec = FeatureSpec()
    row = counts_of(Featurizer(spec), [Doc("好😀好", ["好", "好"], [])])[0]
    assert row[spec.block("char1")].sum() == 2 and row[spec.block("char2")].sum() == 0


def test_remapped_entries_equal_the_remap_of_the_plain_ones():
    """With a remap, word rows come from a per-id table and char1 rows from a per-character table: each family's
    columns must equal `remap[column]` of the plain entries, for hashed words and for lexicon ids, as the word table
    grows, after it starts over, and when another remap is passed."""
    from analysis.stages import AnalysisState
    from core.config import parse_config

    spec = FeatureSpec(lexicon={"满意": "pos", "愤怒": "neg", "不作为": "neg"})
    fz = Featurizer(spec)
    rng = np.random.default_rng(7)
    remaps = [rng.integers(0, 5000, spec.n_features).astype(np.int32) for _ in range(2)]
    lexicon = AnalysisState(parse_config({}).analysis).lexicon
    batches = [docs(TEXTS), docs(["不满意！住建局不作为", "ÉCOLE École 學校", "新词甲乙丙丁 满意"]), docs(TEXTS[::-1])]
    for remap in (remaps[0], remaps[0], remaps[1]):
        for batch in batches:
            words = lexicon.word_ids(lexicon.encode([d.tokens for d in batch]).ids)
            for given in (None, words):
                plain = fz.entries(batch, given)
                mapped = fz.entries(batch, given, remap)
                assert len(plain) == len(mapped)
                for (rows, cols), (mapped_rows, mapped_cols) in zip(plain, mapped, strict=True):
                    assert np.array_equal(rows, mapped_rows) and np.array_equal(remap[cols], mapped_cols)
        lexicon._reset()


def test_sorted_unique_is_np_unique() -> None:
    from nlp.features import sorted_unique

    for size in (0, 1, 2, 7, 1000):
        values = np.random.default_rng(size).integers(0, max(1, size // 3), size=size, dtype=np.int64)
        got, expected = sorted_unique(values), np.unique(values)
        assert got.dtype == expected.dtype and got.tolist() == expected.tolist()
