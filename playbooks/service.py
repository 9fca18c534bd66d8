"""Wires playbooks into the service — the one file that knows the rest of yuqing (store, config, alert engine).

`attach(service)`: configures the product's calendar, loads and checks the playbooks against the roles and the
alert rules, registers the tables, adds an after-store stage (runs for work orders and letters; replies finishing
steps), listens to the alert engine's newly raised alerts (runs for events, once per event), and runs the plan
clock in a worker whose notices go to the alert engine as `deadline` alerts; sets `service.playbooks`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from alerts.clock import Clock, SystemClock
from core.calendar import WorkCalendar, configure
from core.errors import StorageError
from core.worker import PeriodicWorker
from flow.stages import Batch
from playbooks import store as _tables  # noqa: F401 - registers the "playbooks" migration chain
from playbooks.plans import Playbook, load_playbooks
from playbooks.review import PlanReview
from playbooks.runs import PlanRuns, StartRequest, subject_labels
from playbooks.tracking import ClockNotice, PlanClock

if TYPE_CHECKING:  # the composition root imports this module
    from alerts.engine import AlertEngine
    from yuqing.host import Service

logger = logging.getLogger(__name__)
SKIP_ALERT_KINDS = ("deadline", "source_health", "spike")  # not about a matter citizens raised


def build_calendar(config: Any) -> WorkCalendar:
    cal = config.calendar
    return WorkCalendar.from_files(list(cal.overrides), timezone=cal.timezone, office_open=cal.office_open,
                                   office_close=cal.office_close, day_end=cal.day_end)


class PlaybookService:
    """Runs, clock and starters for one store; every entry point (API, CLI, stage, worker) uses this object."""

    def __init__(self, store: Any, playbooks: dict[str, Playbook], config: Any, calendar: WorkCalendar,
                 clock: Clock | None = None, alerts: Any = None) -> None:
        self.store = store
        self.config = config  # PlaybooksConfig
        self.calendar = calendar
        self.clock = clock or SystemClock()
        self.alerts = alerts  # the AlertEngine, or None
        self.runs = PlanRuns(store, playbooks, config, calendar, now=lambda: self.clock.now())
        self.tracker = PlanClock(self.runs)
        self.review = PlanReview(self.runs)
        self.runs.on_finished.append(self._resolve_deadline_alerts)

    @property
    def playbooks(self) -> dict[str, Playbook]:
        return self.runs.playbooks

    # ---- automatic starts ------------------------------------------------------------------------------------------

    def on_items(self, items: list[Any]) -> list[int]:
        """Stored items → runs of playbooks with a matching item trigger; replies finish `completes_on_reply` steps.
        Imported history (backfill) starts no run: its statutory deadlines passed long ago, so every run would be
        overdue at once and ring a deadline alert for a case closed years back; its replies still finish steps."""
        if not self.config.auto_start:
            return []
        requests = []
        replies: dict[int, tuple[datetime, str]] = {}
        # Only the playbooks with an item trigger, and only those triggers: looked up once per batch, not per item.
        triggered = [(playbook, item_triggers) for playbook in self.playbooks.values()
                     if (item_triggers := [t for t in playbook.triggers if t.kind == "item"])]
        for item in items:
            if item.id is None:
                continue
            reply_at = item.reply.replied_at if item.reply and item.reply.replied_at else None
            if reply_at is not None:
                replies[item.id] = (reply_at, item.reply.text)
            if not triggered or item.backfill:
                continue
            labels = subject_labels(item)
            for playbook, item_triggers in triggered:
                if any(t.matches(labels) for t in item_triggers):
                    requests.append(StartRequest(
                        playbook_id=playbook.id, subject=f"item:{item.id}", title=item.title or item.content[:40],
                        trigger="item", labels=labels, item_id=item.id, event_id=item.enrichment.event_id,
                        received=item.published_at, detected=item.fetched_at, reply_at=reply_at,
                        reply_text=item.reply.text if item.reply else None))
        started = self.runs.start(requests).started if requests else []
        if replies:
            self.runs.complete_on_reply(replies)
        graded = {i.enrichment.event_id for i in items
                  if i.enrichment.event_id and i.enrichment.risk_level in ("I", "II", "III")}
        if graded:
            started += self.regrade(graded)
        return started

    def regrade(self, event_ids: set[str]) -> list[int]:
        """An event alert fires once, often while the event is still small and mild; when a later item raises the
        event's grade, its still-active event alerts are matched again, so e.g. `major_incident` starts then."""
        if self.alerts is None:
            return []
        active = [{**r, "starts_ts": datetime.fromisoformat(r["starts_at"]).timestamp()}
                  for r in self.alerts.reader.active_event_alerts(event_ids)]
        return self.on_alerts(active) if active else []

    def on_alerts(self, raised: list[dict[str, Any]]) -> list[int]:
        """Newly raised alerts → runs of playbooks with a matching alert trigger, one per event (or item)."""
        if not self.config.auto_start:
            return []
        requests = []
        cache: dict[tuple[str | None, int | None], dict[str, Any]] = {}  # a burst raises many alerts per event
        for alert in raised:
            if alert["kind"] in SKIP_ALERT_KINDS:
                continue
            labels = {k: str(v) for k, v in alert["labels"].items()}
            event_id, item_id = alert.get("event_id"), alert.get("item_id")
            key = (event_id, None) if event_id else (None, item_id)
            if key not in cache:
                cache[key] = self._subject_facts(event_id, item_id)
            facts = cache[key]
            labels.setdefault("grade", labels.get("risk_level") or facts.get("grade") or "")
            if not labels["grade"]:
                labels["grade"] = facts.get("grade") or ""
            for playbook in self.playbooks.values():
                if not any(t.kind == "alert" and t.matches(labels, alert["rule"]) for t in playbook.triggers):
                    continue
                subject = f"event:{event_id}" if event_id else (f"item:{item_id}" if item_id else f"alert:{alert['id']}")
                alert_at = datetime.fromtimestamp(alert["starts_ts"], UTC)
                detected = facts.get("detected")
                detected = alert_at if detected is None else min(detected, alert_at)  # never later than its alert
                requests.append(StartRequest(
                    playbook_id=playbook.id, subject=subject, title=str(alert["annotations"].get("title") or subject),
                    trigger="alert", labels=labels, alert_id=alert["id"], item_id=None if event_id else item_id,
                    event_id=event_id, received=facts.get("received") or alert_at,
                    detected=detected, alert=alert_at))
        return self.runs.start(requests).started if requests else []

    def _subject_facts(self, event_id: str | None, item_id: int | None) -> dict[str, Any]:
        """The event's (or item's) first publication, first detection and most severe grade (I < II < III < IV)."""
        facts = self.store.subject_facts(event_id=event_id, item_id=item_id)
        if facts is None:
            return {}
        detected = None
        if facts.first_stored_at:
            try:
                detected = datetime.fromisoformat(facts.first_stored_at)
            except ValueError:
                detected = None
        return {"received": datetime.fromtimestamp(facts.first_published_ts, UTC), "detected": detected,
                "grade": facts.top_grade}

    # ---- clocks ---------------------------------------------------------------------------------------------------

    def tick(self) -> dict[str, int]:
        """Announce due warnings and breaches through the alert engine's `deadline` rules."""
        return self.tracker.tick(self.clock.now(), self._to_alerts if self.alerts is not None else None)

    def _resolve_deadline_alerts(self, stopped: list[tuple[int, str | None]]) -> None:
        """A step done or skipped (or a run cancelled) resolves its open deadline alerts: no repeats, no escalation."""
        if self.alerts is None:
            return
        for run_id, step_id in stopped:
            labels = {"kind": "deadline", "run_id": str(run_id), **({"step": step_id} if step_id else {})}
            for state in ("firing", "acknowledged", "silenced"):
                found, _ = self.alerts.reader.list(state=state, labels=labels, limit=500)
                for alert in found:
                    self.alerts.resolve(alert["id"], "yuqing", "plan step finished" if step_id else "plan run cancelled")

    def _to_alerts(self, notices: list[ClockNotice]) -> None:
        from alerts.rules import DeadlineNotice

        public = self.alerts.config.public_url.rstrip("/")
        converted = []
        for n in notices:
            labels = {k: v for k, v in n.labels.items() if k in ("region", "topic", "department", "channel", "source",
                                                                "request_type", "grade", "event_id")}
            labels.update(playbook=n.playbook_id, step=n.step_id, role=n.role or "", plan_receiver=n.receiver or "",
                          assignee=n.assignee or "", run_id=str(n.run_id), calendar=n.calendar or "")
            left = "将于" if n.stage == "warning" else "已于"
            summary = (f"预案 {n.playbook_id} 运行 #{n.run_id}「{n.run_title}」的步骤「{n.step_title}」（{n.due_spec}）"
                       f"{left} {datetime.fromisoformat(n.due_at).astimezone(self.calendar.zone):%Y-%m-%d %H:%M} 到期；"
                       f"责任角色 {n.role or '未指定'}{'，承办人 ' + n.assignee if n.assignee else ''}"
                       + ("；注意：该时限按周一至周五推算（无官方节假日安排）" if n.calendar == "fallback" else ""))
            converted.append(DeadlineNotice(stage=n.stage, key=f"{n.run_id}/{n.step_id}", due_at=n.due_at, labels=labels,
                                            title=f"{n.run_title} · {n.step_title}", summary=summary,
                                            link=f"{public}/api/plans/runs/{n.run_id}", item_id=n.item_id,
                                            event_id=n.event_id))
        self.alerts.raise_deadlines(converted)


class PlanStage:
    """After-store stage: runs for stored work orders and letters. Like the alert stage it never fails the batch
    for a plan problem (the items are stored already); storage failures propagate."""

    name = "plan_triggers"

    def __init__(self, plans: PlaybookService) -> None:
        self.plans = plans

    def run(self, batch: Batch) -> None:
        if not batch.stored:
            return
        try:
            self.plans.on_items(batch.stored)
        except StorageError:
            raise
        except Exception:  # noqa: BLE001 - see class docstring
            logger.exception("plan triggers failed on a batch of %d stored items", len(batch.stored))


class PlanClockWorker(PeriodicWorker):
    """Ticks the plan clock every `clock_interval` in a daemon thread."""

    name = "plan-clock"

    def __init__(self, plans: PlaybookService, cluster: Any = None) -> None:
        super().__init__()
        self.plans = plans
        self.cluster = cluster  # several instances: one tick per interval across them (storage/cluster.py)

    def interval(self) -> float:
        return self.plans.config.clock_interval.total_seconds()

    def run_once(self) -> None:
        if self.cluster is None:
            self.plans.tick()
        else:
            self.cluster.run_once(self.plans.store, "plan-clock", self.interval(), self.plans.tick)


def attach(service: Service, *, alerts: AlertEngine | None = None) -> PlaybookService | None:
    """Calendar, playbooks, tables, the "plan_triggers" stage, alert listener, clock worker and API routers; sets
    `service.playbooks` (None when `playbooks.enabled` is false: the stage is then provided as switched off)."""
    config = service.config
    calendar = build_calendar(config)
    configure(calendar)  # one calendar for the product: alert time windows read the same days
    if not config.playbooks.enabled:
        service.provide_stages("playbooks", {PlanStage.name: None})
        return None
    engine = alerts
    rules = {r.name for r in config.alerts.rules}
    receivers = {r.name for r in config.alerts.receivers}
    for role_id, role in config.playbooks.roles.items():
        if role.receiver is not None and role.receiver not in receivers:
            from core.errors import ConfigError

            raise ConfigError(f"playbooks.roles.{role_id}.receiver: {role.receiver!r} is not an alerts receiver; "
                              f"receivers: {sorted(receivers)}")
    playbooks = load_playbooks(config.playbooks.dir, roles=config.playbooks.roles, rules=rules, receivers=receivers)
    service.store.migrate()  # our tables register after the store opened
    plans = PlaybookService(service.store, playbooks, config.playbooks, calendar,
                            clock=engine.clock if engine is not None else None, alerts=engine)
    service.playbooks = plans
    service.provide_stages("playbooks", {PlanStage.name: PlanStage(plans)})
    if engine is not None:
        engine.on_raised.append(plans.on_alerts)
    service.workers.append(PlanClockWorker(plans, cluster=service.cluster if config.storage.state_url else None))
    service.add_routers("playbooks.api:router", "playbooks.api:calendar_router")
    return plans
