"""Plan runs: starting them (in bulk, once per subject), the step state machine driven by an explicit transition
table, assignment, comments, evidence, 审签 approvals, extensions, and an append-only audit record of every change.

It never sends anything: clocks are read by `playbooks.tracking`, and the service hands their notices to alerts.
Every operation is one write transaction, checked completely before anything is written (nothing half-applied).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, and_, func, or_, select
from sqlalchemy.exc import IntegrityError

from core.calendar import WorkCalendar, parse_due
from core.config_playbooks import PlaybooksConfig
from core.errors import InvalidTransition, NotFound, PermissionDenied, PlaybookError, StorageError
from playbooks.plans import Playbook, StepSpec, normalise_label
from playbooks.store import plan_approvals, plan_audit, plan_evidence, plan_runs, plan_steps
from storage.dialect import insert_many

logger = logging.getLogger(__name__)

STEP_STATES = ("pending", "in_progress", "awaiting_approval", "done", "skipped")
ACTIVE_STATES = ("pending", "in_progress", "awaiting_approval")
TERMINAL_STATES = ("done", "skipped")

# The only allowed step changes: (from, to) → the action that makes it. Everything else is InvalidTransition.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("pending", "in_progress"): "start",
    ("pending", "skipped"): "skip",
    ("in_progress", "awaiting_approval"): "submit",  # steps with an approval chain: the drafter submits
    ("in_progress", "done"): "complete",  # steps without an approval chain
    ("in_progress", "skipped"): "skip",
    ("awaiting_approval", "done"): "approve",  # the last approver of the chain signs
    ("awaiting_approval", "in_progress"): "reject",  # any approver sends it back; a new round starts
}


def ts(moment: datetime) -> float:
    return moment.timestamp()


def iso(value: float | None) -> str | None:
    return None if value is None else datetime.fromtimestamp(value, UTC).isoformat()


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@dataclass
class StartRequest:
    """Everything needed to open one run; `subject` (event:/item:/alert:/manual:) is unique per playbook."""

    playbook_id: str
    subject: str
    title: str
    trigger: str  # alert | item | manual
    labels: dict[str, str] = field(default_factory=dict)
    alert_id: int | None = None
    item_id: int | None = None
    event_id: str | None = None
    received: datetime | None = None
    detected: datetime | None = None
    alert: datetime | None = None
    started_by: str = "system"
    reply_at: datetime | None = None  # the item already carries an official reply (steps `completes_on_reply`)
    reply_text: str | None = None


@dataclass
class StartResult:
    started: list[int] = field(default_factory=list)
    existing: list[int] = field(default_factory=list)


def _bad(field_name: str, message: str, cls: type[PlaybookError] = PlaybookError) -> PlaybookError:
    return cls(message, errors=[{"loc": [field_name], "msg": message}])


class PlanRuns:
    """The run side of playbooks over a store (`read()`/`write()` connections); `clock` is injectable."""

    def __init__(self, store: Any, playbooks: dict[str, Playbook], config: PlaybooksConfig, calendar: WorkCalendar,
                 now: Callable[[], datetime]) -> None:
        self.store = store
        self.playbooks = playbooks
        self.config = config
        self.calendar = calendar
        self.now = now
        self._versions: dict[str, tuple[Playbook, str]] = {}
        # Called after commit with the (run id, step id or None for the whole run) whose clocks stopped, e.g. to
        # resolve their deadline alerts. A failing listener is logged; the change stays.
        self.on_finished: list[Callable[[list[tuple[int, str | None]]], None]] = []

    # ---- helpers ---------------------------------------------------------------------------------------------

    def playbook(self, playbook_id: str) -> Playbook:
        try:
            return self.playbooks[playbook_id]
        except KeyError:
            raise NotFound(f"playbook {playbook_id!r} not found; playbooks: {sorted(self.playbooks)}") from None

    def _schedule(self, spec: StepSpec, due_text: str | None, anchor_ts: float | None) -> dict[str, Any]:
        """Due, warning and first check moments of a step whose anchor is known (all None otherwise)."""
        if due_text is None or anchor_ts is None:
            return {"due_ts": None, "warn_ts": None, "next_check_ts": None, "calendar": None}
        deadline = self.calendar.deadline(datetime.fromtimestamp(anchor_ts, UTC), due_text)
        warn = self.calendar.warning_time(deadline, before_hours=self.config.warn_before,
                                          before_working_days=self.config.warn_before_working_days)
        return {"due_ts": ts(deadline.due), "warn_ts": ts(warn), "next_check_ts": ts(warn), "calendar": deadline.calendar}

    @staticmethod
    def _audit_row(run_id: int, moment: float, actor: str, action: str, *, step_id: str | None = None,
                   from_state: str | None = None, to_state: str | None = None, detail: Any = None) -> dict[str, Any]:
        return {"run_id": run_id, "step_id": step_id, "ts": moment, "actor": actor, "action": action,
                "from_state": from_state, "to_state": to_state, "detail": None if detail is None else dumps(detail)}

    def _audit(self, conn: Connection, run_id: int, moment: float, actor: str, action: str, **kw: Any) -> None:
        conn.execute(plan_audit.insert().values(**self._audit_row(run_id, moment, actor, action, **kw)))

    # ---- starting runs -----------------------------------------------------------------------------------------

    def start(self, requests: Iterable[StartRequest]) -> StartResult:
        """Open runs for these requests; a (playbook, subject) that already has a run is left alone and reported
        in `existing`. Bulk statements, because 12345 work orders arrive by the thousand."""
        now = self.now()
        moment = ts(now)
        unique: dict[tuple[str, str], StartRequest] = {}
        for r in requests:
            self.playbook(r.playbook_id)
            unique.setdefault((r.playbook_id, r.subject), r)
        result = StartResult()
        if not unique:
            return result
        try:
            with self.store.write() as conn:
                self._start_in(conn, list(unique.values()), moment, result)
        except StorageError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
            # Another writer opened one of these runs between our check and our insert: the unique constraint
            # refused it. Redo one by one so the others still start.
            result = StartResult()
            for request in unique.values():
                try:
                    with self.store.write() as conn:
                        self._start_in(conn, [request], moment, result)
                except StorageError as inner:
                    if not isinstance(inner.__cause__, IntegrityError):
                        raise
                    result.existing.extend(self._ids(request.playbook_id, [request.subject]).values())
        return result

    def _ids(self, playbook_id: str, subjects: list[str], conn: Connection | None = None) -> dict[str, int]:
        def query(c: Connection) -> dict[str, int]:
            out: dict[str, int] = {}
            for start in range(0, len(subjects), 500):
                rows = c.execute(select(plan_runs.c.subject, plan_runs.c.id).where(
                    plan_runs.c.playbook_id == playbook_id, plan_runs.c.subject.in_(subjects[start:start + 500])))
                out.update({r.subject: r.id for r in rows})
            return out

        if conn is not None:
            return query(conn)
        with self.store.read() as c:
            return query(c)

    def _start_in(self, conn: Connection, requests: list[StartRequest], moment: float, result: StartResult) -> None:
        by_playbook: dict[str, list[StartRequest]] = {}
        for r in requests:
            by_playbook.setdefault(r.playbook_id, []).append(r)
        for playbook_id, group in by_playbook.items():
            playbook = self.playbooks[playbook_id]
            version = self._version(playbook)
            known = self._ids(playbook_id, [r.subject for r in group], conn)
            result.existing.extend(known.values())
            fresh = [r for r in group if r.subject not in known]
            if not fresh:
                continue
            # Everything about each run is computed first (steps, replies already given, whether the run is already
            # closed), so a batch costs three inserts and one select whatever its size.
            planned = [self._plan_steps(playbook, r, moment) for r in fresh]
            insert_many(conn, plan_runs, [{
                "playbook_id": playbook_id, "playbook_version": version, "subject": r.subject,
                "title": r.title[:500], "state": "closed" if closed is not None else "open", "trigger": r.trigger,
                "alert_id": r.alert_id, "item_id": r.item_id, "event_id": r.event_id, "labels": dumps(r.labels),
                "region": r.labels.get("region") or None, "topic": r.labels.get("topic") or None,
                "department": r.labels.get("department") or None,
                "received_ts": ts(r.received) if r.received else None,
                "detected_ts": ts(r.detected) if r.detected else None,
                "alert_ts": ts(r.alert) if r.alert else None, "started_ts": moment, "started_by": r.started_by,
                "closed_ts": closed, "first_response_ts": first_response, "updated_ts": moment}
                for r, (_steps, _evidence, first_response, closed) in zip(fresh, planned, strict=True)])
            ids = self._ids(playbook_id, [r.subject for r in fresh], conn)
            steps, trail, evidence = [], [], []
            for r, (rows, proofs, _first, closed) in zip(fresh, planned, strict=True):
                run_id = ids[r.subject]
                result.started.append(run_id)
                trail.append(self._audit_row(run_id, moment, r.started_by, "start_run", detail={
                    "playbook": playbook_id, "version": version, "trigger": r.trigger, "subject": r.subject}))
                for row in rows:
                    row["run_id"] = run_id
                    if row["state"] == "done":
                        trail.append(self._audit_row(run_id, moment, "system:reply", "complete", step_id=row["step_id"],
                                                     from_state="pending", to_state="done",
                                                     detail={"reason": "the item carries an official reply",
                                                             "replied_at": iso(row["finished_ts"])}))
                steps.extend(rows)
                for proof in proofs:
                    evidence.append({**proof, "run_id": run_id})
                if closed is not None:
                    trail.append(self._audit_row(run_id, moment, "system", "close_run", from_state="open",
                                                 to_state="closed", detail={"reason": "every step is done or skipped"}))
            # The driver's executemany, not SQLAlchemy's per-row parameter processing (an import starts thousands).
            insert_many(conn, plan_steps, steps)
            insert_many(conn, plan_audit, trail)
            insert_many(conn, plan_evidence, evidence)

    def _version(self, playbook: Playbook) -> str:
        cached = self._versions.get(playbook.id)
        if cached is None or cached[0] is not playbook:
            cached = (playbook, playbook.version)
            self._versions[playbook.id] = cached
        return cached[1]

    def _plan_steps(self, playbook: Playbook, r: StartRequest,
                    moment: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]], float | None, float | None]:
        """A new run's step rows (run_id filled later), evidence from a reply, first response and close times."""
        anchors = {"received": r.received, "detected": r.detected, "alert": r.alert, "run_start": None}
        # Steps a reply already finished, first: a step anchored on one of them may come earlier in the list.
        done_at: dict[str, float] = {}
        if r.reply_at is not None:
            done_at = {spec.id: ts(r.reply_at) for spec in playbook.steps if spec.completes_on_reply}
        rows: list[dict[str, Any]] = []
        proofs: list[dict[str, Any]] = []
        first_response: float | None = None
        for position, spec in enumerate(playbook.steps):
            due = spec.due_for(r.labels)
            dep = spec.depends_on
            if dep is not None:
                anchor_ts = done_at.get(dep)
            else:
                anchor = anchors.get(spec.anchor)
                anchor_ts = ts(anchor) if anchor is not None else moment  # unknown anchor: the run's start
            row = {"step_id": spec.id, "position": position, "title": spec.title, "role": spec.role, "assignee": None,
                   "state": "pending", "due_spec": str(due) if due else None, "anchor": spec.anchor,
                   "anchor_ts": anchor_ts, "warned_ts": None, "breached_ts": None, "round": 0, "started_ts": None,
                   "finished_ts": None, "skip_reason": None, "extension": None, "updated_ts": moment,
                   **self._schedule(spec, str(due) if due else None, anchor_ts)}
            if spec.completes_on_reply and r.reply_at is not None:
                reply_ts = ts(r.reply_at)
                row.update(state="done", started_ts=reply_ts, finished_ts=reply_ts, next_check_ts=None)
                if spec.public_response:
                    first_response = reply_ts if first_response is None else min(first_response, reply_ts)
                if "text" in spec.evidence:
                    proofs.append({"step_id": spec.id, "kind": "text",
                                   "value": (r.reply_text or "")[:self.config.max_text_chars], "media_type": None,
                                   "size": None, "sha256": None, "content": None, "actor": "system:reply", "ts": moment})
            rows.append(row)
        closed = max(done_at.values()) if rows and all(x["state"] == "done" for x in rows) else None
        return rows, proofs, first_response, closed

    def start_manual(self, playbook_id: str, *, actor: str, title: str = "", item_id: int | None = None,
                     event_id: str | None = None, received: datetime | None = None, detected: datetime | None = None,
                     labels: dict[str, str] | None = None, item: Any = None) -> dict[str, Any]:
        """Start a run by hand (API, CLI); a run of this playbook for the same subject is a 409 naming it."""
        if not actor.strip():
            raise _bad("actor", "starting a run needs an actor: who starts it")
        self.playbook(playbook_id)
        now = self.now()
        if event_id:
            subject = f"event:{event_id}"
        elif item_id is not None:
            subject = f"item:{item_id}"
        else:
            subject = f"manual:{hashlib.sha1(f'{actor}{ts(now)}{title}'.encode()).hexdigest()[:16]}"
        merged = dict(labels or {})
        if item is not None:
            merged = {**subject_labels(item), **merged}
            received = received or item.published_at
            detected = detected or item.fetched_at
            title = title or item.title or item.content[:40]
        request = StartRequest(playbook_id=playbook_id, subject=subject, title=title or playbook_id, trigger="manual",
                               labels=merged, item_id=item_id, event_id=event_id, received=received or now,
                               detected=detected or received or now, started_by=actor.strip())
        result = self.start([request])
        if not result.started:
            existing = result.existing[0] if result.existing else None
            raise _bad("subject", f"playbook {playbook_id!r} already has run {existing} for {subject}", InvalidTransition)
        return self.get(result.started[0])

    # ---- reading -----------------------------------------------------------------------------------------------

    def _run_row(self, conn: Connection, run_id: int) -> Any:
        row = conn.execute(select(plan_runs).where(plan_runs.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"plan run {run_id} not found")
        return row

    def _step_row(self, conn: Connection, run_id: int, step_id: str) -> Any:
        row = conn.execute(select(plan_steps).where(plan_steps.c.run_id == run_id, plan_steps.c.step_id == step_id)).first()
        if row is None:
            self._run_row(conn, run_id)
            raise NotFound(f"plan run {run_id} has no step {step_id!r}")
        return row

    def step_public(self, row: Any, now: float, spec: StepSpec | None = None) -> dict[str, Any]:
        active = row.state in ACTIVE_STATES
        time_left = None if (row.due_ts is None or not active) else round(row.due_ts - now, 1)
        out = {"step_id": row.step_id, "position": row.position, "title": row.title, "role": row.role,
               "assignee": row.assignee, "state": row.state, "due_spec": row.due_spec, "anchor": row.anchor,
               "anchor_at": iso(row.anchor_ts), "due": iso(row.due_ts), "warn_at": iso(row.warn_ts),
               "calendar": row.calendar, "time_left": time_left,
               "overdue": bool(row.due_ts is not None and ((active and now > row.due_ts)
                                                           or (row.finished_ts or 0) > row.due_ts)),
               "met": (None if row.due_ts is None or row.state != "done" or row.finished_ts is None
                       else row.finished_ts <= row.due_ts),
               "warned_at": iso(row.warned_ts), "breached_at": iso(row.breached_ts), "round": row.round,
               "started_at": iso(row.started_ts), "finished_at": iso(row.finished_ts), "skip_reason": row.skip_reason,
               "extension": row.extension, "waiting_for": None}
        if spec is not None:
            out.update(approval=spec.approval, evidence_required=spec.evidence, statement=spec.statement,
                       public_response=spec.public_response, basis=spec.basis)
            if row.due_ts is None and spec.depends_on:
                out["waiting_for"] = spec.depends_on
        return out

    def run_public(self, row: Any, steps: list[Any] | None = None, now: float | None = None) -> dict[str, Any]:
        out = {"id": row.id, "playbook_id": row.playbook_id, "playbook_version": row.playbook_version,
               "subject": row.subject, "title": row.title, "state": row.state, "trigger": row.trigger,
               "alert_id": row.alert_id, "item_id": row.item_id, "event_id": row.event_id,
               "labels": json.loads(row.labels), "region": row.region, "topic": row.topic, "department": row.department,
               "received_at": iso(row.received_ts), "detected_at": iso(row.detected_ts), "alert_at": iso(row.alert_ts),
               "started_at": iso(row.started_ts), "started_by": row.started_by, "closed_at": iso(row.closed_ts),
               "first_response_at": iso(row.first_response_ts)}
        if steps is not None:
            playbook = self.playbooks.get(row.playbook_id)
            specs = {s.id: s for s in playbook.steps} if playbook else {}
            moment = ts(self.now()) if now is None else now
            out["steps"] = [self.step_public(s, moment, specs.get(s.step_id)) for s in steps]
        return out

    def get(self, run_id: int) -> dict[str, Any]:
        with self.store.read() as conn:
            row = self._run_row(conn, run_id)
            steps = conn.execute(select(plan_steps).where(plan_steps.c.run_id == run_id)
                                 .order_by(plan_steps.c.position)).all()
            approvals = conn.execute(select(plan_approvals).where(plan_approvals.c.run_id == run_id)
                                     .order_by(plan_approvals.c.id)).all()
            evidence = conn.execute(select(*[c for c in plan_evidence.c if c.name != "content"])
                                    .where(plan_evidence.c.run_id == run_id).order_by(plan_evidence.c.id)).all()
        out = self.run_public(row, steps)
        by_step: dict[str, dict[str, list]] = {s["step_id"]: {"approvals": [], "evidence": []} for s in out["steps"]}
        for a in approvals:
            by_step[a.step_id]["approvals"].append({"round": a.round, "position": a.position, "role": a.role,
                                                    "actor": a.actor, "decision": a.decision, "comment": a.comment,
                                                    "at": iso(a.ts)})
        for e in evidence:
            by_step[e.step_id]["evidence"].append(evidence_public(e))
        for s in out["steps"]:
            s.update(by_step[s["step_id"]])
        return out

    def list(self, *, item_id: int | None = None, event_id: str | None = None, playbook_id: str | None = None,
             state: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        r = plan_runs.c
        conditions = []
        if item_id is not None:
            # The item's own runs and the runs of the event it belongs to (a plan for the matter it is part of).
            try:
                event = self.store.get(item_id).enrichment.event_id
            except NotFound:
                event = None
            conditions.append(or_(r.item_id == item_id, r.event_id == event) if event else r.item_id == item_id)
        if event_id is not None:
            conditions.append(r.event_id == event_id)
        if playbook_id is not None:
            conditions.append(r.playbook_id == playbook_id)
        if state is not None:
            conditions.append(r.state == state)
        where = and_(*conditions) if conditions else None
        with self.store.read() as conn:
            query = select(plan_runs).order_by(r.id.desc()).limit(limit).offset(offset)
            count_q = select(func.count()).select_from(plan_runs)
            if where is not None:
                query, count_q = query.where(where), count_q.where(where)
            rows = conn.execute(query).all()
            count = conn.execute(count_q).scalar_one()
            steps: dict[int, list[Any]] = {row.id: [] for row in rows}
            if rows:
                for s in conn.execute(select(plan_steps).where(plan_steps.c.run_id.in_(list(steps)))
                                      .order_by(plan_steps.c.run_id, plan_steps.c.position)):
                    steps[s.run_id].append(s)
        moment = ts(self.now())
        return [self.run_public(row, steps[row.id], moment) for row in rows], count

    def audit(self, run_id: int, limit: int = 500) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            self._run_row(conn, run_id)
            rows = conn.execute(select(plan_audit).where(plan_audit.c.run_id == run_id)
                                .order_by(plan_audit.c.id).limit(limit)).all()
        return [{"id": a.id, "step_id": a.step_id, "at": iso(a.ts), "actor": a.actor, "action": a.action,
                 "from_state": a.from_state, "to_state": a.to_state,
                 "detail": json.loads(a.detail) if a.detail else None} for a in rows]

    def evidence_file(self, run_id: int, evidence_id: int) -> tuple[bytes, str, str]:
        with self.store.read() as conn:
            row = conn.execute(select(plan_evidence).where(plan_evidence.c.id == evidence_id,
                                                           plan_evidence.c.run_id == run_id)).first()
        if row is None or row.kind != "file":
            raise NotFound(f"plan run {run_id} has no file evidence {evidence_id}")
        return row.content or b"", row.value or "file", row.media_type or "application/octet-stream"

    # ---- who may act ---------------------------------------------------------------------------------------------

    def holds(self, actor: str, role: str | None, *, sign: bool = False) -> bool:
        """Whether `actor` holds `role`. A role without members is open for step work (`open_roles`), but signing
        (drafting or approving a statement, granting an extension, cancelling a run) always needs a listed member."""
        if role is None:
            return not sign
        cfg = self.config.roles.get(role)
        if cfg is None:
            return False
        if not cfg.members:
            return self.config.open_roles and not sign
        return actor in cfg.members

    def _check_actor(self, actor: str, roles: list[str | None], what: str, assignee: str | None = None, *,
                     sign: bool = False) -> str:
        actor = (actor or "").strip()
        if not actor:
            raise _bad("actor", f"{what} needs an actor: who does it")
        if assignee and actor == assignee and not sign:
            return actor
        if any(self.holds(actor, role, sign=sign) for role in roles):
            return actor
        names = ", ".join(r for r in roles if r) or "none"
        empty = [r for r in roles if r and r in self.config.roles and not self.config.roles[r].members]
        hint = f"; nobody holds {', '.join(empty)} yet: list its members in playbooks.roles" if sign and empty else ""
        raise PermissionDenied(f"{actor!r} does not hold the role needed to {what} (role: {names}){hint}",
                               errors=[{"loc": ["actor"], "msg": f"{actor!r} does not hold role {names}"}])

    # ---- the state machine -----------------------------------------------------------------------------------

    def _context(self, conn: Connection, run_id: int, step_id: str) -> tuple[Any, Any, Playbook, StepSpec]:
        run = self._run_row(conn, run_id)
        step = self._step_row(conn, run_id, step_id)
        playbook = self.playbook(run.playbook_id)
        return run, step, playbook, playbook.step(step_id)

    def _require_open(self, run: Any) -> None:
        if run.state != "open":
            raise _bad("run", f"plan run {run.id} is {run.state}; nothing can change any more", InvalidTransition)

    def _check_transition(self, step: Any, to_state: str) -> str:
        if to_state not in STEP_STATES:
            raise _bad("to", f"unknown state {to_state!r}; states: {', '.join(STEP_STATES)}")
        action = TRANSITIONS.get((step.state, to_state))
        if action is None:
            allowed = sorted(t for (f, t) in TRANSITIONS if f == step.state)
            raise _bad("to", f"step {step.step_id!r} is {step.state}; it cannot become {to_state} "
                       f"(allowed from {step.state}: {', '.join(allowed) or 'nothing, it is final'})", InvalidTransition)
        return action

    def _check_evidence(self, conn: Connection, step: Any, spec: StepSpec) -> None:
        if not spec.evidence:
            return
        kinds = {r.kind for r in conn.execute(select(plan_evidence.c.kind).where(
            plan_evidence.c.run_id == step.run_id, plan_evidence.c.step_id == step.step_id))}
        missing = [k for k in spec.evidence if k not in kinds]
        if missing:
            raise PlaybookError(f"step {step.step_id!r} needs evidence before it is finished: missing {', '.join(missing)}",
                                errors=[{"loc": ["evidence", k], "msg": "required evidence missing"} for k in missing])

    def _check_dependency(self, conn: Connection, step: Any, spec: StepSpec) -> None:
        dep = spec.depends_on
        if dep is None:
            return
        state = conn.execute(select(plan_steps.c.state).where(plan_steps.c.run_id == step.run_id,
                                                               plan_steps.c.step_id == dep)).scalar_one()
        if state not in TERMINAL_STATES:
            raise _bad("to", f"step {step.step_id!r} follows step {dep!r}, which is {state}", InvalidTransition)

    def transition(self, run_id: int, step_id: str, to_state: str, *, actor: str, reason: str = "") -> dict[str, Any]:
        """Move a step along the transition table. Approving and rejecting go through `approve`/`reject`."""
        now = self.now()
        moment = ts(now)
        with self.store.write() as conn:
            run, step, playbook, spec = self._context(conn, run_id, step_id)
            self._require_open(run)
            action = self._check_transition(step, to_state)
            if action in ("approve", "reject"):
                raise _bad("to", f"use the approval endpoint to {action} step {step_id!r}", InvalidTransition)
            roles: list[str | None] = [spec.role]
            if action == "submit":
                if not spec.approval:
                    raise _bad("to", f"step {step_id!r} has no approval chain; complete it (to: done) instead",
                               InvalidTransition)
                roles = [spec.approval[0]]
            if action == "complete" and spec.approval:
                raise _bad("to", f"step {step_id!r} needs approval ({' → '.join(spec.approval)}); submit it "
                           "(to: awaiting_approval)", InvalidTransition)
            if action == "skip":
                if not spec.skippable:
                    raise _bad("to", f"step {step_id!r} cannot be skipped (statutory step)", InvalidTransition)
                if not reason.strip():
                    raise _bad("reason", "skipping a step needs a reason")
                roles = [spec.role, "leader"]
            who = self._check_actor(actor, roles, f"{action} step {step_id!r}", step.assignee, sign=action == "submit")
            if action == "start":
                self._check_dependency(conn, step, spec)
            if action in ("submit", "complete"):
                self._check_evidence(conn, step, spec)
            values: dict[str, Any] = {"state": to_state, "updated_ts": moment}
            if action == "start":
                values["started_ts"] = moment
            if action in ("complete", "skip"):
                values.update(finished_ts=moment, next_check_ts=None)
                if action == "skip":
                    values["skip_reason"] = reason.strip()
            conn.execute(plan_steps.update().where(plan_steps.c.run_id == run_id, plan_steps.c.step_id == step_id)
                         .values(**values))
            if action == "submit":
                conn.execute(plan_approvals.insert().values(run_id=run_id, step_id=step_id, round=step.round,
                                                            position=0, role=spec.approval[0], actor=who,
                                                            decision="drafted", comment=reason or None, ts=moment))
            self._audit(conn, run_id, moment, who, action, step_id=step_id, from_state=step.state, to_state=to_state,
                        detail={"reason": reason} if reason else None)
            if action in ("complete", "skip"):
                self._after_finish(conn, run_id, playbook, spec, moment, moment, skipped=action == "skip")
        logger.info("plan step changed run_id=%d step=%s %s→%s", run_id, step_id, step.state, to_state)
        if action in ("complete", "skip"):
            self._finished([(run_id, step_id)])
        return self.get(run_id)

    def _after_finish(self, conn: Connection, run_id: int, playbook: Playbook, spec: StepSpec, at: float,
                      moment: float, *, skipped: bool = False) -> None:
        """A finished step starts the clocks anchored on it, may be the first public response, may close the run."""
        for other in playbook.steps:
            if other.depends_on == spec.id:
                row = conn.execute(select(plan_steps.c.due_spec, plan_steps.c.state).where(
                    plan_steps.c.run_id == run_id, plan_steps.c.step_id == other.id)).first()
                if row is None or row.state in TERMINAL_STATES:
                    continue
                conn.execute(plan_steps.update().where(plan_steps.c.run_id == run_id, plan_steps.c.step_id == other.id)
                             .values(anchor_ts=at, updated_ts=moment, **self._schedule(other, row.due_spec, at)))
        if spec.public_response and not skipped:
            conn.execute(plan_runs.update().where(plan_runs.c.id == run_id, plan_runs.c.first_response_ts.is_(None))
                         .values(first_response_ts=at))
        active = conn.execute(select(func.count()).select_from(plan_steps).where(
            plan_steps.c.run_id == run_id, plan_steps.c.state.in_(ACTIVE_STATES))).scalar_one()
        if active == 0:
            conn.execute(plan_runs.update().where(plan_runs.c.id == run_id, plan_runs.c.state == "open")
                         .values(state="closed", closed_ts=at, updated_ts=moment))
            self._audit(conn, run_id, moment, "system", "close_run", from_state="open", to_state="closed",
                        detail={"reason": "every step is done or skipped"})
        else:
            conn.execute(plan_runs.update().where(plan_runs.c.id == run_id).values(updated_ts=moment))

    # ---- approvals ---------------------------------------------------------------------------------------------

    def _round(self, conn: Connection, run_id: int, step: Any) -> list[Any]:
        return conn.execute(select(plan_approvals).where(
            plan_approvals.c.run_id == run_id, plan_approvals.c.step_id == step.step_id,
            plan_approvals.c.round == step.round).order_by(plan_approvals.c.position)).all()

    def approve(self, run_id: int, step_id: str, *, actor: str, comment: str = "") -> dict[str, Any]:
        return self._decide(run_id, step_id, actor=actor, comment=comment, approve=True)

    def reject(self, run_id: int, step_id: str, *, actor: str, comment: str) -> dict[str, Any]:
        if not comment.strip():
            raise _bad("comment", "rejecting a statement needs a comment saying what to change")
        return self._decide(run_id, step_id, actor=actor, comment=comment, approve=False)

    def _decide(self, run_id: int, step_id: str, *, actor: str, comment: str, approve: bool) -> dict[str, Any]:
        now = self.now()
        moment = ts(now)
        with self.store.write() as conn:
            run, step, playbook, spec = self._context(conn, run_id, step_id)
            self._require_open(run)
            if step.state != "awaiting_approval":
                raise _bad("state", f"step {step_id!r} is {step.state}, not awaiting approval", InvalidTransition)
            signed = self._round(conn, run_id, step)
            position = len(signed)
            if position >= len(spec.approval):  # cannot happen: the last approval finishes the step
                raise _bad("state", f"step {step_id!r} has every approval of this round", InvalidTransition)
            role = spec.approval[position]
            finished = False
            who = self._check_actor(actor, [role], f"{'approve' if approve else 'reject'} step {step_id!r} as {role}",
                                    sign=True)
            if self.config.four_eyes and who in {a.actor for a in signed}:
                raise PermissionDenied(f"{who!r} already signed this statement in this round (drafted or approved); "
                                       "another person must sign as " + role,
                                       errors=[{"loc": ["actor"], "msg": "the same person cannot sign twice"}])
            conn.execute(plan_approvals.insert().values(run_id=run_id, step_id=step_id, round=step.round,
                                                        position=position, role=role, actor=who,
                                                        decision="approved" if approve else "rejected",
                                                        comment=comment or None, ts=moment))
            last = position == len(spec.approval) - 1
            if not approve:
                conn.execute(plan_steps.update().where(plan_steps.c.run_id == run_id, plan_steps.c.step_id == step_id)
                             .values(state="in_progress", round=step.round + 1, updated_ts=moment))
                self._audit(conn, run_id, moment, who, "reject", step_id=step_id, from_state=step.state,
                            to_state="in_progress", detail={"role": role, "comment": comment, "round": step.round})
            elif last:
                conn.execute(plan_steps.update().where(plan_steps.c.run_id == run_id, plan_steps.c.step_id == step_id)
                             .values(state="done", finished_ts=moment, next_check_ts=None, updated_ts=moment))
                self._audit(conn, run_id, moment, who, "approve", step_id=step_id, from_state=step.state,
                            to_state="done", detail={"role": role, "comment": comment, "round": step.round, "final": True})
                self._after_finish(conn, run_id, playbook, spec, moment, moment)
                finished = True
            else:
                self._audit(conn, run_id, moment, who, "approve", step_id=step_id,
                            detail={"role": role, "comment": comment, "round": step.round,
                                    "next": spec.approval[position + 1]})
        if finished:
            self._finished([(run_id, step_id)])
        return self.get(run_id)

    # ---- assignment, comments, evidence, extensions ---------------------------------------------------------------

    def assign(self, run_id: int, step_id: str, *, assignee: str, actor: str) -> dict[str, Any]:
        assignee = (assignee or "").strip()
        if not assignee:
            raise _bad("assignee", "name the person the step is assigned to")
        moment = ts(self.now())
        with self.store.write() as conn:
            run, step, _playbook, spec = self._context(conn, run_id, step_id)
            self._require_open(run)
            if step.state in TERMINAL_STATES:
                raise _bad("state", f"step {step_id!r} is {step.state}; it cannot be reassigned", InvalidTransition)
            who = self._check_actor(actor, [spec.role, "leader"], f"assign step {step_id!r}")
            conn.execute(plan_steps.update().where(plan_steps.c.run_id == run_id, plan_steps.c.step_id == step_id)
                         .values(assignee=assignee, updated_ts=moment))
            self._audit(conn, run_id, moment, who, "assign", step_id=step_id,
                        detail={"from": step.assignee, "to": assignee})
        return self.get(run_id)

    def comment(self, run_id: int, *, actor: str, text: str, step_id: str | None = None) -> dict[str, Any]:
        actor, text = (actor or "").strip(), (text or "").strip()
        if not actor:
            raise _bad("actor", "a comment needs an actor")
        if not text:
            raise _bad("text", "a comment needs text")
        if len(text) > self.config.max_text_chars:
            raise _bad("text", f"comment is {len(text)} characters; at most {self.config.max_text_chars}")
        moment = ts(self.now())
        with self.store.write() as conn:
            self._run_row(conn, run_id)
            if step_id is not None:
                self._step_row(conn, run_id, step_id)
            conn.execute(plan_audit.insert().values(**self._audit_row(run_id, moment, actor, "comment", step_id=step_id,
                                                                      detail={"text": text})))
        return {"run_id": run_id, "step_id": step_id, "actor": actor, "text": text, "at": iso(moment)}

    def add_evidence(self, run_id: int, step_id: str, *, kind: str, actor: str, value: str | None = None,
                     content_b64: str | None = None, filename: str | None = None,
                     media_type: str | None = None) -> dict[str, Any]:
        """Attach a link, a text or a file (base64) to a step; checked in full before anything is stored."""
        cfg = self.config
        content: bytes | None = None
        size = sha = None
        if kind == "link":
            value = (value or "").strip()
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc or len(value) > 2000:
                raise _bad("value", "a link must be an http(s) URL of at most 2000 characters")
        elif kind == "text":
            value = (value or "").strip()
            if not value:
                raise _bad("value", "text evidence cannot be empty")
            if len(value) > cfg.max_text_chars:
                raise _bad("value", f"text evidence is {len(value)} characters; at most {cfg.max_text_chars}")
        elif kind == "file":
            if not filename or not filename.strip() or len(filename) > 255 or "/" in filename or "\\" in filename:
                raise _bad("filename", "file evidence needs a plain file name (no path) of at most 255 characters")
            if not content_b64:
                raise _bad("content_b64", "file evidence needs its content, base64-encoded")
            if len(content_b64) > (cfg.max_evidence_bytes * 4) // 3 + 8:
                raise _bad("content_b64", f"file is larger than the limit of {cfg.max_evidence_bytes} bytes")
            try:
                content = base64.b64decode(content_b64, validate=True)
            except (binascii.Error, ValueError):
                raise _bad("content_b64", "content is not valid base64") from None
            if len(content) > cfg.max_evidence_bytes:
                raise _bad("content_b64", f"file is {len(content)} bytes; at most {cfg.max_evidence_bytes}")
            size, sha = len(content), hashlib.sha256(content).hexdigest()
            value = filename.strip()
        else:
            raise _bad("kind", f"unknown evidence kind {kind!r}; use link, text or file")
        moment = ts(self.now())
        with self.store.write() as conn:
            run, step, _playbook, spec = self._context(conn, run_id, step_id)
            self._require_open(run)
            if step.state in TERMINAL_STATES:
                raise _bad("state", f"step {step_id!r} is {step.state}; evidence can no longer be added", InvalidTransition)
            who = self._check_actor(actor, [spec.role, *spec.approval], f"add evidence to step {step_id!r}", step.assignee)
            evidence_id = conn.execute(plan_evidence.insert().values(
                run_id=run_id, step_id=step_id, kind=kind, value=value, media_type=media_type if kind == "file" else None,
                size=size, sha256=sha, content=content, actor=who, ts=moment)).inserted_primary_key[0]
            self._audit(conn, run_id, moment, who, "evidence", step_id=step_id,
                        detail={"evidence_id": evidence_id, "kind": kind, "size": size, "sha256": sha,
                                "value": value if kind != "text" else value[:200]})
        return {"id": evidence_id, "run_id": run_id, "step_id": step_id, "kind": kind, "value": value, "size": size,
                "sha256": sha, "media_type": media_type if kind == "file" else None, "actor": who, "at": iso(moment)}

    def extend(self, run_id: int, step_id: str, *, by: str, actor: str, reason: str) -> dict[str, Any]:
        """Grant extra time (延期) within the step's `extension` allowance, by its extension role."""
        if not (reason or "").strip():
            raise _bad("reason", "an extension needs a reason")
        try:
            extra = parse_due(by)
        except ValueError as exc:
            raise _bad("by", str(exc)) from None
        moment = ts(self.now())
        with self.store.write() as conn:
            run, step, _playbook, spec = self._context(conn, run_id, step_id)
            self._require_open(run)
            if spec.extension is None:
                raise _bad("by", f"step {step_id!r} allows no extension", InvalidTransition)
            if step.state in TERMINAL_STATES:
                raise _bad("state", f"step {step_id!r} is {step.state}", InvalidTransition)
            if step.due_spec is None or step.anchor_ts is None:
                raise _bad("by", f"step {step_id!r} has no running clock to extend", InvalidTransition)
            allowance = parse_due(spec.extension)
            used = parse_due(step.extension) if step.extension else None
            try:
                total = used.plus(extra) if used else extra
                if total.unit != allowance.unit:
                    raise ValueError(f"the extension must be in {allowance.unit}")
            except ValueError as exc:
                raise _bad("by", str(exc)) from None
            if total.amount > allowance.amount:
                raise _bad("by", f"step {step_id!r} may be extended by at most {allowance} in all "
                           f"({used or 'nothing'} already granted)")
            role = spec.extension_role or (spec.approval[-1] if spec.approval else "leader")
            who = self._check_actor(actor, [role], f"extend step {step_id!r}", sign=True)
            base = parse_due(step.due_spec)
            if step.extension:
                base = parse_due(f"{base.amount - used.amount}{base.unit}")  # type: ignore[union-attr]
            new_due = base.plus(total)
            schedule = self._schedule(spec, str(new_due), step.anchor_ts)
            conn.execute(plan_steps.update().where(plan_steps.c.run_id == run_id, plan_steps.c.step_id == step_id)
                         .values(due_spec=str(new_due), extension=str(total), warned_ts=None, breached_ts=None,
                                 updated_ts=moment, **schedule))
            self._audit(conn, run_id, moment, who, "extend", step_id=step_id,
                        detail={"by": str(extra), "total": str(total), "due": iso(schedule["due_ts"]), "reason": reason})
        return self.get(run_id)

    def cancel(self, run_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        if not (reason or "").strip():
            raise _bad("reason", "cancelling a run needs a reason")
        moment = ts(self.now())
        with self.store.write() as conn:
            run = self._run_row(conn, run_id)
            self._require_open(run)
            who = self._check_actor(actor, ["leader"], f"cancel run {run_id}", sign=True)
            conn.execute(plan_runs.update().where(plan_runs.c.id == run_id).values(state="cancelled", closed_ts=moment,
                                                                                  updated_ts=moment))
            conn.execute(plan_steps.update().where(plan_steps.c.run_id == run_id).values(next_check_ts=None))
            self._audit(conn, run_id, moment, who, "cancel_run", from_state="open", to_state="cancelled",
                        detail={"reason": reason})
        self._finished([(run_id, None)])
        return self.get(run_id)

    # ---- replies arriving later ------------------------------------------------------------------------------------

    def complete_on_reply(self, replies: dict[int, tuple[datetime, str]]) -> int:
        """Steps `completes_on_reply` of runs for these items become done at the reply time. Returns steps done."""
        if not replies:
            return 0
        moment = ts(self.now())
        done = 0
        stopped: list[tuple[int, str | None]] = []
        candidates = {(pid, s.id) for pid, p in self.playbooks.items() for s in p.steps if s.completes_on_reply}
        if not candidates:
            return 0
        with self.store.write() as conn:
            ids = list(replies)
            rows = []
            for start in range(0, len(ids), 500):
                rows.extend(conn.execute(
                    select(plan_runs.c.id, plan_runs.c.item_id, plan_runs.c.playbook_id, plan_steps.c.step_id,
                           plan_steps.c.state)
                    .join(plan_steps, plan_steps.c.run_id == plan_runs.c.id)
                    .where(plan_runs.c.item_id.in_(ids[start:start + 500]), plan_runs.c.state == "open",
                           plan_steps.c.state.in_(ACTIVE_STATES))).all())
            for row in rows:
                if (row.playbook_id, row.step_id) not in candidates or row.playbook_id not in self.playbooks:
                    continue
                replied_at, text = replies[row.item_id]
                playbook = self.playbooks[row.playbook_id]
                spec = playbook.step(row.step_id)
                at = ts(replied_at)
                conn.execute(plan_steps.update().where(plan_steps.c.run_id == row.id, plan_steps.c.step_id == row.step_id)
                             .values(state="done", started_ts=func.coalesce(plan_steps.c.started_ts, at),
                                     finished_ts=at, next_check_ts=None, updated_ts=moment))
                if "text" in spec.evidence:
                    conn.execute(plan_evidence.insert().values(run_id=row.id, step_id=row.step_id, kind="text",
                                                               value=text[:self.config.max_text_chars], actor="system:reply",
                                                               ts=moment))
                self._audit(conn, row.id, moment, "system:reply", "complete", step_id=row.step_id,
                            from_state=row.state, to_state="done",
                            detail={"reason": "the item now carries an official reply", "replied_at": iso(at)})
                self._after_finish(conn, row.id, playbook, spec, at, moment)
                done += 1
                stopped.append((row.id, row.step_id))
        self._finished(stopped)
        return done

    def _finished(self, stopped: list[tuple[int, str | None]]) -> None:
        if not stopped:
            return
        for listener in list(self.on_finished):
            try:
                listener(stopped)
            except Exception:  # noqa: BLE001 - the step change is committed whatever a listener does
                logger.exception("on_finished listener failed")


def evidence_public(row: Any) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "value": row.value, "size": row.size, "sha256": row.sha256,
            "media_type": row.media_type, "actor": row.actor, "at": iso(row.ts)}


def subject_labels(item: Any) -> dict[str, str]:
    """The labels item triggers match on (the alert label names, plus `grade`)."""
    e = item.enrichment
    department = item.extra.get("handling_unit") or (item.reply.department if item.reply else None) or ""
    return {"item_id": str(item.id or ""), "source": item.source, "channel": str(item.channel),
            "region": item.region or "", "department": str(department),
            "request_type": normalise_label("request_type", str(item.extra.get("request_type") or "")),
            "topic": e.topic or "", "emotion": e.emotion or "", "risk_level": e.risk_level or "",
            "grade": e.risk_level or "", "schemes": ",".join(sorted(set(e.schemes))), "event_id": e.event_id or ""}
