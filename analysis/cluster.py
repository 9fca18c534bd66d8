"""Incremental event clustering: each arriving item joins the most similar live event or starts a new one.

Items are tf-idf keyword vectors (place words weigh more, because a grievance is tied to a place or a body); an
event keeps the sum of its items' vectors (top terms only), the named sites and bodies its items mention
(魅力之城小区, 经济学院) and an inverted index from terms and names to events, most recently active last, so finding
candidates costs a few dictionary look-ups over the recent events of the item's weightiest terms. Channels do not
matter: a 12345 work order, a mailbox letter and Weibo posts about the same matter join one event.

An event is one incident, bounded in time: it is open while items keep coming, and `close_days` (14) without a new
item closes it. Joining rules for an open event (cosine of the item against the event's term centroid, names left
out of the cosine):
- the item names a site or body the event names and cosine ≥ `name_threshold` (the shared name says "same place",
  the term cosine "same problem": 油烟 rather than 楼板开裂 at 魅力之城小区);
- cosine ≥ `threshold` and the item falls within `window_days` of the event's activity (first to last item);
- cosine ≥ `strong_threshold`.
An **issue** (热点问题) groups the events of one grievance across time: a closed event naming the same site or body
with a term cosine ≥ `name_threshold` (same place, same subject) says that a new event raises again a matter already
raised, and the new event takes that event's `issue_id` (a grievance
about one place is raised for months or years until it is solved; 重复诉求 is what managers must see). An event that
starts an issue has its own id as `issue_id`.
The clusterer returns ids and keeps state; it never writes (see `analysis.event_store`).
"""

from __future__ import annotations

import heapq
import math
import os
from collections import Counter, _count_elements  # type: ignore[attr-defined]
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import chain, compress, islice, repeat, starmap
from operator import itemgetter, mul, ne
from pathlib import Path
from typing import NamedTuple

import numpy as np

import core.config  # noqa: F401 - loaded first: it imports core.config_analysis at its end
from analysis.keywords import pick
from core import yamlfile
from core.config_analysis import EventsConfig

ITEM_TERMS = 12  # a 150-character post rarely has more than a dozen telling words
_CENTROID_TERMS = 60
_TRIM_AT = 90  # the centroid is cut back to 60 terms only when it reaches 90: trimming is amortised
_ENTITY_BOOST = 1.5
_LOOKUP_TERMS = 4  # the item's weightiest terms that find candidate events
_RECENT_PER_TERM = 8  # the latest events per term that are looked at
_RECENT_PER_NAME = 16  # the latest events per named site or body, all compared
_GENERIC_NAME = 24  # a name found in more events than this (物业公司) names no particular site or body
_POSTING_CAP = 512  # events remembered per term (the oldest half is dropped past this)
_MAX_CANDIDATES = 4
_NAME = "@"  # index keys of named sites and bodies
_MATTER = "%"  # vector keys of kinds of matter
_MATTER_WEIGHT = 0.7
_MAX_MATTERS = 3
_WEIGHT = itemgetter(1)
_ID_POOL = 256  # event ids drawn from the OS random source at once
MATTERS_FILE = Path(__file__).resolve().parent / "resources" / "matters.yaml"
# (vector, ts, title, source, channel, region, engagement, names): one item for `EventClusterer.join_batch`
JoinRow = tuple[dict[str, float], float, str, str, str, str | None, int, Sequence[str]]


def load_matters(path: Path = MATTERS_FILE) -> dict[str, tuple[str, ...]]:
    """word → kinds of matter it names, from `resources/matters.yaml`."""
    raw = yamlfile.safe_load(path.read_text(encoding="utf-8")) or {}
    out: dict[str, list[str]] = {}
    for kind, words in raw.items():
        for word in words or ():
            out.setdefault(str(word).strip(), []).append(str(kind))
    return {w: tuple(k) for w, k in out.items() if w}


_id_pool: list[str] = []


def _new_event_id() -> str:
    """`ev-` and 64 random bits, drawn from the OS in bulk: a uuid4 per new event cost as much as comparing the
    item with its candidates. The pool is emptied in a forked child, so two processes never share ids."""
    try:
        return "ev-" + _id_pool.pop()
    except IndexError:  # empty (list.pop is atomic, so threads sharing the pool never get one id twice)
        raw = os.urandom(8 * _ID_POOL).hex()
        _id_pool.extend(raw[i:i + 16] for i in range(0, len(raw), 16))
        return "ev-" + _id_pool.pop()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_id_pool.clear)


def item_vector(terms: Sequence[tuple[str, float]], entities: Sequence[str] = (),
                names: Sequence[str] = (), matters: Sequence[str] = ()) -> dict[str, float]:
    """The top tf-idf terms (best first), place words boosted, unit length. Words inside the item's named sites and
    bodies (魅力, 之城 of 魅力之城小区) are left out: the name itself is matched separately, and the terms should say
    what the matter is (油烟, 噪音), so that two different matters at one place do not look alike."""
    if not terms:
        return {}
    if names:  # one substring test per term against the names joined by NUL (no word contains NUL)
        joined = "\x00".join(names)
        kept = [kv for kv in terms if kv[0] not in joined]
        if kept:
            terms = kept
    top = terms[:ITEM_TERMS]
    if entities:
        weights = dict(terms)
        boosted = False
        for name in entities:
            key = name.lower()
            if key in weights:  # only boost words the item has: a place every text names (A市) keeps its low idf
                weights[key] *= _ENTITY_BOOST
                boosted = True
        if boosted:  # what heapq.nlargest documents itself as equal to, and faster for a dozen terms
            top = sorted(weights.items(), key=_WEIGHT, reverse=True)[:ITEM_TERMS]
    if not matters:
        norm = math.hypot(*map(_WEIGHT, top)) or 1.0  # one C call (and no overflow or underflow on the way)
        return {k: w / norm for k, w in top}
    # The kinds of matter named weigh like the best word: they are what the grievance is about.
    keys = [_matter_key(kind) for kind in matters[:_MAX_MATTERS]]
    weight = top[0][1] * _MATTER_WEIGHT
    norm = math.hypot(*map(_WEIGHT, top), *repeat(weight, len(keys))) or 1.0
    vector = {k: w / norm for k, w in top}
    weight /= norm
    for key in keys:
        vector[key] = weight
    return vector


def item_vectors(words: list[str], word_ids: np.ndarray, scores: np.ndarray, lows: np.ndarray, highs: np.ndarray,
                 entity_ids: Sequence[Sequence[int]], names: Sequence[Sequence[str]], matters: Sequence[Sequence[str]]
                 ) -> list[dict[str, float]]:
    """`item_vector` for many items at once, read off a batch's flat term arrays (`analysis.keywords.TopTerms`): item j's
    terms are `words[lows[j]:highs[j]]` (ids `word_ids`, weights `scores`), and `entity_ids[j]` are the word ids of its
    places lower-cased (-1 for a word the lexicon does not hold).

    Why: item_vector makes a dict of the terms, looks each place up in it, sorts and divides, in Python per item; here
    the name filter is a substring test per term of the items that name a site or body, the boost, the re-ranking and
    the division are a few numpy operations for the whole batch, each norm is `math.hypot` (as item_vector, so that
    every weight is the same float) called from C, and the dicts are made from C as well (`_dicts`). Each item's
    weights and norm terms are laid out in one flat list: its top words, then its kinds of matter."""
    count = len(lows)
    if not count:
        return []
    lengths = np.maximum(highs - lows, 0)
    # The terms inside the item's named sites and bodies are left out (when that leaves any), as item_vector does.
    dropped: list[int] = []
    if any(names):
        low_list, high_list = lows.tolist(), highs.tolist()
        for j in compress(range(count), names):
            lo, hi = low_list[j], high_list[j]
            inside = list(map("\x00".join(names[j]).__contains__, words[lo:hi]))
            if True in inside and False in inside:
                dropped.extend(compress(range(lo, hi), inside))
    total = int(lengths.sum())
    row_of = np.repeat(np.arange(count, dtype=np.int64), lengths)
    starts = np.cumsum(lengths) - lengths
    position = np.repeat(lows - starts, lengths) + np.arange(total, dtype=np.int64)  # into the flat arrays
    if dropped:
        kept = np.ones(len(words), dtype=bool)
        kept[dropped] = False
        kept = kept[position]
        position, row_of = position[kept], row_of[kept]
        lengths = np.bincount(row_of, minlength=count)
        starts = np.cumsum(lengths) - lengths
    ids = word_ids[position]
    weight = scores[position]
    rank = np.arange(len(row_of), dtype=np.int64) - starts[row_of]
    # Places among the item's words: each match multiplies the weight by the boost once, as item_vector's loop does.
    place_counts = np.fromiter(map(len, entity_ids), dtype=np.int64, count=count)
    place_ids = np.fromiter(chain.from_iterable(entity_ids), dtype=np.int64, count=int(place_counts.sum()))
    place_rows = np.repeat(np.arange(count, dtype=np.int64), place_counts)[place_ids >= 0]
    place_ids = place_ids[place_ids >= 0]
    if place_ids.size and ids.size:
        # only the terms of items with a place are looked at: (item, word id) pairs, sorted, counted per term
        width = max(int(ids.max()), int(place_ids.max())) + 1
        place_keys = np.sort(place_rows * width + place_ids)
        has_place = np.zeros(count, dtype=bool)
        has_place[place_rows] = True
        candidates = np.flatnonzero(has_place[row_of])
        term_keys = row_of[candidates] * width + ids[candidates]
        hits = np.searchsorted(place_keys, term_keys, side="right") - np.searchsorted(place_keys, term_keys, side="left")
        if hits.any():
            boosted_at = candidates[hits > 0]
            times = hits[hits > 0]
            for k in range(1, int(times.max()) + 1):
                chosen = boosted_at[times >= k]
                weight[chosen] = weight[chosen] * _ENTITY_BOOST
            # Items with a boosted word are re-ranked by weight, best first, ties in their order (a stable sort, as
            # sorted(..., reverse=True) is); the others keep their order.
            boosted = np.zeros(count, dtype=bool)
            boosted[row_of[boosted_at]] = True
            moved = np.flatnonzero(boosted[row_of])
            order = moved[np.lexsort((-weight[moved], row_of[moved]))]
            position[moved], weight[moved] = position[order], weight[order]
    top = rank < ITEM_TERMS
    top_rows = row_of[top]
    top_position = position[top]
    top_weight = weight[top]
    top_counts = np.minimum(lengths, ITEM_TERMS)
    # Kinds of matter (at most _MAX_MATTERS) of the items that have words; each weighs like the item's best word.
    kinds = (list(chain.from_iterable(k[:_MAX_MATTERS] for k, n in zip(matters, top_counts.tolist(), strict=True)
                                      if k and n)) if any(matters) else [])
    sizes = top_counts
    args = top_weight
    if kinds:  # the norm counts each kind of matter as a term weighing like the item's best word
        kind_counts = np.minimum(np.fromiter(map(len, matters), dtype=np.int64, count=count), _MAX_MATTERS)
        kind_counts *= top_counts > 0
        sizes = top_counts + kind_counts
        slots = np.cumsum(sizes) - sizes  # where each item's norm terms begin
        at_word = np.repeat(slots - (np.cumsum(top_counts) - top_counts), top_counts) + np.arange(len(top_rows))
        kind_rows = np.repeat(np.arange(count, dtype=np.int64), kind_counts)
        at_kind = (np.repeat(slots + top_counts - (np.cumsum(kind_counts) - kind_counts), kind_counts)
                   + np.arange(len(kind_rows)))
        best = np.zeros(count, dtype=np.float64)  # each item's first (best) weight
        has_words = top_counts > 0
        best[has_words] = top_weight[(np.cumsum(top_counts) - top_counts)[has_words]]
        extra = best * _MATTER_WEIGHT
        args = np.empty(int(sizes.sum()), dtype=np.float64)
        args[at_word] = top_weight
        args[at_kind] = extra[kind_rows]
    norms = np.fromiter(starmap(math.hypot, map(islice, repeat(iter(args.tolist())), sizes.tolist())),
                        dtype=np.float64, count=count)
    norms[norms == 0.0] = 1.0  # `or 1.0`
    vectors = _dicts(pick(words, top_position.tolist()), (top_weight / norms[top_rows]).tolist(), top_counts.tolist())
    if kinds:
        for row, kind, value in zip(kind_rows.tolist(), kinds, (extra / norms)[kind_rows].tolist(), strict=True):
            vectors[row][_matter_key(kind)] = value
    return vectors


def _dicts(keys: Sequence[str], values: list[float], sizes: list[int]) -> list[dict[str, float]]:
    """One dict per size of consecutive (key, value) pairs, all made from C (islice of shared iterators)."""
    key_iter, value_iter = iter(keys), iter(values)
    return list(map(dict, map(zip, map(islice, repeat(key_iter), sizes), map(islice, repeat(value_iter), sizes))))


_MATTER_KEYS: dict[str, str] = {}


def _matter_key(kind: str) -> str:
    """`%kind`, one string object per kind: dictionaries compare a key they hold by identity before comparing text."""
    key = _MATTER_KEYS.get(kind)
    if key is None:
        key = _MATTER_KEYS[kind] = _MATTER + kind
    return key


def _dot(vector: dict[str, float], centroid: dict[str, float]) -> float:
    """vector · centroid, summed in the vector's order (as a generator would, but without a Python frame per term)."""
    return sum(map(mul, vector.values(), map(centroid.get, vector, repeat(0.0))))


def _norm2(centroid: dict[str, float]) -> float:
    values = centroid.values()
    return sum(map(mul, values, values))


# An empty Counter without running Counter.__init__ (a Python call that does nothing without arguments), made by a
# C-level partial rather than a Python function: most items start an event, and each event holds four counters.
_counter = partial(dict.__new__, Counter)


def _centroid_cosine(a: EventState, b: EventState, norms: dict[str, float] | None = None) -> float:
    """Cosine of two events' centroids; `norms` keeps squared norms computed earlier (by event id) for centroids
    that have not changed since (the caller drops an entry when it changes one)."""
    small, large = (a, b) if len(a.centroid) <= len(b.centroid) else (b, a)
    dot = _dot(small.centroid, large.centroid)
    if not dot:
        return 0.0
    if norms is None:
        return dot / math.sqrt(_norm2(a.centroid) * _norm2(b.centroid))
    na = norms.get(a.id)
    if na is None:
        na = norms[a.id] = _norm2(a.centroid)
    nb = norms.get(b.id)
    if nb is None:
        nb = norms[b.id] = _norm2(b.centroid)
    return dot / math.sqrt(na * nb)


def heat_index(volume: int, engagement: int, channels: int, sources: int) -> float:
    """The one definition of an event's heat, used by the events API, the hot list and alert rules (`min_event_heat`):

        heat = 10·ln(1 + volume) + 4·ln(1 + engagement) + 3·max(0, channels − 1) + 2·ln(1 + sources), rounded to 0.01

    volume = items in the event, engagement = their likes + reposts + comments. Volume counts most, engagement next,
    both logarithmic so that one viral post does not outweigh many citizens writing; a matter crossing channels and
    sources is hotter. Examples: 1 item, no engagement, one channel and source → 8.32; 10 items, 500 interactions,
    2 channels, 3 sources → 54.62."""
    return round(10 * math.log1p(volume) + 4 * math.log1p(engagement) + 3 * max(0, channels - 1)
                 + 2 * math.log1p(sources), 2)


@dataclass(slots=True)
class EventState:
    id: str
    title: str
    first_seen: float
    last_seen: float
    centroid: dict[str, float] = field(default_factory=dict)
    volume: int = 0
    engagement: int = 0
    sources: Counter = field(default_factory=_counter)
    channels: Counter = field(default_factory=_counter)
    regions: Counter = field(default_factory=_counter)
    names: Counter = field(default_factory=_counter)
    _norm2: float | None = field(default=None, repr=False, compare=False)
    issue_id: str = ""  # the grievance this incident is one episode of (its own id when it starts one)

    def __post_init__(self) -> None:
        if not self.issue_id:
            self.issue_id = self.id

    @property
    def keywords(self) -> list[str]:
        return top_keywords(self.centroid)

    @property
    def heat(self) -> float:
        return heat_index(self.volume, self.engagement, len(self.channels), len(self.sources))

    def cosine(self, vector: dict[str, float]) -> float:
        norm2 = self._norm2
        if norm2 is None:
            norm2 = self._norm2 = _norm2(self.centroid)
        if not norm2:
            return 0.0
        return _dot(vector, self.centroid) / math.sqrt(norm2)

    def public(self) -> dict:
        return {"id": self.id, "issue_id": self.issue_id, "title": self.title, "keywords": self.keywords,
                "first_seen": self.first_seen,
                "last_seen": self.last_seen, "volume": self.volume, "engagement": self.engagement,
                "sources": dict(self.sources), "channels": dict(self.channels), "regions": dict(self.regions),
                "names": dict(self.names), "heat": self.heat}


_new_event = partial(object.__new__, EventState)
_first_char = itemgetter(slice(0, 1))  # key[:1], as the filter of `top_keywords` reads it


def top_keywords(centroid: dict[str, float]) -> list[str]:
    """An event's heaviest words; kind-of-matter keys (`%…`) match events but mean nothing to a reader. The keys
    sorted by weight (stable, as sorting the filtered pairs was: ties keep their order) and the first eight words
    taken, all from C (key[:1] != "%" mapped with operator functions, ≈ 1,000 instructions a row less than a
    `methodcaller("startswith")`): the two comprehensions over (term, weight) pairs it replaced cost ≈ 3,700
    instructions more per event row saved (event-path replay). (sorted(…)[:8] is what heapq.nlargest documents
    itself as equal to, and faster for a few dozen terms.)"""
    ranked = sorted(centroid, key=centroid.__getitem__, reverse=True)
    return list(islice(compress(ranked, map(ne, map(_first_char, ranked), repeat(_MATTER))), 8))


def _fresh_event(event_id: str, title: str, ts: float, centroid: dict[str, float], issue_id: str) -> EventState:
    """`EventState(event_id, title, ts, ts, centroid, issue_id=issue_id)` without the dataclass's Python-level
    __init__ and __post_init__ calls: most items start an event (a test keeps the two equal, slot for slot)."""
    event = _new_event()
    event.id, event.title, event.first_seen, event.last_seen, event.centroid = event_id, title, ts, ts, centroid
    event.volume = event.engagement = 0
    event.sources, event.channels, event.regions, event.names = _counter(), _counter(), _counter(), _counter()
    event._norm2 = None
    event.issue_id = issue_id or event_id
    return event


def _main_names(event: EventState, top: int = 2) -> set[str]:
    """The sites or bodies an event is mainly about (its most named): an issue links events through these only, so a
    name one post mentions in passing (or a badly cut one, 导致小区) never chains two grievances into one issue."""
    return {name for name, _ in event.names.most_common(top)}


def _post_keys(index: dict[str, list[str]], keys: Iterable[str], event_id: str) -> None:
    """Add `event_id` to the posting list of each key; a list past the cap drops its oldest half (a word in hundreds
    of events says little). One call per item and kind, the loop inside: joining posts ~7 keys per item."""
    get = index.get
    for key in keys:
        posting = get(key)
        if posting is None:
            index[key] = [event_id]
        else:
            posting.append(event_id)
            if len(posting) > _POSTING_CAP:
                del posting[: _POSTING_CAP // 2]


def _trimmed(centroid: dict[str, float], index: dict[str, list[str]], event_id: str) -> dict[str, float]:
    """The centroid cut back to its _CENTROID_TERMS heaviest terms; the event leaves the posting lists of the terms
    cut. Postings follow the centroids: a long-lived event (a month of reports, each with its own numbers and names)
    would otherwise stay posted under every word it ever saw, and the index grow with its items. A cut term adds
    nothing to the event's cosine; its stale posting only took room in a capped list (pushing out events that still
    hold the word) and made a running service find other candidates than a restarted one (`load` posts centroid
    terms only)."""
    kept = dict(sorted(centroid.items(), key=itemgetter(1), reverse=True)[:_CENTROID_TERMS])
    for term in centroid.keys() - kept.keys():
        posting = index.get(term)
        if posting is None or event_id not in posting:
            continue
        posting[:] = [e for e in posting if e != event_id]
        if not posting:
            del index[term]
    return kept


def _takes(event: EventState, ts: float, close: float, span: float) -> bool:
    """Whether an item published at `ts` may join `event`: the event is open then (an item within `close` seconds of
    its items) and would still span at most `span` seconds with it."""
    return (event.first_seen - close <= ts <= event.last_seen + close
            and max(ts, event.last_seen) - min(ts, event.first_seen) <= span)


class _Limits(NamedTuple):
    """The joining rules' thresholds and spans (seconds) of an EventsConfig, read once per batch by `join_batch`:
    `_best` reads several per item, and each attribute read on the pydantic config costs a Python-level hook."""

    close: float
    span: float
    window: float
    name_threshold: float
    threshold: float
    strong_threshold: float

    @classmethod
    def of(cls, cfg: EventsConfig) -> _Limits:
        return cls(cfg.close_days * 86400, cfg.max_days * 86400, cfg.window_days * 86400, cfg.name_threshold,
                   cfg.threshold, cfg.strong_threshold)


class EventClusterer:
    """`join_batch(rows)` → event ids (new or existing), item after item; `events` holds the live state."""

    def __init__(self, config: EventsConfig) -> None:
        self.config = config
        self.events: dict[str, EventState] = {}
        self._index: dict[str, list[str]] = {}  # term or @name → events that have it, in the order they got it
        self.dirty: set[str] = set()
        self.touched_names: set[str] = set()  # names whose events changed since the last `consolidate`
        self.merged: dict[str, str] = {}  # absorbed event id → the event it was merged into (not yet saved)
        self.aliases: dict[str, str] = {}  # absorbed id → the event that absorbed it (`resolve` follows chains)
        # issue id → ids of the events in `events` that belong to it: linking two issues renames one issue's events,
        # and a walk over every live event for that (tens of thousands on an import) was 4 % of the writer's time
        self._issues: dict[str, set[str]] = {}

    def load(self, event: EventState) -> None:
        """Put a persisted event back (on start; load the least recently active first)."""
        self.events[event.id] = event
        self._enter_issue(event)
        for term in event.centroid:
            self._post(term, event.id)
        for name in event.names:
            self._post(_NAME + name, event.id)

    def _enter_issue(self, event: EventState) -> None:
        members = self._issues.get(event.issue_id)
        if members is None:
            self._issues[event.issue_id] = {event.id}
        else:
            members.add(event.id)

    def _post(self, key: str, event_id: str) -> None:
        _post_keys(self._index, (key,), event_id)

    def specific(self, names: Iterable[str]) -> list[str]:
        """The names that point at one site or body: those not already found in many events."""
        index = self._index
        return [n for n in names if len(index.get(_NAME + n, ())) <= _GENERIC_NAME]

    def has_specific(self, names: Iterable[str]) -> bool:
        """Whether any of the names is specific (stops at the first: an event may hold dozens of names)."""
        index = self._index
        return any(len(index.get(_NAME + n, ())) <= _GENERIC_NAME for n in names)

    def join(self, vector: dict[str, float], ts: float, title: str, source: str, channel: str, region: str | None,
             engagement: int, names: Sequence[str] = ()) -> str:
        """One item joined as `join_batch` joins it (the reference for that batch path); returns the event id."""
        return self.join_batch(((vector, ts, title, source, channel, region, engagement, names),))[0]

    def _best(self, vector: dict[str, float], ts: float, names: Sequence[str], index: dict[str, list[str]],
              events: dict[str, EventState], cfg: _Limits
              ) -> tuple[EventState | None, float, EventState | None]:
        """Candidates are the latest events of each of the item's names (all compared) and of its weightiest terms
        (only those sharing two or more of these terms are compared). An event naming other sites or bodies than
        the item does is never joined: 油烟扰民 at 润芳园小区 is not the 油烟扰民 of 魅力之城小区.
        Written for speed (it runs for every new item): cosines inline, the shared-term count only when two of the
        looked-up postings can share an event, whether an event is named only when the rule needs it.
        Returns (open event to join, its cosine, closed event of the same issue when no open one matches)."""
        best, best_sim = None, 0.0
        earlier, earlier_sim = None, 0.0  # the best closed event the item would have joined: its issue continues
        close, span = cfg.close, cfg.span
        named: set[str] | tuple = ()
        specific = False  # the item names a site or body found in few events (or none yet)
        for name in names:  # specific names and the latest events naming them
            posting = index.get(_NAME + name)
            if posting is None:
                specific = True
            elif len(posting) <= _GENERIC_NAME:
                specific = True
                if not named:
                    named = set()
                named.update(posting[-_RECENT_PER_NAME:])
        if named:
            threshold = cfg.name_threshold
            for event_id in named:
                event = events.get(event_id)
                if event is None:
                    continue
                sim = event.cosine(vector)
                if sim < threshold:
                    continue
                if _takes(event, ts, close, span):
                    if sim > best_sim:
                        best, best_sim = event, sim
                elif sim > earlier_sim and _main_names(event) & set(names):
                    earlier, earlier_sim = event, sim
            if best is not None:
                return best, best_sim, None
        found: list[str] = []
        for term in islice(vector, _LOOKUP_TERMS):  # the vector is ordered best first
            posting = index.get(term)
            if posting:
                found += posting[-_RECENT_PER_TERM:]
        counts: dict[str, int] = {}
        _count_elements(counts, found)  # Counter's own C counting loop, without Counter's Python-level __init__
        if len(counts) == len(found):
            return None, 0.0, earlier  # no event shares two of the terms
        # Most shared first; the sort is stable, so equal counts keep first-found order (dicts keep insertion order).
        shared = sorted(counts.items(), key=_WEIGHT, reverse=True)[:_MAX_CANDIDATES]
        matter_keys: list[str] | None = None
        matter_weights: list[float] = []
        window = cfg.window
        for event_id, count in shared:
            if count < 2:
                break  # the rest share one term only
            event = events.get(event_id)
            if event is None or event_id in named:
                continue  # named events were judged above
            event_names = event.names
            event_named: bool | None = None
            if specific:
                event_named = bool(event_names) and self.has_specific(event_names)
                if event_named:
                    continue  # other names mean another site or body
            sim = event.cosine(vector)  # fills event._norm2
            if matter_keys is None:
                matter_keys = [k for k in vector if k[:1] == _MATTER]
                matter_weights = list(map(vector.__getitem__, matter_keys))
            if matter_keys:  # without a shared name, the kinds of matter alone must not make two reports alike
                get = event.centroid.get
                sim -= sum(map(mul, matter_weights, map(get, matter_keys, repeat(0.0)))) / math.sqrt(event._norm2 or 1.0)
            if sim <= best_sim:
                continue
            if not _takes(event, ts, close, span):
                continue  # closed; without a shared name the text alone does not make it the same issue
            # An event about a named site takes a report naming none only when it is very close.
            if sim >= cfg.strong_threshold:
                best, best_sim = event, sim
            elif sim >= cfg.threshold and event.first_seen - window <= ts <= event.last_seen + window:
                if event_named is None:
                    event_named = bool(event_names) and self.has_specific(event_names)
                if not event_named:
                    best, best_sim = event, sim
        return best, best_sim, None if best is not None else earlier

    def join_batch(self, rows: Iterable[JoinRow]) -> list[str]:
        """Each row (vector, ts, title, source, channel, region, engagement, names) joins the best event or starts
        one, in order: an item sees the events and postings of the rows before it (incremental, as items arrive).
        Returns the event ids. One loop for the batch with everything it touches bound once, because it runs for
        every item and most items start an event (a fresh event's terms are posted without centroid look-ups)."""
        index = self._index
        events = self.events
        cfg = self.config
        best_of = self._best
        max_active = cfg.max_active
        limits = _Limits.of(cfg)  # the config's fields read once per batch, not per item (pydantic reads cost)
        dirty_add = self.dirty.add
        touched_update = self.touched_names.update
        new_id = self._new_id
        out: list[str] = []
        for vector, ts, title, source, channel, region, engagement, names in rows:
            if not vector:
                vector = {f"#{title[:20]}": 1.0}
            event, _, earlier = best_of(vector, ts, names, index, events, limits)
            if event is None:
                event_id = new_id()
                event = _fresh_event(event_id, title[:120], ts, vector.copy(),
                                     earlier.issue_id if earlier is not None else event_id)
                events[event_id] = event
                self._enter_issue(event)
                _post_keys(index, vector, event_id)  # every term is new to a fresh event
                if len(events) > max_active:
                    self._forget_oldest()
                    index, events = self._index, self.events  # both rebuilt
                    event = events.get(event_id, event)
            else:
                event_id = event.id
                centroid = event.centroid
                norm2 = event._norm2
                dot = 0.0
                new_terms: list[str] = []
                for term, w in vector.items():
                    old = centroid.get(term)
                    if old is None:
                        centroid[term] = w
                        new_terms.append(term)
                    else:
                        dot += old * w
                        centroid[term] = old + w
                if new_terms:
                    _post_keys(index, new_terms, event_id)
                if norm2 is not None:  # |c + v|² = |c|² + 2 c·v + |v|²
                    norm2 += 2 * dot + _norm2(vector)
                if len(centroid) >= _TRIM_AT:
                    event.centroid = _trimmed(centroid, index, event_id)
                    norm2 = None
                event._norm2 = norm2
                if ts < event.first_seen:
                    event.first_seen = ts
                if ts > event.last_seen:
                    event.last_seen = ts
            if names:
                event_names = event.names
                for name in names:
                    count = event_names.get(name)
                    if count is None:
                        self._post(_NAME + name, event_id)
                        event_names[name] = 1
                    else:
                        event_names[name] = count + 1
                touched_update(names)
            event.volume += 1
            event.engagement += engagement
            counts = event.sources
            counts[source] = counts.get(source, 0) + 1
            counts = event.channels
            counts[channel] = counts.get(channel, 0) + 1
            if region:
                counts = event.regions
                counts[region] = counts.get(region, 0) + 1
            dirty_add(event_id)
            out.append(event_id)
        return out

    def _new_id(self) -> str:
        return _new_event_id()

    def update_engagement(self, event_id: str, delta: int) -> None:
        """A re-crawled item brought new counts: the event's engagement follows."""
        event = self.events.get(event_id)
        if event is not None and delta:
            event.engagement = max(0, event.engagement + delta)
            self.dirty.add(event_id)

    def resolve(self, event_id: str) -> str:
        """The surviving event of an id that may have been merged into another. Each absorb records one hop
        (absorbed → absorber); following a chain points every id on it at the end, so a chain is walked once."""
        aliases = self.aliases
        target = aliases.get(event_id)
        if target is None:
            return event_id
        path = [event_id]
        while target in aliases and len(path) <= len(aliases):  # the bound only guards against a corrupt cycle
            path.append(target)
            target = aliases[target]
        for hop in path:
            aliases[hop] = target
        return target

    def consolidate(self) -> dict[str, str]:
        """Merge events that name the same site or body and whose term centroids agree (cosine ≥ name_threshold).

        Why: one pass decides each item on what it has seen so far; early reports of one matter in different words
        (油烟 here, 噪音 there, both at 魅力之城小区) start separate events before the centroid that joins them exists.
        Run once per batch over the names touched in it; returns {absorbed id: surviving id} merged this time."""
        merged: dict[str, str] = {}
        names, self.touched_names = self.touched_names, set()
        threshold = self.config.name_threshold
        close = self.config.close_days * 86400
        span = self.config.max_days * 86400
        norms: dict[str, float] = {}  # fresh squared norms of centroids compared in this call, by event id
        for name in sorted(names):  # a set's order follows the hash seed: merges must not
            posting = self._index.get(_NAME + name)
            if not posting or len(posting) < 2 or len(posting) > _GENERIC_NAME:
                continue
            group = [self.events[e] for e in dict.fromkeys(posting[-_RECENT_PER_NAME:]) if e in self.events]
            group.sort(key=lambda e: (-e.volume, e.first_seen))  # the largest (then oldest) absorbs the others
            alive = [True] * len(group)
            for i, keep in enumerate(group):
                if not alive[i]:
                    continue
                for j in range(i + 1, len(group)):
                    other = group[j]
                    if not alive[j]:
                        continue
                    apart = (other.first_seen > keep.last_seen + close or keep.first_seen > other.last_seen + close
                             or max(keep.last_seen, other.last_seen) - min(keep.first_seen, other.first_seen) > span)
                    if apart and keep.issue_id == other.issue_id:
                        continue  # too far apart to merge and one issue already: nothing to do, whatever the cosine
                    if _centroid_cosine(keep, other, norms) < threshold:
                        continue
                    if apart:  # the same grievance at another time: one issue, two events, linked by what both are
                        if _main_names(keep) & _main_names(other):  # mainly about, not a passing name
                            self._link_issue(keep, other)
                        continue
                    self._absorb(keep, other)
                    norms.pop(keep.id, None)
                    alive[j] = False
                    merged[other.id] = keep.id
        self.merged.update(merged)
        return merged

    def _link_issue(self, a: EventState, b: EventState) -> None:
        """Put two events (and every event of their issues) in one issue: the older issue's id is kept."""
        keep, drop = (a.issue_id, b.issue_id) if a.first_seen <= b.first_seen else (b.issue_id, a.issue_id)
        if keep == drop:
            return
        moved = self._issues.pop(drop, set())
        for event_id in moved:
            self.events[event_id].issue_id = keep
        self.dirty.update(moved)
        self._issues.setdefault(keep, set()).update(moved)

    def _absorb(self, keep: EventState, other: EventState) -> None:
        centroid = keep.centroid
        for term, w in other.centroid.items():
            if term not in centroid:
                self._post(term, keep.id)
            centroid[term] = centroid.get(term, 0.0) + w
        if len(centroid) >= _TRIM_AT:
            keep.centroid = _trimmed(centroid, self._index, keep.id)
        keep._norm2 = None
        for name, count in other.names.items():
            if name not in keep.names:
                self._post(_NAME + name, keep.id)
            keep.names[name] += count
        keep.first_seen = min(keep.first_seen, other.first_seen)
        keep.last_seen = max(keep.last_seen, other.last_seen)
        keep.volume += other.volume
        keep.engagement += other.engagement
        keep.sources.update(other.sources)
        keep.channels.update(other.channels)
        keep.regions.update(other.regions)
        del self.events[other.id]
        members = self._issues[other.issue_id]
        members.discard(other.id)
        if not members:
            del self._issues[other.issue_id]
        self.aliases[other.id] = keep.id  # one hop: `resolve` follows chains (a walk over all aliases here grew
        # with every merge the process had seen)
        self.dirty.add(keep.id)
        self.dirty.discard(other.id)

    def _forget_oldest(self) -> None:
        keep = heapq.nlargest(int(self.config.max_active * 0.9), self.events.values(), key=lambda e: e.last_seen)
        kept = {e.id for e in keep}
        self.events = {e.id: e for e in keep}
        self._issues = {}
        for event in keep:
            self._enter_issue(event)
        for term in list(self._index):
            posting = [e for e in self._index[term] if e in kept]
            if posting:
                self._index[term] = posting
            else:
                del self._index[term]

    def hot(self, limit: int = 10) -> list[EventState]:
        return heapq.nlargest(limit, self.events.values(), key=lambda e: (e.heat, e.last_seen))
