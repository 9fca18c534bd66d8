"""Quarantine and inbox on any SQLAlchemy engine: the part of `Store` that stays relational whatever holds the items.

Shared by SqliteStore (everything in one file) and ElasticsearchStore (items on the cluster, these with the state).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from sqlalchemy import Connection, func, select

from core.errors import InputError
from core.models import Item, QuarantineRecord, RawRecord
from storage import schema
from storage.base import Cursor, Page


def copy_rows(pairs: list[tuple[int, Item]], now: str) -> list[dict]:
    """Rows of exact copies (item id, the copy): a copy seen again keeps its first sighting's time but takes the newer
    document (a reply may have come). Both backends keep them in SQL."""
    return [{"item_id": item_id, "source": item.source, "source_id": item.source_id, "url": item.url, "seen_at": now,
             "doc": item.model_dump_json(exclude={"id", "enrichment"})} for item_id, item in pairs]


def copy_entries(rows: list) -> list[dict]:  # noqa: ANN001 - result rows with source, source_id, url, seen_at, doc
    """Where each copy was seen and, when kept, what it carried of its own (author, time, engagement, reply)."""
    out = []
    for r in rows:
        entry = {"source": r.source, "source_id": r.source_id, "url": r.url, "seen_at": r.seen_at}
        if r.doc:
            doc = json.loads(r.doc)
            entry.update({k: doc.get(k) for k in ("channel", "author", "published_at", "engagement", "reply")})
        out.append(entry)
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat()


class SqlRecords:
    """Rejected input with reasons, and raw records waiting for the ingest flow, in the state database.

    Mixed in before storage.state.SqlState, whose `read()` and `write()` connection contexts it uses."""

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
