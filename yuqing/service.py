"""Composition root: builds the store, the ingest flow and the optional stages from one Config.

This is the only module that knows every package; packages talk through the domain model and these objects.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from analysis.stages import build_enrich_stages
from core.config import Config
from flow.ingest import Ingestor
from flow.stages import Stage
from nlp.search_tokens import index_tokens
from nlp.tokenize import segment
from storage.base import Store
from storage.sqlite import SqliteStore

logger = logging.getLogger(__name__)


class Worker(Protocol):
    """A background job that lives as long as the served process (scheduler, alert dispatcher)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


# Packages that extend the service: each module has `attach(service)` adding stages, workers or API routers.
# Listed here, in flow order, because this module is the one place that knows every package.
EXTENSIONS = ["crawlers.service", "analysis.service", "alerts.service", "playbooks.service"]


@dataclass
class Service:
    """Everything a running yuqing needs, built once per process from the config."""

    config: Config
    store: Store
    ingestor: Ingestor
    workers: list[Worker] = field(default_factory=list)
    routers: list[Any] = field(default_factory=list)
    components: dict[str, Any] = field(default_factory=dict)
    _started: bool = False

    def add_after_store(self, stage: Stage) -> None:
        """Append a stage that runs on stored items (alert rules, plan triggers), in attach order."""
        self.ingestor.chain.stages.append(stage)

    def start(self) -> None:
        """Start background workers (called by the API's lifespan, not by tests that only ingest)."""
        if self._started:
            return
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
        self.store.close()


def build_service(config: Config, *, db_path: Path | None = None, enrich: bool = True,
                  after_store: list[Stage] | None = None, extensions: bool = True) -> Service:
    """Open the store (running migrations) and assemble the ingest chain."""
    store = SqliteStore(db_path or config.storage.sqlite_path, segment=segment, index_segment=index_tokens)
    stages = build_enrich_stages(config, store=store) if enrich else []
    # A stage that rewrites the text (`before_dedup = True`) must run before exact dedup sees the signature.
    prepare = [s for s in stages if getattr(s, "before_dedup", False)]
    enrich_stages = [s for s in stages if not getattr(s, "before_dedup", False)]
    ingestor = Ingestor(config, store, prepare=prepare, enrich=enrich_stages, after_store=after_store or [])
    service = Service(config=config, store=store, ingestor=ingestor)
    if extensions:
        for name in EXTENSIONS:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
                    raise  # a missing dependency inside an extension is a real error
                continue
            module.attach(service)
    return service


DEMO_SOURCES = {"hotline": "demo_hotline", "mailbox": "demo_mailbox", "board": "demo_board",
                "weibo": "demo_weibo", "wechat": "demo_wechat"}


def ingest_demo(service: Service, count: int, seed: int):  # noqa: ANN201 - returns IngestReport
    """Generate `count` demo items (plus the incident) and ingest them under the demo_* sources."""
    from core.models import RawRecord
    from demo.generator import DemoGenerator

    generated = DemoGenerator(seed).items(count)
    records = [RawRecord(source=DEMO_SOURCES[d.channel], payload={**d.payload, "channel": d.channel}, origin="demo")
               for d in generated]
    return service.ingestor.ingest(records)


def load_demo_if_empty(service: Service) -> None:
    """With `demo.enabled`, an empty store gets generated items so a first run shows data."""
    demo = service.config.demo
    if demo.enabled and service.store.stats().items == 0:
        report = ingest_demo(service, count=demo.items, seed=demo.seed)
        logger.info("demo data loaded stored=%d", report.stored)
