"""Event rows: centroid weights rounded per batch as round(w, 5) rounds each, heat per value as heat_index."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np

from analysis.cluster import _fresh_event, top_keywords
from analysis.event_store import SignatureBlock, _dumps, _dumps_many, _heat, _signature_rows, rounded_centroids


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


def test_json_columns_written_together_are_what_one_call_each_writes() -> None:
    values: list = [["停水", "A市"], Counter({"微博": 2}), Counter(), {"油烟": 0.12345, "%噪音": 1e-05, 'q"\\': 1e20},
                    ["a", "\x00", "b"], ["\x00"], {"\x00": 1}, "\x00", [], {}, ["\n\t", "\u2028"]]
    for count in range(len(values) + 1):
        assert _dumps_many(values[:count]) == [_dumps(value) for value in values[:count]]
    assert _dumps_many([["x", "\x00", "y"]]) == ['["x","\\u0000","y"]']


def test_keywords_are_the_heaviest_words_ties_in_order() -> None:
    rng = random.Random(7)
    for _ in range(500):
        centroid = {f"{rng.choice(['', '%'])}w{j}": float(rng.randint(0, 5)) for j in range(rng.randint(0, 30))}
        words = [kv for kv in centroid.items() if kv[0][:1] != "%"]
        assert top_keywords(centroid) == [k for k, _ in sorted(words, key=lambda kv: kv[1], reverse=True)[:8]]


def test_signature_rows_are_each_signatures_uint32_bytes() -> None:
    rng = np.random.default_rng(3)
    block = rng.integers(0, 2**32, size=(5, 64), dtype=np.uint32)
    signatures = [(i + 10, i, row) for i, row in enumerate(block)]
    assert _signature_rows(signatures) == [(i, r, s.astype(np.uint32).tobytes()) for i, r, s in signatures]
    uneven = [(1, 1, np.arange(4, dtype=np.int64)), (2, 1, np.arange(3, dtype=np.uint32))]
    assert _signature_rows(uneven) == [(i, r, s.astype(np.uint32).tobytes()) for i, r, s in uneven]
    assert _signature_rows([]) == []
    # as one block (the near-duplicate index's), with the same rows
    assert _signature_rows(SignatureBlock([i + 10 for i in range(5)], list(range(5)), block)) == _signature_rows(signatures)
    assert _signature_rows(SignatureBlock([], [], block[:0])) == []
