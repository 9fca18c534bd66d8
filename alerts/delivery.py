"""The delivery process: the network channels' notifications (e-mail, webhook, WeCom, DingTalk) are sent from the
durable outbox by a process of their own, so their CPU (HTTP and SMTP framing, JSON, rendering each message) runs on
another core than ingest instead of under the service's GIL. The service keeps raising, grouping and enqueueing
(no network) and sends the in-app channel itself (the live stream's subscribers are in its process).

The two processes share nothing but the outbox: the delivery process claims due rows under its own name
(`claimed_by`), at most `send_workers` × 25 at a time, marks them `sending` before the network call and records
the outcomes as the service's dispatcher does (alerts/dispatch.py), so a crash re-sends at most what was in flight,
with the same dedup key. It dies with the service (PR_SET_PDEATHSIG, and at once when its pipe closes); restarted,
it first resumes the rows its previous run left `sending`. Send latencies and failures travel back over the pipe to
the service's /metrics. `alerts.delivery_process: false` keeps every send in the service process (threads).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from core.config_alerts import AlertsConfig
from core.metrics import ALERT_SEND_FAILURES, observe_alert_latency

logger = logging.getLogger(__name__)

IN_SERVICE = ("inapp",)  # channels the service process sends itself
CLAIMER_SUFFIX = "#delivery"  # a delivery process claims as "<instance>#delivery"
BATCH_SIZE = 25  # rows a send worker pushes down one connection; also the unit of the in-flight bound
RESUME_EVERY = 10.0  # seconds between looks for own claims whose send was abandoned (the database was away)
RECORD_EVERY = 0.1  # seconds between the transactions recording the outcomes of every send worker
REPORT_EVERY = 0.1  # seconds between the batches of send latencies and failures reported to the service


def wanted(config: AlertsConfig) -> bool:
    """A delivery process is worth its start-up only when some receiver has a network channel."""
    return config.delivery_process and any(r.email or r.webhook or r.wecom or r.dingtalk for r in config.receivers)


def shared_url(engine: Any) -> str | None:
    """The state database's URL for another process, or None when it cannot open the same one (in-memory SQLite)."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return None
    return url.render_as_string(hide_password=False)


def owner_of(claimer: str) -> str:
    """The instance a claim belongs to (its delivery process's claims are the instance's)."""
    return claimer.removesuffix(CLAIMER_SUFFIX)


class DeliveryProcess:
    """The service's handle on its delivery process: start, wake, reload, stop; it applies the reported metrics."""

    def __init__(self, claimer: str) -> None:
        self.claimer = claimer
        self._proc: Any = None
        self._conn: Any = None
        self._lock = threading.Lock()  # one sender on the pipe at a time
        self._reader: threading.Thread | None = None
        self.in_flight = 0  # rows it has claimed and not recorded yet, as it last reported
        self.ready = threading.Event()  # it has resumed its claims and is waiting for rows

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def start(self, config: AlertsConfig, url: str) -> None:
        """Spawn (not fork: the service has threads) the process and return; it resumes its own stale claims."""
        self.ready.clear()
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        proc = context.Process(target=serve, args=(child, config, url, self.claimer, os.getpid()),
                               name="yuqing-delivery", daemon=True)
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        self._reader = threading.Thread(target=self._read, args=(parent,), name="delivery-metrics", daemon=True)
        self._reader.start()
        logger.info("alert delivery process started pid=%s claimer=%s", proc.pid, self.claimer)

    def _read(self, conn: Any) -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return
            for one in message[2] if message[0] == "batch" else [message]:
                self._take(one)

    def _take(self, message: tuple) -> None:
        """One report of the delivery process: a send's latency or failure (these come in batches), its in-flight
        count, or that it is ready."""
        kind, integration, *rest = message
        if kind == "latency":
            starts, delivered = rest
            observe_alert_latency(integration, [{"starts_at": s} for s in starts], delivered)
        elif kind == "failure":
            ALERT_SEND_FAILURES.labels(integration=integration, status=rest[0]).inc()
        elif kind == "in_flight":
            self.in_flight = rest[0]
        elif kind == "ready":
            self.ready.set()

    def _send(self, message: Any) -> None:
        with self._lock:
            if self._conn is None:
                return
            with contextlib.suppress(OSError, ValueError):  # gone: the worker restarts it on its next pass
                self._conn.send(message)

    def wait_ready(self, timeout: float) -> bool:
        """Whether it became ready within `timeout` seconds (False at once if it died on the way)."""
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.1):
            if not self.alive or time.monotonic() > deadline:
                return False
        return True

    def wake(self) -> None:
        """Rows may be due: claim now rather than at the next poll."""
        self._send("wake")

    def reload(self, config: AlertsConfig) -> None:
        self._send(("reload", config))

    def stop(self, timeout: float = 30.0) -> None:
        """Let sends in flight finish (bounded by the channels' timeouts); rows not started stay claimed and are
        resumed by the next start."""
        proc = self._proc
        if proc is None:
            return
        self._send("stop")
        proc.join(timeout)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
        if self._reader is not None:
            self._reader.join(5)
        self._proc = self._reader = None


# ---- the process itself -----------------------------------------------------------------------------------------

def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when the service dies (Linux); a service killed with -9 must not leave a sender behind
    whose rows the next start resumes and sends again."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the pipe's EOF ends the process instead
        pass
    if os.getppid() != parent_pid:
        os._exit(0)


def _quick_to_retry(engine: Any) -> Any:
    """On SQLite, this process's writes give up on a held lock after 2 ms (and `_persistent` tries again 1 ms later)
    instead of SQLite's busy handler, whose sleeps grow to 100 ms: against the service's ingest, which takes the
    write lock again within a millisecond of releasing it, those sleeps kept missing the gaps (up to a second's wait
    per claim, seen as p95 latencies of 1.7 s at 5 items/s)."""
    from sqlalchemy import event

    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _short_busy_timeout(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA busy_timeout=2")

    return engine


def _persistent(write: Any, patience: float = 30.0) -> Any:
    """`write` retried every millisecond while the database is locked (SQLite: the service is writing), for up to
    `patience` seconds; a write that failed this way changed nothing."""
    from core.errors import StorageError

    def attempt(*args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + patience
        while True:
            try:
                return write(*args, **kwargs)
            except StorageError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.001)

    return attempt


def serve(conn: Any, config: AlertsConfig, url: str, claimer: str, parent_pid: int) -> None:
    """Claim due network-channel rows and send them in `send_workers` threads until told to stop."""
    _die_with_parent(parent_pid)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s delivery: %(message)s")
    from alerts import store as _tables  # noqa: F401 - registers the "alerts" migration chain
    from alerts.dispatch import Dispatcher, Runtime
    from alerts.engine import build_notifiers, close_notifiers
    from alerts.inhibit import Inhibitor
    from alerts.rules import RuleEvaluator
    from alerts.silence import Silencer
    from storage.state import SqlState, create_state_engine

    state = SqlState(_quick_to_retry(create_state_engine(url)))

    def runtime_of(cfg: AlertsConfig) -> Runtime:  # only the notifiers and the retry policy are used here
        return Runtime(config=cfg, root=None, evaluator=RuleEvaluator([], public_url=cfg.public_url),
                       inhibitor=Inhibitor([], state), intervals={}, notifiers=build_notifiers(cfg, None))

    current = [runtime_of(config)]
    dispatcher = Dispatcher(state, Silencer(state), lambda: current[0])
    claim, record_outcomes = _persistent(dispatcher.claim_batches), _persistent(dispatcher.record_outcomes)
    out = threading.Lock()

    def report(message: tuple) -> None:
        with out:
            try:
                conn.send(message)
            except (OSError, ValueError):
                os._exit(0)  # the service is gone

    # Each send's latency or failure is queued and sent over the pipe in one batch per REPORT_EVERY by one thread.
    # Sent one by one under the pipe's lock, the send workers waited for the service's reader thread, which gets the
    # GIL only between the ingest's slices: at 250 items/s the pipe filled and the sends stalled behind it.
    observed: collections.deque = collections.deque()  # append and popleft are atomic: no lock for the workers
    dispatcher.observe_latency = lambda integration, alerts, at: observed.append(
        ("latency", integration, [a.get("starts_at") for a in alerts], at))
    dispatcher.count_failure = lambda integration, status: observed.append(("failure", integration, status))

    def flush_observed() -> None:
        batch = [observed.popleft() for _ in range(len(observed))]
        if batch:
            report(("batch", "", batch))

    def reporter() -> None:
        while True:
            time.sleep(REPORT_EVERY)
            flush_observed()

    threading.Thread(target=reporter, name="delivery-report", daemon=True).start()

    def now() -> datetime:
        return datetime.now(UTC)

    resumed = dispatcher.resume_interrupted(now(), claimer=claimer)
    if resumed:
        logger.warning("outbox rows the previous delivery process was sending resumed count=%d", resumed)
    wake, stop = threading.Event(), threading.Event()

    def listen() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                os._exit(0)  # the service is gone: send nothing more
            if message == "stop":
                stop.set()
            elif isinstance(message, tuple) and message[0] == "reload":
                replaced, current[0] = current[0], runtime_of(message[1])
                close_notifiers(replaced)
            wake.set()
            if stop.is_set():
                return

    threading.Thread(target=listen, name="delivery-pipe", daemon=True).start()
    report(("ready", ""))
    in_flight = [0]  # claimed and not yet recorded: the rows a crash would send again
    holding: set[int] = set()  # their ids: own claims not among them were abandoned (a read failed mid-outage)
    counted = threading.Lock()
    outcomes: list = []  # sends of every worker waiting to be recorded, in one transaction by `recorder`
    recorded, finishing = threading.Event(), threading.Event()

    def record(done: list) -> None:
        with counted:
            outcomes.extend(done)
        recorded.set()

    def recorder() -> None:
        while True:
            recorded.wait(RECORD_EVERY)
            recorded.clear()
            with counted:
                done = outcomes[:]
                outcomes.clear()
            if done:
                try:
                    record_outcomes(current[0], done)
                except Exception:  # noqa: BLE001 - the database may be away: recorded at the next interval
                    logger.exception("recording %d outcomes failed; retrying", len(done))
                    with counted:
                        outcomes[:0] = done
                    if finishing.is_set():
                        return  # left `sending`: the next start resumes and sends them again
                else:
                    with counted:
                        in_flight[0] -= len(done)
                        holding.difference_update(row.id for row, *_ in done)
                    report(("in_flight", "", in_flight[0]))
                    wake.set()
            elif finishing.is_set():
                return
            time.sleep(RECORD_EVERY)  # gather the next outcomes: one transaction per interval, not per send

    record_thread = threading.Thread(target=recorder, name="delivery-record", daemon=True)
    record_thread.start()

    def deliver(batch: list[int]) -> None:
        handed = [0]

        def handing(done: list) -> None:
            handed[0] += len(done)
            record(done)

        try:
            dispatcher.deliver_many(batch, now, record=handing)
        except Exception:  # noqa: BLE001 - the rows stay `sending` and are resumed by the next start
            logger.exception("delivery of outbox rows %s failed unexpectedly", batch)
        finally:
            if missing := len(batch) - handed[0]:  # rows gone or never sent: no outcome will count them out
                with counted:
                    in_flight[0] -= missing
                    holding.difference_update(batch[handed[0]:])
                wake.set()

    pool = ThreadPoolExecutor(max_workers=config.send_workers, thread_name_prefix="alert-send")
    last_resume = time.monotonic()
    while not stop.is_set():
        wake.clear()
        if time.monotonic() - last_resume >= RESUME_EVERY:  # own claims no send worker holds any more
            last_resume = time.monotonic()
            with counted:
                keep = set(holding)
            try:
                dispatcher.resume_interrupted(now(), claimer=claimer, keep=keep)
            except Exception:  # noqa: BLE001 - the database may be away: next time
                logger.exception("resuming abandoned outbox rows failed; retrying later")
        workers = current[0].config.send_workers
        room = workers * BATCH_SIZE - in_flight[0]
        if room > 0:
            try:
                batches = claim(now(), limit=room, workers=workers, batch_size=BATCH_SIZE,
                                                   claimer=claimer, skip=IN_SERVICE)
            except Exception:  # noqa: BLE001 - the database may be away for a moment; try at the next poll
                logger.exception("claiming outbox rows failed; retrying next poll")
                batches = []
            with counted:
                in_flight[0] += sum(map(len, batches))
                holding.update(i for batch in batches for i in batch)
            if batches:
                report(("in_flight", "", in_flight[0]))
            for batch in batches:
                pool.submit(deliver, batch)
        wake.wait(current[0].config.poll_interval.total_seconds())
    pool.shutdown(wait=True, cancel_futures=True)
    finishing.set()
    recorded.set()
    record_thread.join(30)
    flush_observed()  # the last sends' latencies, before the service stops reading
    close_notifiers(current[0])
    state.close()
