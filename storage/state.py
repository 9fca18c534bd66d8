"""Relational state on any SQLAlchemy engine: the read/write connection contexts, migrations, quarantine and the inbox.

SqliteStore is one (state in the items' SQLite file). With `storage.state_url` the state lives in its own database,
PostgreSQL for several instances (storage/split.py pairs it with the items' store), through this class unchanged;
ElasticsearchStore is one too (items on the cluster, their identity and the state in this database). Quarantine and
the inbox are state: whatever holds the items, they are here.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, func, or_, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from core.errors import InputError, StorageError, StorageUnavailable
from core.models import QuarantineRecord, RawRecord
from storage import schema
from storage.base import Cursor, Page
from storage.dialect import delete_ids, insert_returning_ids
from storage.migrations import migrate

# A record put in the inbox by a push (`holder` = that instance) is ingested by that instance from the records in hand;
# another instance's drain leaves it alone for this long, then takes it (its holder died before ingesting it).
HELD_GRACE = timedelta(seconds=60)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def create_sqlite_engine(path: Path | str, *, read_only: bool = False) -> Engine:
    """An engine with WAL, a busy timeout and foreign keys on every connection; `read_only` opens an existing file
    that another process writes (mode=ro: SQLite itself refuses any write)."""
    if read_only:
        url = f"sqlite:///file:{Path(path).resolve()}?mode=ro&uri=true"
    else:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DBAPI objects are untyped
        cur = dbapi_conn.cursor()
        if not read_only:  # the writer's settings; a reader finds the file in WAL mode already
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            # 32 MB of page cache, not SQLite's 2 MB: each batch of items updates a dozen indexes, and with 2 MB their
            # pages are read back from the OS on every batch (push ingest at 25k items: store stage 141 → 119 µs per
            # item). Grown only as pages are touched; a connection of the pool holds at most this much.
            cur.execute("PRAGMA cache_size=-32768")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine


def create_state_engine(url: str) -> Engine:
    """The engine of `storage.state_url`: SQLite as the embedded store opens it, PostgreSQL with a pool that checks a
    connection before lending it (a restarted server costs one failed check, not a failed request)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return create_sqlite_engine(parsed.database or ":memory:")
    connect_args = {"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {}
    return create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=20, pool_recycle=1800,
                         connect_args=connect_args)


class SqlState:
    """Connections to one database, with its migrations applied on open; quarantine and inbox live here.

    `single_writer` serialises write transactions in this process, as SQLite needs (it allows one writer; WAL lets
    readers run alongside). A write opened inside another on the same thread joins it: a second connection would wait
    for the first one's lock, and joining lets a component change its state and items in one transaction.
    """

    def __init__(self, engine: Engine, *, single_writer: bool | None = None) -> None:
        self.engine = engine
        if single_writer is None:
            single_writer = engine.dialect.name == "sqlite"
        self._write_lock = threading.RLock() if single_writer else None
        self._writing = threading.local()  # the connection of this thread's open write transaction, if any
        self.versions: dict[str, int] = {}
        self.migrate()

    @property
    def where(self) -> str:
        """The database, for messages (the password, if any, hidden)."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction; library errors become StorageError. Inside `bulk` on this thread it is a savepoint of
        the bulk's transaction: it fails and rolls back alone, as a transaction of its own would."""
        joined = getattr(self._writing, "conn", None)
        if joined is not None:
            group = getattr(self._writing, "group_actions", None)
            if group is None or self._writing.deferred is not None:  # no bulk, or inside one of its writes: join
                yield joined
                return
            # A write at the top of a bulk: a savepoint, and its `defer_to_commit` actions the group's if it succeeds
            self._writing.deferred = deferred = []
            try:
                with self._write_errors(), joined.begin_nested():
                    yield joined
                group.extend(deferred)
            finally:
                self._writing.deferred = None
            return
        with self._write_lock or nullcontext(), self._write_errors(), self.engine.begin() as conn:
            self._writing.conn = conn
            try:
                yield conn
            finally:
                self._writing.conn = None

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Every write (and read) of this thread inside the block in one transaction, committed at its end.

        Why: a file import commits batch after batch, and each commit writes every index page the batch touched; with
        a dozen indexes and the full-text index on items inserted in any order that is most of their pages, again for
        each batch (50,000 rows: 7 → 17 MB of WAL per batch of 500 as the store grows). Grouping ten batches writes a
        page once per group (bench/bench_import.py). Each write opened inside is a savepoint, so a failing one rolls
        back alone as before; reads on this thread see the group's uncommitted rows (dedup finds the previous
        batch's items). The write lock is held until the end: other writers wait that long. Inside a write already
        open on this thread there is nothing to group, and the block simply runs in it."""
        if getattr(self._writing, "conn", None) is not None:
            yield
            return
        with self._write_lock or nullcontext(), self._write_errors(), self.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                # A real transaction first: were the first statement a savepoint, SQLite would take it as the outermost
                # transaction and its release would commit. IMMEDIATE takes the write lock now, not at the first write.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            # group_actions: set while the bulk is open; deferred: while one of its top-level writes is
            self._writing.conn, self._writing.group_actions, self._writing.deferred = conn, [], None
            try:
                yield
                for action in _absorbed(self._writing.group_actions):
                    action(conn)
            finally:
                self._writing.conn, self._writing.group_actions = None, None

    def defer_to_commit(self, action: Callable[[Connection], None]) -> bool:
        """Inside `bulk`: run `action(conn)` at the group's end, in the order deferred, just before it commits, and
        not at all if the write that deferred it rolls back; True then. Outside: False, and the caller runs it now.
        An action with an `absorb(next) -> bool` method may take in the action deferred after it (see `_absorbed`).

        Why: FTS5 writes its pending terms out as a new segment whenever a savepoint is released, so full-text rows
        inserted inside each batch's savepoint made a segment per batch write (and their merging); deferred, a
        group's rows are indexed once, outside any savepoint (50,000 rows: ≈ 10 % of an import's CPU). What is
        deferred is invisible to this thread's reads until then (the ingest chain does not search the index)."""
        deferred = getattr(self._writing, "deferred", None)
        if deferred is None:
            return False
        deferred.append(action)
        return True

    @contextmanager
    def _write_errors(self) -> Iterator[None]:
        try:
            yield
        except (OperationalError, InterfaceError) as exc:
            raise self._unavailable("write", exc) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise self._unavailable("write", exc) from exc
            raise StorageError(f"write failed: {exc.__class__.__name__}: {exc.orig}".strip()) from exc
        except SQLAlchemyError as exc:
            detail = getattr(exc, "orig", None) or exc
            raise StorageError(f"write failed: {exc.__class__.__name__}: {detail}".strip()) from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        if getattr(self._writing, "group_actions", None) is not None:  # inside `bulk`: see what it wrote so far
            yield self._writing.conn
            return
        try:
            with self.engine.connect() as conn:
                yield conn
        except (OperationalError, InterfaceError) as exc:
            raise self._unavailable("read", exc) from exc

    def _unavailable(self, what: str, exc: DBAPIError) -> StorageError:
        """A database that cannot be reached says which one (SQLite's own operational errors keep their words)."""
        if self.engine.dialect.name == "sqlite":  # as before: "database is locked" and the like are not an outage
            kind = f"{exc.__class__.__name__}: " if what == "write" else ""
            return StorageError(f"{what} failed: {kind}{getattr(exc, 'orig', None) or exc}".strip())
        text = str(getattr(exc, "orig", None) or exc).strip()
        detail = text.splitlines()[0] if text else exc.__class__.__name__
        return StorageUnavailable(f"{what} failed: the database at {self.where} is unreachable: {detail}")

    def migrate(self) -> dict[str, int]:
        """Apply every registered component's pending migrations (components register on import, often after the
        store opened); returns the versions, also kept in `versions`."""
        with self.write() as conn:
            if conn.dialect.name == "postgresql":
                # Instances starting together would run the same migrations at once: the first one in applies them,
                # the others wait here and then find nothing left to do. Released with the transaction.
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7300001)")
            self.versions = migrate(conn)
        return self.versions

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

    def quarantined_count(self, conn: Connection) -> int:
        """How many distinct rejected inputs are kept (for `stats`, inside its read)."""
        return conn.execute(select(func.count()).select_from(schema.quarantine)).scalar_one()

    def quarantined(self) -> int:
        with self.read() as conn:
            return self.quarantined_count(conn)

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
            # Stored as JSON when it was a record's fields, else as the text that was rejected: text that parses as
            # JSON but not as an object (a JSON-lines row `[1, 2]`) stays the text it was.
            try:
                payload = json.loads(r.payload)
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                payload = r.payload
            data.append(QuarantineRecord(id=r.id, source=r.source, stage=r.stage, reason=r.reason, payload=payload,
                                         origin=r.origin, created_at=datetime.fromisoformat(r.created_at),
                                         times_seen=r.times_seen))
        next_cursor = Cursor("id", 0, rows[-1].id).encode() if more and rows else None
        return Page(data=data, count=count, next_cursor=next_cursor)

    # ---- inbox ---------------------------------------------------------------------------------------------

    def put(self, records: list[RawRecord], *, holder: str | None = None) -> list[int]:
        """Keep the records until `done`; returns their inbox ids, in the order given. `holder`: the instance that
        will ingest them from the records in hand (a push), so other instances' drains leave them to it."""
        if not records:
            return []
        now = _now()
        rows = [{"source": r.source, "payload": json.dumps(r.payload, ensure_ascii=False, default=str),
                 "origin": r.origin, "received_at": now, "status": "pending", "holder": holder} for r in records]
        ib = schema.inbox
        with self.write() as conn:
            return insert_returning_ids(conn, ib, rows)

    def take(self, limit: int, after_id: int = 0, *, holder: str | None = None) -> list[tuple[int, RawRecord]]:
        """The oldest pending records with an id above `after_id` (they stay pending until `done`).

        With `holder` (the asking instance): records another instance holds are left to it for HELD_GRACE."""
        ib = schema.inbox
        conds = [ib.c.status == "pending", ib.c.id > after_id]
        if holder is not None:
            stale = (datetime.now(UTC) - HELD_GRACE).isoformat()
            conds.append(or_(ib.c.holder.is_(None), ib.c.holder == holder, ib.c.received_at < stale))
        with self.read() as conn:
            rows = conn.execute(select(ib).where(*conds).order_by(ib.c.id).limit(limit)).all()
        return [(r.id, RawRecord(source=r.source, payload=json.loads(r.payload), origin=r.origin)) for r in rows]

    def done(self, ids: list[int]) -> None:
        if not ids:
            return
        ib = schema.inbox
        with self.write() as conn:
            delete_ids(conn, ib, ib.c.id, ids)

    def pending(self) -> int:
        ib = schema.inbox
        with self.read() as conn:
            return conn.execute(select(func.count()).select_from(ib).where(ib.c.status == "pending")).scalar_one()


def _absorbed(actions: list[Callable[[Connection], None]]) -> list[Callable[[Connection], None]]:
    """A group's deferred actions, each one that has an `absorb` method given the actions after it until it refuses
    one (those it takes in run as part of it)."""
    out: list[Callable[[Connection], None]] = []
    for action in actions:
        absorb = getattr(out[-1], "absorb", None) if out else None
        if absorb is None or not absorb(action):
            out.append(action)
    return out
