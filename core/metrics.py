"""Process-wide instruments (prometheus-client), written where things happen and read by `/metrics`.

Only counters and histograms live here: they must be counted as events occur. Levels (store size, queue lengths,
outbox depth, source health) are read when scraped (`yuqing/observe.py`), so nothing here can drift from the store.
Labels carry source names, stages and channels only — never item text, authors or receivers' addresses.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable
from datetime import datetime

from prometheus_client import Counter, Histogram

RECORDS_COLLECTED = Counter("yuqing_records_collected_total",
                            "Raw records handed to the ingest chain (push, crawl, import), per source", ["source"])
ITEMS_INGESTED = Counter("yuqing_items_ingested_total", "Items stored new or changed, per source", ["source"])
RECORDS_QUARANTINED = Counter("yuqing_records_quarantined_total", "Records kept in quarantine, per source and stage",
                              ["source", "stage"])
STAGE_SECONDS = Histogram("yuqing_ingest_stage_seconds", "Time one stage takes on one batch (enrichment included)",
                          ["stage"], buckets=(0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
AFTER_STORE_REDRIVEN = Counter("yuqing_after_store_redriven_total",
                               "Items whose after-store stages (alert rules) were re-driven from the outbox")
AFTER_STORE_FAILURES = Counter("yuqing_after_store_failures_total", "Failed re-drives of the after-store outbox")
ALERT_LATENCY = Histogram("yuqing_alert_latency_seconds",
                          "From an alert being raised (its item ingested) to its notification delivered, per channel",
                          ["integration"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900))
ALERT_SEND_FAILURES = Counter("yuqing_alert_send_failures_total",
                              "Failed notification attempts, per channel and what became of the row (pending, dead, failed)",
                              ["integration", "status"])


def count_by_source(counter: Counter, sources: Iterable[str], **labels: str) -> None:
    """One `inc` per distinct label set instead of one per record."""
    for source, n in Tally(sources).items():
        counter.labels(source=source, **labels).inc(n)


def observe_alert_latency(integration: str, alerts: list[dict], delivered: datetime) -> None:
    """Latency of each alert new in a delivered message (`starts_at`: when it was raised)."""
    for alert in alerts:
        started = alert.get("starts_at")
        if not started:
            continue
        try:
            raised = datetime.fromisoformat(started)
        except (TypeError, ValueError):
            continue
        ALERT_LATENCY.labels(integration=integration).observe(max(0.0, (delivered - raised).total_seconds()))
