"""Near-duplicate detection: one-permutation MinHash over words and word pairs, banded LSH, verified by estimated
Jaccard.

Why MinHash rather than SimHash: on the real near-duplicate groups of the shared Weibo sets, SimHash needed a Hamming
radius of 12 bits for 83 % recall, which also matched about one random pair in 10,000; word-and-pair Jaccard of the
same pairs is ≥ 0.68 in 90 % of cases while random pairs sit near 0.02.

Why one-permutation hashing (Li et al. 2012, densified by rotation as in Shrivastava & Li 2014): classic MinHash
costs features × 64 hash evaluations per item (about 30 µs for a 150-character post even in numpy); here each
feature is hashed once, its top 6 bits choose one of 64 bins and the bin keeps the smallest remaining 26 bits. A whole
batch is one `np.minimum.at`, a few microseconds per item. Empty bins borrow the next non-empty bin's value plus an
offset per step, so short texts still compare bin by bin. The index knows nothing about the store; `analysis.event_store`
persists it.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import is_

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
_NO_CODE = -(1 << 62)  # a band key no bucket holds
_BAND_SALT = np.uint64(0xC2B2AE3D27D4EB4F)
_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)
_TEMP_AGE = 1 << 62  # age of temporary id -k: after every stored id


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
    if keep.all():  # the usual batch (no item past the cap): no copies of the whole batch's arrays
        uni, own = hashes.astype(np.uint32, copy=False), owner
    else:
        uni, own = hashes[keep].astype(np.uint32, copy=False), owner[keep]
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
    """Fill each empty bin from the next non-empty bin (circularly), adding 2^26 per step; all-empty rows stay empty.

    Why by holes: a 140-character post leaves about 9 of its 64 bins empty; each hole finds its next filled bin with
    one binary search over the filled positions of the rows laid out twice (so the search never wraps), instead of
    scans over every bin of every row (2 ms per batch of 500). The holes are flat indexes into the (contiguous)
    signatures, read and written in place: 1-D gathers, no copy of the rows with holes (-40 % instructions)."""
    if not sig.flags.c_contiguous:
        dense = np.ascontiguousarray(sig)
        _densify(dense)
        sig[...] = dense
        return
    empty = sig == _MAXV
    holes = np.flatnonzero(empty)
    if not holes.size:
        return
    row = holes >> 6  # NUM_PERM == 64 bins a row
    counts = np.bincount(row, minlength=len(sig))
    if (counts == NUM_PERM).any():  # rows without any filled bin stay empty
        holes = holes[counts[row] < NUM_PERM]
        if not holes.size:
            return
        row = holes >> 6
    filled_at = np.flatnonzero(~np.concatenate([empty, empty], axis=1))  # row r's bins at r·128 … r·128+127
    at = holes + (row << 6)
    steps = filled_at[np.searchsorted(filled_at, at)] - at  # 1 … 63: the row has a filled bin within 64 places
    flat = sig.reshape(-1)  # a view (contiguous)
    with np.errstate(over="ignore"):
        flat[holes] = (flat[(row << 6) + ((holes + steps) & (NUM_PERM - 1))]
                       + steps.astype(np.uint32) * np.uint32(1 << _VALUE_BITS))


def word_hashes(tokens: Sequence[str]) -> list[int]:
    """crc32 of each lower-cased word (what `analysis.lexicon` stores per word)."""
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


def _age_keys(ids: np.ndarray) -> np.ndarray:
    """`_age` as one sortable int64 per id: stored ids ascending, then temporary ids (-2, -3, ...) after them."""
    return np.where(ids < 0, _TEMP_AGE - ids, ids)


def _group_starts(new_group: np.ndarray) -> np.ndarray:
    """For each element of a sorted run, the index of the first element of its group (`new_group` marks the firsts)."""
    idx = np.arange(len(new_group))
    return np.maximum.accumulate(np.where(new_group, idx, 0))


@dataclass
class BandGroups:
    """A batch's items grouped by equal key within each band, band after band (flat, bands × n): `items[k]` is an
    item, `start[k]` where its group begins, `rank[k]` how many items of the batch came before it in its group."""

    keys: np.ndarray
    items: np.ndarray
    start: np.ndarray
    rank: np.ndarray
    size: np.ndarray  # of its group
    first: np.ndarray  # marks the first item of each group


def band_groups(keys: np.ndarray) -> BandGroups:
    """Group equal keys per band. Why not one stable argsort: numpy's stable sort of uint64 is a radix sort about
    three times slower than quicksort here; only the few groups of two or more items need their arrival order."""
    n = len(keys)
    by_band = np.ascontiguousarray(keys.T)
    order = np.argsort(by_band, axis=1)
    sorted_keys = np.take_along_axis(by_band, order, axis=1)
    first = np.ones(sorted_keys.shape, dtype=bool)
    first[:, 1:] = sorted_keys[:, 1:] != sorted_keys[:, :-1]
    first = first.ravel()
    items = order.ravel()
    start = _group_starts(first)
    rank = np.arange(first.size) - start
    size = np.bincount(start, minlength=first.size)[start]
    if n and not first.all():
        grouped = np.flatnonzero(size > 1)
        grouped = grouped[np.lexsort((items[grouped], start[grouped]))]  # within each group: arrival order
        items[np.sort(grouped)] = items[grouped]
    return BandGroups(sorted_keys.ravel(), items, start, rank, size, first)


class _KeyTable:
    """Open-addressing hash table from (band, band key) to an int32 code, in numpy arrays; linear probing, at most
    half full. Why not a dict per band: a batch asks 16 keys per item and adds as many; here each is a few array
    operations over the whole batch instead of a Python-level call per key.

    A cell is 12 bytes: the band folded into the 64-bit key (`_cell_keys`: key XOR a per-band salt, 0 meaning a free
    cell) and the code. Two different (band, key) pairs share a cell key only by a 64-bit coincidence, and then merely
    add a candidate that the similarity check rejects. Memory: 2 to 4 cells per entry (24 to 48 bytes); at 1,000,000
    items × 16 bands 0.38 to 0.77 GB (it was 1.1 to 2.3 GB with 17-byte cells at most a quarter full)."""

    def __init__(self, capacity: int = 1 << 16) -> None:
        self.count = 0
        self._allocate(capacity)

    def _allocate(self, capacity: int) -> None:
        self.mask = capacity - 1
        self.shift = np.uint64(64 - (capacity.bit_length() - 1))
        self.keys = np.zeros(capacity, dtype=np.uint64)  # 0: a free cell
        self.codes = np.zeros(capacity, dtype=np.int32)

    @staticmethod
    def _cell_keys(keys: np.ndarray, bands: np.ndarray) -> np.ndarray:
        """The key a cell holds for (key, band): never 0, which marks a free cell."""
        with np.errstate(over="ignore"):
            cell = keys ^ ((bands.astype(np.uint64) + np.uint64(1)) * _BAND_SALT)
        cell[cell == 0] = 1
        return cell

    def _home(self, cell_keys: np.ndarray) -> np.ndarray:
        """Each entry's first cell: Fibonacci hashing (top bits of the product)."""
        with np.errstate(over="ignore"):
            return ((cell_keys * _FIBONACCI) >> self.shift).astype(np.int64)

    def _find(self, cell_keys: np.ndarray) -> np.ndarray:
        found = np.full(len(cell_keys), -1, dtype=np.int64)
        todo = np.arange(len(cell_keys))
        cells = self._home(cell_keys)
        while todo.size:
            held = self.keys[cells]
            hit = held == cell_keys[todo]
            found[todo[hit]] = cells[hit]
            probe = ~hit & (held != 0)
            todo, cells = todo[probe], (cells[probe] + 1) & self.mask
        return found

    def find(self, keys: np.ndarray, bands: np.ndarray) -> np.ndarray:
        """The cell of each (key, band), -1 where absent."""
        return self._find(self._cell_keys(keys, bands))

    def get(self, keys: np.ndarray, bands: np.ndarray) -> np.ndarray:
        """The code of each (key, band) as int64, _NO_CODE where absent."""
        cells = self.find(keys, bands)
        return np.where(cells >= 0, self.codes[cells].astype(np.int64), _NO_CODE)

    def add(self, keys: np.ndarray, bands: np.ndarray, codes: np.ndarray) -> None:
        """Add entries that are absent and distinct."""
        self._add(self._cell_keys(keys, bands), codes)

    def _add(self, cell_keys: np.ndarray, codes: np.ndarray) -> None:
        if (self.count + len(cell_keys)) * 2 > self.mask + 1:
            self._grow(self.count + len(cell_keys))
        todo = np.arange(len(cell_keys))
        cells = self._home(cell_keys)
        while todo.size:
            free = self.keys[cells] == 0
            # Entries aiming at the same free cell: the one whose index sticks in a fancy assignment takes it.
            claim = todo[free]
            self.codes[cells[free]] = claim
            won = np.zeros(todo.size, dtype=bool)
            won[free] = self.codes[cells[free]] == claim
            winners, at = todo[won], cells[won]
            self.keys[at], self.codes[at] = cell_keys[winners], codes[winners]
            todo, cells = todo[~won], (cells[~won] + 1) & self.mask
        self.count += len(cell_keys)

    def set(self, keys: np.ndarray, bands: np.ndarray, codes: np.ndarray) -> None:
        """Change the codes of present entries."""
        self.codes[self.find(keys, bands)] = codes

    def _grow(self, need: int) -> None:
        held = np.flatnonzero(self.keys)
        cell_keys, codes = self.keys[held], self.codes[held]
        capacity = self.mask + 1
        while need * 2 > capacity:
            capacity *= 2
        self._allocate(capacity)
        self.count = 0
        self._add(cell_keys, codes)

    @property
    def nbytes(self) -> int:
        return self.keys.nbytes + self.codes.nbytes


def _first_of_best(owner: np.ndarray, sims: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group of consecutive equal `owner`s: the group, the index of its first element reaching the group's highest
    similarity (as np.argmax picks: the oldest candidate on ties) and that similarity."""
    counts = np.bincount(owner, minlength=groups)
    has = np.flatnonzero(counts)
    starts = (np.cumsum(counts) - counts)[has]
    best = np.maximum.reduceat(sims, starts)
    group_best = np.zeros(groups, dtype=sims.dtype)
    group_best[has] = best
    hits = np.flatnonzero(sims == group_best[owner])  # ascending: grouped by owner, oldest candidate first
    first = hits[np.searchsorted(owner[hits], has)]
    return has, first, best


@dataclass
class Match:
    item_id: int
    similarity: float


class NearDuplicateIndex:
    """Banded LSH over signatures: `query` finds earlier items whose estimated Jaccard ≥ threshold.

    Layout (why: a batch is looked up, verified and added with numpy, not item by item in Python): each indexed item
    has a slot, a row of `_sig`; its id is `_slot_id[slot]`, so giving an entry indexed under a temporary (negative) id
    its real one (`rekey`) rewrites one number. `_table` maps (band, key) to a code: the slot when one item holds the
    key (most keys), else ~row of `_members`, whose first `_member_count[row]` entries are the slots of the earliest
    items sharing it (at most _BUCKET_CAP, as the lists of the former dict-per-band buckets). Candidates are taken
    oldest first by `_age` of their ids, whatever the slot order. Member rows are int32 slots: fine while max_entries
    stays below 2^31.

    Not thread-safe, by design: only the ingest writer (`flow.writer`) runs the stages that query, add and rekey.
    """

    def __init__(self, threshold: float = 0.6, bands: int = 16, max_entries: int = 1_000_000) -> None:
        if NUM_PERM % bands:
            raise ValueError(f"bands must divide {NUM_PERM}")
        self.threshold = threshold
        self.bands = bands
        self.rows = NUM_PERM // bands
        self.max_entries = max_entries
        self._roots: dict[int, int] = {}
        self._children: dict[int, list[int]] = {}  # temporary (negative) root → items pointing at it
        self._reset()

    def _reset(self) -> None:
        """Empty slots and buckets (roots are kept: eviction forgets them item by item)."""
        self._table = _KeyTable()
        self._slot_of: dict[int, int] = {}  # item id → slot
        self._used = 0
        self._sig = np.empty((1024, NUM_PERM), dtype=np.uint32)
        self._slot_id = np.empty(1024, dtype=np.int64)
        self._slot_age = np.empty(1024, dtype=np.int64)
        # A slot whose id was given to another slot by `rekey` answers as that slot (`_canon`), as the id would
        self._canon: np.ndarray | None = None
        self._members = np.empty((256, _BUCKET_CAP), dtype=np.int32)
        self._member_count = np.zeros(256, dtype=np.int32)
        self._rows_used = 0

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, item_id: int) -> bool:
        return item_id in self._slot_of

    def keys_of(self, signature: np.ndarray) -> list[int]:
        return self.keys_array(signature)[0].tolist()

    def keys_array(self, signature: np.ndarray) -> np.ndarray:
        """One signature's band keys as a 1 × bands array."""
        return band_keys(signature.reshape(1, NUM_PERM), self.bands)

    # -- storage -------------------------------------------------------------------------------------------------

    def _new_slots(self, count: int) -> int:
        """Reserve `count` slots; the first one's number."""
        start = self._used
        need = start + count
        if need > len(self._sig):
            size = max(need, 2 * len(self._sig))
            self._sig = _grown(self._sig, size)
            self._slot_id = _grown(self._slot_id, size)
            self._slot_age = _grown(self._slot_age, size)
            if self._canon is not None:
                self._canon = np.concatenate([self._canon, np.arange(len(self._canon), size)])
        self._used = need
        return start

    def _new_rows(self, count: int) -> int:
        """Reserve `count` member rows (cleared); the first one's number."""
        start = self._rows_used
        need = start + count
        if need > len(self._members):
            size = max(need, 2 * len(self._members))
            self._members = _grown(self._members, size)
            self._member_count = np.concatenate([self._member_count[:start], np.zeros(size - start, dtype=np.int32)])
        self._rows_used = need
        return start

    def _codes(self, keys: np.ndarray) -> np.ndarray:
        """What the buckets hold under each band key (n × bands, int64): a slot, ~member row, or _NO_CODE."""
        n = len(keys)
        return self._table.get(keys.ravel(), np.tile(np.arange(self.bands, dtype=np.int8), n)).reshape(n, self.bands)

    def _held_slots(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row of `codes`, slot) of every item the codes point at, singly held keys first, then shared ones."""
        single_row, single_band = np.nonzero(codes >= 0)
        shared_row, shared_band = np.nonzero((codes < 0) & (codes != _NO_CODE))
        member_rows = ~codes[shared_row, shared_band]
        counts = self._member_count[member_rows]
        members = self._members[member_rows]
        taken = members[np.arange(_BUCKET_CAP) < counts[:, None]]  # row by row, each row's first `count` entries
        owner = np.concatenate([single_row, np.repeat(shared_row, counts)])
        slots = np.concatenate([codes[single_row, single_band], taken.astype(np.int64)])
        if self._canon is not None:
            slots = self._canon[slots]
        return owner, slots

    def _insert(self, slots: np.ndarray, keys: np.ndarray, codes: np.ndarray, given: BandGroups | None = None) -> None:
        """Put items (slots, in arrival order) under their band keys, `codes` being what the buckets held before:
        the same buckets as putting them one by one (the earliest _BUCKET_CAP items per key). `given`: `band_groups`
        of these very keys, when the caller has it."""
        n = len(slots)
        if not n:
            return
        groups = given if given is not None else band_groups(keys)
        flat_new, start, rank, flat_keys = groups.first, groups.start, groups.rank, groups.keys
        size = groups.size
        flat_codes = codes.T.ravel()[groups.items + np.repeat(np.arange(self.bands) * n, n)]
        flat_slots = slots[groups.items]
        alone = (size == 1) & (flat_codes == _NO_CODE)  # a key new to its band, once in the batch: one entry
        band_of = np.repeat(np.arange(self.bands, dtype=np.int8), n)
        table = self._table
        if alone.any():
            table.add(flat_keys[alone], band_of[alone], flat_slots[alone])
        shared = ~alone
        if not shared.any():
            return
        # Groups that need a member row: the key was free (≥ 2 items of the batch) or held by one item; a key with
        # a row already appends to it.
        firsts = np.flatnonzero(flat_new & shared)
        first_codes = flat_codes[firsts]
        needs_row = (first_codes >= 0) | (first_codes == _NO_CODE)
        row_of_group = np.where(needs_row, 0, ~first_codes)
        fresh = np.flatnonzero(needs_row)
        if fresh.size:
            first_row = self._new_rows(fresh.size)
            row_of_group[fresh] = np.arange(first_row, first_row + fresh.size)
            held_single = fresh[first_codes[fresh] >= 0]
            self._members[row_of_group[held_single], 0] = first_codes[held_single]
            self._member_count[row_of_group[held_single]] = 1
            free = fresh[first_codes[fresh] == _NO_CODE]
            table.add(flat_keys[firsts[free]], band_of[firsts[free]], ~row_of_group[free])
            table.set(flat_keys[firsts[held_single]], band_of[firsts[held_single]], ~row_of_group[held_single])
        members = np.flatnonzero(shared)
        group = np.searchsorted(firsts, start[members])
        rows = row_of_group[group]
        position = self._member_count[rows] + rank[members]
        fits = position < _BUCKET_CAP
        self._members[rows[fits], position[fits]] = flat_slots[members[fits]]
        self._member_count[row_of_group] = np.minimum(self._member_count[row_of_group] + size[firsts], _BUCKET_CAP)

    # -- matching ------------------------------------------------------------------------------------------------

    def match_batch(self, sigs: np.ndarray, keys: np.ndarray, owns: list[int | None],
                    codes: np.ndarray | None = None, groups: BandGroups | None = None
                    ) -> list[tuple[str, int, float] | None]:
        """For each item of a batch, in order: its best match at or above the threshold, as ("index", item id, sim)
        for an indexed item or ("batch", position, sim) for an earlier item of this batch; None when there is none.

        Why per batch: most items match nothing, and finding that out costs one C-level dict lookup per band over the
        whole batch; repeats inside the batch are found by sorting each band's keys, and the candidates of every item
        are gathered, ordered and verified with array operations. `codes` (n × bands, int64), when given, receives what
        the buckets hold under each key, so that `add_many` of the same items need not ask again; `groups`, when
        given, is `band_groups(keys)`, which `add_many` of the same items can share."""
        n = len(sigs)
        out: list[tuple[str, int, float] | None] = [None] * n
        if not n:
            return out
        empty = (sigs == _MAXV).all(axis=1)
        found = self._codes(keys)
        if codes is not None:
            codes[...] = found
        in_index = (found != _NO_CODE).any(axis=1) & ~empty
        no_own = np.fromiter(map(is_, owns, repeat(None)), dtype=bool, count=n)
        threshold = self.threshold
        matched = np.zeros(n, dtype=bool)
        for i, j, sim in self._batch_repeats(sigs, keys, ~empty & no_own, groups):
            if sim >= threshold:
                out[i] = ("batch", j, sim)  # its chain already leads to the root, if any
                matched[i] = True
        asked = np.flatnonzero(in_index & ~matched)
        if asked.size:
            for i, match in zip(asked.tolist(), self._best_in_index(sigs[asked], found[asked], [owns[i] for i in asked]),
                                strict=True):
                own = owns[i]
                if match is not None and not (own is not None and match[0] > own):
                    out[i] = ("index", match[0], match[1])
        return out

    def _batch_repeats(self, sigs: np.ndarray, keys: np.ndarray, eligible: np.ndarray, given: BandGroups | None = None
                       ) -> list[tuple[int, int, float]]:
        """(item, earlier item, similarity) of each eligible item sharing a band key with an earlier item of the batch:
        the most similar of the earliest _MAX_CHECKS such items (ties: the earliest)."""
        n = len(keys)
        groups = given if given is not None else band_groups(keys)
        repeats = groups.rank > 0
        later = np.zeros(n, dtype=bool)
        later[groups.items[repeats]] = True
        if not (later & eligible).any():
            return []
        # Per band: each eligible repeat paired with the first _MAX_CHECKS items of its key (all earlier than it).
        flat_items, start = groups.items, groups.start
        earlier_count = np.minimum(groups.rank, _MAX_CHECKS)
        pick = np.flatnonzero((earlier_count > 0) & eligible[flat_items])
        counts = earlier_count[pick]
        offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        item = np.repeat(flat_items[pick], counts)
        earlier = flat_items[np.repeat(start[pick], counts) + offsets]
        # Deduplicated (a copy shares all bands with its original) and ordered by item, then earlier item.
        asking = np.flatnonzero(later & eligible)
        row_of = np.zeros(n, dtype=np.int64)
        row_of[asking] = np.arange(asking.size)
        shares = np.zeros((asking.size, n), dtype=bool)
        shares[row_of[item], earlier] = True
        row, earlier = np.nonzero(shares)
        item = asking[row]
        first_of_item = np.ones(item.size, dtype=bool)
        first_of_item[1:] = item[1:] != item[:-1]
        keep = np.arange(item.size) - _group_starts(first_of_item) < _MAX_CHECKS
        item, earlier = item[keep], earlier[keep]
        sims = np.count_nonzero(sigs[earlier] == sigs[item], axis=1)
        has, first, best = _first_of_best(item, sims, n)
        return [(i, j, s / NUM_PERM) for i, j, s in zip(has.tolist(), earlier[first].tolist(), best.tolist(), strict=True)]

    def _best_in_index(self, sigs: np.ndarray, codes: np.ndarray, excludes: list[int | None]
                       ) -> list[tuple[int, float] | None]:
        """For each row: the indexed item (id, similarity) at or above the threshold that is most similar among the
        _MAX_CHECKS oldest found under its band keys (ties: the oldest), other than its `excludes` entry; or None."""
        m = len(sigs)
        out: list[tuple[int, float] | None] = [None] * m
        owner, slots = self._held_slots(codes)
        if not slots.size:
            return out
        if any(e is not None for e in excludes):
            exclude = np.array([0 if e is None else e for e in excludes], dtype=np.int64)
            has_exclude = np.array([e is not None for e in excludes])
            keep = ~(has_exclude[owner] & (self._slot_id[slots] == exclude[owner]))
            owner, slots = owner[keep], slots[keep]
        order = np.lexsort((self._slot_age[slots], owner))  # per row, oldest first
        owner, slots = owner[order], slots[order]
        distinct = np.ones(owner.size, dtype=bool)
        distinct[1:] = (owner[1:] != owner[:-1]) | (slots[1:] != slots[:-1])
        first_of_row = np.ones(owner.size, dtype=bool)
        first_of_row[1:] = owner[1:] != owner[:-1]
        owner, slots = owner[distinct], slots[distinct]
        first_of_row = first_of_row[distinct]
        keep = np.arange(owner.size) - _group_starts(first_of_row) < _MAX_CHECKS
        owner, slots = owner[keep], slots[keep]
        if not slots.size:
            return out
        sims = np.count_nonzero(self._sig[slots] == sigs[owner], axis=1)
        has, first, best = _first_of_best(owner, sims, m)
        minimum = self.threshold * NUM_PERM
        found_ids = self._slot_id[slots[first]].tolist()
        for r, item_id, sim in zip(has.tolist(), found_ids, best.tolist(), strict=True):
            if sim >= minimum:
                out[r] = (item_id, sim / NUM_PERM)
        return out

    def query(self, signature: np.ndarray, exclude: int | None = None, keys: list[int] | None = None) -> Match | None:
        """The most similar indexed item at or above the threshold (ties: the earliest), or None."""
        if is_empty(signature):
            return None
        keys = keys if keys is not None else self.keys_of(signature)
        codes = self._codes(np.array([keys], dtype=np.uint64))
        best = self._best_in_index(signature.reshape(1, NUM_PERM), codes, [exclude])[0]
        return None if best is None else Match(*best)

    # -- adding --------------------------------------------------------------------------------------------------

    def _place(self, item_id: int, signature: np.ndarray) -> int:
        """The item's slot (a new one unless the id is indexed), holding its signature."""
        slot = self._slot_of.get(item_id)
        if slot is None:
            slot = self._slot_of[item_id] = self._new_slots(1)
            self._slot_id[slot] = item_id
            self._slot_age[slot] = _TEMP_AGE - item_id if item_id < 0 else item_id
        self._sig[slot] = signature
        return slot

    def _chain(self, item_id: int, duplicate_of: int) -> None:
        """Point a duplicate at the root of its chain so repost chains collapse onto the first item."""
        root = self._roots.get(duplicate_of, duplicate_of)
        self._roots[item_id] = root
        if root < 0:
            self._children.setdefault(root, []).append(item_id)

    def add(self, item_id: int, signature: np.ndarray, duplicate_of: int | None = None,
            keys: list[int] | None = None) -> None:
        """Index an item; a duplicate points at the root of its chain so repost chains collapse onto the first."""
        if item_id in self._slot_of or is_empty(signature):
            return
        if len(self._slot_of) >= self.max_entries:
            self._evict_oldest(len(self._slot_of) // 10)
        key_row = np.array([keys], dtype=np.uint64) if keys is not None else self.keys_array(signature)
        self.add_many([item_id], signature.reshape(1, NUM_PERM), key_row, [duplicate_of])

    def add_many(self, item_ids: list[int], sigs: np.ndarray, keys: np.ndarray, roots: list[int | None],
                 codes: np.ndarray | None = None, groups: BandGroups | None = None) -> None:
        """`add` for a batch, the buckets filled with array operations. `codes` is what `match_batch` found for these
        items (no item was added since), else the buckets are asked; `groups` is `band_groups(keys)` (used when every
        item is added: the usual case, where grouping the keys again would cost as much as it did in `match_batch`)."""
        if not item_ids:
            return
        indexed = self._slot_of
        keep = [i for i, (item_id, empty) in enumerate(zip(item_ids, (sigs == _MAXV).all(axis=1).tolist(), strict=True))
                if not empty and item_id not in indexed]
        if not keep:
            return
        fresh = [item_ids[i] for i in keep]
        if len(set(fresh)) == len(fresh):  # the usual case: a new slot each, in one go
            first = self._new_slots(len(fresh))
            slots = np.arange(first, first + len(fresh))
            indexed.update(zip(fresh, slots.tolist(), strict=True))
            ids = np.array(fresh, dtype=np.int64)
            self._slot_id[first:first + len(fresh)] = ids
            self._slot_age[first:first + len(fresh)] = _age_keys(ids)
            self._sig[first:first + len(fresh)] = sigs[keep]
        else:  # an id twice: its one slot keeps the last signature, and both put its keys (as `add` one by one would)
            slots = np.array([self._place(item_ids[i], sigs[i]) for i in keep], dtype=np.int64)
        for item_id, i in zip(fresh, keep, strict=True):
            if roots[i] is not None:
                self._chain(item_id, roots[i])
        rows_keys = keys[keep]
        self._insert(slots, rows_keys, codes[keep] if codes is not None else self._codes(rows_keys),
                     groups if len(keep) == len(item_ids) else None)
        excess = len(self._slot_of) - self.max_entries
        if excess > 0:
            self._evict_oldest(excess + self.max_entries // 10)

    def rekey(self, old: int, new: int) -> np.ndarray | None:
        """Give an entry indexed under a temporary id (before the store assigned one) its real id."""
        slot = self.rename(old, new)
        if slot is None:
            return None
        return self.finish_renames([slot], [new])[0]

    def rename(self, old: int, new: int) -> int | None:
        """`rekey`'s look-ups (slot, roots, chains) without its writes to the slot arrays, which `finish_renames`
        makes for a whole batch at once (~4,000 instructions per item less than one `rekey` each): the slot of
        `old`, None when it is not indexed. Until `finish_renames`, the slot's id and age arrays are stale."""
        slot = self._slot_of.pop(old, None)
        if slot is None:
            return None
        other = self._slot_of.get(new)
        if other is not None:  # the id was indexed already: its entries now answer as this one, as in a dict by id
            if self._canon is None:
                self._canon = np.arange(len(self._sig))
            self._canon[self._canon == other] = slot
        self._slot_of[new] = slot
        if old in self._roots:
            self._roots[new] = self._roots.pop(old)
        for child in self._children.pop(old, []):
            self._roots[child] = new
        return slot

    def finish_renames(self, slots: list[int], ids: list[int]) -> np.ndarray:
        """Write the new ids of `rename`d slots (a slot renamed twice keeps its last id) and return a copy of their
        signatures, one row each (`rekey` returns one), as one array: the store writes them from it."""
        if not slots:
            return np.empty((0, self._sig.shape[1]), dtype=self._sig.dtype)
        # numpy does not promise which of repeated indexes an assignment writes last: each slot's last id, once
        last = dict(zip(slots, ids, strict=True))
        at = np.fromiter(last, dtype=np.int64, count=len(last))
        new = np.fromiter(last.values(), dtype=np.int64, count=len(last))
        self._slot_id[at] = new
        self._slot_age[at] = _age_keys(new)
        return self._sig[np.array(slots, dtype=np.int64)]  # a copy

    def root(self, item_id: int) -> int:
        """The first item of the chain `item_id` belongs to."""
        return self._roots.get(item_id, item_id)

    def _evict_oldest(self, count: int) -> None:
        """Forget the lowest ids (oldest items) and rebuild the buckets: repost chains are recent, memory is not free."""
        by_age = sorted(self._slot_of, key=_age)  # temporary ids are the newest
        for item_id in by_age[:count]:
            self._roots.pop(item_id, None)
        kept = by_age[count:]
        sigs = self._sig[[self._slot_of[i] for i in kept]]
        self._reset()
        if kept:
            first = self._new_slots(len(kept))
            self._slot_of.update(zip(kept, range(first, first + len(kept)), strict=True))
            ids = np.array(kept, dtype=np.int64)
            self._slot_id[:len(kept)] = ids
            self._slot_age[:len(kept)] = _age_keys(ids)
            self._sig[:len(kept)] = sigs
            keys = band_keys(sigs, self.bands)
            self._insert(np.arange(len(kept)), keys, np.full(keys.shape, _NO_CODE, dtype=np.int64))


def _grown(array: np.ndarray, size: int) -> np.ndarray:
    """`array` in a buffer of `size` rows (the rows past the old length uninitialised)."""
    grown = np.empty((size, *array.shape[1:]), dtype=array.dtype)
    grown[:len(array)] = array
    return grown
