"""Soak (issue 15): `yuqing serve` under a steady push of 100 items/s for 30 minutes, with a rule firing for every item
and delivery by e-mail and webhook to real receivers, as bench_push_alerts.py sets it up.

Samples the service's RSS every 10 s and reports whether memory and alert latency stay flat: the least-squares slope
of RSS (MB per hour) after a warm-up, and of the e-mail latency (seconds per hour) over the items' push times; also
the p95 latency of the first and the last five minutes. Prints one JSON object.

    .venv/bin/python bench/bench_soak.py [--minutes 30] [--rate 100] [--every 10] [--warmup 120]

`make bench` runs the full 30 minutes; a shorter run (--minutes 5) is the same measurement over less time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench_push_alerts import REPO, Receivers, percentile, run_rate


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, in value per hour."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return None
    return round(sum((x - mean_x) * (y - mean_y) for x, y in points) / var * 3600, 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--every", type=float, default=10, help="RSS sampling interval, seconds")
    parser.add_argument("--warmup", type=float, default=120, help="seconds left out of the RSS slope")
    parser.add_argument("--repo", type=Path, default=REPO)
    args = parser.parse_args()
    seconds = args.minutes * 60
    receivers = Receivers()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run = run_rate(args.repo.resolve(), args.rate, seconds, 120, receivers, Path(tmp), sample_every=args.every)
    finally:
        receivers.stop()
    rss = [(t, mb) for t, mb in run.pop("rss_samples") if mb is not None]
    latencies = run.pop("latencies")
    email = latencies["email"]
    window = min(300.0, seconds / 3)
    first = [lat for at, lat in email if at < window]
    last = [lat for at, lat in email if at >= seconds - window]
    steady = [(t, mb) for t, mb in rss if t >= args.warmup] or rss
    # The ingest state (near-duplicate index, word and reason caches) grows until its caps fill (dedup.max_entries
    # items: about 17 minutes at 100 items/s by default); the last 10 minutes show whether anything grows past them.
    tail_from = seconds - min(600.0, seconds / 3)
    tail = [(t, mb) for t, mb in rss if t >= tail_from]
    result = {
        "bench": "soak", "minutes": args.minutes, "offered_per_s": args.rate, "sample_every_s": args.every,
        "accepted_per_s": run["accepted_per_s"], "stored": run["stored"], "drain_s": run["drain_s"],
        "rss_mb": {"start": run["rss_mb_start"], "after_warmup": steady[0][1] if steady else None,
                   "end": run["rss_mb_end"], "max": max((mb for _, mb in rss), default=None),
                   "slope_mb_per_hour": slope_per_hour(steady), "samples": len(rss),
                   "slope_mb_per_hour_last_window": slope_per_hour(tail), "last_window_s": seconds - tail_from,
                   # the curve itself, one sample every 5 minutes, so a step or a plateau can be seen, not only a slope
                   "every_5_min": [mb for t, mb in rss if t % 300 < args.every]},
        "email_latency": {"p50_s": run["email"]["p50_s"], "p95_s": run["email"]["p95_s"],
                          "p95_first_window_s": percentile(first, 95), "p95_last_window_s": percentile(last, 95),
                          "window_s": window, "slope_s_per_hour": slope_per_hour(email)},
        "webhook_latency": {"p50_s": run["webhook"]["p50_s"], "p95_s": run["webhook"]["p95_s"]},
        "lost": {"email": run["email"]["lost"], "webhook": run["webhook"]["lost"]},
        "duplicates": {"email": run["email"]["duplicates"], "webhook": run["webhook"]["duplicates"]},
    }
    print(json.dumps(result, ensure_ascii=False))  # noqa: T201


if __name__ == "__main__":
    sys.exit(main())
