"""One Aho-Corasick pass per batch for every dictionary the analysis stages look up: gazetteer places, the head words
of named sites (小区, 学院), monitoring-scheme terms and risk terms.

Why one automaton, and why over bytes of the whole batch: pyahocorasick (no longer a dependency) walks a trie whose
root has thousands of CJK children linearly (70 µs for a 140-character post against the 3,000-name gazetteer); the
Rust `aho-corasick` DFA of
`ahocorasick_rs` scans the UTF-8 bytes of all lower-cased texts of a batch, joined by NUL, in about a microsecond per
post. Every term carries a payload saying what it is (place, head word, scheme term, risk term and its categories),
so one pass yields what every stage needs; byte offsets are turned into character offsets only for the few hits.
The scheme matcher and the risk scorer use it too when they look at a single text outside the stages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from itertools import chain
from operator import itemgetter

import ahocorasick_rs
import numpy as np

PLACE = 1
HEAD = 2
SCHEME = 4
RISK = 8
MATTER = 16
MAX_SCAN = 20_000  # characters scanned per item; a 100,000-character post is cut, not choked on
PLACE_SCAN = 5_000  # places beyond the first 5,000 characters rarely change the jurisdiction


class Hits:
    """What the pass found in one text: places as (start, end, name), scheme term starts, risk terms per category.
    Offsets are characters of the lower-cased text (the same as the text's own for all but a few scripts).

    A plain class with slots, not a dataclass with default factories: one is made for nearly every item of every
    batch, and five factory calls cost more than the literals."""

    __slots__ = ("places", "heads", "scheme", "risk", "matters")

    def __init__(self) -> None:
        self.places: list[tuple[int, int, str]] = []
        self.heads: list[tuple[int, str]] = []  # (start, head word) of 小区, 学院...
        self.scheme: dict[str, list[int]] = {}
        self.risk: dict[str, list[tuple[str, int, int]]] = {}
        self.matters: list[str] = []  # kinds of matter named (noise, fumes...), first mention first

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hits):
            return NotImplemented
        return all(getattr(self, a) == getattr(other, a) for a in self.__slots__)

    def __repr__(self) -> str:
        return "Hits(" + ", ".join(f"{a}={getattr(self, a)!r}" for a in self.__slots__) + ")"


NO_HITS = Hits()  # shared by every text without a match; never mutated


@cache
def _lower_table() -> tuple[np.ndarray, np.ndarray]:
    """(lower-cased code unit of each UTF-16 code unit, whether str.lower() must decide): a BMP character whose lower
    case is one BMP character maps by the table; İ (two characters lower-cased), Σ (ς or σ by its context) and the
    high surrogates of the supplementary blocks with cased letters (Deseret, Osage, Adlam...) are left to str.lower()."""
    lowered = list(map(str.lower, map(chr, range(0x10000))))
    lengths = np.fromiter(map(len, lowered), dtype=np.int64, count=0x10000)
    special = lengths != 1
    table = np.arange(0x10000, dtype=np.uint16)
    single = np.flatnonzero(~special)
    table[single] = np.fromiter(map(ord, itemgetter(*single.tolist())(lowered)), dtype=np.uint16, count=len(single))
    special[0x3A3] = True
    # One high surrogate per block of 1,024 supplementary characters; cased letters beyond the BMP are all in plane 1
    # (the others hold CJK, symbols, tags and private use; a test checks every plane). A block has a cased letter
    # when lower-casing it changes it: one str.lower() per block.
    for code in range(0x10000, 0x20000, 0x400):
        block = "".join(map(chr, range(code, code + 0x400)))
        if block.lower() != block:
            special[0xD800 + ((code - 0x10000) >> 10)] = True
    return table, special


def _lowered_units(text: str) -> np.ndarray:
    """`text.lower()` as UTF-16-LE code units. Why: str.lower() looks every character up in the Unicode database and
    builds a new string (~60 instructions a character, 2 % of the enrichment); a table gather does the same for
    everything but the few characters `_lower_table` leaves to it. UTF-16 rather than UTF-8: a Chinese character
    is two bytes instead of three for the automaton to walk, and a character offset is a unit offset (less the
    surrogates before it) instead of a byte offset less the continuation bytes."""
    units = np.frombuffer(text.encode("utf-16-le"), dtype=np.uint16)
    table, special = _lower_table()
    if special.take(units).any():
        return np.frombuffer(text.lower().encode("utf-16-le"), dtype=np.uint16)
    return table.take(units)


class TermScanner:
    """`scan_many(texts)` → one Hits per text; terms are matched lower-cased, places report their own spelling."""

    def __init__(self, places: Iterable[str] = (), heads: Iterable[str] = (), scheme_terms: Iterable[str] = (),
                 risk_terms: dict[str, tuple[str, ...]] | None = None,
                 matter_terms: dict[str, tuple[str, ...]] | None = None) -> None:
        entries: dict[str, list] = {}  # term → [kinds, place spelling, risk categories, matter kinds]
        for name in places:
            if name:
                e = entries.setdefault(name.lower(), [0, None, (), ()])
                e[0] |= PLACE
                e[1] = e[1] or name
        for word in heads:
            entries.setdefault(word.lower(), [0, None, (), ()])[0] |= HEAD
        for term in scheme_terms:
            if term:
                entries.setdefault(term.lower(), [0, None, (), ()])[0] |= SCHEME
        for term, names in (risk_terms or {}).items():
            if term:
                e = entries.setdefault(term.lower(), [0, None, (), ()])
                e[0] |= RISK
                e[2] = tuple(names)
        for term, kinds_of in (matter_terms or {}).items():
            if term:
                e = entries.setdefault(term.lower(), [0, None, (), ()])
                e[0] |= MATTER
                e[3] = tuple(kinds_of)
        self._terms = list(entries)
        self._payloads = [(term, kinds, spelling, names, matters)
                          for term, (kinds, spelling, names, matters) in entries.items()]
        self._automaton = (ahocorasick_rs.BytesAhoCorasick([t.encode("utf-16-le") for t in self._terms],
                                                           implementation=ahocorasick_rs.Implementation.DFA)
                           if self._terms else None)
        self._kinds = np.array([kinds for _, kinds, _, _, _ in self._payloads], dtype=np.int64)
        self._lengths = np.array([len(term) for term in self._terms], dtype=np.int64)
        self._spellings = [spelling for _, _, spelling, _, _ in self._payloads]
        self._risk_categories = [names for _, _, _, names, _ in self._payloads]
        self._matter_kinds = [matters for _, _, _, _, matters in self._payloads]

    def scan(self, text: str) -> Hits:
        return self.scan_many([text])[0]

    def scan_many(self, texts: Sequence[str]) -> list[Hits]:
        out = [NO_HITS] * len(texts)
        if self._automaton is None or not texts:
            return out
        joined = "\x00".join(t[:MAX_SCAN] for t in texts)
        if joined.count("\x00") != len(texts) - 1:
            joined = "\x00".join(t[:MAX_SCAN].replace("\x00", " ") for t in texts)
        units = _lowered_units(joined)
        matches = self._automaton.find_matches_as_indexes(units.tobytes(), overlapping=True)
        if not matches:
            return out
        # fromiter over the flattened (pattern, start, end) triples: 4x faster than np.array on the list of tuples
        match_array = np.fromiter(chain.from_iterable(matches), dtype=np.int64, count=3 * len(matches)).reshape(-1, 3)
        byte_start = match_array[:, 1]
        aligned = (byte_start & 1) == 0  # a match at an odd byte would straddle two characters' code units
        if not aligned.all():
            match_array, byte_start = match_array[aligned], byte_start[aligned]
            if not byte_start.size:
                return out
        index = match_array[:, 0]
        unit_start = byte_start >> 1
        bounds = np.flatnonzero(units == 0)  # the NULs between texts
        owner = np.searchsorted(bounds, unit_start, side="right")  # non-decreasing: matches come in text order
        item_starts = np.concatenate([[0], bounds + 1])[owner]
        # The character index of a code unit that starts a character (every match start and text start does) is its
        # index minus the high surrogates before it (characters beyond the BMP take two units; emoji in posts do).
        high = np.flatnonzero((units & 0xFC00) == 0xD800)
        if high.size:
            cstart = ((unit_start - np.searchsorted(high, unit_start))
                      - (item_starts - np.searchsorted(high, item_starts)))
        else:
            cstart = unit_start - item_starts
        kinds = self._kinds[index]
        first = np.flatnonzero(np.diff(owner, prepend=-1))
        for o in owner[first].tolist():
            out[o] = Hits()
        # Each kind of hit is gathered with array masks, then handed out per item as slices of one list (places, head
        # words) or in short loops over only the hits of that kind: Python work per hit, not per (hit, kind).
        early = cstart < PLACE_SCAN
        self._slices(out, owner, (kinds & PLACE).astype(bool) & early, "places", cstart, index, with_end=True)
        self._slices(out, owner, (kinds & HEAD).astype(bool) & early, "heads", cstart, index, with_end=False)
        # Scheme, risk and matter hits: one short loop per kind over only its hits, reading per-term facts from lists
        # built once (term, its categories or kinds of matter, its length) instead of unpacking a payload per hit.
        terms = self._terms
        chosen = np.flatnonzero(kinds & SCHEME)
        if chosen.size:
            for o, term, c in zip(owner[chosen].tolist(), map(terms.__getitem__, index[chosen].tolist()),
                                  cstart[chosen].tolist(), strict=True):
                out[o].scheme.setdefault(term, []).append(c)
        chosen = np.flatnonzero(kinds & RISK)
        if chosen.size:
            categories = self._risk_categories
            for o, i, c in zip(owner[chosen].tolist(), index[chosen].tolist(), cstart[chosen].tolist(), strict=True):
                term = terms[i]
                risk = out[o].risk
                for name in categories[i]:
                    risk.setdefault(name, []).append((term, c, c + len(term)))
        chosen = np.flatnonzero(kinds & MATTER)
        if chosen.size:
            matter_kinds = self._matter_kinds
            for o, i in zip(owner[chosen].tolist(), index[chosen].tolist(), strict=True):
                named = out[o].matters
                for matter in matter_kinds[i]:
                    if matter not in named:
                        named.append(matter)
        return out

    def _slices(self, out: list[Hits], owner: np.ndarray, mask: np.ndarray, attr: str, cstart: np.ndarray,
                index: np.ndarray, *, with_end: bool) -> None:
        """Set `attr` of each item's Hits to its hits among `mask`: (start, end, spelling) or (start, term)."""
        chosen = np.flatnonzero(mask)
        if not chosen.size:
            return
        starts = cstart[chosen]
        idx = index[chosen].tolist()
        if with_end:
            spellings = self._spellings
            entries = list(zip(starts.tolist(), (starts + self._lengths[index[chosen]]).tolist(),
                               [spellings[i] for i in idx], strict=True))
        else:
            terms = self._terms
            entries = list(zip(starts.tolist(), [terms[i] for i in idx], strict=True))
        owners = owner[chosen]
        cut = np.flatnonzero(np.diff(owners, prepend=-1))
        ends = [*cut[1:].tolist(), len(entries)]
        for o, lo, hi in zip(owners[cut].tolist(), cut.tolist(), ends, strict=True):
            setattr(out[o], attr, entries[lo:hi])
