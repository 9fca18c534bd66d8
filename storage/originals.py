"""Unmasked originals of items (analysis.pii.keep_raw), kept apart from the items as served.

Items are stored, indexed, listed and sent masked. Where the law allows keeping what a citizen actually wrote, the
values PII masking replaced go to `item_originals` (one JSON object per item: field → original value), written in
the same transaction as the item and read only through `read_original` (the store's `original(item_id)`), so that
one guarded, audited path (`GET /api/items/{id}/original`) is the only way back to them. Plain SQLAlchemy Core:
the table and its migration run unchanged on PostgreSQL.

From the masking stage to the store, originals travel beside the item, not in it (`storage.held`).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Column, Connection, ForeignKey, Integer, String, Table, Text, select

from core.models import Item
from storage import schema
from storage.dialect import delete_ids, insert_many
from storage.held import held
from storage.item_rows import READ_COLUMNS, item_doc, item_from_row
from storage.migrations import register

item_originals = Table(
    "item_originals",
    schema.metadata,
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("fields", Text, nullable=False),  # JSON: {"title": ..., "content": ..., "reply": ..., "author": ..., "extra": {...}}
    Column("kept_at", String(40), nullable=False),
)


@register("originals", 1, "item_originals: unmasked originals apart from served items; extra.raw moved there")
def _originals_v1(conn: Connection) -> None:
    schema.metadata.create_all(conn, tables=[item_originals])
    _move_extra_raw(conn)


def _move_extra_raw(conn: Connection) -> None:
    """Items stored before this table kept originals in `extra.raw`, served to everyone: move them here, and
    re-sign the item so a re-crawl of it still compares as unchanged."""
    items = schema.items.c
    rows = conn.execute(select(*READ_COLUMNS).where(items.doc.like('%"raw"%'))).all()
    for row in rows:
        item = item_from_row(row)
        raw = item.extra.pop("raw", None)
        if not isinstance(raw, dict):
            continue
        conn.execute(schema.items.update().where(items.id == row.id).values(doc=item_doc(item), signature=item.signature))
        conn.execute(item_originals.delete().where(item_originals.c.item_id == row.id))
        conn.execute(item_originals.insert().values(item_id=row.id, fields=_dumps(raw), kept_at="migrated"))


def _dumps(fields: dict[str, Any]) -> str:
    return json.dumps(fields, ensure_ascii=False, default=str)


def write_originals(conn: Connection, pairs: list[tuple[int, Item]], now: str, *, replace: bool) -> None:
    """Within the item's write transaction: keep each item's originals. `replace` (updated items) drops older ones
    first, so an item stored again without originals (nothing masked any more, or keeping turned off) loses them."""
    if not pairs:
        return
    if replace:
        delete_ids(conn, item_originals, item_originals.c.item_id, [item_id for item_id, _ in pairs])
    rows = [{"item_id": item_id, "fields": _dumps(fields), "kept_at": now}
            for item_id, item in pairs if (fields := held(item))]
    if rows:
        insert_many(conn, item_originals, rows)


def read_original(conn: Connection, item_id: int) -> dict[str, Any] | None:
    """The originals kept for one item, or None when none are."""
    fields = conn.execute(select(item_originals.c.fields).where(item_originals.c.item_id == item_id)).scalar()
    return None if fields is None else json.loads(fields)
