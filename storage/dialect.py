"""The one place that knows SQL dialects: portable upserts for relational state on SQLite and PostgreSQL.

Everything else writes plain SQLAlchemy Core, so the same state tables (crawl state, alerts, outbox, silences, events,
near-duplicate signatures) run on either database unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

from core.errors import StorageError

_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def _insert(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT that understands ON CONFLICT (both SQLite and PostgreSQL spell it the same way)."""
    try:
        return _INSERTS[conn.dialect.name](table)
    except KeyError:
        raise StorageError(f"no upsert for the {conn.dialect.name} dialect; supported: {', '.join(_INSERTS)}") from None


def upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str],
           update: Sequence[str] | None = None) -> None:
    """Insert `rows`; a row whose `keys` already exist updates the `update` columns (default: every column of the row
    that is not a key) to the new values."""
    if not rows:
        return
    columns = [c for c in rows[0] if c not in keys] if update is None else list(update)
    stmt = _insert(conn, table)
    if not columns:
        conn.execute(stmt.on_conflict_do_nothing(index_elements=list(keys)), list(rows))
        return
    conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns}),
                 list(rows))


def insert_missing(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert the rows whose `keys` are not stored yet and leave the stored ones as they are."""
    upsert(conn, table, rows, keys, update=())
