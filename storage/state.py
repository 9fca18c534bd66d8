"""Relational state on any SQLAlchemy engine: the read/write connection contexts and migrations of `StateStore`.

SqliteStore is one (state in the items' SQLite file); a deployment keeping items elsewhere (Elasticsearch) keeps the
state of crawls, alerts and events in PostgreSQL through this class unchanged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from core.errors import StorageError
from storage.migrations import migrate

logger = logging.getLogger(__name__)


class SqlState:
    """Connections to one database, with its migrations applied on open.

    `single_writer` serialises write transactions in this process, as SQLite needs (it allows one writer; WAL lets
    readers run alongside). A write opened inside another on the same thread joins it: a second connection would wait
    for the first one's lock, and joining lets a component change its state and items in one transaction.
    """

    def __init__(self, engine: Engine, *, single_writer: bool = False) -> None:
        self.engine = engine
        self._write_lock = threading.RLock() if single_writer else None
        self._writing = threading.local()  # the connection of this thread's open write transaction, if any
        self.versions: dict[str, int] = {}
        self.migrate()

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction; library errors become StorageError."""
        joined = getattr(self._writing, "conn", None)
        if joined is not None:
            yield joined
            return
        committed: list[Callable[[], None]] = []
        with self._write_lock or nullcontext():
            try:
                with self.engine.begin() as conn:
                    self._writing.conn = conn
                    self._writing.after = committed
                    try:
                        yield conn
                    finally:
                        self._writing.conn = None
                        self._writing.after = None
            except SQLAlchemyError as exc:
                detail = getattr(exc, "orig", exc)
                raise StorageError(f"write failed: {exc.__class__.__name__}: {detail}") from exc
        for action in committed:
            action()

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run `action` once the write transaction open on this thread has committed (at once when none is open);
        never when it rolls back. For a change outside the database (items on Elasticsearch) that must follow a
        state change only if it holds; the caller records it durably in the transaction to survive a crash."""
        pending = getattr(self._writing, "after", None)
        if pending is None:
            action()
        else:
            pending.append(action)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise StorageError(f"read failed: {exc.orig}") from exc

    def migrate(self) -> dict[str, int]:
        """Apply every registered component's pending migrations (components register on import, often after the
        store opened); returns the versions, also kept in `versions`."""
        with self.write() as conn:
            self.versions = migrate(conn)
        return self.versions
