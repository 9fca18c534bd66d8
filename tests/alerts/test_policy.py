"""Grouping, repeats, quiet hours, silences (and their expiry notice), inhibition and escalation, with a manual clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from alerts.timewindows import fallback_years, is_workday


def receivers(*names: str) -> list[dict]:
    return [{"name": n, "email": {"to": [f"{n}@example.gov.cn"]}} for n in names]


def recipients(sink) -> list[str]:
    return [m["To"] for m in sink.messages]


def alerts_of(h, **filters) -> list[dict]:
    return h.engine.reader.list(limit=500, **filters)[0]


@pytest.fixture
def grouped(make_harness, smtp_cfg):
    return make_harness({
        "smtp": smtp_cfg,
        "rules": [{"name": "high_risk", "min_risk_score": 80, "severity": "warning"}],
        "route": {"receiver": "duty", "group_by": ["rule"], "group_wait": "30s", "group_interval": "5m",
                  "repeat_interval": "1h"},
        "receivers": receivers("duty"),
    })


def test_group_wait_collects_then_group_interval_batches_new_ones(grouped, smtp_server):
    h = grouped
    h.ingest(h.item(), h.item(), h.item())
    assert h.tick()["sent"] == 0  # still inside group_wait
    assert h.tick(29)["sent"] == 0
    assert h.tick(1)["sent"] == 1
    first = smtp_server.wait_for(1)[0]
    assert "共 3 条" in first["Subject"]
    h.ingest(h.item())
    assert h.tick(60)["sent"] == 0  # group_interval (5m since the last notification) not yet over
    assert h.tick(240)["sent"] == 1
    second = smtp_server.wait_for(2)[1]
    body = second.get_body(("plain",)).get_content()
    assert "共 4 条" in second["Subject"] and "新增 1 条" in body
    decisions = [a["decision"] for a in h.engine.reader.audit(limit=200)[0]]
    assert decisions.count("send") == 2


def test_repeat_until_acknowledged(grouped, smtp_server):
    h = grouped
    h.ingest(h.item())
    h.tick(30)
    assert len(smtp_server.wait_for(1)) == 1
    assert h.tick(3599)["sent"] == 0
    assert h.tick(1)["sent"] == 1  # repeat_interval passed, still firing
    assert "重复提醒" in smtp_server.wait_for(2)[1]["Subject"]
    alert = alerts_of(h)[0]
    acked = h.engine.acknowledge(alert["id"], "张三", "已联系供水公司")
    assert acked["state"] == "acknowledged" and acked["acked_by"] == "张三"
    assert h.tick(3600)["sent"] == 0  # acknowledged alerts are not repeated
    assert len(smtp_server.messages) == 2
    skip = h.engine.reader.audit(decision="skip")[0]
    assert skip and "nothing to notify" in skip[0]["reason"]


def test_quiet_hours_hold_warnings_until_the_working_day_but_not_critical(make_harness, smtp_cfg, smtp_server):
    saturday_night = datetime(2026, 3, 14, 14, 0, tzinfo=UTC)  # Saturday 22:00 in Beijing
    h = make_harness({
        "smtp": smtp_cfg,
        "rules": [{"name": "high_risk", "min_risk_score": 80, "severity": "warning"},
                  {"name": "red", "min_risk_level": "I", "severity": "critical"}],
        "time_intervals": [{"name": "office", "workdays": True, "times": [{"start": "09:00", "end": "18:00"}]}],
        "route": {"receiver": "duty", "group_by": ["rule"], "group_wait": 0, "active_time_intervals": ["office"]},
        "receivers": receivers("duty"),
    }, start=saturday_night)
    h.ingest(h.item(risk=85, level="II"))
    assert h.tick()["sent"] == 0
    defer = h.engine.reader.audit(decision="defer")[0][0]
    assert "outside active windows" in defer["reason"] and "2026-03-16T01:00:00+00:00" in defer["reason"]
    h.ingest(h.item(risk=95, level="I"))  # critical ignores quiet hours (it is also ≥80, so high_risk waits)
    assert h.tick()["sent"] == 1
    assert "严重" in smtp_server.wait_for(1)[0]["Subject"]
    red = next(a for a in alerts_of(h) if a["rule"] == "red")
    h.engine.acknowledge(red["id"], "周末值班")  # otherwise it would repeat every 4h, quiet hours or not
    h.clock.set(datetime(2026, 3, 16, 0, 59, tzinfo=UTC))  # Monday 08:59
    assert h.tick()["sent"] == 0
    assert h.tick(60)["sent"] == 1  # Monday 09:00: the held warning goes out
    held = smtp_server.wait_for(2)[1]
    assert "共 2 条" in held["Subject"]  # both items match high_risk


def test_working_days_follow_the_official_calendar_and_fall_back_with_a_warning(caplog):
    assert is_workday(date(2026, 2, 14)) is True  # Saturday 调休 make-up workday before Spring Festival 2026
    assert is_workday(date(2026, 10, 1)) is False  # National Day, a Thursday
    with caplog.at_level("WARNING"):
        assert is_workday(date(2027, 3, 8)) is True  # outside the package's years: Monday–Friday
        assert is_workday(date(2027, 3, 13)) is False
    assert 2027 in fallback_years


def test_silence_mutes_warns_before_expiry_and_releases(make_harness, smtp_cfg, smtp_server):
    h = make_harness({
        "smtp": smtp_cfg,
        "rules": [{"name": "high_risk", "min_risk_score": 80}],
        "route": {"receiver": "duty", "group_by": ["rule"], "group_wait": 0},
        "receivers": receivers("duty", "ops"),
        "silence_notice": {"before": "2h", "receiver": "ops"},
    })
    silence = h.engine.create_silence(matchers=['region="江城市"'], reason="供水抢修中，已知情况", owner="duty",
                                      ends_at=h.clock.now() + timedelta(hours=3))
    assert silence["status"] == "active"
    h.ingest(h.item(region="江城市"))
    assert h.tick()["sent"] == 0
    alert = alerts_of(h)[0]
    assert alert["state"] == "silenced" and alert["muted_by"] == f"silence:{silence['id']}"
    assert h.tick(3600 - 1)["sent"] == 0  # 2h59m before expiry: no notice yet
    assert h.tick(2)["sent"] == 2  # now within 2h: notice to the notice receiver and to the owner
    notices = smtp_server.wait_for(2)
    assert sorted(recipients(smtp_server)) == ["duty@example.gov.cn", "ops@example.gov.cn"]
    assert all("静默即将到期" in m["Subject"] for m in notices)
    assert "供水抢修中" in notices[0].get_body(("plain",)).get_content()
    assert h.tick(600)["sent"] == 0  # the notice goes out once
    h.clock.set(datetime.fromisoformat(silence["ends_at"]))
    assert h.tick()["sent"] == 1  # expired: the alert fires again
    assert alerts_of(h)[0]["state"] == "firing"
    assert "共 1 条" in smtp_server.wait_for(3)[2]["Subject"]
    unmute = h.engine.reader.audit(decision="unmute")[0][0]
    assert f"silence:{silence['id']}" in unmute["reason"]


def test_new_silence_mutes_alerts_already_firing(grouped, smtp_server):
    h = grouped
    h.ingest(h.item())
    h.tick(30)
    h.engine.create_silence(matchers={"rule": "high_risk"}, reason="误报排查", owner="李四", ends_at=h.clock.now() + timedelta(days=1))
    assert alerts_of(h)[0]["state"] == "silenced"
    assert h.tick(3600)["sent"] == 0  # no repeat while silenced


def test_event_alert_inhibits_its_item_alerts(make_harness, smtp_cfg, smtp_server):
    h = make_harness({
        "smtp": smtp_cfg,
        "rules": [{"name": "item_risk", "min_risk_score": 80, "severity": "warning"},
                  {"name": "event_heat", "kind": "event", "min_event_items": 3, "severity": "critical"}],
        "inhibit_rules": [{"source_matchers": ['kind="event"'], "target_matchers": ['kind="item"'], "equal": ["event_id"]}],
        "route": {"receiver": "duty", "group_by": ["event_id"], "group_wait": "10s"},
        "receivers": receivers("duty"),
    })
    h.ingest(h.item(event_id="ev-other"))  # a different event: not inhibited
    h.ingest(h.item(event_id="ev-1"), h.item(event_id="ev-1"), h.item(event_id="ev-1"))
    h.tick(10)
    states = {(a["kind"], a["event_id"], a["state"]) for a in alerts_of(h)}
    assert ("event", "ev-1", "firing") in states
    assert ("item", "ev-1", "silenced") in states and ("item", "ev-1", "firing") not in states
    assert ("item", "ev-other", "firing") in states
    mails = smtp_server.wait_for(2)
    texts = {m["Subject"]: m.get_body(("plain",)).get_content() for m in mails}
    event_mail = next(t for s, t in texts.items() if "严重" in s)
    assert "同一事件已有 3 条信息" in event_mail
    assert len(h.engine.reader.audit(decision="inhibit")[0]) == 3
    # Resolving the event alert releases its items.
    event_alert = next(a for a in alerts_of(h) if a["kind"] == "event")
    h.engine.resolve(event_alert["id"], "王五", "已发布通报")
    h.tick(1)
    assert {a["state"] for a in alerts_of(h, event_id="ev-1") if a["kind"] == "item"} == {"firing"}


def test_escalation_to_the_next_level_then_the_leader_on_duty(make_harness, smtp_cfg, smtp_server):
    h = make_harness({
        "smtp": smtp_cfg,
        "rules": [{"name": "high_risk", "min_risk_score": 80, "severity": "critical"}],
        "route": {"receiver": "duty", "group_by": ["item_id"], "group_wait": 0, "repeat_interval": "1d",
                  "escalation": [{"after": "15m", "receiver": "chief"}, {"after": "30m", "receiver": "leader_on_duty"}]},
        "receivers": [*receivers("duty", "chief", "leader_a", "leader_b"),
                      {"name": "leader_on_duty", "rota": {"members": ["leader_a", "leader_b"], "start": "2026-03-09",
                                                          "shift": "1d", "handover": "09:00"}}],
    })
    first, second = h.ingest(h.item(), h.item())
    h.tick()
    assert len(smtp_server.wait_for(2)) == 2
    acked = next(a for a in alerts_of(h) if a["item_id"] == second)
    h.engine.acknowledge(acked["id"], "值班员")
    assert h.tick(14 * 60)["sent"] == 0
    assert h.tick(60)["sent"] == 1  # 15 min: chief, only for the unacknowledged alert
    chief = smtp_server.wait_for(3)[2]
    assert chief["To"] == "chief@example.gov.cn" and "升级第1级" in chief["Subject"]
    assert f"/items/{first}" in chief.get_body(("plain",)).get_content()
    assert h.tick(15 * 60)["sent"] == 1  # 30 min: the leader on duty (2026-03-10 is leader_b's shift)
    assert smtp_server.wait_for(4)[3]["To"] == "leader_b@example.gov.cn"
    assert h.tick(3600)["sent"] == 0  # the chain is finished
    escalations = h.engine.reader.audit(decision="escalate")[0]
    assert len(escalations) == 2 and all(e["alert_id"] != acked["id"] for e in escalations)
