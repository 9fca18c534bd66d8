"""Near-duplicate detection: one-permutation MinHash over words and word pairs, banded LSH, verified by estimated
Jaccard.

Why MinHash rather than SimHash: on the real near-duplicate groups of the shared Weibo sets, SimHash needed a Hamming
radius of 12 bits for 83 % recall, which also matched about one random pair in 10,000; word-and-pair Jaccard of the
same pairs is ≥ 0.68 in 90 % of cases while random pairs sit near 0.02.

Why one-permutation hashing (Li et al. 2012, densified by rotation as in Shrivastava & Li 2014): classic MinHash
costs features × 64 hash evaluations per item (about 30 µs for a 150-character post even in numpy); here each
feature is hashed once, its top 6 bits choose one of 64 bins and the bin keeps the smallest remaining 26 bits. A whole
batch is one `np.minimum.at`, a few microseconds per item. Empty bins borrow the next non-empty bin's value plus an
offset per step, so short texts still compare bin by bin. The index knows nothing about the store; `nlp.event_store`
persists it.
"""

from __future__ import annotations

import zlib
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import is_not
from typing import Any

import numpy as np

NUM_PERM = 64  # bins of the signature (the name is kept: it is what a stored signature's length means)
SCHEME = "oph64-v1"  # stored signatures of another scheme cannot be compared with these
_BIN_BITS = 6
_VALUE_BITS = 32 - _BIN_BITS
_VALUE_MASK = np.uint32((1 << _VALUE_BITS) - 1)
_MAX_FEATURES = 400  # long texts: the first 400 words decide; a 100,000-character post costs like a long one
_BUCKET_CAP = 16  # items kept per LSH bucket (the earliest: repost chains point at their first item)
_MAX_CHECKS = 48  # candidates verified per query; a flood of copies of one text must not make queries quadratic
_MAXV = np.uint32(0xFFFFFFFF)
_EMPTY = np.full(NUM_PERM, _MAXV, dtype=np.uint32)
_PAIR_MIX = np.uint32(0x9E3779B1)
_SEED = np.uint32(0x5BD1E995)
_BAND_MIX = np.uint64(0x100000001B3)


def _fmix32(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's finaliser: spreads crc32 values so every bit (the bin bits too) is uniform."""
    x = x ^ (x >> np.uint32(16))
    x *= np.uint32(0x85EBCA6B)
    x ^= x >> np.uint32(13)
    x *= np.uint32(0xC2B2AE35)
    x ^= x >> np.uint32(16)
    return x


def signatures_from_hashes(hashes: np.ndarray, owner: np.ndarray, position: np.ndarray, n: int) -> np.ndarray:
    """Signatures (n × NUM_PERM, uint32) from per-token word hashes, the item index and position of each token."""
    keep = position < _MAX_FEATURES
    uni = hashes[keep].astype(np.uint32, copy=False)
    own = owner[keep]
    same = own[1:] == own[:-1]  # adjacent words of one item form a pair feature
    with np.errstate(over="ignore"):
        pairs = (uni[:-1] * _PAIR_MIX) ^ uni[1:]
        features = np.concatenate([uni, pairs[same]]) ^ _SEED
        mixed = _fmix32(features)
    feature_owner = np.concatenate([own, own[1:][same]])
    flat = np.full(n * NUM_PERM, _MAXV, dtype=np.uint32)
    if mixed.size:
        np.minimum.at(flat, feature_owner * NUM_PERM + (mixed >> np.uint32(_VALUE_BITS)), mixed & _VALUE_MASK)
    sig = flat.reshape(n, NUM_PERM)
    _densify(sig)
    return sig


def _densify(sig: np.ndarray) -> None:
    """Fill each empty bin from the next non-empty bin (circularly), adding 2^26 per step; all-empty rows stay empty."""
    empty = sig == _MAXV
    partial = np.flatnonzero(empty.any(axis=1) & ~empty.all(axis=1))
    if not partial.size:
        return
    rows, holes = sig[partial], empty[partial]
    idx = np.arange(NUM_PERM)
    far = 4 * NUM_PERM
    pos = np.concatenate([np.where(holes, far, idx), np.where(holes, far, idx + NUM_PERM)], axis=1)
    nearest = np.minimum.accumulate(pos[:, ::-1], axis=1)[:, ::-1][:, :NUM_PERM]
    steps = (nearest - idx).astype(np.uint32)
    with np.errstate(over="ignore"):
        sig[partial] = np.take_along_axis(rows, nearest % NUM_PERM, axis=1) + steps * np.uint32(1 << _VALUE_BITS)


def word_hashes(tokens: Sequence[str]) -> list[int]:
    """crc32 of each lower-cased word (what `nlp.lexicon` stores per word)."""
    return [zlib.crc32(t.lower().encode("utf-8")) for t in tokens]


def signatures(token_lists: Sequence[Sequence[str]]) -> np.ndarray:
    """Signatures (n × NUM_PERM, uint32) of many token lists in one vectorised pass."""
    lengths = np.array([len(t) for t in token_lists], dtype=np.int64)
    hashes = np.array([h for tokens in token_lists for h in word_hashes(tokens)], dtype=np.uint32)
    n = len(token_lists)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if n else np.zeros(0, dtype=np.int64)
    owner = np.repeat(np.arange(n, dtype=np.int64), lengths)
    position = np.arange(len(hashes), dtype=np.int64) - np.repeat(starts, lengths)
    return signatures_from_hashes(hashes, owner, position, n)


def band_keys(sigs: np.ndarray, bands: int = 16) -> np.ndarray:
    """One integer key per band per signature (the band's rows hashed together): an (n × bands) uint64 array."""
    rows = NUM_PERM // bands
    parts = sigs.reshape(len(sigs), bands, rows).astype(np.uint64)
    with np.errstate(over="ignore"):
        key = parts[:, :, 0].copy()
        for r in range(1, rows):
            key = key * _BAND_MIX + parts[:, :, r]
    return key


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two signatures."""
    return float(np.count_nonzero(a == b)) / NUM_PERM


def _age(item_id: int) -> tuple[bool, int]:
    """Stored ids first (ascending), then this batch's temporary ids (-2, -3, ...) in arrival order."""
    return item_id < 0, abs(item_id)


def is_empty(signature: np.ndarray) -> bool:
    return bool(signature[0] == _MAXV) and np.array_equal(signature, _EMPTY)


def _put(bucket: dict[int, int | list[int]], key: int, item_id: int) -> None:
    found = bucket.get(key)
    if found is None:
        bucket[key] = item_id
    elif type(found) is int:
        bucket[key] = [found, item_id]
    elif len(found) < _BUCKET_CAP:
        found.append(item_id)


@dataclass
class Match:
    item_id: int
    similarity: float


class NearDuplicateIndex:
    """Banded LSH over signatures: `query` finds earlier items whose estimated Jaccard ≥ threshold.

    Entries may be indexed under a temporary (negative) id before the store gives the real one; `rekey` records an
    alias instead of rewriting the buckets, so giving ids costs a dictionary write per item.
    """

    def __init__(self, threshold: float = 0.6, bands: int = 16, max_entries: int = 1_000_000) -> None:
        if NUM_PERM % bands:
            raise ValueError(f"bands must divide {NUM_PERM}")
        self.threshold = threshold
        self.bands = bands
        self.rows = NUM_PERM // bands
        self.max_entries = max_entries
        # Band key → the item id, or a list of ids once a second item shares the key: most keys hold one item, and an
        # int is neither a container the garbage collector walks nor 60 bytes of list per band per item.
        self._buckets: list[dict[int, int | list[int]]] = [{} for _ in range(bands)]
        self._signatures: dict[int, np.ndarray] = {}
        self._roots: dict[int, int] = {}
        self._children: dict[int, list[int]] = {}  # temporary (negative) root → items pointing at it
        self._alias: dict[int, int] = {}  # temporary id → real id, for ids still held in buckets

    def __len__(self) -> int:
        return len(self._signatures)

    def __contains__(self, item_id: int) -> bool:
        return item_id in self._signatures

    def keys_of(self, signature: np.ndarray) -> list[int]:
        return band_keys(signature.reshape(1, NUM_PERM), self.bands)[0].tolist()

    def match_batch(self, sigs: np.ndarray, keys: np.ndarray, owns: list[int | None],
                    present: np.ndarray | None = None) -> list[tuple[str, int, float] | None]:
        """For each item of a batch, in order: its best match at or above the threshold, as ("index", item id, sim)
        for an indexed item or ("batch", position, sim) for an earlier item of this batch; None when there is none.

        Why per batch: most items match nothing, and finding that out costs one C-level membership test per band
        over the whole batch (plus one `np.unique` per band for repeats inside the batch). Items sharing a key with
        an earlier item of the batch are verified against those one by one; the candidates of all items sharing a key
        with the index are gathered first and verified in one array comparison (a repost-heavy stream has thousands
        of them per second). Each band is looked up once per item: `present` (n × bands, bool), when given, receives
        which keys the index holds, so that `add_many` of the same items need not ask again."""
        n = len(sigs)
        out: list[tuple[str, int, float] | None] = [None] * n
        if not n:
            return out
        empty = (sigs == _MAXV).all(axis=1)
        positions = np.arange(n)
        in_index = np.zeros(n, dtype=bool)
        in_batch = np.zeros(n, dtype=bool)
        found_by_band: list[list[Any]] = []  # per band, per item: what the bucket holds under the item's key
        for b, bucket in enumerate(self._buckets):
            column = keys[:, b]
            if bucket:
                found = list(map(bucket.get, column.tolist()))
                held = np.fromiter(map(is_not, found, repeat(None)), dtype=bool, count=n)
                in_index |= held
                if present is not None:
                    present[:, b] = held
            else:
                found = [None] * n
                if present is not None:
                    present[:, b] = False
            found_by_band.append(found)
            _, inverse = np.unique(column, return_inverse=True)
            first = np.full(inverse.max() + 1, n)
            np.minimum.at(first, inverse, positions)
            in_batch |= first[inverse] < positions
        in_index &= ~empty
        in_batch &= ~empty
        threshold = self.threshold
        asked: list[int] = []  # items whose match is looked for in the index, in order
        for i in np.flatnonzero(in_index | in_batch).tolist():
            if in_batch[i] and owns[i] is None:  # a repeat inside the batch (a re-crawled item is never a copy of a newer one)
                earlier = np.flatnonzero((keys[:i] == keys[i]).any(axis=1))[:_MAX_CHECKS]
                if earlier.size:
                    sims = np.count_nonzero(sigs[earlier] == sigs[i], axis=1)
                    j = int(np.argmax(sims))
                    sim = float(sims[j]) / NUM_PERM
                    if sim >= threshold:
                        out[i] = ("batch", int(earlier[j]), sim)  # its chain already leads to the root, if any
                        continue
            if in_index[i]:
                asked.append(i)
        if asked:
            by_item = list(zip(*found_by_band, strict=True))
            for i, match in zip(asked, self._query_many(sigs, [by_item[i] for i in asked], asked, owns), strict=True):
                own = owns[i]
                if match is not None and not (own is not None and match[0] > own):
                    out[i] = ("index", match[0], match[1])
        return out

    def _candidates(self, held: Iterable[Any], exclude: int | None) -> list[int]:
        """Indexed items found under an item's band keys (`held`: what each band's bucket holds, None for nothing),
        oldest first, at most _MAX_CHECKS of them."""
        # Comprehensions rather than one loop with branches: this runs for every item that repeats something.
        seen = {found for found in held if type(found) is int}
        lists = [found for found in held if type(found) is list]
        if lists:
            seen.update(*lists)
        if not seen:
            return []
        alias, stored = self._alias, self._signatures
        if alias:
            seen = {alias.get(c, c) for c in seen}
        ordered = sorted(seen)
        if ordered[0] < 0:  # the order of `_age` without a key function: stored ids ascending, then -2, -3, ...
            split = bisect_left(ordered, 0)
            ordered = ordered[split:] + ordered[split - 1::-1]
        if exclude is None:
            return [c for c in ordered if c in stored][:_MAX_CHECKS]
        return [c for c in ordered if c != exclude and c in stored][:_MAX_CHECKS]

    def _query_many(self, sigs: np.ndarray, held: list[tuple[Any, ...]], rows: list[int],
                    owns: list[int | None]) -> list[tuple[int, float] | None]:
        """`query` for many rows of a batch: candidates in Python, all similarities in one comparison."""
        candidates = [self._candidates(h, owns[i]) for i, h in zip(rows, held, strict=True)]
        counts = np.fromiter(map(len, candidates), dtype=np.int64, count=len(rows))
        out: list[tuple[int, float] | None] = [None] * len(rows)
        if not counts.any():
            return out
        stored = self._signatures
        flat = [c for group in candidates for c in group]
        # concatenate + reshape: np.stack costs a Python-level step per array, and there are tens of thousands
        candidate_sigs = np.concatenate(list(map(stored.__getitem__, flat))).reshape(len(flat), NUM_PERM)
        sims = np.count_nonzero(candidate_sigs == np.repeat(sigs[rows], counts, axis=0), axis=1)
        ends = np.cumsum(counts)
        starts = ends - counts
        has = np.flatnonzero(counts)
        best = np.maximum.reduceat(sims, starts[has])  # reduceat over non-empty groups only
        # The first candidate (the oldest) reaching each group's best, as np.argmax would pick.
        owner = np.repeat(np.arange(len(rows)), counts)
        group_best = np.zeros(len(rows), dtype=sims.dtype)
        group_best[has] = best
        hits = np.flatnonzero(sims == group_best[owner])  # ascending, so grouped by row, oldest candidate first
        first = hits[np.searchsorted(owner[hits], has)]
        minimum = self.threshold * NUM_PERM
        for r, f, sim in zip(has.tolist(), first.tolist(), best.tolist(), strict=True):
            if sim >= minimum:
                out[r] = (flat[f], sim / NUM_PERM)
        return out

    def query(self, signature: np.ndarray, exclude: int | None = None, keys: list[int] | None = None) -> Match | None:
        """The most similar indexed item at or above the threshold (ties: the earliest), or None."""
        if is_empty(signature):
            return None
        keys = keys if keys is not None else self.keys_of(signature)
        candidates = self._candidates([band.get(key) for band, key in zip(self._buckets, keys, strict=True)], exclude)
        if not candidates:
            return None
        sims = np.count_nonzero(np.stack([self._signatures[c] for c in candidates]) == signature, axis=1)
        best = int(np.argmax(sims))  # the first of the most similar: ties go to the earliest
        sim = float(sims[best]) / NUM_PERM
        return Match(candidates[best], sim) if sim >= self.threshold else None

    def add(self, item_id: int, signature: np.ndarray, duplicate_of: int | None = None,
            keys: list[int] | None = None) -> None:
        """Index an item; a duplicate points at the root of its chain so repost chains collapse onto the first."""
        if item_id in self._signatures or is_empty(signature):
            return
        if len(self._signatures) >= self.max_entries:
            self._evict_oldest(len(self._signatures) // 10)
        keys = keys if keys is not None else self.keys_of(signature)
        self._signatures[item_id] = signature
        if duplicate_of is not None:
            root = self._roots.get(duplicate_of, duplicate_of)
            self._roots[item_id] = root
            if root < 0:
                self._children.setdefault(root, []).append(item_id)
        for band, key in zip(self._buckets, keys, strict=True):
            _put(band, key, item_id)

    def add_many(self, item_ids: list[int], sigs: np.ndarray, keys: np.ndarray, roots: list[int | None],
                 present: np.ndarray | None = None) -> None:
        """`add` for a batch: the bucket lists are filled band by band over the whole batch. `present` is what
        `match_batch` found for these items (no item was added since), else the buckets are asked."""
        if not item_ids:
            return
        keep = [i for i, (item_id, empty) in enumerate(zip(item_ids, (sigs == _MAXV).all(axis=1).tolist(), strict=True))
                if not empty and item_id not in self._signatures]
        if not keep:
            return
        ids = [item_ids[i] for i in keep]
        rows = keys[keep]
        held = present[keep] if present is not None else None
        for item_id, sig, i in zip(ids, sigs[keep], keep, strict=True):
            self._signatures[item_id] = sig
            duplicate_of = roots[i]
            if duplicate_of is not None:
                root = self._roots.get(duplicate_of, duplicate_of)
                self._roots[item_id] = root
                if root < 0:
                    self._children.setdefault(root, []).append(item_id)
        count = len(ids)
        positions = np.arange(count)
        for b, bucket in enumerate(self._buckets):
            column = rows[:, b]
            keys = column.tolist()
            # Keys new to the band and first in the batch go in with one dict.update; only the others (a key already
            # held, a repeat inside the batch) take `_put`, in batch order, after them: the same buckets as `_put`
            # over every item in order.
            _, first_at, inverse = np.unique(column, return_index=True, return_inverse=True)
            simple = first_at[inverse] == positions
            if held is not None:
                simple &= ~held[:, b]
            elif bucket:
                simple &= ~np.fromiter(map(bucket.__contains__, keys), dtype=bool, count=count)
            bucket.update(zip(column[simple].tolist(), np.asarray(ids)[simple].tolist(), strict=True))
            get = bucket.get
            for j in np.flatnonzero(~simple).tolist():  # `_put`, inlined: half the items of a repost stream come here
                key = keys[j]
                found = get(key)
                if found is None:
                    bucket[key] = ids[j]
                elif type(found) is int:
                    bucket[key] = [found, ids[j]]
                elif len(found) < _BUCKET_CAP:
                    found.append(ids[j])
        excess = len(self._signatures) - self.max_entries
        if excess > 0:
            self._evict_oldest(excess + self.max_entries // 10)

    def rekey(self, old: int, new: int) -> np.ndarray | None:
        """Give an entry indexed under a temporary id (before the store assigned one) its real id."""
        signature = self._signatures.pop(old, None)
        if signature is None:
            return None
        self._signatures[new] = signature
        self._alias[old] = new
        if old in self._roots:
            self._roots[new] = self._roots.pop(old)
        for child in self._children.pop(old, []):
            self._roots[child] = new
        return signature

    def root(self, item_id: int) -> int:
        """The first item of the chain `item_id` belongs to."""
        return self._roots.get(item_id, item_id)

    def _evict_oldest(self, count: int) -> None:
        """Forget the lowest ids (oldest items) and rebuild the buckets: repost chains are recent, memory is not free."""
        drop = set(sorted(self._signatures, key=_age)[:count])  # temporary ids are the newest
        for item_id in drop:
            self._signatures.pop(item_id, None)
            self._roots.pop(item_id, None)
        self._alias.clear()
        self._buckets = [{} for _ in range(self.bands)]
        kept = sorted(self._signatures, key=_age)
        if kept:
            keys = band_keys(np.stack([self._signatures[i] for i in kept]), self.bands)
            for band, column in zip(self._buckets, keys.T.tolist(), strict=True):
                for key, item_id in zip(column, kept, strict=True):
                    _put(band, key, item_id)
