"""What a daily report says about a known day: volume, the riskiest items and why, events, spikes, alerts, plans —
every statement with the items or events it rests on."""

from __future__ import annotations

from datetime import date

import pytest

from reports.period import latest_complete, period_of
from tests.helpers.reports import DAY, REPORT_TIME


@pytest.fixture(scope="module")
def content(make_harness):
    harness = make_harness()
    report = harness.reports.make(harness.reports.period("daily", DAY), trigger="demand")
    return harness, report.content


def test_volume_by_channel_topic_emotion_and_grade(content) -> None:
    _, c = content
    volume = c["volume"]
    assert volume["total"] == 24
    assert [(r["label"], r["count"]) for r in volume["by_channel"]] == [("微博", 14), ("12345热线", 5), ("留言板", 5)]
    assert {r["label"]: r["count"] for r in volume["by_topic"]} == {"交通运输": 13, "城乡建设": 4, "环境保护": 2, "文化旅游": 5}
    assert {r["label"]: r["count"] for r in volume["by_emotion"]} == {"愤怒": 6, "恐惧": 9, "中性": 4, "喜悦": 5}
    assert {r["label"]: r["count"] for r in volume["by_level"]} == {"I级（特别重大·红）": 4, "II级（重大·橙）": 1,
                                                                     "III级（较大·黄）": 1, "IV级（一般·蓝）": 18}
    assert sum(volume["series"]["counts"]) == 24 and len(volume["series"]["counts"]) == 24
    assert volume["series"]["counts"][14] == 9  # the 地铁 burst, 14:00–15:00 Beijing time
    for row in volume["by_channel"]:  # every row names the items behind it
        assert row["links"] and all("item" in link for link in row["links"])


def test_riskiest_items_come_with_chinese_reasons(content) -> None:
    _, c = content
    top = c["risky"][0]
    assert top["title"] == "雨花小区停水第1天无人管" and top["risk_level"] == "I" and top["risk_score"] == 92
    assert top["reasons"] == ["群体性：几十户业主聚集", "情绪：愤怒（置信度 0.82）"]  # strongest reason first
    assert top["links"] == [{"item": top["id"]}]
    assert [r["risk_score"] for r in c["risky"]] == sorted((r["risk_score"] for r in c["risky"]), reverse=True)
    assert any(r["title"].endswith("油烟扰民") for r in c["risky"])  # a hostile title is data here; escaping is render's job


def test_hot_events_and_summary_statements_link_their_items(content) -> None:
    _, c = content
    water = c["hot_events"][0]
    assert water["id"] == "ev-water" and water["period_items"] == 4 and water["channels"] == ["留言板"]
    assert water["links"][0] == {"event": "ev-water"} and len(water["links"]) == 5
    assert [e["id"] for e in c["hot_events"]] == ["ev-water", "ev-smoke"]
    assert c["summary"], "a day with items has a summary"
    for statement in c["summary"]:
        assert statement["links"], statement["text"]
    assert c["summary"][0]["text"].startswith("本期共监测到信息 24 条")


def test_a_burst_is_reported_as_a_spike_with_its_items(content) -> None:
    harness, c = content
    spikes = {(s["dimension"], s["value"]): s for s in c["spikes"]}
    burst = spikes[("话题", "交通运输")]
    assert burst["recent"] == 9 and burst["baseline"] >= 3
    assert "15:00" in burst["at"] or burst["at"].startswith("2026-03-09T15")
    ids = {link["item"] for link in burst["links"]}
    stored = {harness.service.store.get(i).title for i in ids}
    assert all(title.startswith("地铁故障停运") for title in stored)


def test_alerts_raised_acknowledged_resolved(content) -> None:
    _, c = content
    alerts = c["alerts"]
    assert alerts["raised"] == 4  # the four grade-I 停水 items
    assert alerts["acknowledged"] == 1 and alerts["resolved"] == 1 and alerts["still_firing"] == 2
    assert all(a["severity"] == "严重" for a in alerts["notable"])
    assert all(any("item" in link for link in a["links"]) for a in alerts["notable"])


def test_plan_runs_started_by_the_red_alerts(content) -> None:
    harness, c = content
    plans = c["plans"]
    runs, count = harness.service.playbooks.runs.list(limit=50)
    assert count >= 1 and plans["started"] == count  # grade-I alerts start 重大突发事件 runs
    listed = plans["runs"][0]
    assert listed["playbook"] and listed["state"] == "进行中"
    assert listed["links"] == [{"event": "ev-water"}] and listed["title"] == "雨花小区停水第1天无人管"
    # Its hour clocks fell due on the day and nobody acted: missed, and the report says so.
    assert plans["sla"]["missed"] >= 1 and plans["sla"]["met"] == 0 and plans["sla"]["compliance"] == 0.0
    assert listed["missed"] >= 1 and listed["first_response"] == "—"


def test_an_empty_day_says_so() -> None:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Asia/Shanghai")
    week = period_of("weekly", date(2026, 3, 11), zone)
    assert week.key == "2026-03-09" and week.label == "2026年3月9日—3月15日"
    assert latest_complete("daily", week.end, zone).key == "2026-03-15"
    assert latest_complete("weekly", week.end, zone).key == "2026-03-09"


def test_recurring_issue_names_its_earlier_events(make_harness) -> None:
    """An issue whose earlier event (last month) comes back today is listed as recurring, linking both events."""
    from analysis.event_store import events

    harness = make_harness()
    row = {"keywords": "[]", "engagement": 0, "heat": 10.0, "sources": "[]", "channels": "[]", "regions": "[]",
           "centroid": "{}", "names": "{}", "updated_at": "2026-03-09T00:00:00+00:00"}
    with harness.service.store.write() as conn:
        conn.execute(events.insert(), [
            {**row, "id": "ev-smoke-old", "issue_id": "iss-smoke", "title": "烧烤油烟扰民", "volume": 6,
             "first_seen_ts": 1769904000.0, "last_seen_ts": 1770000000.0},  # 2026-02-01
            {**row, "id": "ev-smoke", "issue_id": "iss-smoke", "title": "油烟扰民", "volume": 2,
             "first_seen_ts": 1773025200.0, "last_seen_ts": 1773028800.0},
            {**row, "id": "ev-water", "issue_id": "ev-water", "title": "雨花小区停水", "volume": 4,
             "first_seen_ts": 1773014400.0, "last_seen_ts": 1773025200.0}])
    c = harness.reports.make(harness.reports.period("daily", DAY), trigger="demand").content
    assert [r["id"] for r in c["recurring"]] == ["iss-smoke"]  # 停水 is one event: not recurring
    smoke = c["recurring"][0]
    assert smoke["events"] == 2 and smoke["earlier_events"] == 1 and smoke["volume"] == 8 and smoke["period_items"] == 2
    assert smoke["links"][:2] == [{"event": "ev-smoke"}, {"event": "ev-smoke-old"}]
    assert smoke["first_seen"].startswith("2026-02-01")
    assert c["hot_events"][0]["title"] == "雨花小区停水"  # the stored event's title, not an item's
    assert any("反复出现" in s["text"] for s in c["summary"])


def test_a_plan_run_with_its_response_time_and_opinion_before_and_after(make_harness) -> None:
    """An event that calms after the statement: the report gives the time to first response, the deadlines met and
    missed, and the event's volume and negative share in the 24 hours before and after the response."""
    from datetime import timedelta

    from core.config_playbooks import PlaybooksConfig
    from core.models import RawRecord
    from tests.helpers.reports import DAY_START

    roles = {**{k: v.model_dump() for k, v in PlaybooksConfig().roles.items()},
             "drafter": {"members": ["drafter_a"]}, "reviewer": {"members": ["reviewer_a"]},
             "leader": {"members": ["leader_a"]}}
    harness = make_harness(ingest=False, sections={"playbooks": {"auto_start": False, "roles": roles}})

    def item(n: int, hours: float, polarity: str, risk: float) -> RawRecord:
        return RawRecord(source="weibo_a", payload={
            "source_id": f"o{n}", "title": f"化工厂气味第{n}条", "content": f"化工厂事件第{n}条讨论",
            "published_at": (DAY_START + timedelta(hours=hours)).isoformat(),
            "test_enrichment": {"risk_score": risk, "risk_level": "III", "polarity": polarity, "event_id": "ev-odour",
                                "topic": "环境保护"}})

    before = [item(i, 4 + i / 2, "negative" if i < 6 else "neutral", 80) for i in range(8)]
    after = [item(10 + i, 10.5 + i, "negative" if i < 1 else "positive", 40) for i in range(4)]
    harness.service.writer.ingest(before + after)
    runs = harness.service.playbooks.runs
    harness.clock.set(DAY_START + timedelta(hours=6))
    run_id = runs.start_manual("major_incident", actor="duty", event_id="ev-odour", detected=DAY_START + timedelta(hours=6))["id"]
    harness.clock.set(DAY_START + timedelta(hours=7))
    runs.transition(run_id, "assess", "in_progress", actor="x")
    runs.transition(run_id, "assess", "done", actor="x")
    harness.clock.set(DAY_START + timedelta(hours=10))
    runs.transition(run_id, "statement", "in_progress", actor="press_a")
    runs.add_evidence(run_id, "statement", kind="link", actor="press_a", value="https://www.gov.cn/statement")
    runs.transition(run_id, "statement", "awaiting_approval", actor="drafter_a")
    runs.approve(run_id, "statement", actor="reviewer_a")
    runs.approve(run_id, "statement", actor="leader_a")  # the first public response, 4 h after detection
    harness.clock.set(REPORT_TIME)
    plans = harness.reports.make(harness.reports.period("daily", DAY), trigger="demand").content["plans"]
    assert plans["started"] == 1 and plans["median_first_response"] == "4 小时 0 分"
    run = plans["runs"][0]
    assert run["links"] == [{"event": "ev-odour"}] and run["first_response_seconds"] == 4 * 3600
    assert run["met"] == 2 and run["missed"] == 1  # 研判 and 口径 in time; the 24 h press conference missed by 10:00 next day
    assert plans["sla"]["met"] == 2 and plans["sla"]["missed"] == 0  # clocks due on the day (the conference falls due the next)
    opinion = run["opinion"]
    assert (opinion["before_volume"], opinion["after_volume"]) == (8, 4)
    assert (opinion["before_negative"], opinion["after_negative"]) == (0.75, 0.25)
    assert (opinion["before_risk"], opinion["after_risk"]) == (80, 40) and opinion["complete"]
    assert plans["with_opinion"] == [run]
