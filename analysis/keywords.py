"""Top keywords of an item by TF-IDF, with an idf table built from the shared real data (`resources/idf.txt`).

Rebuild the table with `python -m analysis.keywords build OUT` (reads the 泰迪杯 messages and the Weibo sample under
`data_dir()`); words seen in fewer than 3 documents are left out, and unknown words get the median idf (as jieba's
analyse does) so a new place or company name can still rank.
"""

from __future__ import annotations

import heapq
import math
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from operator import itemgetter
from pathlib import Path

import numpy as np

from analysis.lexicon import Encoded, Lexicon
from nlp import derived
from nlp.tokenize import segment_many, stopwords

IDF_FILE = Path(__file__).resolve().parent / "resources" / "idf.txt"
_MIN_DF = 3


def useful(word: str, stop: frozenset[str]) -> bool:
    """Keywords are words of two or more characters (three for Latin), not stopwords or numbers."""
    return useful_many([word], stop)[0]


def useful_many(words: Iterable[str], stop: frozenset[str]) -> list[bool]:
    """`useful` of each word, in one comprehension: the lexicon asks for every new word of a batch (about a thousand),
    and a call per word through a keyword partial cost several times the test itself."""
    return [not (w in stop or w.isdigit()) and (len(w) >= 3 and w.isalpha() if w.isascii() else len(w) >= 2)
            for w in words]


@cache
def load_idf(path: Path = IDF_FILE) -> tuple[dict[str, float], float]:
    """(idf by word, idf for unknown words) from the shipped table, whose words and values the first process keeps
    beside it as JSON and an array (`nlp.derived`): ≈ 5 ms instead of ≈ 23 ms of parsing in every later one."""
    meta, arrays = derived.load_or_derive(path.parent, path.name, [path, Path(__file__)], partial(_parse_idf, path))
    return dict(zip(meta["words"], arrays["idf"].tolist(), strict=True)), meta["median"]


def _parse_idf(path: Path) -> derived.Derived:
    table: dict[str, float] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        word, _, value = line.rpartition(" ")
        table[word] = float(value)
    values = sorted(table.values())
    median = values[len(values) // 2] if values else 10.0
    return {"words": list(table), "median": median}, {"idf": np.array(list(table.values()), dtype=np.float64)}


class KeywordExtractor:
    """`extract(tokens)` → the top-k words by term frequency × idf."""

    def __init__(self, top_k: int = 8, path: Path = IDF_FILE) -> None:
        self.top_k = top_k
        self.idf, self.default_idf = load_idf(path)
        self.stop = stopwords()

    def weights(self, tokens: Sequence[str], limit: int = 3000) -> dict[str, float]:
        """tf × idf of the useful words among the first `limit` tokens."""
        counts = Counter(t.lower() for t in tokens[:limit])
        idf, default, stop = self.idf, self.default_idf, self.stop
        return {w: c * idf.get(w, default) for w, c in counts.items() if useful(w, stop)}

    def extract(self, tokens: Sequence[str]) -> list[str]:
        scored = self.weights(tokens)
        return [w for w, _ in heapq.nlargest(self.top_k, scored.items(), key=lambda kv: kv[1])]


@dataclass(slots=True)
class TopTerms:
    """Every item's best words by tf × idf for a batch, flat: item i's terms sit at `starts[i]:ends[i]` (best first)
    of `words` (text), `word_ids` (lexicon ids) and `scores`. Flat arrays, not a list of (word, weight) pairs per item:
    only the event stage reads the weights, and it reads them for the whole batch (`analysis.cluster.item_vectors`)."""

    words: list[str]
    word_ids: np.ndarray  # int64
    scores: np.ndarray  # float64
    starts: list[int]
    ends: list[int]
    generation: int = 0  # the lexicon's (`Lexicon.generation`): its ids mean these words only until it is reset

    def terms(self, i: int) -> list[tuple[str, float]]:
        """Item i's (word, weight) pairs, best first."""
        lo, hi = self.starts[i], self.ends[i]
        return list(zip(self.words[lo:hi], self.scores[lo:hi].tolist(), strict=True))


def batch_top_terms_flat(encoded: Encoded, lexicon: Lexicon, k: int, k_words: int, limit: int = 3000
                         ) -> tuple[TopTerms, list[list[str]]]:
    """Per item, its `k` best words by tf × idf (ties: first mentioned first), flat (`TopTerms`), and the first
    `k_words` (at most `k`) of those words alone: the item's keywords. A whole batch in a few numpy operations: keep
    keyword tokens, count (item, word) pairs (`_count_pairs`), rank inside each item by sorting."""
    n = len(encoded.lengths)
    ids = encoded.ids
    selected = np.flatnonzero((lexicon.weight.take(ids) > 0) & (encoded.position < limit)) if ids.size else ids
    if not selected.size:
        empty = np.zeros(0, dtype=np.int64)
        return TopTerms([], empty, empty.astype(np.float64), [0] * n, [0] * n, lexicon.generation), [[] for _ in range(n)]
    width = len(lexicon.words) + 1
    pairs, first, counts = _count_pairs(encoded.owner.take(selected) * width + ids.take(selected), n * width)
    owner, word = np.divmod(pairs, width)
    score = counts * lexicon.weight.take(word)  # take: ~10 % fewer instructions than fancy indexing
    # By item, then score descending, then first mention, so that the order never depends on the lexicon's ids (the
    # pairs arrive in id order, and ids differ between processes: an import's pool workers prepare batches). The
    # pairs are put in first-mention order by scattering them to their first positions (no sort: the positions are
    # distinct), then one stable float sort keeps that order among equal scores: a third of np.lexsort's cost.
    slot = np.full(len(selected), -1, dtype=np.int64)
    slot[first] = np.arange(len(first), dtype=np.int64)
    by_first = slot[slot >= 0]
    order = by_first[np.argsort((owner * 1e6 - score).take(by_first), kind="stable")]
    owner = owner.take(order)
    # each pair's rank inside its item: its index minus where its item's pairs begin (one binary search per item, not
    # per pair: the owners are sorted)
    rank = np.arange(len(order)) - np.searchsorted(owner, np.arange(n))[owner]
    keep = order[rank < k]
    ends = np.cumsum(np.bincount(owner[rank < k], minlength=n)).tolist()
    # All the batch's words in one C-level map; each item's keywords are a slice of that list.
    word_ids = word[keep]
    words = pick(lexicon.words, word_ids.tolist())
    starts = [0, *ends[:-1]]
    k_words = min(k_words, k)
    return (TopTerms(words, word_ids, score[keep], starts, ends, lexicon.generation),
            [words[start:min(end, start + k_words)] for start, end in zip(starts, ends, strict=True)])


def pick(values: Sequence[str], indexes: list[int]) -> list[str]:
    """[values[i] for i in indexes] in one C call: itemgetter reads each through the sequence's own subscript
    (~130 instructions an item) where map over a bound `__getitem__` calls a method wrapper per item (~450)."""
    if len(indexes) > 1:
        return list(itemgetter(*indexes)(values))
    return [values[i] for i in indexes]


def _count_pairs(keys: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`np.unique(keys, return_index=True, return_counts=True)` for non-negative keys below `bound`, by one plain sort
    of each key packed with its index (unique values: no stable sort needed), 2-3x faster than np.unique's."""
    index_bits = max(1, (len(keys) - 1).bit_length())
    if bound.bit_length() + index_bits > 62:
        return np.unique(keys, return_index=True, return_counts=True)
    packed = (keys << index_bits) | np.arange(len(keys), dtype=np.int64)
    packed.sort()
    sorted_keys = packed >> index_bits
    starts = np.flatnonzero(np.diff(sorted_keys, prepend=-1))
    counts = np.diff(starts, append=len(packed))
    return sorted_keys[starts], packed[starts] & ((1 << index_bits) - 1), counts


def build_idf(texts: Iterable[str], min_df: int = _MIN_DF) -> dict[str, float]:
    """Smoothed idf, ln((1+N)/(1+df)) + 1, of words in at least `min_df` documents."""
    df: Counter[str] = Counter()
    n = 0
    stop = stopwords()
    batch: list[str] = []

    def flush() -> None:
        nonlocal n
        for toks in segment_many(batch):
            n += 1
            df.update({t.lower() for t in toks if useful(t.lower(), stop)})
        batch.clear()

    for text in texts:
        batch.append(text)
        if len(batch) >= 2000:
            flush()
    flush()
    return {w: math.log((1 + n) / (1 + c)) + 1 for w, c in df.items() if c >= min_df}


def _shared_texts() -> Iterable[str]:
    import pandas as pd

    from core.paths import data_dir

    root = data_dir()
    for rel in ("tipdm2020c_messages_labeled/messages.csv", "tipdm2020c_hot_issue_messages/messages.csv",
                "tipdm2020c_replies/replies.csv"):
        frame = pd.read_csv(root / rel)
        for title, body in zip(frame["title"].fillna(""), frame["body"].fillna(""), strict=True):
            yield f"{title}\n{' '.join(str(body).split())}"
    yield from pd.read_csv(root / "weibo_covid19_unlabeled_sample" / "posts.csv")["text"].fillna("").astype(str)


def write_idf(out: Path) -> int:
    table = build_idf(_shared_texts())
    lines = ["# idf table for analysis.keywords, built by `python -m analysis.keywords build` from the shared 泰迪杯 2020C",
             "# messages and replies and the COVID-19 Weibo sample (words in >= 3 documents)."]
    lines.extend(f"{w} {v:.4f}" for w, v in sorted(table.items(), key=lambda kv: (kv[1], kv[0])))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(table)


if __name__ == "__main__":  # pragma: no cover - maintenance command
    if len(sys.argv) != 3 or sys.argv[1] != "build":
        sys.exit("usage: python -m analysis.keywords build OUT")
    count = write_idf(Path(sys.argv[2]))
    sys.stdout.write(f"{count} words\n")
