"""Warnings and breaches with a controlled clock become alerts through the routing tree (and escalate)."""

from __future__ import annotations

from datetime import datetime, timedelta


def major_run(h) -> dict:  # noqa: ANN001
    h.ingest(*(h.payload("I", event_id="ev-clock") for _ in range(3)), source="weibo_a")
    [run] = h.runs(event_id="ev-clock")
    return run


def deadline_alerts(h, rule: str) -> list[dict]:  # noqa: ANN001
    return [a for a in h.alerts(rule=rule)]


def test_warning_then_breach_alerts_each_once(harness) -> None:  # noqa: ANN001
    h = harness
    run = major_run(h)
    # At the start: `assess` (1h) is already inside its 1-hour warning window.
    counts = h.plans.tick()
    assert counts == {"warning": 1, "breach": 0, "stale": 0}
    [warn] = deadline_alerts(h, "plan_warning")
    assert warn["labels"]["step"] == "assess" and warn["labels"]["playbook"] == "major_incident"
    assert warn["labels"]["deadline_stage"] == "warning" and warn["severity"] == "warning"
    assert warn["event_id"] == "ev-clock"
    assert h.plans.tick() == {"warning": 0, "breach": 0, "stale": 0}  # nothing new: announced once
    h.clock.advance(timedelta(hours=1, seconds=1))
    assert h.plans.tick()["breach"] == 1
    [breach] = deadline_alerts(h, "plan_breach")
    assert breach["labels"]["step"] == "assess" and breach["severity"] == "critical"
    assert "已超时" in breach["annotations"]["title"]
    # Four hours in: the 5-hour statement warns; its role's receiver (press) is on the alert and routed to.
    h.clock.advance(timedelta(hours=3))
    assert h.plans.tick()["warning"] == 1
    statement = [a for a in deadline_alerts(h, "plan_warning") if a["labels"]["step"] == "statement"]
    assert statement and statement[0]["labels"]["plan_receiver"] == "press"
    steps = {s["step_id"]: s for s in h.plans.runs.get(run["id"])["steps"]}
    assert steps["assess"]["breached_at"] is not None and steps["statement"]["warned_at"] is not None
    actions = [a["action"] for a in h.plans.runs.audit(run["id"])]
    assert actions.count("warning") == 2 and actions.count("breach") == 1


def test_deadline_alerts_reach_the_routed_receiver_and_escalate_when_nobody_acknowledges(harness) -> None:  # noqa: ANN001
    h = harness
    major_run(h)
    h.clock.advance(timedelta(hours=4))
    h.plans.tick()
    h.engine.tick()
    outbox, _ = h.engine.reader.outbox(limit=500)
    assert {"press", "duty_office"} <= {o["receiver"] for o in outbox}
    h.clock.advance(timedelta(minutes=31))
    counts = h.engine.tick()
    assert counts["escalated"] >= 1
    audit, _ = h.engine.reader.audit(decision="escalate", limit=100)
    assert any(a["receiver"] == "leaders" for a in audit)


def test_a_finished_step_never_breaches(harness) -> None:  # noqa: ANN001
    h = harness
    run = major_run(h)
    h.plans.runs.transition(run["id"], "assess", "in_progress", actor="duty")
    h.plans.runs.transition(run["id"], "assess", "done", actor="duty")
    h.clock.advance(timedelta(hours=2))
    h.plans.tick()
    assert [a for a in deadline_alerts(h, "plan_breach") if a["labels"]["step"] == "assess"] == []


def test_working_day_clock_warns_one_working_day_before(harness) -> None:  # noqa: ANN001
    h = harness
    [item_id] = h.ingest(h.payload(request_type="complain"), source="hotline_a")  # received Tue 2026-03-10
    [run] = h.runs(item_id=item_id)
    close = next(s for s in run["steps"] if s["step_id"] == "close")
    assert close["due"] == "2026-03-31T09:00:00+00:00" and close["warn_at"] == "2026-03-30T09:00:00+00:00"
    h.clock.set(datetime.fromisoformat("2026-03-30T08:59:00+00:00"))
    h.plans.tick()
    assert "close" not in {a["labels"]["step"] for a in deadline_alerts(h, "plan_warning")}
    assert "accept" in {a["labels"]["step"] for a in deadline_alerts(h, "plan_breach")}  # 1wd: due 2026-03-11
    h.clock.advance(timedelta(minutes=2))
    assert h.plans.tick()["warning"] == 1
    assert "close" in {a["labels"]["step"] for a in deadline_alerts(h, "plan_warning")}
    h.clock.set(datetime.fromisoformat("2026-03-31T09:00:01+00:00"))
    assert h.plans.tick()["breach"] == 1


def test_no_deadline_rule_means_no_alert_but_the_notice_is_audited(make_harness) -> None:  # noqa: ANN001
    h = make_harness()
    h.engine.reload({**h.engine.config.model_dump(mode="json", by_alias=True),
                     "rules": [r for r in h.engine.config.model_dump(mode="json", by_alias=True)["rules"]
                               if r["kind"] != "deadline"]})
    run = major_run(h)
    assert h.plans.tick()["warning"] == 1
    assert deadline_alerts(h, "plan_warning") == []
    assert "warning" in [a["action"] for a in h.plans.runs.audit(run["id"])]


def test_finishing_a_breached_step_resolves_its_deadline_alerts(harness) -> None:  # noqa: ANN001
    h = harness
    run = major_run(h)
    h.clock.advance(timedelta(hours=4, minutes=10))  # assess (1h) breached, statement (5h) warned
    h.plans.tick()
    [breach] = [a for a in deadline_alerts(h, "plan_breach") if a["labels"]["step"] == "assess"]
    assert breach["state"] == "firing"
    h.plans.runs.transition(run["id"], "assess", "in_progress", actor="duty")
    h.plans.runs.transition(run["id"], "assess", "done", actor="duty")
    assert h.engine.reader.get(breach["id"])["state"] == "resolved"
    others = [a for a in h.alerts(state="firing") if a["kind"] == "deadline"]
    assert others and all(a["labels"]["step"] != "assess" for a in others)  # other steps' alerts stay
    h.plans.runs.cancel(run["id"], actor="leader_a", reason="演练结束")
    assert [a for a in h.alerts(state="firing") if a["kind"] == "deadline"] == []
