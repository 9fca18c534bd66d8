"""Event rows: centroid weights rounded per batch as round(w, 5) rounds each, heat per value as heat_index."""

from __future__ import annotations

import math
import random

from analysis.cluster import _fresh_event
from analysis.event_store import _heat, rounded_centroids


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def test_rounded_centroids_are_what_round_gives_weight_by_weight() -> None:
    rng = random.Random(16)
    weights = [rng.random() * rng.choice([1e-6, 1.0, 10.0, 1e4, 1e9]) for _ in range(20_000)]
    weights += [n / 1e5 + 0.5e-5 for n in range(5_000)]  # halves: round() breaks the ties
    weights += [2.675, 0.000005, 0.000015, -0.000001, -0.0, 0.0, 1e300, -1e300, math.inf, -math.inf, math.nan]
    events = [_fresh_event(f"e{i}", "t", 0.0, {f"w{j}": w for j, w in enumerate(weights[i:i + 37])}, "")
              for i in range(0, len(weights), 37)]
    events.append(_fresh_event("empty", "t", 0.0, {}, ""))
    rounded = rounded_centroids(events)
    assert len(rounded) == len(events)
    for event, got in zip(events, rounded, strict=True):
        assert list(got) == list(event.centroid)
        assert all(type(v) is float for v in got.values())
        assert all(_same(got[k], round(w, 5)) for k, w in event.centroid.items())
    assert rounded_centroids([]) == []


def test_heat_per_value_is_the_events_heat() -> None:
    event = _fresh_event("e", "t", 0.0, {}, "")
    for volume, engagement, channels, sources in [(1, 0, 1, 1), (3, 57, 2, 1), (96_000, 10**7, 5, 40), (1, 0, 1, 1)]:
        event.volume, event.engagement = volume, engagement
        event.channels.clear()
        event.sources.clear()
        event.channels.update({f"c{i}": 1 for i in range(channels)})
        event.sources.update({f"s{i}": 1 for i in range(sources)})
        assert _heat(event) == event.heat
