"""Clocks: which steps reach their warning or their deadline now. Reads by index (`next_check_ts`), so a tick costs
what is due, not what is open; marks what it announced so a notice is raised once per due moment."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select

from playbooks.runs import ACTIVE_STATES, PlanRuns, iso, ts
from playbooks.store import plan_audit, plan_runs, plan_steps

logger = logging.getLogger(__name__)


@dataclass
class ClockNotice:
    """A step whose warning time or deadline has come; `stage` is warning or breach."""

    stage: str
    run_id: int
    step_id: str
    playbook_id: str
    run_title: str
    step_title: str
    role: str | None
    receiver: str | None
    assignee: str | None
    due_ts: float
    due_spec: str | None
    calendar: str | None
    event_id: str | None
    item_id: int | None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def due_at(self) -> str:
        return iso(self.due_ts) or ""


class PlanClock:
    def __init__(self, runs: PlanRuns) -> None:
        self.runs = runs

    def due(self, now: datetime, limit: int = 5000) -> list[ClockNotice]:
        """Notices for steps whose next check has come (breach wins over a warning not yet announced)."""
        moment = ts(now)
        s, r = plan_steps.c, plan_runs.c
        with self.runs.store.read() as conn:
            rows = conn.execute(
                select(s.run_id, s.step_id, s.title, s.role, s.assignee, s.state, s.due_ts, s.warn_ts, s.warned_ts,
                       s.due_spec, s.calendar, r.playbook_id, r.title.label("run_title"), r.event_id, r.item_id,
                       r.labels, r.state.label("run_state"))
                .join(plan_runs, r.id == s.run_id)
                .where(s.next_check_ts <= moment).order_by(s.next_check_ts).limit(limit)).all()
        notices = []
        roles = self.runs.config.roles
        for row in rows:
            if row.state not in ACTIVE_STATES or row.run_state != "open" or row.due_ts is None:
                notices.append(ClockNotice("stale", row.run_id, row.step_id, row.playbook_id, "", "", None, None, None,
                                           0.0, None, None, None, None))
                continue
            stage = "breach" if moment >= row.due_ts else "warning"
            playbook = self.runs.playbooks.get(row.playbook_id)
            spec_receiver = None
            if playbook is not None:
                spec = next((x for x in playbook.steps if x.id == row.step_id), None)
                spec_receiver = spec.receiver if spec else None
            role_cfg = roles.get(row.role) if row.role else None
            notices.append(ClockNotice(stage, row.run_id, row.step_id, row.playbook_id, row.run_title, row.title,
                                       row.role, spec_receiver or (role_cfg.receiver if role_cfg else None),
                                       row.assignee, row.due_ts, row.due_spec, row.calendar, row.event_id, row.item_id,
                                       json.loads(row.labels)))
        return notices

    def mark(self, notices: list[ClockNotice], now: datetime) -> None:
        """Record what was announced: a warning moves the next check to the deadline, a breach ends the checks."""
        moment = ts(now)
        warned = [{"b_run": n.run_id, "b_step": n.step_id, "b_next": n.due_ts} for n in notices if n.stage == "warning"]
        breached = [{"b_run": n.run_id, "b_step": n.step_id} for n in notices if n.stage == "breach"]
        stale = [{"b_run": n.run_id, "b_step": n.step_id} for n in notices if n.stage == "stale"]
        s = plan_steps.c
        key = (s.run_id == bindparam("b_run")) & (s.step_id == bindparam("b_step"))
        with self.runs.store.write() as conn:
            if warned:
                conn.execute(plan_steps.update().where(key).values(warned_ts=moment, next_check_ts=bindparam("b_next")),
                             warned)
            if breached:
                conn.execute(plan_steps.update().where(key).values(breached_ts=moment, next_check_ts=None), breached)
            if stale:
                conn.execute(plan_steps.update().where(key).values(next_check_ts=None), stale)
            trail = [self.runs._audit_row(n.run_id, moment, "system:clock", n.stage, step_id=n.step_id,
                                          detail={"due": n.due_at, "due_spec": n.due_spec, "calendar": n.calendar,
                                                  "receiver": n.receiver})
                     for n in notices if n.stage != "stale"]
            if trail:
                conn.execute(plan_audit.insert(), trail)

    def tick(self, now: datetime, sink: Any = None, *, limit: int = 5000) -> dict[str, int]:
        """Announce due warnings and breaches (through `sink`, e.g. the alert engine), then mark them.

        Raising first and marking after makes a crash in between repeat the notice, which the alert fingerprint
        turns into a no-op: at least once, never lost."""
        counts = {"warning": 0, "breach": 0, "stale": 0}
        while True:
            notices = self.due(now, limit)
            if not notices:
                return counts
            live = [n for n in notices if n.stage != "stale"]
            if sink is not None and live:
                sink(live)
            self.mark(notices, now)
            for n in notices:
                counts[n.stage] += 1
            if len(notices) < limit:
                return counts
