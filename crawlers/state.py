"""Persisted crawl state: what each source has seen, its cursors, its runs and its health (migration component `crawl`).

Written by the crawl subprocess (seen keys, cursors) and by the service (runs, health); SQLite WAL lets both work.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Connection, Engine, Float, Index, Integer, MetaData, String, Table, Text, select

from storage.migrations import register

metadata = MetaData()

crawl_seen = Table(
    "crawl_seen", metadata,
    Column("source", String(100), primary_key=True),
    Column("key", String(300), primary_key=True),
    Column("fingerprint", String(100), nullable=False, default=""),
    Column("seen_at", String(40), nullable=False),
)

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


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class CrawlState:
    """One source's seen keys and cursors, read once at crawl start and written as items go to the inbox."""

    def __init__(self, engine: Engine, source: str) -> None:
        self.engine = engine
        self.source = source
        with engine.connect() as conn:
            rows = conn.execute(select(crawl_seen.c.key, crawl_seen.c.fingerprint).where(crawl_seen.c.source == source))
            self.seen: dict[str, str] = {r.key: r.fingerprint for r in rows}

    def is_seen(self, key: str, fingerprint: str = "") -> bool:
        """True when the key was collected before with the same fingerprint (an update changes the fingerprint)."""
        return key in self.seen and (not fingerprint or self.seen[key] == fingerprint)

    def mark_seen(self, conn: Connection, entries: list[tuple[str, str]]) -> None:
        now = now_iso()
        for key, fingerprint in entries:
            if key in self.seen:
                conn.execute(crawl_seen.update().where(crawl_seen.c.source == self.source, crawl_seen.c.key == key)
                             .values(fingerprint=fingerprint, seen_at=now))
            else:
                conn.execute(crawl_seen.insert().values(source=self.source, key=key, fingerprint=fingerprint, seen_at=now))
            self.seen[key] = fingerprint

    def cursor(self, name: str, default: Any = None) -> Any:
        with self.engine.connect() as conn:
            row = conn.execute(select(crawl_cursor.c.value).where(crawl_cursor.c.source == self.source,
                                                                  crawl_cursor.c.name == name)).first()
        return json.loads(row.value) if row else default

    def set_cursor(self, conn: Connection, name: str, value: Any) -> None:
        data = {"value": json.dumps(value, ensure_ascii=False), "updated_at": now_iso()}
        updated = conn.execute(crawl_cursor.update().where(crawl_cursor.c.source == self.source, crawl_cursor.c.name == name)
                               .values(**data))
        if not updated.rowcount:
            conn.execute(crawl_cursor.insert().values(source=self.source, name=name, **data))


def forget_source(conn: Connection, source: str) -> None:
    """Drop a source's seen keys and cursors so the next crawl starts from scratch (`yuqing crawl --full`)."""
    conn.execute(crawl_seen.delete().where(crawl_seen.c.source == source))
    conn.execute(crawl_cursor.delete().where(crawl_cursor.c.source == source))
