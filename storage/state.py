"""Relational state on any SQLAlchemy engine: the read/write connection contexts and migrations of `StateStore`.

SqliteStore is one (state in the items' SQLite file); a deployment keeping items elsewhere (Elasticsearch) keeps the
state of crawls, alerts and events in PostgreSQL through this class unchanged. Quarantine and the inbox are state too:
whatever holds the items, they are here.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from core.errors import InputError, StorageError
from core.models import QuarantineRecord, RawRecord
from storage import schema
from storage.base import Cursor, Page
from storage.migrations import migrate


def _now() -> str:
    return datetime.now(UTC).isoformat()


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
        with self._write_lock or nullcontext():
            try:
                with self.engine.begin() as conn:
                    self._writing.conn = conn
                    try:
                        yield conn
                    finally:
                        self._writing.conn = None
            except SQLAlchemyError as exc:
                detail = getattr(exc, "orig", exc)
                raise StorageError(f"write failed: {exc.__class__.__name__}: {detail}") from exc

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

    def quarantined_count(self, conn: Connection) -> int:
        """How many distinct rejected inputs are kept (for `stats`)."""
        return conn.execute(select(func.count()).select_from(schema.quarantine)).scalar_one()

    # ---- quarantine ----------------------------------------------------------------------------------------

    def quarantine(self, records: list[QuarantineRecord]) -> None:
        """Keep rejected input; the same payload rejected again is counted, not stored twice."""
        if not records:
            return
        q = schema.quarantine
        now = _now()
        with self.write() as conn:
            for r in records:
                payload = r.payload if isinstance(r.payload, str) else json.dumps(r.payload, ensure_ascii=False, default=str)
                digest = hashlib.sha1(f"{r.stage}\n{r.reason}\n{payload}".encode()).hexdigest()
                seen = conn.execute(select(q.c.id).where(q.c.source == r.source, q.c.payload_hash == digest)).first()
                if seen is not None:
                    conn.execute(q.update().where(q.c.id == seen.id).values(times_seen=q.c.times_seen + 1, last_seen_at=now))
                    continue
                conn.execute(q.insert().values(source=r.source, stage=r.stage, reason=r.reason, payload=payload,
                                               payload_hash=digest, origin=r.origin,
                                               created_at=r.created_at.isoformat(), last_seen_at=now, times_seen=1))

    def list_quarantine(self, source: str | None = None, limit: int = 50, cursor: str | None = None) -> Page[QuarantineRecord]:
        if not 1 <= limit <= 500:
            raise InputError("limit must be between 1 and 500")
        q = schema.quarantine
        conds = [q.c.source == source] if source else []
        page_conds = list(conds)
        if cursor:
            page_conds.append(q.c.id < Cursor.decode(cursor, "id").item_id)
        with self.read() as conn:
            rows = conn.execute(select(q).where(*page_conds).order_by(q.c.id.desc()).limit(limit + 1)).all()
            count = conn.execute(select(func.count()).select_from(q).where(*conds)).scalar_one()
        more = len(rows) > limit
        rows = rows[:limit]
        data = []
        for r in rows:
            try:
                payload = json.loads(r.payload)
            except ValueError:
                payload = r.payload
            data.append(QuarantineRecord(id=r.id, source=r.source, stage=r.stage, reason=r.reason, payload=payload,
                                         origin=r.origin, created_at=datetime.fromisoformat(r.created_at),
                                         times_seen=r.times_seen))
        next_cursor = Cursor("id", 0, rows[-1].id).encode() if more and rows else None
        return Page(data=data, count=count, next_cursor=next_cursor)

    # ---- inbox ---------------------------------------------------------------------------------------------

    def put(self, records: list[RawRecord]) -> list[int]:
        """Keep the records until `done`; returns their inbox ids, in the order given."""
        if not records:
            return []
        now = _now()
        rows = [{"source": r.source, "payload": json.dumps(r.payload, ensure_ascii=False, default=str),
                 "origin": r.origin, "received_at": now, "status": "pending"} for r in records]
        ib = schema.inbox
        with self.write() as conn:
            result = conn.execute(ib.insert().returning(ib.c.id, sort_by_parameter_order=True), rows)
            return list(result.scalars())

    def take(self, limit: int, after_id: int = 0) -> list[tuple[int, RawRecord]]:
        """The oldest pending records with an id above `after_id` (they stay pending until `done`)."""
        ib = schema.inbox
        with self.read() as conn:
            rows = conn.execute(select(ib).where(ib.c.status == "pending", ib.c.id > after_id)
                                .order_by(ib.c.id).limit(limit)).all()
        out = []
        for r in rows:
            out.append((r.id, RawRecord(source=r.source, payload=json.loads(r.payload), origin=r.origin)))
        return out

    def done(self, ids: list[int]) -> None:
        if not ids:
            return
        ib = schema.inbox
        with self.write() as conn:
            conn.execute(ib.delete().where(ib.c.id.in_(ids)))

    def pending(self) -> int:
        ib = schema.inbox
        with self.read() as conn:
            return conn.execute(select(func.count()).select_from(ib).where(ib.c.status == "pending")).scalar_one()
