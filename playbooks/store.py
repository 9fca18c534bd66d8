"""Plan tables (SQLAlchemy Core on the shared metadata, registered with storage.migrations; portable to PostgreSQL).

Times are UTC epoch seconds (floats), as in the alert tables. `plan_runs` has a unique (playbook_id, subject) so a
second alert about the same event can never start a second run, whatever the code above it does. `plan_steps`
carries `next_check_ts` (the next warning or breach moment still to announce) with an index, so a clock tick reads
only the steps that are due now, not every open step. `plan_audit` is append-only: the code never updates it and
the database refuses to (triggers on SQLite and PostgreSQL).
"""

from __future__ import annotations

from sqlalchemy import (
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
    text,
)

from storage.migrations import register
from storage.schema import metadata

plan_runs = Table(
    "plan_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("playbook_id", String(64), nullable=False),
    Column("playbook_version", String(20), nullable=False),
    Column("subject", String(200), nullable=False),  # event:<id> | item:<id> | alert:<id> | manual:<key>
    Column("title", Text, nullable=False),
    Column("state", String(12), nullable=False),  # open | closed | cancelled
    Column("trigger", String(10), nullable=False),  # alert | item | manual
    Column("alert_id", Integer),
    Column("item_id", Integer),
    Column("event_id", String(64)),
    Column("labels", Text, nullable=False),
    Column("region", String(100)),
    Column("topic", String(50)),
    Column("department", String(200)),
    Column("received_ts", Float),
    Column("detected_ts", Float),
    Column("alert_ts", Float),
    Column("started_ts", Float, nullable=False),
    Column("started_by", String(100), nullable=False),
    Column("closed_ts", Float),
    Column("first_response_ts", Float),
    Column("updated_ts", Float, nullable=False),
    UniqueConstraint("playbook_id", "subject", name="uq_plan_runs_subject"),
    Index("ix_plan_runs_item", "item_id"),
    Index("ix_plan_runs_event", "event_id"),
    Index("ix_plan_runs_started", "started_ts", "id"),
    Index("ix_plan_runs_state", "state", "id"),
)

plan_steps = Table(
    "plan_steps",
    metadata,
    Column("run_id", Integer, primary_key=True),
    Column("step_id", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("title", Text, nullable=False),
    Column("role", String(64)),
    Column("assignee", String(100)),
    Column("state", String(20), nullable=False),  # pending | in_progress | awaiting_approval | done | skipped
    Column("due_spec", String(20)),  # 15wd as resolved for this run (by request type...), plus any extension
    Column("anchor", String(80), nullable=False),
    Column("anchor_ts", Float),
    Column("due_ts", Float),
    Column("warn_ts", Float),
    Column("calendar", String(10)),  # official | override | fallback
    Column("next_check_ts", Float),
    Column("warned_ts", Float),
    Column("breached_ts", Float),
    Column("round", Integer, nullable=False, default=0),  # approval round (a rejection starts the next)
    Column("started_ts", Float),
    Column("finished_ts", Float),
    Column("skip_reason", Text),
    Column("extension", String(20)),
    Column("updated_ts", Float, nullable=False),
    Index("ix_plan_steps_check", "next_check_ts"),
    Index("ix_plan_steps_due", "due_ts"),
)

plan_approvals = Table(
    "plan_approvals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, nullable=False),
    Column("step_id", String(64), nullable=False),
    Column("round", Integer, nullable=False),
    Column("position", Integer, nullable=False),  # 0 = drafted by, 1.. = approvers in chain order
    Column("role", String(64), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("decision", String(10), nullable=False),  # drafted | approved | rejected
    Column("comment", Text),
    Column("ts", Float, nullable=False),
    Index("ix_plan_approvals_step", "run_id", "step_id", "round"),
)

plan_evidence = Table(
    "plan_evidence",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, nullable=False),
    Column("step_id", String(64), nullable=False),
    Column("kind", String(10), nullable=False),  # link | text | file
    Column("value", Text),  # the URL, the text, or the file name
    Column("media_type", String(100)),
    Column("size", Integer),
    Column("sha256", String(64)),
    Column("content", LargeBinary),
    Column("actor", String(100), nullable=False),
    Column("ts", Float, nullable=False),
    Index("ix_plan_evidence_step", "run_id", "step_id"),
)

plan_audit = Table(
    "plan_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, nullable=False),
    Column("step_id", String(64)),
    Column("ts", Float, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(20), nullable=False),
    Column("from_state", String(20)),
    Column("to_state", String(20)),
    Column("detail", Text),
    Index("ix_plan_audit_run", "run_id", "id"),
    Index("ix_plan_audit_ts", "ts"),
)

PLAN_TABLES = [plan_runs, plan_steps, plan_approvals, plan_evidence, plan_audit]


@register("playbooks", 1, "plan runs, steps, approvals, evidence and the append-only audit log")
def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=PLAN_TABLES)
    if conn.dialect.name == "sqlite":
        for op in ("UPDATE", "DELETE"):
            conn.execute(text(f"CREATE TRIGGER IF NOT EXISTS plan_audit_no_{op.lower()} BEFORE {op} ON plan_audit "
                              "BEGIN SELECT RAISE(ABORT, 'plan_audit is append-only'); END"))
    elif conn.dialect.name == "postgresql":
        conn.execute(text("CREATE OR REPLACE FUNCTION plan_audit_append_only() RETURNS trigger AS $$ "
                          "BEGIN RAISE EXCEPTION 'plan_audit is append-only'; END; $$ LANGUAGE plpgsql"))
        conn.execute(text("DROP TRIGGER IF EXISTS plan_audit_append_only ON plan_audit"))
        conn.execute(text("CREATE TRIGGER plan_audit_append_only BEFORE UPDATE OR DELETE ON plan_audit "
                          "FOR EACH ROW EXECUTE FUNCTION plan_audit_append_only()"))
