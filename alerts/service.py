"""Wires alerts into the service: the "alert_rules" stage (rules → outbox, no network), the dispatcher worker and
the API router. `attach(service, ...)` is called by `yuqing.service.build_service`.

Providers come from other packages as typed collaborators (`core.ports`) handed in by the composition root, never
by importing those packages: a `SourceHealthProvider` (collection) feeds `source_health` rules and an `EventHeat`
(analysis) feeds `min_event_heat`. Without them those rules stay idle, and `GET /api/alerts/status` says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alerts import delivery
from alerts import store as _tables  # noqa: F401 - registers the "alerts" migration chain
from alerts.engine import AlertEngine
from alerts.fanout import stream_broadcaster
from core.errors import StorageError, YuqingError
from core.ports import EventHeat, SourceHealthProvider
from flow.stages import Batch

if TYPE_CHECKING:  # the composition root imports this module
    from storage.cluster import ClusterLocks
    from yuqing.host import Service

logger = logging.getLogger(__name__)


class AlertStage:
    """After-store stage: evaluates rules on the items just stored or updated and records alerts.

    It never raises for a rule problem: the items are already stored, and a failing stage would make the chain
    quarantine them. Storage failures do propagate, as for every stage.
    """

    name = "alert_rules"

    def __init__(self, engine: AlertEngine) -> None:
        self.engine = engine

    def run(self, batch: Batch) -> None:
        if not batch.stored:
            return
        try:
            self.engine.evaluate(batch.stored)
        except StorageError:
            raise
        except Exception:  # noqa: BLE001 - see class docstring
            logger.exception("alert rules failed on a batch of %d stored items; continuing item by item", len(batch.stored))
            for item in batch.stored:
                try:
                    self.engine.evaluate([item])
                except StorageError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    self.engine._audit("fail", f"rules failed on item {item.id}: {exc.__class__.__name__}: {exc}",
                                       detail={"item_id": item.id})


class AlertWorker:
    """Background dispatcher: ticks on every wake-up (an alert raised) or every poll interval, and sends in a small
    thread pool so one hanging webhook does not hold the other receivers. With a delivery process
    (`alerts.delivery_process`, alerts/delivery.py) this pool sends only the in-app channel; the process, started
    and restarted from here, sends the others."""

    # Rows a send worker pushes down one connection per batch; also the unit of the in-flight bound below.
    batch_size = delivery.BATCH_SIZE

    # How often an instance looks for rows a dead instance left `sending` (several instances: storage/cluster.py).
    resume_every = 10.0

    def __init__(self, engine: AlertEngine, *, config_path: Path | None = None, cluster: ClusterLocks | None = None) -> None:
        self.engine = engine
        self.config_path = config_path
        # Several instances: one dispatcher pass (tick and claim) at a time across them, under the cluster lock
        # "alerts:dispatch"; sends run outside it, so instances send in parallel, each its own claimed rows.
        self.cluster = cluster
        self._last_resume = 0.0
        # Outbox rows claimed (`sending`) and not yet recorded. Claims never exceed `max_in_flight`, so a crash
        # re-sends at most what the workers were actually sending, not a backlog claimed ahead of them.
        self._in_flight = 0
        self._in_flight_ids: set[int] = set()  # the rows themselves: own claims not among them were abandoned
        self._in_flight_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self.delivery: delivery.DeliveryProcess | None = None
        self._delivery_runtime: Any = None  # the runtime whose config the delivery process was given
        self._delivery_failed = False  # it could not be started: this process sends everything

    def start(self) -> None:
        if self._thread is not None:
            return
        resumed = self._resume()
        if resumed:
            logger.warning("alert outbox rows interrupted by the previous process resumed count=%d", resumed)
        self._stop.clear()
        # The delivery process is started here, and waited for (its start-up is imports, a few seconds on a busy
        # machine): the first alerts after start-up would wait for it otherwise. Restarts happen on the dispatcher
        # thread. PR_SET_PDEATHSIG follows the starting thread: the one that runs start() must outlive the worker
        # (the main thread under `yuqing serve`).
        if self._steer_delivery() and self.delivery is not None and not self.delivery.wait_ready(60):
            logger.warning("alert delivery process not ready after 60 s (or it stopped); the dispatcher restarts it")
        self._pool = ThreadPoolExecutor(max_workers=self.engine.config.send_workers, thread_name_prefix="alert-send")
        self._thread = threading.Thread(target=self._loop, name="alert-dispatcher", daemon=True)
        self._thread.start()
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
            with contextlib.suppress(ValueError):  # not in the main interpreter thread after all
                signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=self._reload_quietly, daemon=True).start())

    @property
    def max_in_flight(self) -> int:
        """This process's bound on claimed rows (its delivery process has the same one of its own)."""
        return self.engine.config.send_workers * self.batch_size

    @property
    def in_flight(self) -> int:
        """Rows claimed and not recorded yet, by this process and its delivery process."""
        delivering = self.delivery
        return self._in_flight + (delivering.in_flight if delivering is not None else 0)

    def stop(self) -> None:
        if self._thread is None:
            # Never started (a CLI command, a test): the live stream's fan-out still holds a listener thread and its
            # connection (Redis, PostgreSQL LISTEN), which would otherwise outlive the service and keep retrying.
            self.engine.broadcaster.close()
            return
        self._stop.set()
        self.engine.wakeup.set()
        self._thread.join(timeout=30)
        self._thread = None
        if self.delivery is not None:
            self.delivery.stop()
            self.delivery = None
        if self._pool is not None:
            # Sends in flight finish (bounded by channel timeouts); rows never started stay claimed and are
            # resumed on the next start.
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self.engine.close_channels()
        self.engine.broadcaster.close()

    def _resume(self) -> int:
        """Rows a dead process left `sending` go back to `pending`; with several instances only a dead one's."""
        self._last_resume = time.monotonic()
        if self.cluster is None:
            return self.engine.dispatcher.resume_interrupted(self.engine.clock.now())
        self.cluster.announce()
        me = self.cluster.instance_id
        with self._in_flight_lock:
            sending = set(self._in_flight_ids)
        # Other instances' claims only when they are gone; ours when no send worker holds them any more (a send
        # whose outcome could not be recorded, the database being away then).
        mine = me + delivery.CLAIMER_SUFFIX  # our delivery process resumes its own claims when it restarts

        def alive(claimer: str) -> bool:
            owner = delivery.owner_of(claimer)
            return claimer == mine or (owner != me and self.cluster.alive(owner))

        return self.engine.dispatcher.resume_interrupted(self.engine.clock.now(), alive=alive, keep=sending)

    def _loop(self) -> None:
        engine = self.engine
        while not self._stop.is_set():
            engine.wakeup.clear()
            try:
                with self.cluster.hold("alerts:dispatch") if self.cluster else contextlib.nullcontext(True):
                    self._pass()
            except Exception:  # noqa: BLE001 - the dispatcher must outlive any single failure
                logger.exception("alert dispatcher pass failed; retrying next poll")
            engine.wakeup.wait(engine.config.poll_interval.total_seconds())

    def _pass(self) -> None:
        engine = self.engine
        if self.cluster is not None and time.monotonic() - self._last_resume >= self.resume_every:
            resumed = self._resume()
            if resumed:
                logger.warning("alert outbox rows of an instance that stopped resumed count=%d", resumed)
        separate = self._steer_delivery()
        engine.tick(deliver=False)
        if separate:
            self.delivery.wake()  # type: ignore[union-attr] - set by _steer_delivery
        room = self.max_in_flight - self._in_flight
        if room > 0:
            batches = engine.dispatcher.claim_batches(engine.clock.now(), limit=room, workers=engine.config.send_workers,
                                                      batch_size=self.batch_size,
                                                      claimer=self.cluster.instance_id if self.cluster else None,
                                                      only=delivery.IN_SERVICE if separate else None)
            with self._in_flight_lock:
                self._in_flight += sum(map(len, batches))
                self._in_flight_ids.update(i for batch in batches for i in batch)
            for batch in batches:
                assert self._pool is not None
                self._pool.submit(self._deliver, batch)

    def _steer_delivery(self) -> bool:
        """Start, restart, reconfigure or stop the delivery process as the current config asks; True when it is
        running (this process then sends only the in-app channel)."""
        runtime = self.engine.runtime
        url = delivery.shared_url(self.engine.store.engine)
        if self._delivery_failed or url is None or not delivery.wanted(runtime.config):
            if self.delivery is not None:
                self.delivery.stop()
                self.delivery = None
            return False
        if self.delivery is None or not self.delivery.alive:
            if self.delivery is not None:
                logger.error("alert delivery process ended unexpectedly; restarting it")
            claimer = (self.cluster.instance_id if self.cluster else f"{os.uname().nodename}-{os.getpid()}")
            self.delivery = self.delivery or delivery.DeliveryProcess(claimer + delivery.CLAIMER_SUFFIX)
            try:
                self.delivery.start(runtime.config, url)
            except Exception:  # noqa: BLE001 - delivery must go on: in this process then
                logger.exception("alert delivery process could not start; sending from the service process")
                self._delivery_failed = True
                self.delivery = None
                return False
            self._delivery_runtime = runtime
        elif self._delivery_runtime is not runtime:
            self.delivery.reload(runtime.config)
            self._delivery_runtime = runtime
        return True

    def _deliver(self, batch: list[int]) -> None:
        try:
            self.engine.dispatcher.deliver_many(batch, self.engine.clock.now)
        except Exception:  # noqa: BLE001 - recorded by the next resume; never kill the pool thread
            logger.exception("delivery of outbox rows %s failed unexpectedly", batch)
        finally:
            with self._in_flight_lock:
                self._in_flight -= len(batch)
                self._in_flight_ids.difference_update(batch)
            self.engine.wakeup.set()  # room for the next claim

    def _reload_quietly(self) -> None:
        with contextlib.suppress(YuqingError):  # logged and audited by reload_from_file
            self.reload_from_file()

    def reload_from_file(self) -> dict[str, Any]:
        """Re-read the config file's `alerts:` section (SIGHUP, POST /api/alerts/reload)."""
        from core.config import load_config

        path = self.config_path or guess_config_path()
        config = load_config(path)
        try:
            result = self.engine.reload(config.alerts)
        except YuqingError:
            logger.exception("alerts reload from %s failed; old config kept", path)
            raise
        logger.info("alerts config reloaded from %s", path)
        return {**result, "path": str(path)}


def guess_config_path() -> Path:
    """The file the process was started with: $YUQING_CONFIG, `--config/-c` on the command line, then the defaults."""
    if env := os.environ.get("YUQING_CONFIG"):
        return Path(env)
    argv = sys.argv
    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--config="):
            return Path(arg.split("=", 1)[1])
    return Path("yuqing.yaml") if Path("yuqing.yaml").exists() else Path("yuqing.example.yaml")


def attach(service: Service, *, source_health: SourceHealthProvider | None = None,
           event_heat: EventHeat | None = None) -> AlertEngine:
    """Provide the "alert_rules" stage, add the dispatcher worker and the API router; sets `service.alerts` and
    `service.alerts_worker`."""
    service.store.migrate()  # our tables register after the store opened
    engine = AlertEngine(service.config.alerts, service.store, source_health=source_health, event_heat=event_heat,
                         broadcaster=stream_broadcaster(service.config))
    shared = service.cluster if service.config.storage.state_url else None  # several instances may share the state
    engine.share_with(shared)
    service.alerts = engine
    service.provide_stages("alerts", {AlertStage.name: AlertStage(engine)})
    worker = AlertWorker(engine, cluster=shared)
    service.alerts_worker = worker
    service.workers.append(worker)
    service.add_routers("alerts.api:router")
    return engine
