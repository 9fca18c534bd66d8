"""Coordination between yuqing processes sharing one state database: named locks, instance liveness, marks.

Why locks and not leader election: every job that must not run twice at once (an ingest batch, an alert dispatcher
pass, a plan-clock tick, one source's crawl) takes its lock for as long as it runs; whichever instance is free does
the work, and one that dies frees its locks with its connection (PostgreSQL session advisory locks) or its file
descriptors (SQLite: `flock` on files beside the database, enough for processes on one machine).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Engine, String, Table, select

from core.errors import StorageUnavailable
from storage.dialect import upsert
from storage.migrations import register
from storage.schema import metadata

logger = logging.getLogger(__name__)

cluster_marks = Table(
    "cluster_marks",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("value", String(200), nullable=False),
)


@register("cluster", 1, "cluster_marks: small shared values (which instance ingested last)")
def _cluster_v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[cluster_marks])


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock, from the lock's name."""
    return int.from_bytes(hashlib.sha1(f"yuqing:{name}".encode()).digest()[:8], "big", signed=True)


class ClusterLocks:
    """Named locks held across every process that shares the state database (`engine`)."""

    def __init__(self, engine: Engine, instance_id: str | None = None) -> None:
        self.engine = engine
        self.instance_id = instance_id or f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.postgres = engine.dialect.name == "postgresql"
        database = engine.url.database or ""
        self.lock_dir = None if self.postgres or database in ("", ":memory:") else Path(database).resolve().parent
        self._local: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._instance: Any = None  # what holds this instance's own liveness lock

    def _thread_lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._local.setdefault(name, threading.Lock())

    @contextlib.contextmanager
    def hold(self, name: str, *, wait: bool = True) -> Iterator[bool]:
        """Hold lock `name` inside the block; yields False (without holding it) when `wait` is False and another
        thread or process has it. Raises StorageError when the state database cannot be reached."""
        local = self._thread_lock(name)
        if not local.acquire(blocking=wait):
            yield False
            return
        try:
            handle = self._acquire(name, wait)
            if handle is None:
                yield False
                return
            try:
                yield True
            finally:
                self._release(name, handle)
        finally:
            local.release()

    def _acquire(self, name: str, wait: bool) -> Any:
        if self.postgres:
            try:
                conn = self.engine.connect()
            except Exception as exc:
                raise StorageUnavailable(f"cannot take cluster lock {name!r}: {getattr(exc, 'orig', exc)}") from exc
            try:
                fn = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
                got = conn.exec_driver_sql(f"SELECT {fn}(%(key)s)", {"key": lock_key(name)}).scalar()
                conn.commit()  # the session lock outlives the transaction; keep no transaction open
            except Exception as exc:
                conn.close()
                raise StorageUnavailable(f"cannot take cluster lock {name!r}: {getattr(exc, 'orig', exc)}") from exc
            if wait or got:
                return conn
            conn.close()
            return None
        if self.lock_dir is None:  # an in-memory database: one process, the thread lock is enough
            return "local"
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        handle = open(self.lock_dir / f".yuqing-lock-{safe}", "a+")  # noqa: SIM115 - held open while locked
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        return handle

    def _release(self, name: str, handle: Any) -> None:
        if self.postgres:
            try:
                handle.exec_driver_sql("SELECT pg_advisory_unlock(%(key)s)", {"key": lock_key(name)})
                handle.commit()
            except Exception:  # noqa: BLE001 - a lost connection released the lock already
                logger.warning("cluster lock %s: connection lost while held (released by the server)", name)
            finally:
                with contextlib.suppress(Exception):
                    handle.close()
            return
        if handle != "local":
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    # ---- instance liveness ----------------------------------------------------------------------------------

    def announce(self) -> None:
        """Hold this instance's liveness lock (again, after a lost connection) for as long as the process runs, so
        others can tell it is alive (`alive`). Cheap when already held."""
        name = f"instance:{self.instance_id}"
        if self._instance is not None and self.postgres:
            try:
                self._instance.exec_driver_sql("SELECT 1")
                self._instance.commit()
                return
            except Exception:  # noqa: BLE001 - the server restarted: take the lock anew below
                with contextlib.suppress(Exception):
                    self._instance.close()
                self._instance = None
        if self._instance is None:
            self._instance = self._acquire(name, wait=False)

    def alive(self, instance_id: str) -> bool:
        """Whether the instance still holds its liveness lock (this instance always is)."""
        if instance_id == self.instance_id:
            return True
        handle = self._acquire(f"instance:{instance_id}", wait=False)
        if handle is None:
            return True
        self._release(f"instance:{instance_id}", handle)
        if self.lock_dir is not None:
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"instance:{instance_id}")
            with contextlib.suppress(OSError):
                (self.lock_dir / f".yuqing-lock-{safe}").unlink()
        return False

    def close(self) -> None:
        if self._instance is not None:
            self._release(f"instance:{self.instance_id}", self._instance)
            self._instance = None
            if self.lock_dir is not None:  # this instance's liveness file: nobody needs it any more
                safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"instance:{self.instance_id}")
                with contextlib.suppress(OSError):
                    (self.lock_dir / f".yuqing-lock-{safe}").unlink()

    # ---- scheduled jobs ------------------------------------------------------------------------------------

    def run_once(self, store: Any, name: str, period: float, job: Callable[[], Any]) -> bool:
        """Run a scheduled `job` once across the instances: under lock `name` (an instance finding it taken skips),
        and not if any instance started it less than 0.9 × `period` seconds ago (each instance's scheduler fires on
        its own; the first one in runs it). Returns whether this instance ran it. Clocks are assumed in step (NTP)."""
        with self.hold(name, wait=False) as mine:
            if not mine:
                return False
            started = time.time()
            with store.read() as conn:
                last = self.read_mark(conn, f"{name}:started")
            if last is not None and started - float(last) < 0.9 * period:
                return False
            with store.write() as conn:
                self.write_mark(conn, f"{name}:started", repr(started))
            job()
            return True

    # ---- marks ---------------------------------------------------------------------------------------------

    def read_mark(self, conn: Connection, name: str) -> str | None:
        return conn.execute(select(cluster_marks.c.value).where(cluster_marks.c.name == name)).scalar()

    def write_mark(self, conn: Connection, name: str, value: str) -> None:
        upsert(conn, cluster_marks, [{"name": name, "value": value}], keys=["name"])
