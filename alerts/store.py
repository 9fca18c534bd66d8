"""Alert tables (SQLAlchemy Core on the shared metadata, so they move to PostgreSQL with the rest) and reads.

Times are stored as UTC epoch seconds (floats): comparisons in SQL stay simple and portable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Connection, Float, Index, Integer, String, Table, Text, bindparam, func, inspect, or_, select, text

from core.errors import InputError, NotFound
from storage.base import StateStore
from storage.migrations import register
from storage.schema import metadata

ALERT_STATES = ("firing", "acknowledged", "resolved", "silenced")

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(40), nullable=False, unique=True),
    Column("rule", String(100), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("severity", String(10), nullable=False),
    Column("state", String(15), nullable=False),
    Column("muted_by", String(100)),  # "silence:<id>" or "inhibit:<n>" while silenced
    Column("labels", Text, nullable=False),
    Column("annotations", Text, nullable=False),
    Column("item_id", Integer),
    Column("event_id", String(64)),
    Column("starts_ts", Float, nullable=False),
    Column("updated_ts", Float, nullable=False),
    Column("acked_by", String(100)),
    Column("acked_ts", Float),
    Column("resolved_by", String(100)),
    Column("resolved_ts", Float),
    Column("comment", Text),
    Index("ix_alerts_state", "state", "id"),
    # An event's alerts by kind: its few event alerts are found without stepping over its item alerts (a burst
    # raises one per item, and the after-store stage asks for the event alerts of every batch).
    Index("ix_alerts_event_kind", "event_id", "kind", "id"),
    Index("ix_alerts_item", "item_id"),
    Index("ix_alerts_resolved", "resolved_ts"),  # what the archiver moves next (alerts/archive.py)
    # Ids are never reused once an alert moved to the archive (on SQLite, rowids would restart after the largest).
    sqlite_autoincrement=True,
)

alert_groups = Table(
    "alert_groups",
    metadata,
    Column("key", String(600), primary_key=True),
    Column("route_path", String(100), nullable=False),
    Column("receiver", String(100), nullable=False),
    Column("labels", Text, nullable=False),
    Column("created_ts", Float, nullable=False),
    Column("next_flush_ts", Float),
    Column("last_notified_ts", Float),
    Column("next_repeat_ts", Float),
    Column("seq", Integer, nullable=False, default=0),
    Index("ix_alert_groups_flush", "next_flush_ts"),
    Index("ix_alert_groups_repeat", "next_repeat_ts"),
)

alert_members = Table(
    "alert_group_members",
    metadata,
    Column("group_key", String(600), primary_key=True),
    Column("alert_id", Integer, primary_key=True),
    Column("notified_seq", Integer, nullable=False, default=0),
    Column("escalation_level", Integer, nullable=False, default=0),
    Column("next_escalation_ts", Float),
    Index("ix_alert_members_alert", "alert_id"),
    Index("ix_alert_members_escalation", "next_escalation_ts"),
)

alert_outbox = Table(
    "alert_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedup_key", String(100), nullable=False, unique=True),
    Column("kind", String(30), nullable=False),
    Column("receiver", String(100), nullable=False),
    Column("integration", String(20), nullable=False),
    Column("group_key", String(600)),
    Column("payload", Text, nullable=False),
    Column("status", String(10), nullable=False),  # pending | sending | sent | failed | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("parts_done", Integer, nullable=False, default=0),
    Column("next_attempt_ts", Float, nullable=False),
    Column("last_error", Text),
    Column("created_ts", Float, nullable=False),
    Column("sent_ts", Float),
    Column("claimed_by", String(100)),  # the instance sending the row while `sending` (storage/cluster.py)
    Index("ix_alert_outbox_due", "status", "next_attempt_ts"),
)

alert_silences = Table(
    "alert_silences",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("matchers", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("owner", String(100), nullable=False),
    Column("starts_ts", Float, nullable=False),
    Column("ends_ts", Float, nullable=False),
    Column("created_ts", Float, nullable=False),
    Column("notice_sent_ts", Float),
    Column("expired_ts", Float),
    Column("deleted_ts", Float),
    Index("ix_alert_silences_ends", "ends_ts"),
)

alert_audit = Table(
    "alert_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("decision", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("alert_id", Integer),
    Column("group_key", String(600)),
    Column("receiver", String(100)),
    Column("outbox_id", Integer),
    Column("detail", Text),
    Index("ix_alert_audit_alert", "alert_id", "id"),
    Index("ix_alert_audit_decision", "decision", "id"),
)

alert_labels = Table(
    "alert_labels",
    metadata,
    Column("alert_id", Integer, primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_alert_labels_name_value", "name", "value", "alert_id"),
)

# Resolved alerts some time after their resolution (alerts/archive.py): the same columns, the same ids, and their labels,
# so that the hot tables (what the dispatcher, inhibition and the default lists read) do not grow with history.
def _same_columns(table: Table) -> list[Column]:
    """`table`'s columns for an archive table (ids kept as they were, not generated)."""
    return [Column(c.name, c.type, primary_key=c.primary_key, autoincrement=False, nullable=c.nullable)
            for c in table.columns]


alerts_archive = Table(
    "alerts_archive",
    metadata,
    *_same_columns(alerts),
    Column("archived_ts", Float, nullable=False),
    Index("ux_alerts_archive_fingerprint", "fingerprint", unique=True),
    Index("ix_alerts_archive_event", "event_id"),
    Index("ix_alerts_archive_item", "item_id"),
    Index("ix_alerts_archive_starts", "starts_ts"),
    Index("ix_alerts_archive_acked", "acked_ts"),
    Index("ix_alerts_archive_resolved", "resolved_ts"),
)

alert_labels_archive = Table(
    "alert_labels_archive",
    metadata,
    *_same_columns(alert_labels),
    Index("ix_alert_labels_archive_name_value", "name", "value", "alert_id"),
)

ALERT_TABLES = [alerts, alert_groups, alert_members, alert_outbox, alert_silences, alert_audit]


@register("alerts", 1, "alerts, groups, members, outbox, silences, audit")
def _alerts_v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=ALERT_TABLES)


@register("alerts", 2, "alert_labels: one row per alert label, indexed for filtering on any database")
def _alerts_v2(conn: Connection) -> None:
    metadata.create_all(conn, tables=[alert_labels])
    last = 0
    while True:  # existing alerts get their label rows (their JSON column stays the source for display)
        rows = conn.execute(select(alerts.c.id, alerts.c.labels).where(alerts.c.id > last).order_by(alerts.c.id)
                            .limit(1000)).all()
        if not rows:
            break
        last = rows[-1].id
        conn.execute(alert_labels.insert(), [r for row in rows for r in label_rows(row.id, json.loads(row.labels))])


@register("alerts", 3, "alert_outbox.claimed_by: which instance is sending a row, so another resumes only a dead one's")
def _alerts_v3(conn: Connection) -> None:
    # Databases created at v1 by this code already have the column.
    if "claimed_by" not in {c["name"] for c in inspect(conn).get_columns("alert_outbox")}:
        conn.execute(text("ALTER TABLE alert_outbox ADD COLUMN claimed_by VARCHAR(100)"))


@register("alerts", 4, "alerts_archive and alert_labels_archive: resolved alerts leave the hot tables after a while")
def _alerts_v4(conn: Connection) -> None:
    metadata.create_all(conn, tables=[alerts_archive, alert_labels_archive])
    created = conn.execute(text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'alerts'")).scalar() \
        if conn.dialect.name == "sqlite" else None
    if created is None or "AUTOINCREMENT" in created.upper():  # PostgreSQL's sequence never reuses an id
        next(i for i in alerts.indexes if i.name == "ix_alerts_resolved").create(conn, checkfirst=True)
        return
    # An SQLite table made before v4: rebuilt with AUTOINCREMENT, so the id of an archived alert is never given again.
    names = ", ".join(c.name for c in alerts.columns)
    for index in alerts.indexes:
        conn.execute(text(f"DROP INDEX IF EXISTS {index.name}"))
    conn.execute(text("ALTER TABLE alerts RENAME TO alerts_before_v4"))
    alerts.create(conn)
    conn.execute(text(f"INSERT INTO alerts ({names}) SELECT {names} FROM alerts_before_v4"))
    conn.execute(text("DROP TABLE alerts_before_v4"))


@register("alerts", 5, "ix_alerts_event_kind replaces ix_alerts_event: event alerts found without reading item alerts")
def _alerts_v5(conn: Connection) -> None:
    conn.execute(text("DROP INDEX IF EXISTS ix_alerts_event"))
    next(i for i in alerts.indexes if i.name == "ix_alerts_event_kind").create(conn, checkfirst=True)


def label_rows(alert_id: int, labels: dict[str, str]) -> list[dict[str, Any]]:
    return [{"alert_id": alert_id, "name": name, "value": str(value)} for name, value in labels.items()]


def write_labels(conn: Connection, labels_by_alert: dict[int, dict[str, str]], *, replace: bool = False) -> None:
    """Keep `alert_labels` in step with the alerts' labels (`replace` for alerts whose labels were refreshed)."""
    ids = list(labels_by_alert)
    if replace:
        for start in range(0, len(ids), 500):
            conn.execute(alert_labels.delete().where(alert_labels.c.alert_id.in_(ids[start:start + 500])))
    rows = [r for alert_id, labels in labels_by_alert.items() for r in label_rows(alert_id, labels)]
    if rows:
        conn.execute(alert_labels.insert(), rows)


def ts(moment: datetime) -> float:
    return moment.timestamp()


def from_ts(value: float | None) -> str | None:
    return None if value is None else datetime.fromtimestamp(value, UTC).isoformat()


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def alert_public(row: Any) -> dict[str, Any]:
    """A stored alert as the API and the messages show it."""
    return {
        "id": row.id, "fingerprint": row.fingerprint, "rule": row.rule, "kind": row.kind, "severity": row.severity,
        "state": row.state, "muted_by": row.muted_by, "labels": json.loads(row.labels),
        "annotations": json.loads(row.annotations), "item_id": row.item_id, "event_id": row.event_id,
        "starts_at": from_ts(row.starts_ts), "updated_at": from_ts(row.updated_ts), "acked_by": row.acked_by,
        "acked_at": from_ts(row.acked_ts), "resolved_by": row.resolved_by, "resolved_at": from_ts(row.resolved_ts),
        "comment": row.comment,
    }


def silence_public(row: Any, now: float) -> dict[str, Any]:
    if row.deleted_ts is not None:
        status = "deleted"
    elif row.ends_ts <= now:
        status = "expired"
    elif row.starts_ts > now:
        status = "pending"
    else:
        status = "active"
    return {"id": row.id, "matchers": json.loads(row.matchers), "reason": row.reason, "owner": row.owner,
            "starts_at": from_ts(row.starts_ts), "ends_at": from_ts(row.ends_ts), "created_at": from_ts(row.created_ts),
            "notice_sent_at": from_ts(row.notice_sent_ts), "status": status}


def audit_public(row: Any) -> dict[str, Any]:
    return {"id": row.id, "at": from_ts(row.ts), "decision": row.decision, "reason": row.reason,
            "alert_id": row.alert_id, "group_key": row.group_key, "receiver": row.receiver, "outbox_id": row.outbox_id,
            "detail": json.loads(row.detail) if row.detail else None}


def outbox_public(row: Any) -> dict[str, Any]:
    return {"id": row.id, "dedup_key": row.dedup_key, "kind": row.kind, "receiver": row.receiver,
            "integration": row.integration, "group_key": row.group_key, "status": row.status, "attempts": row.attempts,
            "parts_done": row.parts_done, "next_attempt_at": from_ts(row.next_attempt_ts), "last_error": row.last_error,
            "created_at": from_ts(row.created_ts), "sent_at": from_ts(row.sent_ts)}


ARCHIVE_COUNT_CAP = 10_000  # a list's count of archived alerts stops here (the hot table's is exact)


def reader_public(row: Any) -> dict[str, Any]:
    """`alert_public` with when the alert was archived (None while it is in the hot table)."""
    return {**alert_public(row), "archived_at": from_ts(getattr(row, "archived_ts", None))}


def _list_conditions(table: Table, label_table: Table, *, state: str | None, severity: str | None, rule: str | None,
                     item_id: int | None, event_id: str | None, labels: dict[str, str],
                     within_regions: tuple[str, ...]) -> list[Any]:
    conds = []
    for name, value in (("state", state), ("severity", severity), ("rule", rule), ("item_id", item_id),
                        ("event_id", event_id)):
        if value is not None:
            conds.append(table.c[name] == value)
    for name, value in labels.items():
        conds.append(table.c.id.in_(select(label_table.c.alert_id).where(label_table.c.name == name,
                                                                       label_table.c.value == value)))
    if within_regions:
        conds.append(table.c.id.in_(select(label_table.c.alert_id).where(
            label_table.c.name == "region",
            or_(*[label_table.c.value.contains(r, autoescape=True) for r in within_regions]))))
    return conds


_ACTIVE_EVENT_ALERTS = (select(alerts).where(alerts.c.event_id == bindparam("event"), alerts.c.kind == "event",
                                             alerts.c.state.in_(("firing", "acknowledged", "silenced")))
                        .order_by(alerts.c.id.desc()).limit(bindparam("limit")))


class AlertReader:
    """Read-side queries for the API (lists with filters and id cursors)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def get(self, alert_id: int) -> dict[str, Any]:
        """The alert, from the hot table or the archive."""
        with self.store.read() as conn:
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
            if row is None:
                row = conn.execute(select(alerts_archive).where(alerts_archive.c.id == alert_id)).first()
        if row is None:
            raise NotFound(f"alert {alert_id} not found")
        return reader_public(row)

    def list(self, *, state: str | None = None, severity: str | None = None, rule: str | None = None,
             item_id: int | None = None, event_id: str | None = None, labels: dict[str, str] | None = None,
             limit: int = 50, before_id: int | None = None,
             within_regions: tuple[str, ...] = ()) -> tuple[list[dict[str, Any]], int]:
        """Newest first. `within_regions`: a caller's 属地 scope — only alerts whose `region` label contains one of
        them. Without a state, and with `resolved`, archived alerts are listed too (a page from each table, merged by
        id); their count stops at ARCHIVE_COUNT_CAP (see `list_page`)."""
        rows, count, _ = self.list_page(state=state, severity=severity, rule=rule, item_id=item_id,
                                        event_id=event_id, labels=labels, limit=limit, before_id=before_id,
                                        within_regions=within_regions)
        return rows, count

    def list_page(self, *, state: str | None = None, severity: str | None = None, rule: str | None = None,
                  item_id: int | None = None, event_id: str | None = None, labels: dict[str, str] | None = None,
                  limit: int = 50, before_id: int | None = None,
                  within_regions: tuple[str, ...] = ()) -> tuple[list[dict[str, Any]], int, bool]:
        """`list` and whether its count is exact (False when the archive alone holds more than the cap)."""
        if state is not None and state not in ALERT_STATES:
            raise InputError(f"unknown state {state!r}; states: {', '.join(ALERT_STATES)}")
        found: list[Any] = []
        count, exact = 0, True
        with self.store.read() as conn:
            for table, label_table in ((alerts, alert_labels), (alerts_archive, alert_labels_archive)):
                if table is alerts_archive and state not in (None, "resolved"):
                    continue
                conds = _list_conditions(table, label_table, state=None if table is alerts_archive else state,
                                         severity=severity, rule=rule, item_id=item_id, event_id=event_id,
                                         labels=labels or {}, within_regions=within_regions)
                page = [*conds, table.c.id < before_id] if before_id else conds
                found.extend(conn.execute(select(table).where(*page).order_by(table.c.id.desc()).limit(limit)))
                if table is alerts:
                    count += conn.execute(select(func.count()).select_from(table).where(*conds)).scalar_one()
                else:
                    capped = select(table.c.id).where(*conds).limit(ARCHIVE_COUNT_CAP + 1).subquery()
                    archived = conn.execute(select(func.count()).select_from(capped)).scalar_one()
                    exact = archived <= ARCHIVE_COUNT_CAP
                    count += min(archived, ARCHIVE_COUNT_CAP)
        found.sort(key=lambda r: r.id, reverse=True)
        return [reader_public(r) for r in found[:limit]], count, exact

    def period(self, since_ts: float, until_ts: float, *, limit: int = 500) -> dict[str, list[dict[str, Any]]]:
        """Alerts raised, acknowledged and resolved in [since_ts, until_ts) (reports), each list oldest first and
        capped at `limit`; archived alerts count as the others do."""
        out: dict[str, list[dict[str, Any]]] = {}
        with self.store.read() as conn:
            for name, column in (("raised", "starts_ts"), ("acknowledged", "acked_ts"), ("resolved", "resolved_ts")):
                rows: list[Any] = []
                for table in (alerts, alerts_archive):
                    key = table.c[column]
                    rows.extend(conn.execute(select(table).where(key >= since_ts, key < until_ts)
                                             .order_by(key, table.c.id).limit(limit)))
                rows.sort(key=lambda r, c=column: (getattr(r, c), r.id))
                out[name] = [reader_public(r) for r in rows[:limit]]
        return out

    def active_event_alerts(self, event_ids: Iterable[str], limit: int = 150) -> list[dict[str, Any]]:
        """Event alerts (kind "event") of these events still firing, acknowledged or silenced, newest first, at most
        `limit` per event. One query per event and no count: the after-store stage asks this for every batch, and an
        event's item alerts (thousands, in a burst) are skipped by the kind filter in SQL, not read and dropped."""
        out: list[dict[str, Any]] = []
        with self.store.read() as conn:
            for event_id in sorted(set(event_ids)):
                out.extend(alert_public(r) for r in conn.execute(_ACTIVE_EVENT_ALERTS, {"event": event_id,
                                                                                       "limit": limit}))
        return out

    def audit(self, *, alert_id: int | None = None, decision: str | None = None, receiver: str | None = None,
              limit: int = 100, before_id: int | None = None) -> tuple[list[dict[str, Any]], int]:
        conds = []
        if alert_id is not None:
            conds.append(alert_audit.c.alert_id == alert_id)
        if decision is not None:
            conds.append(alert_audit.c.decision == decision)
        if receiver is not None:
            conds.append(alert_audit.c.receiver == receiver)
        page = [*conds, alert_audit.c.id < before_id] if before_id else conds
        with self.store.read() as conn:
            rows = conn.execute(select(alert_audit).where(*page).order_by(alert_audit.c.id.desc()).limit(limit)).all()
            count = conn.execute(select(func.count()).select_from(alert_audit).where(*conds)).scalar_one()
        return [audit_public(r) for r in rows], count

    def outbox(self, *, status: str | None = None, limit: int = 100) -> tuple[list[dict[str, Any]], int]:
        conds = [alert_outbox.c.status == status] if status else []
        with self.store.read() as conn:
            rows = conn.execute(select(alert_outbox).where(*conds).order_by(alert_outbox.c.id.desc()).limit(limit)).all()
            count = conn.execute(select(func.count()).select_from(alert_outbox).where(*conds)).scalar_one()
        return [outbox_public(r) for r in rows], count
