"""The after-store outbox: items whose after-store stages (alert rules, …) have not run yet.

Why: an item is committed by the store stage and its alert raised by a later stage. A process killed in between would
leave a stored item that no rule ever saw, and a client's retry answers `unchanged`. So the store stage records each
inserted or changed item here in the same transaction as the item itself (the transactional-outbox pattern), the
after-store stages clear it in the same transaction as what they write, and the ingest writer re-drives whatever is
still recorded, at start and continuously. Alerts are deduplicated by fingerprint, so a re-drive raises nothing twice.

The outbox lives beside the items (`store.item_write()`). When the state is in another database (`storage.state_url`,
storage/split.py) no transaction covers both: the stages' writes commit first and the outbox is cleared after, so a
crash in between re-drives the items, which the fingerprints (and the one-run-per-subject constraint of response
plans) make harmless — at least once, never lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Connection, Float, Integer, String, Table, Text, func, select, update

from storage.dialect import delete_ids, in_list, insert_many
from storage.migrations import register
from storage.schema import metadata

# How many times a re-drive may fail on one item before it is left for an operator (logged, counted, kept).
MAX_REDRIVE_ATTEMPTS = 5

pending_after_store = Table(
    "pending_after_store",
    metadata,
    Column("item_id", Integer, primary_key=True, autoincrement=False),
    Column("reason", String(20), nullable=False),  # "inserted" or "updated"
    Column("queued_ts", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
)


@register("flow", 1, "pending_after_store: stored items whose after-store stages have not run yet")
def _flow_v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[pending_after_store])


_PENDING_AMONG = "SELECT item_id FROM pending_after_store WHERE item_id IN ({})"


def mark_pending(conn: Connection, items: Iterable[tuple[int, str]]) -> None:
    """Record (item id, reason) as pending, inside the transaction that stored the items. An item already pending
    (updated again before its stages ran) stays recorded once."""
    rows = {item_id: reason for item_id, reason in items}
    if not rows:
        return
    ids = list(rows)
    known: set[int] = set()
    qmark = conn.dialect.paramstyle == "qmark"  # SQLite: through the driver (`in_list`)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        found = (conn.exec_driver_sql(in_list(_PENDING_AMONG, len(chunk)), tuple(chunk)) if qmark else
                 conn.execute(select(pending_after_store.c.item_id).where(pending_after_store.c.item_id.in_(chunk))))
        known.update(r[0] for r in found)
    now = datetime.now(UTC).timestamp()
    fresh = [{"item_id": i, "reason": rows[i], "queued_ts": now, "attempts": 0} for i in ids if i not in known]
    if fresh:
        insert_many(conn, pending_after_store, fresh)


def clear_pending(conn: Connection, item_ids: Iterable[int]) -> None:
    """The after-store stages of these items ran: forget them (same transaction as what the stages wrote)."""
    delete_ids(conn, pending_after_store, pending_after_store.c.item_id, list(item_ids))


@contextmanager
def stages_transaction(store: Any, item_ids: list[int]) -> Iterator[Connection]:
    """The transaction the after-store stages write in, clearing the items' outbox record: in the same transaction
    when items and state share one database, right after it commits otherwise (see the module docstring)."""
    with store.write() as conn:
        yield conn
        if store.items_with_state:
            clear_pending(conn, item_ids)
    if not store.items_with_state:
        with store.item_write() as items_conn:
            clear_pending(items_conn, item_ids)


def oldest_pending(conn: Connection, limit: int) -> list[int]:
    """Ids of pending items that may still be re-driven, oldest first."""
    p = pending_after_store.c
    rows = conn.execute(select(p.item_id).where(p.attempts < MAX_REDRIVE_ATTEMPTS)
                        .order_by(p.queued_ts, p.item_id).limit(limit))
    return [r.item_id for r in rows]


def note_failure(conn: Connection, item_ids: Iterable[int], error: str) -> None:
    """A re-drive of these items failed: count it, keep the reason (capped), try again later."""
    ids = list(item_ids)
    p = pending_after_store.c
    for start in range(0, len(ids), 500):
        conn.execute(update(pending_after_store).where(p.item_id.in_(ids[start:start + 500]))
                     .values(attempts=p.attempts + 1, last_error=error[:500]))


def depth(conn: Connection) -> tuple[int, int]:
    """(items pending, of which given up after MAX_REDRIVE_ATTEMPTS failures) — for /metrics and `yuqing status`."""
    p = pending_after_store.c
    total = conn.execute(select(func.count()).select_from(pending_after_store)).scalar_one()
    stuck = conn.execute(select(func.count()).select_from(pending_after_store)
                         .where(p.attempts >= MAX_REDRIVE_ATTEMPTS)).scalar_one()
    return int(total), int(stuck)
