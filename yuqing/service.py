"""Composition root: builds the store, the ingest flow and the extensions from one Config.

This is the only module that knows every package; packages talk through the domain model, the typed collaborators
of `core.ports` and the objects built here. The order of the ingest stages is not decided here but by the list
`flow.ingest.STAGES`; packages provide their stages by name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# Extensions, imported explicitly: a missing one is an ImportError, never skipped.
import alerts.service
import analysis.service
import crawlers.service
from alerts.engine import AlertEngine
from analysis.stages import AnalysisState, analysis_state, enrich_stages
from core.config import Config
from core.models import IngestReport
from crawlers.service import CrawlService
from flow.ingest import Ingestor, StageOrderError, missing_stages
from flow.stages import Stage
from flow.writer import IngestWriter
from nlp.search_tokens import index_tokens
from nlp.tokenize import segment
from storage.base import Store
from storage.sqlite import SqliteStore

logger = logging.getLogger(__name__)


class Worker(Protocol):
    """A background job that lives as long as the served process (scheduler, alert dispatcher)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Service:
    """Everything a running yuqing needs, built once per process from the config.

    Every ingest goes through `writer` (the one thread that runs `ingestor`'s chain); `analysis` is the one analysis
    state (None without enrichment); `crawl` and `alerts` are set by their extensions when attached."""

    config: Config
    store: Store
    ingestor: Ingestor
    writer: IngestWriter
    analysis: AnalysisState | None = None
    crawl: CrawlService | None = None
    alerts: AlertEngine | None = None
    alerts_worker: alerts.service.AlertWorker | None = None
    workers: list[Worker] = field(default_factory=list)
    routers: list[Any] = field(default_factory=list)
    _started: bool = False

    def provide_stages(self, package: str, stages: dict[str, Stage | None]) -> None:
        """Add a package's stages by name; `flow.ingest.STAGES` puts them in place."""
        self.ingestor.provide(package, stages)

    def start(self) -> None:
        """Start background workers (called by the API's lifespan, not by tests that only ingest), and ingest what
        a previous process left in the inbox."""
        if self._started:
            return
        self.writer.drain_soon()
        for worker in self.workers:
            worker.start()
        self._started = True

    def stop(self) -> None:
        for worker in reversed(self.workers):
            try:
                worker.stop()
            except Exception:  # noqa: BLE001 - one worker failing to stop must not keep others running
                logger.exception("worker stop failed worker=%s", type(worker).__name__)
        self._started = False

    def close(self) -> None:
        self.stop()
        self.writer.close()
        self.store.close()


def build_service(config: Config, *, db_path: Path | None = None, enrich: bool = True,
                  extensions: bool = True) -> Service:
    """Open the store (running migrations), build the one analysis state and the ingest chain, attach the
    extensions; a listed stage an enabled package does not provide is an error here, at start."""
    store = SqliteStore(db_path or config.storage.sqlite_path, segment=segment, index_segment=index_tokens)
    state = analysis_state(config, store) if enrich else None
    ingestor = Ingestor(config, store, enrich_stages(config, state) if state is not None else None)
    writer = IngestWriter(ingestor, store, config.ingest.batch_size)
    service = Service(config=config, store=store, ingestor=ingestor, writer=writer, analysis=state)
    if extensions:
        crawl = crawlers.service.attach(service)
        event_heat = analysis.service.attach(service, state)
        alerts.service.attach(service, source_health=crawl.statuses, event_heat=event_heat)
        # Response plans attach here once the `playbooks` package exists: `playbooks.service.attach(service, ...)`
        # providing the "plan_triggers" stage (listed in flow.ingest.STAGES after "alert_rules").
    missing = missing_stages(ingestor.provided)
    if missing:
        service.close()
        raise StageOrderError(f"stages listed in flow.ingest.STAGES that no enabled package provides: {', '.join(missing)}")
    return service


DEMO_SOURCES = {"hotline": "demo_hotline", "mailbox": "demo_mailbox", "board": "demo_board",
                "weibo": "demo_weibo", "wechat": "demo_wechat"}


def ingest_demo(service: Service, count: int, seed: int) -> IngestReport:
    """Generate `count` demo items (plus the incident) and ingest them under the demo_* sources."""
    from core.models import RawRecord
    from demo.generator import DemoGenerator

    generated = DemoGenerator(seed).items(count)
    records = [RawRecord(source=DEMO_SOURCES[d.channel], payload={**d.payload, "channel": d.channel}, origin="demo")
               for d in generated]
    return service.writer.ingest(records)


def load_demo_if_empty(service: Service) -> None:
    """With `demo.enabled`, an empty store gets generated items so a first run shows data."""
    demo = service.config.demo
    if demo.enabled and service.store.stats().items == 0:
        report = ingest_demo(service, count=demo.items, seed=demo.seed)
        logger.info("demo data loaded stored=%d", report.stored)
