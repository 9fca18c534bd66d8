"""Outcome review for managers: per run (deadlines met or missed, time to first public response, time to close,
who did what, and the linked event's opinion before vs after the first response) and per period (SLA compliance
by playbook, department, topic and region; CSV export). Reads only."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from core.errors import InputError
from playbooks.runs import ACTIVE_STATES, PlanRuns, iso, ts
from playbooks.store import plan_audit, plan_runs, plan_steps

NEGATIVE_POLARITY = ("negative", "neg", "负面")
NEGATIVE_EMOTIONS = ("anger", "fear", "sadness", "disgust", "愤怒", "恐惧", "悲伤", "厌恶")
GROUPS = ("playbook", "department", "topic", "region")


def step_outcome(row: Any, now: float) -> str:
    """met | missed | open (clock still running) | waiting (its anchor step is not finished) | skipped | no_clock."""
    if row.state == "skipped":
        return "skipped"
    if row.due_ts is None:
        return "no_clock" if row.state not in ACTIVE_STATES else "waiting"
    if row.state == "done":
        return "met" if row.finished_ts is not None and row.finished_ts <= row.due_ts else "missed"
    return "missed" if now > row.due_ts else "open"


class PlanReview:
    def __init__(self, runs: PlanRuns) -> None:
        self.runs = runs

    # ---- one run -----------------------------------------------------------------------------------------------

    def run(self, run_id: int, *, window: timedelta | None = None) -> dict[str, Any]:
        now = ts(self.runs.now())
        with self.runs.store.read() as conn:
            run = self.runs._run_row(conn, run_id)
            steps = conn.execute(select(plan_steps).where(plan_steps.c.run_id == run_id)
                                 .order_by(plan_steps.c.position)).all()
            audit = conn.execute(select(plan_audit.c.actor, plan_audit.c.action, plan_audit.c.step_id, plan_audit.c.ts)
                                 .where(plan_audit.c.run_id == run_id).order_by(plan_audit.c.id)).all()
        outcomes = []
        for s in steps:
            outcome = step_outcome(s, now)
            late = None
            if s.due_ts is not None and outcome == "missed":
                late = round((s.finished_ts or now) - s.due_ts, 1)
            outcomes.append({"step_id": s.step_id, "title": s.title, "role": s.role, "assignee": s.assignee,
                             "state": s.state, "due_spec": s.due_spec, "due": iso(s.due_ts),
                             "finished_at": iso(s.finished_ts), "outcome": outcome, "late_seconds": late,
                             "calendar": s.calendar})
        totals = Counter(o["outcome"] for o in outcomes)
        origin = run.detected_ts or run.received_ts or run.started_ts
        people: dict[str, Counter] = defaultdict(Counter)
        for a in audit:
            people[a.actor][a.action] += 1
        out = {
            "run_id": run.id, "playbook_id": run.playbook_id, "title": run.title, "state": run.state,
            "event_id": run.event_id, "item_id": run.item_id,
            "deadlines": {"met": totals["met"], "missed": totals["missed"], "open": totals["open"],
                          "skipped": totals["skipped"], "steps": outcomes},
            "time_to_first_response": None if run.first_response_ts is None else round(run.first_response_ts - origin, 1),
            "time_to_close": None if run.closed_ts is None else round(run.closed_ts - (run.received_ts or run.started_ts), 1),
            "measured_from": iso(origin),
            "who_did_what": [{"actor": actor, "actions": dict(counts)} for actor, counts in sorted(people.items())],
            "effect": None,
        }
        if run.event_id and run.first_response_ts is not None:
            out["effect"] = self.effect(run.event_id, run.first_response_ts, window or timedelta(hours=24), now)
        return out

    def effect(self, event_id: str, response_ts: float, window: timedelta, now: float) -> dict[str, Any]:
        """The event's volume, negative share and mean risk in [t−w, t) and [t, t+w), t = the first public response."""
        w = window.total_seconds()
        if w <= 0:
            raise InputError("the review window must be longer than zero")

        def measure(start: float, end: float) -> dict[str, Any]:
            rows = self.runs.store.event_opinions(event_id, start, end)
            n = len(rows)
            negative = sum(1 for r in rows if (r.polarity or "").lower() in NEGATIVE_POLARITY
                           or (not r.polarity and (r.emotion or "") in NEGATIVE_EMOTIONS))
            risks = [r.risk_score for r in rows if r.risk_score is not None]
            return {"from": iso(start), "to": iso(end), "volume": n,
                    "negative_share": round(negative / n, 4) if n else None,
                    "mean_risk": round(sum(risks) / len(risks), 2) if risks else None}

        before = measure(response_ts - w, response_ts)
        after = measure(response_ts, response_ts + w)

        def change(key: str) -> float | None:
            a, b = before[key], after[key]
            return None if a is None or b is None else round(b - a, 4)

        return {"response_at": iso(response_ts), "window_hours": w / 3600, "before": before, "after": after,
                "after_complete": now >= response_ts + w,
                "change": {"volume": after["volume"] - before["volume"], "negative_share": change("negative_share"),
                           "mean_risk": change("mean_risk")}}

    # ---- a period ----------------------------------------------------------------------------------------------

    def _period_rows(self, since: datetime, until: datetime) -> list[Any]:
        if until <= since:
            raise InputError("until must be after since", errors=[{"loc": ["query", "until"], "msg": "before since"}])
        s, r = plan_steps.c, plan_runs.c
        with self.runs.store.read() as conn:
            return conn.execute(
                select(s.run_id, s.step_id, s.title, s.role, s.assignee, s.state, s.due_spec, s.due_ts, s.finished_ts,
                       s.calendar, r.playbook_id, r.subject, r.title.label("run_title"), r.region, r.topic, r.department,
                       r.state.label("run_state"))
                .join(plan_runs, r.id == s.run_id)
                .where(s.due_ts >= ts(since), s.due_ts < ts(until), r.state != "cancelled")
                .order_by(s.due_ts, s.run_id)).all()

    def period(self, since: datetime, until: datetime) -> dict[str, Any]:
        """SLA compliance of the clocks that fell due in [since, until): met / (met + missed), by each grouping."""
        now = ts(self.runs.now())
        rows = self._period_rows(since, until)
        groups: dict[str, dict[str, Counter]] = {g: defaultdict(Counter) for g in GROUPS}
        total: Counter = Counter()
        for row in rows:
            outcome = step_outcome(row, now)
            total[outcome] += 1
            keys = {"playbook": row.playbook_id, "department": row.department or "", "topic": row.topic or "",
                    "region": row.region or ""}
            for g in GROUPS:
                groups[g][keys[g]][outcome] += 1

        def summary(c: Counter) -> dict[str, Any]:
            decided = c["met"] + c["missed"]
            return {"met": c["met"], "missed": c["missed"], "open": c["open"], "skipped": c["skipped"],
                    "compliance": round(c["met"] / decided, 4) if decided else None}

        return {"since": since.isoformat(), "until": until.isoformat(), "clocks": len(rows), "total": summary(total),
                **{f"by_{g}": [{"key": k, **summary(v)} for k, v in sorted(groups[g].items())] for g in GROUPS}}

    def runs_started(self, since: datetime, until: datetime, *, limit: int = 200) -> list[int]:
        """Ids of the runs started in [since, until), oldest first (cancelled ones left out): for reports."""
        r = plan_runs.c
        with self.runs.store.read() as conn:
            return list(conn.execute(select(r.id).where(r.started_ts >= ts(since), r.started_ts < ts(until),
                                                        r.state != "cancelled")
                                     .order_by(r.started_ts, r.id).limit(limit)).scalars())

    def period_csv(self, since: datetime, until: datetime) -> str:
        """One row per clock that fell due in the period (UTF-8 with BOM so Excel opens Chinese correctly)."""
        now = ts(self.runs.now())
        buffer = io.StringIO()
        buffer.write("\ufeff")
        writer = csv.writer(buffer)
        writer.writerow(["run_id", "playbook", "subject", "run_title", "region", "topic", "department", "step", "title",
                         "role", "assignee", "state", "due_spec", "due", "finished_at", "outcome", "late_hours", "calendar"])
        for row in self._period_rows(since, until):
            outcome = step_outcome(row, now)
            late = ""
            if outcome == "missed" and row.due_ts is not None:
                late = f"{((row.finished_ts or now) - row.due_ts) / 3600:.2f}"
            writer.writerow([row.run_id, row.playbook_id, row.subject, row.run_title, row.region or "", row.topic or "",
                             row.department or "", row.step_id, row.title, row.role or "", row.assignee or "", row.state,
                             row.due_spec or "", iso(row.due_ts) or "", iso(row.finished_ts) or "", outcome, late,
                             row.calendar or ""])
        return buffer.getvalue()

    def counts(self) -> dict[str, Any]:
        with self.runs.store.read() as conn:
            rows = conn.execute(select(plan_runs.c.playbook_id, plan_runs.c.state, func.count())
                                .group_by(plan_runs.c.playbook_id, plan_runs.c.state)).all()
        out: dict[str, dict[str, int]] = defaultdict(dict)
        for playbook_id, state, n in rows:
            out[playbook_id][state] = n
        return json.loads(json.dumps(out))
