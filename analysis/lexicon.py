"""Per-word facts computed once per distinct word, and a batch of token lists encoded as one integer array.

Why: the analysis stages (keywords, near-duplicates, organisations, event vectors) all look at every word of every
item. Doing that in Python per token costs microseconds per item per stage; instead each distinct word gets an id
with its idf weight (0 when it is no keyword: stopword, number, one character), its stable hash (crc32 of the
lower-cased word, so near-duplicate signatures survive restarts), its 64-bit feature hash (`nlp.features.hash_strings`,
so classification reads the batch's word hashes off the ids instead of hashing every token again) and an organisation
flag, and a whole batch becomes one numpy array of ids that the stages work on with vector operations.
"""

from __future__ import annotations

import zlib
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, compress, count, filterfalse, repeat
from operator import itemgetter, ne
from struct import Struct

import numpy as np

from nlp.features import WordIds, hash_strings

ORG_HEAD = 1  # a head word that names a body or site together with the word before it (学院, 小区)
ORG_WORD = 2  # a word that is an organisation by itself (dictionary tag or suffix: 教育局, 人民医院)
_GENERATIONS = count(1)  # unique across lexicons: a per-id cache keyed by generation never mixes two tables


@dataclass
class Encoded:
    """A batch of token lists as one array: `ids[starts[i]:starts[i] + lengths[i]]` are item i's words
    (`token_lists[i]`)."""

    token_lists: Sequence[Sequence[str]]
    ids: np.ndarray  # int64, one per token
    lengths: np.ndarray  # int64, tokens per item
    starts: np.ndarray  # int64, offset of each item's first token
    owner: np.ndarray  # int64, item index of each token
    position: np.ndarray  # int64, index of each token inside its item


# What the packed word index gives a word it does not hold, during `Lexicon.encode`'s one-pass look-up: -1 as eight
# little-endian bytes, from C.
_UNKNOWN_PACKED = repeat((-1).to_bytes(8, "little", signed=True)).__next__
_pack = Struct("<q").pack  # an id as the eight bytes of an int64 (little-endian, numpy's int64 here)


def _packed_index() -> defaultdict[str, bytes]:
    """word → its id as eight bytes (`_pack`). A `defaultdict` (exactly that type) so that `itemgetter(*words)(index)`
    looks a whole batch up in one C-level call without stopping at the first new word: a new word reads as -1 (and
    is entered as -1, which `encode` removes again before it adds the word). A Python subclass of dict with
    `__missing__` did the same, but every look-up then went through a Python-level `__getitem__` slot: 340
    instructions a token instead of 170 (the classify stage encodes ~110 tokens per item).

    Why bytes: the ids of a batch are then one `b"".join` and one `np.frombuffer`; `np.fromiter` over the looked-up
    ints cost ~200 instructions a token, the join ~40. Read `Lexicon.index` (ints) everywhere else."""
    return defaultdict(_UNKNOWN_PACKED)


class Lexicon:
    """Word → id with weight, hash and flags; grows with new words, and forgets them past `max_words`."""

    def __init__(self, idf: dict[str, float], default_idf: float, useful: Callable[[list[str]], list[bool]],
                 org_flags: Callable[[list[str]], list[int]], max_words: int = 100_000) -> None:
        """`useful` and `org_flags` judge a list of new words at once (`analysis.keywords.useful_many`,
        `analysis.gazetteer.org_flags`)."""
        self._idf = idf
        self._default_idf = default_idf
        self._useful = useful
        self._org_flags = org_flags
        self.max_words = max(max_words, len(idf) * 2)
        self._reset()

    def _reset(self) -> None:
        self.generation = next(_GENERATIONS)  # ids are given out anew from here
        self.index: dict[str, int] = {}
        self._packed = _packed_index()  # the same words, ids as bytes, for `encode`
        self.words: list[str] = []
        capacity = max(1024, len(self._idf) * 2)
        self.weight = np.zeros(capacity, dtype=np.float64)
        self.hash = np.zeros(capacity, dtype=np.uint32)
        self.feature_hash = np.zeros(capacity, dtype=np.uint64)
        self.flag = np.zeros(capacity, dtype=np.uint8)
        self._add_many(self._idf)

    def _add(self, token: str) -> int:
        self._add_many([token])
        return self.index[token]

    def _add_many(self, tokens: Iterable[str]) -> None:
        """Give new words ids; their facts are computed in lists and written to the arrays in one slice each."""
        index = self.index
        tokens = list(tokens)
        lows = list(map(str.lower, tokens))
        fresh = list(filterfalse(index.__contains__, dict.fromkeys(lows)))  # C-level, first-seen order
        aliases = list(compress(zip(tokens, lows, strict=True), map(ne, tokens, lows)))
        if fresh:
            first = len(self.words)
            end = first + len(fresh)
            if end > len(self.weight):
                size = max(end, len(self.weight) * 2)
                self.weight = np.resize(self.weight, size)
                self.hash = np.resize(self.hash, size)
                self.feature_hash = np.resize(self.feature_hash, size)
                self.flag = np.resize(self.flag, size)
            idf, default, useful = self._idf, self._default_idf, self._useful
            self.weight[first:end] = [idf.get(w, default) if u else 0.0 for w, u in zip(fresh, useful(fresh), strict=True)]
            self.hash[first:end] = list(map(zlib.crc32, map(str.encode, fresh)))  # str.encode: UTF-8
            # hash_strings lower-cases, and lower() is idempotent, so an alias (a spelling that lower-cases to this
            # word) has the same feature hash as the word: one value per id serves every spelling.
            self.feature_hash[first:end] = hash_strings(fresh)
            self.flag[first:end] = self._org_flags(fresh)
            self.words.extend(fresh)
            index.update(zip(fresh, range(first, end), strict=True))
            self._packed.update(zip(fresh, map(_pack, range(first, end)), strict=True))
        packed = self._packed
        for token, low in aliases:
            index[token] = index[low]
            packed[token] = packed[low]

    def word_ids(self, ids: np.ndarray) -> WordIds:
        """`ids` (from `encode`) with what the featuriser reads per id: feature hashes and this table's generation."""
        return WordIds(ids, self.feature_hash, len(self.words), self.generation)

    def id_of(self, token: str) -> int:
        found = self.index.get(token)
        return found if found is not None else self._add(token)

    def encode(self, token_lists: Sequence[Sequence[str]]) -> Encoded:
        """All token lists of a batch as one id array (new words are added first)."""
        if len(self.words) > self.max_words:
            self._reset()  # a stream of one-off words (numbers, names) must not grow memory without end
        n = len(token_lists)
        lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=n)
        total = int(lengths.sum())
        flat = list(chain.from_iterable(token_lists))
        # One C-level pass: each token's packed id, -1 for an unknown word; unknown words are added and looked up.
        packed = self._packed
        found = itemgetter(*flat)(packed) if total > 1 else tuple(map(packed.__getitem__, flat))
        ids = np.frombuffer(bytearray(b"".join(found)), dtype="<i8").astype(np.int64, copy=False)
        if total and ids.min() < 0:
            missing = np.flatnonzero(ids < 0).tolist()
            new = [flat[j] for j in missing]
            # the look-up entered them as -1: out again before they get ids
            deque(map(packed.__delitem__, dict.fromkeys(new)), maxlen=0)
            self._add_many(new)
            ids[missing] = np.frombuffer(b"".join(map(packed.__getitem__, new)), dtype="<i8")
        starts = np.zeros(n, dtype=np.int64)
        if n > 1:
            np.cumsum(lengths[:-1], out=starts[1:])
        owner = np.repeat(np.arange(n, dtype=np.int64), lengths)
        position = np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)
        return Encoded(token_lists, ids, lengths, starts, owner, position)
