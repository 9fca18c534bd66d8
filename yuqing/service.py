"""Composition root: builds the store, the ingest flow and the optional stages from one Config.

This is the only module that knows every package; packages talk through the domain model and these objects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from core.config import Config
from flow.ingest import Ingestor
from flow.stages import Stage
from nlp.tokenize import segment
from storage.sqlite import SqliteStore

logger = logging.getLogger(__name__)


def _enrich_stages(config: Config, store: SqliteStore) -> list[Stage]:
    try:
        from nlp.pipeline import build_enrich_stages
    except ImportError:
        return []
    return build_enrich_stages(config, store=store)


@dataclass
class Service:
    """Everything a running yuqing needs, built once per process from the config."""

    config: Config
    store: SqliteStore
    ingestor: Ingestor
    after_store: list[Stage] = field(default_factory=list)

    def close(self) -> None:
        self.store.close()


def build_service(config: Config, *, db_path: Path | None = None, enrich: bool = True,
                  after_store: list[Stage] | None = None) -> Service:
    """Open the store (running migrations) and assemble the ingest chain."""
    store = SqliteStore(db_path or config.storage.sqlite_path, segment=segment)
    stages = _enrich_stages(config, store) if enrich else []
    ingestor = Ingestor(config, store, enrich=stages, after_store=after_store or [])
    return Service(config=config, store=store, ingestor=ingestor, after_store=after_store or [])


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
