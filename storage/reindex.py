"""Copy the items of a SQLite store onto Elasticsearch (`yuqing reindex`): resumable, verified.

Items keep their ids (the state — alerts, events, plan runs — names them) and their first-stored times. Each batch
commits its identity rows and the checkpoint (`es_reindex`: the last item id copied from this source) in one state
transaction, after the cluster took its documents; a run stopped anywhere starts again after the last committed
batch, and a batch indexed but not committed is indexed again under the same document ids. At the end the copies and
originals follow, the alias is refreshed and the counts compared: items in the source, identities in the target
state, documents on the cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, Connection, Integer, String, Table, func, select

from storage import schema
from storage.dialect import upsert
from storage.elasticsearch import ElasticsearchStore
from storage.item_rows import READ_COLUMNS, item_from_row
from storage.migrations import register
from storage.originals import item_originals
from storage.sqlite import SqliteStore

es_reindex = Table(
    "es_reindex",
    schema.metadata,
    Column("source", String(500), primary_key=True),  # the source store, as named on the command line
    Column("last_id", Integer, nullable=False),
    Column("copied", Integer, nullable=False),
    Column("updated_at", String(40), nullable=False),
)


@register("reindex", 1, "es_reindex: where a copy of a store's items onto Elasticsearch has got to")
def _reindex_v1(conn: Connection) -> None:
    schema.metadata.create_all(conn, tables=[es_reindex])


@dataclass
class ReindexReport:
    source_items: int
    copied_now: int
    resumed_after_id: int
    target_identities: int
    target_documents: int

    @property
    def verified(self) -> bool:
        return self.source_items == self.target_identities == self.target_documents


def _checkpoint(target: ElasticsearchStore, name: str) -> tuple[int, int]:
    with target.read() as conn:
        row = conn.execute(select(es_reindex.c.last_id, es_reindex.c.copied).where(es_reindex.c.source == name)).first()
    return (row.last_id, row.copied) if row is not None else (0, 0)


def reindex(source: SqliteStore, target: ElasticsearchStore, name: str, *, batch_size: int = 1000,
            progress: Callable[[int, int], None] | None = None) -> ReindexReport:
    """Copy every item of `source` (named `name` for the checkpoint) to `target`; `progress(done, total)` after each
    batch."""
    target.migrate()
    items = schema.items.c
    with source.read() as conn:
        total = conn.execute(select(func.count()).select_from(schema.items)).scalar_one()
    last_id, copied = _checkpoint(target, name)
    resumed_after = last_id
    done_before = 0
    if last_id:
        with source.read() as conn:
            done_before = conn.execute(select(func.count()).where(items.id <= last_id)).scalar_one()
    if progress:
        progress(done_before, total)
    copied_now = 0
    while True:
        with source.read() as conn:
            rows = conn.execute(select(*READ_COLUMNS, items.created_at).where(items.id > last_id)
                                .order_by(items.id).limit(batch_size)).all()
        if not rows:
            break
        batch = [(item_from_row(row), row.created_at) for row in rows]
        with target.write() as conn:
            target.restore(batch)  # joins this transaction: identities, then documents
            last_id = rows[-1].id
            copied += len(rows)
            upsert(conn, es_reindex, [{"source": name, "last_id": last_id, "copied": copied,
                                       "updated_at": datetime.now(UTC).isoformat()}], keys=["source"])
        copied_now += len(rows)
        if progress:
            progress(done_before + copied_now, total)
    _copy_extras(source, target)
    target.refresh()
    documents = target.stats().items
    return ReindexReport(source_items=total, copied_now=copied_now, resumed_after_id=resumed_after,
                         target_identities=target.identity_count(), target_documents=documents)


def _copy_extras(source: SqliteStore, target: ElasticsearchStore, chunk: int = 5000) -> None:
    """Exact copies seen elsewhere and kept originals (idempotent upserts, so a resumed run copies them again)."""
    dup = schema.item_duplicates
    with source.read() as conn:
        duplicates = [dict(r._mapping) for r in conn.execute(select(dup).order_by(dup.c.id))]
        originals = [dict(r._mapping) for r in conn.execute(select(item_originals))]
    for start in range(0, max(len(duplicates), len(originals), 1), chunk):
        target.restore_extras(duplicates[start:start + chunk], originals[start:start + chunk])
