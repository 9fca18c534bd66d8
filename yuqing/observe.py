"""What an operator watches: the levels read from the store when asked, plus the process's counters and histograms.

`snapshot(service)` is the one reading; `/metrics` renders it in the Prometheus text format with the counters of
`core.metrics`, and `yuqing status` prints it. Both name sources, stages and statuses only — never item text, people
or secrets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from flow import after_store
from yuqing.host import Service

SOURCE_STATES = ("ok", "degraded", "failing")


@dataclass
class Snapshot:
    """Levels at one moment; every field is a number or a mapping of numbers."""

    items_by_source: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    inbox_pending: int = 0
    writer_queue: int = 0
    after_store_pending: int = 0
    after_store_given_up: int = 0
    outbox_by_status: dict[str, int] = field(default_factory=dict)
    dispatcher_in_flight: int = 0
    dispatcher_max_in_flight: int = 0
    source_status: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def snapshot(service: Service) -> Snapshot:
    store = service.store
    stats = store.stats()
    snap = Snapshot(items_by_source=dict(stats.by_source), quarantined=stats.quarantined, inbox_pending=store.pending(),
                    writer_queue=service.writer.queued())
    with store.item_read() as conn:
        snap.after_store_pending, snap.after_store_given_up = after_store.depth(conn)
    with store.read() as conn:
        if service.alerts is not None:
            from alerts.store import alert_outbox

            rows = conn.execute(select(alert_outbox.c.status, func.count()).group_by(alert_outbox.c.status)).all()
            snap.outbox_by_status = {status: int(n) for status, n in rows}
    if service.alerts_worker is not None:
        snap.dispatcher_in_flight = service.alerts_worker.in_flight
        snap.dispatcher_max_in_flight = service.alerts_worker.max_in_flight
    if service.crawl is not None:
        snap.source_status = {s.source: s.status for s in service.crawl.statuses()}
    return snap


class LevelsCollector(Collector):
    """Reads a snapshot at each scrape."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = snapshot(self.service)
        items = GaugeMetricFamily("yuqing_items_stored", "Items in the store, per source", labels=["source"])
        for source, n in sorted(snap.items_by_source.items()):
            items.add_metric([source], n)
        yield items
        yield GaugeMetricFamily("yuqing_quarantine_records", "Records in quarantine", value=snap.quarantined)
        queues = GaugeMetricFamily("yuqing_queue_length", "Work waiting, per queue", labels=["queue"])
        queues.add_metric(["inbox"], snap.inbox_pending)
        queues.add_metric(["ingest_writer"], snap.writer_queue)
        queues.add_metric(["dispatcher_in_flight"], snap.dispatcher_in_flight)
        yield queues
        outbox = GaugeMetricFamily("yuqing_outbox_depth", "Rows of the two outboxes: after-store (items whose alert "
                                   "rules are pending) and alert notifications per status", labels=["outbox", "status"])
        outbox.add_metric(["after_store", "pending"], snap.after_store_pending - snap.after_store_given_up)
        outbox.add_metric(["after_store", "given_up"], snap.after_store_given_up)
        for status, n in sorted(snap.outbox_by_status.items()):
            outbox.add_metric(["alerts", status], n)
        yield outbox
        health = GaugeMetricFamily("yuqing_source_health", "1 for the state each source is in", labels=["source", "state"])
        for source, state in sorted(snap.source_status.items()):
            for candidate in SOURCE_STATES:
                health.add_metric([source, candidate], 1.0 if state == candidate else 0.0)
        yield health


def render(service: Service) -> bytes:
    """The Prometheus text exposition: the process's counters and histograms, then the levels."""
    levels = CollectorRegistry(auto_describe=False)
    levels.register(LevelsCollector(service))
    return generate_latest(REGISTRY) + generate_latest(levels)
