"""Spikes: per topic, scheme, region and source, the volume of the last hours against its own baseline.

Test: given n items of a group in the recent and baseline windows together, the recent count is Binomial(n, p0) with
p0 = recent / (recent + baseline) hours when nothing changed; a spike is a one-sided p-value below `alpha`, at least
`min_count` recent items and a rate ratio of at least `min_ratio`. Each spike is explained by the keywords that grew
most (recent share vs baseline share) and the sources and regions of its recent items.

A group needs a history first: with fewer than `min_baseline` items in its baseline window (right after start-up,
a new source) any volume would look like a 100× burst, so it is listed as waiting for a baseline instead
(`detect_spikes(..., waiting=[])`), with the reason in Chinese. Imported history (items marked backfill) counts in
neither window: an import of last night's export is not volume of today.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import core.config  # noqa: F401 - loaded first: it imports core.config_analysis at its end
from core.config_analysis import SpikesConfig
from storage.base import ItemReads

DIMENSIONS = ("topic", "scheme", "region", "source")


def _rows(store: ItemReads, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """The live items of the window: imported history (backfill) is neither a baseline nor a burst."""
    return [{"id": f.item_id, "ts": f.published_ts, "topic": f.topic, "region": f.region, "source": f.source,
             "scheme": f.schemes, "keywords": f.keywords} for f in store.item_facets(since, until) if not f.backfill]


def _values(row: dict[str, Any], dimension: str) -> list[str]:
    value = row[dimension]
    if isinstance(value, list):
        return value
    return [value] if value else []


def detect_spikes(store: ItemReads, config: SpikesConfig, now: datetime, dimensions: tuple[str, ...] = DIMENSIONS,
                  waiting: list[dict] | None = None) -> list[dict]:
    """Spikes at `now`, strongest (smallest p-value) first, each with its explanation. Groups with recent volume but
    too little history are appended to `waiting` (when given) rather than reported."""
    recent_start = (now - timedelta(hours=config.recent_hours)).timestamp()
    base_start = recent_start - config.baseline_hours * 3600
    rows = _rows(store, datetime.fromtimestamp(base_start, UTC), now)
    p0 = config.recent_hours / (config.recent_hours + config.baseline_hours)
    spikes = []
    for dimension in dimensions:
        groups: dict[str, dict[str, list]] = defaultdict(lambda: {"recent": [], "base": []})
        for row in rows:
            window = "recent" if row["ts"] >= recent_start else "base"
            for value in _values(row, dimension):
                groups[value][window].append(row)
        for value, parts in groups.items():
            recent, base = parts["recent"], parts["base"]
            r, b = len(recent), len(base)
            if r < config.min_count:
                continue
            if b < config.min_baseline:
                if waiting is not None:
                    waiting.append({"dimension": dimension, "value": value, "recent": r, "baseline": b,
                                    "status": "no_baseline",
                                    "reason": f"基线不足：此前 {config.baseline_hours:g} 小时仅 {b} 条"
                                              f"（至少需要 {config.min_baseline} 条），暂不判断是否激增"})
                continue
            expected = (b + 1) * config.recent_hours / config.baseline_hours  # +1: a group new this hour still has a rate
            ratio = r / expected
            if ratio < config.min_ratio:
                continue
            from scipy.stats import binomtest  # here: importing scipy.stats cost 0.5 s of every process's start-up

            p_value = binomtest(r, r + b, p0, alternative="greater").pvalue
            if p_value >= config.alpha:
                continue
            spikes.append({"dimension": dimension, "value": value, "recent": r, "baseline": b,
                           "expected": round(expected, 2), "ratio": round(ratio, 2), "p_value": float(p_value),
                           "explanation": explain(recent, base),
                           "item_ids": [row["id"] for row in sorted(recent, key=lambda x: -x["ts"])[:20]]})
    spikes.sort(key=lambda s: (s["p_value"], -s["recent"]))
    return spikes


def explain(recent: list[dict[str, Any]], base: list[dict[str, Any]], top: int = 5) -> dict[str, Any]:
    """Terms whose share of items grew most, and where the recent items come from."""
    rc = Counter(k for row in recent for k in set(row["keywords"]))
    bc = Counter(k for row in base for k in set(row["keywords"]))
    n_r, n_b = max(1, len(recent)), max(1, len(base))
    lift = {k: (c / n_r) / ((bc.get(k, 0) + 0.5) / (n_b + 0.5)) for k, c in rc.items() if c >= 2}
    terms = [{"term": k, "recent": rc[k], "baseline": bc.get(k, 0)}
             for k, _ in sorted(lift.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
    sources = Counter(row["source"] for row in recent).most_common(top)
    regions = Counter(row["region"] for row in recent if row["region"]).most_common(top)
    return {"terms": terms, "sources": [{"source": s, "count": c} for s, c in sources],
            "regions": [{"region": s, "count": c} for s, c in regions]}
