"""The running service's parts (`Service`), apart from the composition root that builds them (yuqing/service.py).

Why a module of its own: extensions and API dependencies need the type, and importing it from the composition root,
which imports every extension, would tie them in a cycle.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from core.config import Config
from flow.ingest import Ingestor
from flow.stages import Stage
from flow.writer import IngestWriter
from storage.base import Store
from storage.cluster import ClusterLocks

if TYPE_CHECKING:  # set by the extensions when attached; types only
    from alerts.engine import AlertEngine
    from alerts.service import AlertWorker
    from analysis.stages import AnalysisState
    from crawlers.service import CrawlService
    from playbooks.service import PlaybookService
    from reports.service import ReportService

logger = logging.getLogger(__name__)


class Worker(Protocol):
    """A background job that lives as long as the served process (scheduler, alert dispatcher)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Service:
    """Everything a running yuqing needs, built once per process from the config.

    Every ingest goes through `writer` (the one thread that runs `ingestor`'s chain); `analysis` is the one analysis
    state (None without enrichment); `crawl`, `alerts`, `playbooks` and `reports` are set by their extensions when attached."""

    config: Config
    store: Store
    ingestor: Ingestor
    writer: IngestWriter
    analysis: AnalysisState | None = None
    crawl: CrawlService | None = None
    alerts: AlertEngine | None = None
    alerts_worker: AlertWorker | None = None
    playbooks: PlaybookService | None = None
    reports: ReportService | None = None
    cluster: ClusterLocks | None = None  # locks shared with every instance on the same state database
    readers: Any = None  # api.readers.ReadWorkers: feed pages searched in reader processes (server.read_workers)
    workers: list[Worker] = field(default_factory=list)
    # API routers the extensions add, as "module:attribute", imported only when an app is built (`routers`): a process
    # that serves no HTTP (`yuqing import`, the CLI) does not import FastAPI and the routes (≈ 0.8 s of CPU at start).
    router_paths: list[str] = field(default_factory=list)
    _started: bool = False

    def add_routers(self, *paths: str) -> None:
        """Add API routers by "module:attribute" (`routers` imports them)."""
        self.router_paths.extend(paths)

    @property
    def routers(self) -> list[Any]:
        """The extensions' API routers, in the order they were added."""
        found = []
        for path in self.router_paths:
            module, _, name = path.partition(":")
            found.append(getattr(importlib.import_module(module), name))
        return found

    def provide_stages(self, package: str, stages: dict[str, Stage | None]) -> None:
        """Add a package's stages by name; `flow.ingest.STAGES` puts them in place."""
        self.ingestor.provide(package, stages)

    def start(self) -> None:
        """Start background workers (called by the API's lifespan, not by tests that only ingest), and ingest what
        a previous process left in the inbox."""
        if self._started:
            return
        if self.cluster is not None and self.config.storage.state_url:
            self.cluster.announce()  # other instances can tell this one is alive (alert outbox claims)
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
        if self.cluster is not None:
            self.cluster.close()
        self.store.close()
