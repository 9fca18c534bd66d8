"""Report tables (migration component "reports"; SQLAlchemy Core, portable to PostgreSQL) and their reads and writes.

`reports` keeps one row per (kind, period): what it said (content JSON), its HTML and PDF, when it was made and
whether the period was over then (`complete`): a complete report is never made again, so a restart neither loses
reports nor runs a scheduled one twice. `report_deliveries` has one row per (report, receiver): a scheduled send
skips receivers already sent to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
)

from core.errors import NotFound
from storage.base import StateStore
from storage.dialect import upsert
from storage.migrations import register
from storage.schema import metadata

reports = Table(
    "reports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(10), nullable=False),  # daily | weekly
    Column("period_key", String(10), nullable=False),  # first day, YYYY-MM-DD
    Column("start_ts", Float, nullable=False),
    Column("end_ts", Float, nullable=False),
    Column("generated_ts", Float, nullable=False),
    Column("complete", Boolean, nullable=False),  # made after the period ended
    Column("trigger", String(10), nullable=False),  # schedule | demand | cli
    Column("title", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("pdf", LargeBinary),  # none when no CJK font was found (made again when asked for)
    Column("link_base", Text, nullable=False),  # what the stored HTML's links start with ("" = relative)
    UniqueConstraint("kind", "period_key", name="uq_reports_period"),
    Index("ix_reports_generated", "generated_ts"),
)

report_deliveries = Table(
    "report_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("report_id", Integer, nullable=False),
    Column("receiver", String(100), nullable=False),
    Column("status", String(10), nullable=False),  # sent | failed
    Column("attempts", Integer, nullable=False),
    Column("error", Text),
    Column("updated_ts", Float, nullable=False),
    UniqueConstraint("report_id", "receiver", name="uq_report_deliveries"),
)


@register("reports", 1, "generated reports (daily, weekly) and their e-mail deliveries")
def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[reports, report_deliveries])


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


@dataclass
class StoredReport:
    id: int
    kind: str
    period_key: str
    title: str
    generated_ts: float
    complete: bool
    trigger: str
    content: dict[str, Any]
    html: str
    pdf: bytes | None
    link_base: str

    def public(self, deliveries: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        period = self.content["period"]
        return {"id": self.id, "kind": self.kind, "date": self.period_key, "title": self.title,
                "period": period["label"], "start": period["start"], "end": period["end"],
                "generated_at": _iso(self.generated_ts), "complete": self.complete, "trigger": self.trigger,
                "items": self.content["volume"]["total"], "has_pdf": self.pdf is not None,
                "html_url": f"/api/reports/{self.kind}?date={self.period_key}&format=html",
                "pdf_url": f"/api/reports/{self.kind}?date={self.period_key}&format=pdf",
                **({"deliveries": deliveries} if deliveries is not None else {})}


def _stored(row: Any) -> StoredReport:
    return StoredReport(id=row.id, kind=row.kind, period_key=row.period_key, title=row.title,
                        generated_ts=row.generated_ts, complete=bool(row.complete), trigger=row.trigger,
                        content=json.loads(row.content), html=row.html, pdf=row.pdf, link_base=row.link_base)


class ReportArchive:
    """Reads and writes of the report tables."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def get(self, kind: str, period_key: str) -> StoredReport | None:
        with self.store.read() as conn:
            row = conn.execute(select(reports).where(reports.c.kind == kind, reports.c.period_key == period_key)).first()
        return None if row is None else _stored(row)

    def save(self, *, kind: str, period_key: str, start_ts: float, end_ts: float, generated_ts: float, complete: bool,
             trigger: str, content: dict[str, Any], html: str, pdf: bytes | None, link_base: str) -> StoredReport:
        """Keep a report, replacing an earlier one of the same period (only incomplete ones are ever made again)."""
        row = {"kind": kind, "period_key": period_key, "start_ts": start_ts, "end_ts": end_ts,
               "generated_ts": generated_ts, "complete": complete, "trigger": trigger, "title": content["title"],
               "content": json.dumps(content, ensure_ascii=False), "html": html, "pdf": pdf, "link_base": link_base}
        with self.store.write() as conn:
            upsert(conn, reports, [row], keys=["kind", "period_key"])
        stored = self.get(kind, period_key)
        if stored is None:  # pragma: no cover - written just above in the same process
            raise NotFound(f"report {kind} {period_key} vanished after writing")
        return stored

    def set_pdf(self, report_id: int, pdf: bytes) -> None:
        with self.store.write() as conn:
            conn.execute(reports.update().where(reports.c.id == report_id).values(pdf=pdf))

    def list(self, *, kind: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Newest period first, without their HTML and PDF bodies."""
        r = reports.c
        conds = [r.kind == kind] if kind else []
        columns = [r.id, r.kind, r.period_key, r.title, r.start_ts, r.end_ts, r.generated_ts, r.complete, r.trigger,
                   r.pdf.is_not(None).label("has_pdf")]
        with self.store.read() as conn:
            rows = conn.execute(select(*columns).where(*conds).order_by(r.period_key.desc(), r.kind)
                                .limit(limit).offset(offset)).all()
            count = conn.execute(select(func.count()).select_from(reports).where(*conds)).scalar_one()
        return [{"id": row.id, "kind": row.kind, "date": row.period_key, "title": row.title,
                 "start": _iso(row.start_ts), "end": _iso(row.end_ts), "generated_at": _iso(row.generated_ts),
                 "complete": bool(row.complete), "trigger": row.trigger, "has_pdf": bool(row.has_pdf),
                 "html_url": f"/api/reports/{row.kind}?date={row.period_key}&format=html",
                 "pdf_url": f"/api/reports/{row.kind}?date={row.period_key}&format=pdf"} for row in rows], count

    def deliveries(self, report_id: int) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            rows = conn.execute(select(report_deliveries).where(report_deliveries.c.report_id == report_id)
                                .order_by(report_deliveries.c.receiver)).all()
        return [{"receiver": r.receiver, "status": r.status, "attempts": r.attempts, "error": r.error,
                 "at": _iso(r.updated_ts)} for r in rows]

    def record_delivery(self, report_id: int, receiver: str, *, error: str | None, now: float) -> None:
        with self.store.write() as conn:
            before = conn.execute(select(report_deliveries.c.attempts).where(
                report_deliveries.c.report_id == report_id, report_deliveries.c.receiver == receiver)).scalar()
            upsert(conn, report_deliveries, [{"report_id": report_id, "receiver": receiver,
                                              "status": "failed" if error else "sent", "attempts": (before or 0) + 1,
                                              "error": error, "updated_ts": now}], keys=["report_id", "receiver"])
