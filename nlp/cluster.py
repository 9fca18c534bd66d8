"""Incremental event clustering: each arriving item joins the most similar live event or starts a new one.

Items are tf-idf keyword vectors (places and organisations weigh more, because a grievance is tied to a place or a
body); an event keeps the sum of its items' vectors (top terms only) and an inverted index from terms to events, so
finding candidates costs a few dictionary look-ups. Channels do not matter: a 12345 work order, a mailbox letter and
Weibo posts about the same matter join one event. A match within `window_days` of the event needs cosine ≥
`threshold`; a very close match (≥ `strong_threshold`) joins whatever the age, for grievances repeated over years.
The clusterer returns ids and keeps state; it never writes (see `nlp.event_store`).
"""

from __future__ import annotations

import heapq
import math
import uuid
from collections import Counter
from dataclasses import dataclass, field

import core.config  # noqa: F401 - loaded first: it imports core.config_analysis at its end
from core.config_analysis import EventsConfig

_CENTROID_TERMS = 60
_ITEM_TERMS = 20
_ENTITY_BOOST = 1.5
_MAX_POSTING = 300
_LOOKUP_TERMS = 10
_MAX_CANDIDATES = 12
_NAME_WEIGHT = 2.0  # a named site or body (魅力之城小区) says more about "the same matter" than any word


def item_vector(weights: dict[str, float], entities: list[str] = (), names: list[str] = ()) -> dict[str, float]:
    """The top tf-idf terms, place words boosted, named bodies and sites (经济学院, 魅力之城小区) added as terms."""
    boosted = dict(weights)
    for name in entities:
        key = name.lower()
        if key in boosted:  # only boost words the item has: a place every text names (A市) keeps its low idf
            boosted[key] *= _ENTITY_BOOST
    top = max(weights.values(), default=1.0)
    for name in names:
        boosted["@" + name.lower()] = top * _NAME_WEIGHT
    top = heapq.nlargest(_ITEM_TERMS, boosted.items(), key=lambda kv: kv[1])
    norm = math.sqrt(sum(v * v for _, v in top)) or 1.0
    return {k: v / norm for k, v in top}


def heat_index(volume: int, engagement: int, channels: int, sources: int) -> float:
    """Heat: volume counts most, engagement next (both logarithmic), spread over channels and sources adds."""
    return round(10 * math.log1p(volume) + 4 * math.log1p(engagement) + 3 * max(0, channels - 1)
                 + 2 * math.log1p(sources), 2)


@dataclass
class EventState:
    id: str
    title: str
    first_seen: float
    last_seen: float
    centroid: dict[str, float] = field(default_factory=dict)
    volume: int = 0
    engagement: int = 0
    sources: Counter = field(default_factory=Counter)
    channels: Counter = field(default_factory=Counter)
    regions: Counter = field(default_factory=Counter)
    _norm: float | None = field(default=None, repr=False, compare=False)

    @property
    def keywords(self) -> list[str]:
        return [k for k, _ in heapq.nlargest(8, self.centroid.items(), key=lambda kv: kv[1])]

    @property
    def heat(self) -> float:
        return heat_index(self.volume, self.engagement, len(self.channels), len(self.sources))

    def cosine(self, vector: dict[str, float]) -> float:
        if self._norm is None:
            self._norm = math.sqrt(sum(v * v for v in self.centroid.values())) or 1.0
        centroid = self.centroid
        return sum(w * centroid.get(t, 0.0) for t, w in vector.items()) / self._norm

    def public(self) -> dict:
        return {"id": self.id, "title": self.title, "keywords": self.keywords, "first_seen": self.first_seen,
                "last_seen": self.last_seen, "volume": self.volume, "engagement": self.engagement,
                "sources": dict(self.sources), "channels": dict(self.channels), "regions": dict(self.regions),
                "heat": self.heat}


class EventClusterer:
    """`assign(vector, ts, ...)` → event id (new or existing); `events` holds the live state."""

    def __init__(self, config: EventsConfig) -> None:
        self.config = config
        self.events: dict[str, EventState] = {}
        self._index: dict[str, set[str]] = {}
        self.dirty: set[str] = set()

    def load(self, event: EventState) -> None:
        """Put a persisted event back (on start)."""
        self.events[event.id] = event
        for term in event.centroid:
            self._index.setdefault(term, set()).add(event.id)

    def best(self, vector: dict[str, float], ts: float) -> tuple[EventState | None, float]:
        # Candidates share the item's weightiest terms; only the few sharing most are compared in full.
        shared: Counter[str] = Counter()
        for term in heapq.nlargest(_LOOKUP_TERMS, vector, key=vector.__getitem__):
            posting = self._index.get(term, ())
            if len(posting) <= _MAX_POSTING:  # a word in hundreds of events (小区, 业主) finds nothing specific
                shared.update(posting)
        candidates = [event_id for event_id, _ in shared.most_common(_MAX_CANDIDATES)]
        window = self.config.window_days * 86400
        best, best_sim = None, 0.0
        for event_id in candidates:
            event = self.events.get(event_id)
            if event is None:
                continue
            sim = event.cosine(vector)
            recent = event.first_seen - window <= ts <= event.last_seen + window
            if (sim >= self.config.strong_threshold or (recent and sim >= self.config.threshold)) and sim > best_sim:
                best, best_sim = event, sim
        return best, best_sim

    def assign(self, vector: dict[str, float], ts: float, *, title: str, source: str, channel: str,
               region: str | None, engagement: int) -> str:
        if not vector:
            vector = {f"#{title[:20]}": 1.0}
        event, _ = self.best(vector, ts)
        if event is None:
            event = EventState(id=f"ev-{uuid.uuid4().hex[:16]}", title=title[:120], first_seen=ts, last_seen=ts)
            self.events[event.id] = event
            if len(self.events) > self.config.max_active:
                self._forget_oldest()
        self._add(event, vector, ts, source, channel, region, engagement)
        return event.id

    def update_engagement(self, event_id: str, delta: int) -> None:
        """A re-crawled item brought new counts: the event's engagement follows."""
        event = self.events.get(event_id)
        if event is not None and delta:
            event.engagement = max(0, event.engagement + delta)
            self.dirty.add(event_id)

    def _add(self, event: EventState, vector: dict[str, float], ts: float, source: str, channel: str,
             region: str | None, engagement: int) -> None:
        event._norm = None
        for term, w in vector.items():
            event.centroid[term] = event.centroid.get(term, 0.0) + w
        if len(event.centroid) > _CENTROID_TERMS:
            event.centroid = dict(heapq.nlargest(_CENTROID_TERMS, event.centroid.items(), key=lambda kv: kv[1]))
        for term in event.centroid:
            self._index.setdefault(term, set()).add(event.id)
        event.first_seen = min(event.first_seen, ts)
        event.last_seen = max(event.last_seen, ts)
        event.volume += 1
        event.engagement += engagement
        event.sources[source] += 1
        event.channels[channel] += 1
        if region:
            event.regions[region] += 1
        self.dirty.add(event.id)

    def _forget_oldest(self) -> None:
        keep = heapq.nlargest(int(self.config.max_active * 0.9), self.events.values(), key=lambda e: e.last_seen)
        kept = {e.id for e in keep}
        self.events = {e.id: e for e in keep}
        for term in list(self._index):
            self._index[term] &= kept
            if not self._index[term]:
                del self._index[term]

    def hot(self, limit: int = 10) -> list[EventState]:
        return heapq.nlargest(limit, self.events.values(), key=lambda e: (e.heat, e.last_seen))
