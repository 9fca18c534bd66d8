"""Plugs collection into the service: the crawl scheduler, the demo site, `GET /api/sources`, the `CrawlService`
(`service.crawl`) and `CrawlService.statuses` (per-source status in domain terms, a `core.ports.SourceHealthProvider`
for alert rules)."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.config import Config
from core.errors import SourceError, StorageError
from core.models import SHANGHAI, SourceStatus
from crawlers import state as _state  # noqa: F401 - registers the `crawl` migration
from crawlers.health import RunResult, record_run, source_health
from crawlers.runner import ProgressCallback, run_crawl

if TYPE_CHECKING:  # the composition root imports this module
    from yuqing.host import Service

logger = logging.getLogger(__name__)


class CrawlService:
    """Runs sources (never two runs of one source at once), records health and drains the inbox after each run.

    `drain` is the ingest writer's (`flow.writer.IngestWriter.drain`): it serialises every ingest of the process,
    so crawls running in parallel need no lock of their own around it."""

    def __init__(self, config: Config, store: Any, drain: Callable[[], Any], cluster: Any = None) -> None:
        self.config = config
        self.store = store
        self.drain = drain
        # Several instances (storage/cluster.py): a source runs on one of them at a time, and a scheduled run once.
        self.cluster = cluster
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self.running: set[str] = set()
        self.last_ingest: dict[str, Any] = {}  # source → IngestReport of the drain after its last run (stored, updated...)

    def crawl_sources(self) -> list[str]:
        return [sid for sid, s in self.config.sources.items() if s.crawl is not None]

    def _lock(self, source: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(source, threading.Lock())

    def run_source(self, source: str, on_progress: ProgressCallback | None = None) -> RunResult | None:
        """One crawl of `source`; returns None when a run of it is already going on."""
        source_config = self.config.source(source)
        if source_config.crawl is None:
            raise SourceError(f"source {source!r} has no crawl section")
        lock = self._lock(source)
        if not lock.acquire(blocking=False):
            logger.info("crawl skipped source=%s reason=already_running", source)
            return None
        try:
            with self.cluster.hold(f"crawl:{source}", wait=False) if self.cluster else contextlib.nullcontext(True) as mine:
                if not mine:
                    logger.info("crawl skipped source=%s reason=running_on_another_instance", source)
                    return None
                return self._run_source(source, on_progress)
        finally:
            lock.release()

    def join_source(self, source: str, on_progress: ProgressCallback | None = None) -> RunResult:
        """Work the shared queue of a crawl of `source` going on on another machine (`crawling.redis_url`): no start
        requests, each page fetched once across the processes, stops when the queue is empty and no process busy.
        Not a run of its own for the source's health (the run it joined records that); ingests what it found."""
        if not self.config.crawling.redis_url:
            raise SourceError("joining a crawl needs the shared queue: set crawling.redis_url")
        if self.config.source(source).crawl is None:
            raise SourceError(f"source {source!r} has no crawl section")
        result = run_crawl(self.config, source, db_path=self.config.storage.sqlite_path, on_progress=on_progress,
                           join=True)
        report = self.drain()
        logger.info("crawl joined source=%s outcome=%s pages=%d items=%d stored=%s", source, result.outcome,
                    result.pages, result.items, getattr(report, "stored", "?"))
        return result

    def _run_source(self, source: str, on_progress: ProgressCallback | None) -> RunResult:
        self.running.add(source)
        try:
            result = run_crawl(self.config, source, db_path=self.config.storage.sqlite_path, on_progress=on_progress)
            health = record_run(self.store, result, self.config.crawling.health)
            report = self.drain()
            self.last_ingest[source] = report
            logger.info("crawl done source=%s outcome=%s pages=%d items=%d revisited=%d stored=%s updated=%s state=%s",
                        source, result.outcome, result.pages, result.items, result.revisited, getattr(report, "stored", "?"),
                        getattr(report, "updated", "?"), health.state)
            return result
        finally:
            self.running.discard(source)

    def statuses(self) -> list[SourceStatus]:
        """Every source that has run, as other packages see it (`core.ports.SourceHealthProvider`)."""
        return source_statuses(self.store)

    def sources(self) -> list[dict[str, Any]]:
        """Every crawled source with its schedule and health (unknown until its first run)."""
        health = source_health(self.store)
        out = []
        for sid in self.crawl_sources():
            cfg = self.config.sources[sid]
            spec = cfg.crawl
            entry = health[sid].to_dict() if sid in health else {"source": sid, "state": "unknown", "reason": "never run"}
            entry.update({"name": cfg.name, "channel": cfg.channel.value, "enabled": cfg.enabled, "kind": spec.kind,
                          "schedule": spec.schedule.model_dump(exclude_none=True), "running": sid in self.running})
            out.append(entry)
        return out


class CrawlScheduler:
    """APScheduler (3.x) jobs, one per enabled source; each job runs the crawl subprocess and waits for it."""

    def __init__(self, crawl: CrawlService) -> None:
        self.crawl = crawl
        self.scheduler: Any = None

    def start(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        config = self.crawl.config
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(config.crawling.max_parallel)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300}, timezone=SHANGHAI)
        for sid in self.crawl.crawl_sources():
            source = config.sources[sid]
            if not source.enabled:
                continue
            schedule = source.crawl.schedule
            if schedule.cron:
                trigger = CronTrigger.from_crontab(schedule.cron, timezone=SHANGHAI)
                first = None
                period = 50.0  # cron fires at the same minute on every instance: once per firing
            else:
                trigger = IntervalTrigger(seconds=schedule.interval_seconds, timezone=SHANGHAI)
                first = datetime.now(SHANGHAI)  # interval sources run at start-up, so a fresh install fills quickly
                period = float(schedule.interval_seconds)
            kwargs = {"next_run_time": first} if first else {}
            self.scheduler.add_job(self._run, trigger, args=[sid, period], id=f"crawl:{sid}", name=f"crawl {sid}",
                                   **kwargs)
        self.scheduler.start()
        logger.info("crawl scheduler started jobs=%d", len(self.scheduler.get_jobs()))

    def _run(self, source: str, period: float = 0.0) -> None:
        try:
            cluster = self.crawl.cluster
            if cluster is None:
                self.crawl.run_source(source)
            elif not cluster.run_once(self.crawl.store, f"schedule:crawl:{source}", period,
                                      lambda: self.crawl.run_source(source)):
                logger.info("scheduled crawl left to another instance source=%s", source)
        except Exception:  # noqa: BLE001 - one source's failure must never stop the scheduler
            logger.exception("crawl job failed source=%s", source)

    def stop(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.scheduler = None


def source_statuses(store: Any) -> list[SourceStatus]:
    """Every source that has run, as other packages see it; none while the crawl tables are absent."""
    try:
        current = source_health(store)
    except StorageError:
        return []
    return [SourceStatus(source=h.source, status=h.state, reason=h.reason,
                         last_success=datetime.fromisoformat(h.last_success_at) if h.last_success_at else None)
            for h in current.values() if h.state in ("ok", "degraded", "failing")]


def attach(service: Service) -> CrawlService:
    """Called by yuqing.service.build_service: add crawl state tables, workers and the sources API; the crawl
    service drains through the service's ingest writer."""
    service.store.migrate()  # the `crawl` chain registers on import, after the store first opened
    shared = service.cluster if service.config.storage.state_url else None
    crawl = CrawlService(service.config, service.store, service.writer.drain, cluster=shared)
    service.crawl = crawl
    crawling = service.config.crawling
    if crawling.demo_site.enabled:
        from demo.site import DemoSiteWorker

        service.workers.append(DemoSiteWorker(crawling.demo_site))
    if crawling.scheduler and crawl.crawl_sources():
        service.workers.append(CrawlScheduler(crawl))
    service.add_routers("crawlers.api:router")
    return crawl
