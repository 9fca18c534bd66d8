"""Versioned schema changes, one ordered chain per component so packages evolve their tables independently.

Each migration is (version, description, function(connection)). Applied versions are recorded in
`schema_version`; running migrations again is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, inspect, select, text

from storage import schema
from storage.fts import FTS_KEY_SQL
from storage.item_rows import READ_COLUMNS, item_doc, item_from_row


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


_CHAINS: dict[str, list[Migration]] = {}


def register(component: str, version: int, description: str) -> Callable:
    """Decorator adding a migration to a component's chain."""

    def wrap(fn: Callable[[Connection], None]) -> Callable[[Connection], None]:
        chain = _CHAINS.setdefault(component, [])
        if any(m.version == version for m in chain):
            raise ValueError(f"duplicate migration {component} v{version}")
        chain.append(Migration(version, description, fn))
        chain.sort(key=lambda m: m.version)
        return fn

    return wrap


@register("core", 1, "items, duplicates, quarantine, inbox")
def _core_v1(conn: Connection) -> None:
    schema.metadata.create_all(conn, tables=[t for t in schema.CORE_TABLES if t is not schema.schema_version])


@register("core", 2, "full-text index over segmented title and content")
def _core_v2(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.execute(text("CREATE VIRTUAL TABLE IF NOT EXISTS items_fts USING fts5(title, content, tokenize='unicode61')"))


@register("core", 3, "keep each exact copy as collected (item_duplicates.doc)")
def _core_v3(conn: Connection) -> None:
    # Databases created at v1 by this code already have the column (v1 creates the tables as schema.py has them now).
    if "doc" not in {c["name"] for c in inspect(conn).get_columns("item_duplicates")}:
        conn.execute(text("ALTER TABLE item_duplicates ADD COLUMN doc TEXT"))


@register("core", 4, "risk_rank (unscored = -1) and indexes pairing each feed filter with the time and risk sorts")
def _core_v4(conn: Connection) -> None:
    # Databases created at v1 by this code already have the column and the indexes.
    if "risk_rank" not in {c["name"] for c in inspect(conn).get_columns("items")}:
        conn.execute(text(f"ALTER TABLE items ADD COLUMN risk_rank FLOAT NOT NULL DEFAULT {schema.UNSCORED_RISK}"))
        conn.execute(text("UPDATE items SET risk_rank = risk_score WHERE risk_score IS NOT NULL"))
    for superseded in ("ix_items_risk", "ix_items_event"):  # risk_score's and event_id's, now served by the new ones
        conn.execute(text(f"DROP INDEX IF EXISTS {superseded}"))
    for index in schema.items.indexes:
        index.create(conn, checkfirst=True)


@register("core", 5, "full-text index keyed by publication time, without its own copy of the text")
def _core_v5(conn: Connection) -> None:
    if conn.dialect.name != "sqlite":
        return
    # Contentless (content=''): the index alone, no second copy of the segmented text. The rowid becomes the time key
    # (storage/fts.py); the segmented text is carried over from the old table, which kept it.
    conn.execute(text("CREATE VIRTUAL TABLE items_fts_timed USING fts5(title, content, content='', tokenize='unicode61')"))
    conn.execute(text(f"INSERT INTO items_fts_timed(rowid, title, content) SELECT {FTS_KEY_SQL}, f.title, f.content "
                      "FROM items_fts f JOIN items ON items.id = f.rowid"))
    conn.execute(text("DROP TABLE items_fts"))
    conn.execute(text("ALTER TABLE items_fts_timed RENAME TO items_fts"))


@register("core", 6, "inbox.holder: the instance ingesting a pushed record, so other instances' drains leave it")
def _core_v6(conn: Connection) -> None:
    # Databases created at v1 by this code already have the column.
    if "holder" not in {c["name"] for c in inspect(conn).get_columns("inbox")}:
        conn.execute(text("ALTER TABLE inbox ADD COLUMN holder VARCHAR(64)"))


@register("core", 7, "each fact of an item stored once: the document keeps only what no column holds")
def _core_v7(conn: Connection) -> None:
    # Rewritten in id order, a batch at a time, through the same functions that write new rows, so that a re-import
    # of an unchanged item still compares equal. The freed pages are reused by new items (VACUUM returns them).
    items = schema.items
    last_id = 0
    while True:
        rows = conn.execute(select(*READ_COLUMNS).where(items.c.id > last_id).order_by(items.c.id).limit(2000)).all()
        if not rows:
            return
        conn.execute(items.update().where(items.c.id == bindparam("_id")).values(doc=bindparam("_doc")),
                     [{"_id": row.id, "_doc": item_doc(item_from_row(row))} for row in rows])
        last_id = rows[-1].id


@register("core", 8, "ix_items_event_stored: an event's first stored item found without reading the event")
def _core_v8(conn: Connection) -> None:
    next(i for i in schema.items.indexes if i.name == "ix_items_event_stored").create(conn, checkfirst=True)


@register("core", 9, "full-text index: pending terms kept in memory up to 16 MB before they are written as a segment")
def _core_v9(conn: Connection) -> None:
    if conn.dialect.name != "sqlite":
        return
    # FTS5 writes its pending terms as a new segment, to be merged later, whenever they pass `hashsize` (1 MB by
    # default) and at each commit. An import's commit group (5,000 items) passed it many times: 16 MB makes fewer,
    # larger segments and less merging (30,000 rows imported: 2-3 % less CPU). Kept in the index's own config table.
    conn.execute(text("INSERT INTO items_fts(items_fts, rank) VALUES ('hashsize', 16777216)"))


def migrate(conn: Connection) -> dict[str, int]:
    """Apply every pending migration of every registered component; returns the resulting versions."""
    schema.metadata.create_all(conn, tables=[schema.schema_version])
    current = {row.component: row.version for row in conn.execute(select(schema.schema_version))}
    for component, chain in _CHAINS.items():
        for migration in chain:
            if migration.version <= current.get(component, 0):
                continue
            migration.apply(conn)
            now = datetime.now(UTC).isoformat()
            if component in current:
                conn.execute(
                    schema.schema_version.update()
                    .where(schema.schema_version.c.component == component)
                    .values(version=migration.version, applied_at=now)
                )
            else:
                conn.execute(schema.schema_version.insert().values(component=component, version=migration.version,
                                                                   applied_at=now))
            current[component] = migration.version
    return current


def create_missing_indexes(conn: Connection) -> list[str]:
    """Create every index schema.py declares on the core tables that the database lacks; returns their names.

    Why: an import that dropped the feed indexes to build them at its end (SqliteStore.bulk_load) and was killed
    before then leaves the store without them; the next process to open it puts them back (SqliteStore.migrate), from
    the same definitions the tables were made with."""
    created = []
    for table in schema.CORE_TABLES:
        present = {index["name"] for index in inspect(conn).get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in present:
                index.create(conn)
                created.append(index.name)
    return created
