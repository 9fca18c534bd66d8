"""Persisted crawl state: what each source has seen, its cursors, its runs and its health (migration component `crawl`).

Written by the crawl subprocess (seen keys, cursors) and by the service (runs, health); SQLite WAL lets both work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Column, Connection, Float, Index, Integer, MetaData, String, Table, Text, or_, select, text
from sqlalchemy import inspect as inspect_db

from storage.base import StateStore
from storage.migrations import register

metadata = MetaData()

crawl_seen = Table(
    "crawl_seen", metadata,
    Column("source", String(100), primary_key=True),
    Column("key", String(300), primary_key=True),
    Column("fingerprint", String(100), nullable=False, default=""),
    Column("seen_at", String(40), nullable=False),
    # v2, for revisits: when first collected, when last fetched, whether it had an official reply, where it is,
    # and the list-row fields (a detail page alone lacks them).
    Column("first_seen_at", String(40)),
    Column("checked_at", String(40)),
    Column("replied", Integer, nullable=False, default=0),
    Column("url", Text, nullable=False, default=""),
    Column("row_fields", Text, nullable=False, default="{}"),
)
revisit_index = Index("ix_crawl_seen_revisit", crawl_seen.c.source, crawl_seen.c.first_seen_at)

crawl_cursor = Table(
    "crawl_cursor", metadata,
    Column("source", String(100), primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", String(40), nullable=False),
)

crawl_runs = Table(
    "crawl_runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("started_at", String(40), nullable=False),
    Column("finished_at", String(40), nullable=False),
    Column("duration", Float, nullable=False, default=0.0),
    Column("outcome", String(20), nullable=False),  # ok / partial / failed
    Column("finish_reason", String(100), nullable=False, default=""),
    Column("pages", Integer, nullable=False, default=0),
    Column("entries", Integer, nullable=False, default=0),  # list entries found (seen or not): drift detector
    Column("items", Integer, nullable=False, default=0),  # new or changed items sent to the inbox
    Column("errors", Text, nullable=False, default="{}"),  # counts by kind, JSON
    Column("message", Text, nullable=False, default=""),
    # v3: per configured field, [pages where it had a value, pages read], JSON: what field drift is judged on
    Column("fields", Text, nullable=False, default="{}"),
    Index("ix_crawl_runs_source", "source", "id"),
)

crawl_health = Table(
    "crawl_health", metadata,
    Column("source", String(100), primary_key=True),
    Column("state", String(20), nullable=False),  # ok / degraded / failing / unknown
    Column("reason", Text, nullable=False, default=""),
    Column("last_run_at", String(40)),
    Column("last_success_at", String(40)),
    Column("last_items", Integer, nullable=False, default=0),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("runs", Integer, nullable=False, default=0),
    Column("errors_total", Text, nullable=False, default="{}"),
    Column("changed_at", String(40)),
    Column("updated_at", String(40), nullable=False),
)

crawl_health_changes = Table(
    "crawl_health_changes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("from_state", String(20), nullable=False),
    Column("to_state", String(20), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("at", String(40), nullable=False),
    Index("ix_crawl_health_changes_source", "source", "id"),
)


@register("crawl", 1, "crawl state: seen keys, cursors, runs, source health and its changes")
def _crawl_v1(conn: Connection) -> None:
    metadata.create_all(conn)


_V2_COLUMNS = {"first_seen_at": "VARCHAR(40)", "checked_at": "VARCHAR(40)", "replied": "INTEGER NOT NULL DEFAULT 0",
               "url": "TEXT NOT NULL DEFAULT ''", "row_fields": "TEXT NOT NULL DEFAULT '{}'"}


@register("crawl", 2, "crawl_seen: first seen, last checked, replied, URL and row fields (revisits)")
def _crawl_v2(conn: Connection) -> None:
    have = {c["name"] for c in inspect_db(conn).get_columns("crawl_seen")}  # a fresh v1 already has them (same metadata)
    for name, ddl in _V2_COLUMNS.items():
        if name not in have:
            conn.execute(text(f"ALTER TABLE crawl_seen ADD COLUMN {name} {ddl}"))
    conn.execute(crawl_seen.update().where(crawl_seen.c.first_seen_at.is_(None))
                 .values(first_seen_at=crawl_seen.c.seen_at, checked_at=crawl_seen.c.seen_at))
    revisit_index.create(conn, checkfirst=True)


@register("crawl", 3, "crawl_runs: per-field yield of each run (field drift)")
def _crawl_v3(conn: Connection) -> None:
    if "fields" not in {c["name"] for c in inspect_db(conn).get_columns("crawl_runs")}:
        conn.execute(text("ALTER TABLE crawl_runs ADD COLUMN fields TEXT NOT NULL DEFAULT '{}'"))


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class SeenEntry:
    """One collected entry as the seen table keeps it."""

    key: str
    fingerprint: str = ""
    url: str = ""
    replied: bool = False
    row_fields: dict[str, Any] = field(default_factory=dict)


class CrawlState:
    """One source's seen keys and cursors, read once at crawl start and written as items go to the inbox."""

    def __init__(self, store: StateStore, source: str) -> None:
        self.store = store
        self.source = source
        with store.read() as conn:
            rows = conn.execute(select(crawl_seen.c.key, crawl_seen.c.fingerprint).where(crawl_seen.c.source == source))
            self.seen: dict[str, str] = {r.key: r.fingerprint for r in rows}

    def is_seen(self, key: str, fingerprint: str = "") -> bool:
        """True when the key was collected before with the same fingerprint (an update changes the fingerprint)."""
        return key in self.seen and (not fingerprint or self.seen[key] == fingerprint)

    def mark_seen(self, conn: Connection, entries: list[SeenEntry | tuple[str, str]]) -> None:
        """Record collected entries (new or changed); a key's first-seen time is kept, its check time renewed."""
        now = now_iso()
        for entry in entries:
            if not isinstance(entry, SeenEntry):
                entry = SeenEntry(*entry)
            values = {"fingerprint": entry.fingerprint, "seen_at": now, "checked_at": now, "replied": int(entry.replied),
                      "url": entry.url, "row_fields": json.dumps(entry.row_fields, ensure_ascii=False)}
            if entry.key in self.seen:
                conn.execute(crawl_seen.update().where(crawl_seen.c.source == self.source, crawl_seen.c.key == entry.key)
                             .values(**values))
            else:
                conn.execute(crawl_seen.insert().values(source=self.source, key=entry.key, first_seen_at=now, **values))
            self.seen[entry.key] = entry.fingerprint

    def due_for_revisit(self, conn: Connection, days: float, limit: int, only_unreplied: bool,
                        interval_hours: float) -> list[tuple[str, str, dict[str, Any]]]:
        """Entries to fetch again: first seen within `days`, not checked for `interval_hours`; unreplied first,
        then the longest unchecked. Returns (key, url, row fields) and marks them checked, so the next run
        takes the next ones even when a page fails."""
        now = datetime.now(UTC)
        seen_after = (now - timedelta(days=days)).isoformat()
        checked_before = (now - timedelta(hours=interval_hours)).isoformat()
        c = crawl_seen.c
        query = (select(c.key, c.url, c.row_fields)
                 .where(c.source == self.source, c.url != "", c.first_seen_at >= seen_after,
                        or_(c.checked_at.is_(None), c.checked_at <= checked_before))
                 .order_by(c.replied, c.checked_at, c.first_seen_at, c.key).limit(limit))
        if only_unreplied:
            query = query.where(c.replied == 0)
        rows = conn.execute(query).all()
        if rows:
            conn.execute(crawl_seen.update().where(c.source == self.source, c.key.in_([r.key for r in rows]))
                         .values(checked_at=now.isoformat()))
        return [(r.key, r.url, json.loads(r.row_fields or "{}")) for r in rows]

    def cursor(self, name: str, default: Any = None) -> Any:
        return self.read_cursor(self.store, self.source, name, default)

    def set_cursor(self, conn: Connection, name: str, value: Any) -> None:
        self.write_cursor(conn, self.source, name, value)

    @staticmethod
    def read_cursor(store: StateStore, source: str, name: str, default: Any = None) -> Any:
        with store.read() as conn:
            row = conn.execute(select(crawl_cursor.c.value).where(crawl_cursor.c.source == source,
                                                                  crawl_cursor.c.name == name)).first()
        return json.loads(row.value) if row else default

    @staticmethod
    def write_cursor(conn: Connection, source: str, name: str, value: Any) -> None:
        data = {"value": json.dumps(value, ensure_ascii=False), "updated_at": now_iso()}
        updated = conn.execute(crawl_cursor.update().where(crawl_cursor.c.source == source, crawl_cursor.c.name == name)
                               .values(**data))
        if not updated.rowcount:
            conn.execute(crawl_cursor.insert().values(source=source, name=name, **data))


def forget_source(conn: Connection, source: str) -> None:
    """Drop a source's seen keys and cursors so the next crawl starts from scratch (`yuqing crawl --full`)."""
    conn.execute(crawl_seen.delete().where(crawl_seen.c.source == source))
    conn.execute(crawl_cursor.delete().where(crawl_cursor.c.source == source))
