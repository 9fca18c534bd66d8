"""Composition root: builds the store, the ingest flow and the extensions from one Config.

This is the only module that knows every package; packages talk through the domain model, the typed collaborators
of `core.ports` and the objects built here. The order of the ingest stages is not decided here but by the list
`flow.ingest.STAGES`; packages provide their stages by name.
"""

from __future__ import annotations

import logging
from pathlib import Path

# Extensions, imported explicitly: a missing one is an ImportError, never skipped.
import alerts.service
import analysis.service
import crawlers.service
import playbooks.service
import reports.service
from analysis.stages import analysis_state, enrich_stages
from core.config import Config
from core.models import IngestReport
from flow.ingest import Ingestor, StageOrderError, missing_stages
from flow.pool import PooledIndexWords
from flow.writer import IngestGate, IngestWriter, RedriveWorker
from nlp.search_tokens import index_text_from_words, index_tokens
from nlp.tokenize import segment
from storage.cluster import ClusterLocks
from storage.opening import open_store
from yuqing.host import Service
from yuqing.pooled import pooled_stages as pooled_stages  # re-exported: callers build the pool's stages from here

logger = logging.getLogger(__name__)


def build_service(config: Config, *, db_path: Path | None = None, enrich: bool = True,
                  extensions: bool = True, models_on_demand: bool = False) -> Service:
    """Open the store (running migrations), build the one analysis state and the ingest chain, attach the
    extensions; a listed stage an enabled package does not provide is an error here, at start. `models_on_demand`:
    the text models load when a batch first needs them (`enrich_stages`), for an import whose pool runs them."""
    storage = config.storage
    store = open_store(db_path or storage.sqlite_path, storage.state_url, segment=segment, index_segment=index_tokens,
                       index_from_words=PooledIndexWords(index_text_from_words),
                       elasticsearch=storage.elasticsearch if storage.backend == "elasticsearch" else None)
    cluster = ClusterLocks(store.engine)
    gate = IngestGate(cluster, store)  # reads the ingest mark before the analysis state loads
    state = analysis_state(config, store) if enrich else None
    gate.on_stale = state.reload if state is not None else None
    stages = enrich_stages(config, state, models_on_demand=models_on_demand) if state is not None else None
    ingestor = Ingestor(config, store, stages)
    # Pushes are marked as held by this instance only when instances share the state (alone, every record is ours, and
    # what a previous process left is drained at start at once).
    holder = cluster.instance_id if config.storage.state_url else None
    writer = IngestWriter(ingestor, store, config.ingest.batch_size, gate=gate, holder=holder)
    service = Service(config=config, store=store, ingestor=ingestor, writer=writer, analysis=state, cluster=cluster)
    if config.server.read_workers and config.storage.backend == "sqlite":
        from api.readers import ReadWorkers

        service.readers = ReadWorkers(config.storage.sqlite_path, config.server.read_workers)
        service.workers.append(service.readers)
    # First, so it starts right after the inbox drain; with a state database of its own it drains the inbox too.
    service.workers.append(RedriveWorker(writer, drain=bool(config.storage.state_url)))
    if extensions:
        crawl = crawlers.service.attach(service)
        event_heat = analysis.service.attach(service, state)
        alerts.service.attach(service, source_health=crawl.statuses, event_heat=event_heat)
        playbooks.service.attach(service, alerts=service.alerts)
        reports.service.attach(service)  # reads what the others keep: attached last
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
