"""Outcome review: a constructed event whose opinion calms after the first public response; SLA by period; CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from tests.helpers.plans import T0


def item(h, minutes: float, polarity: str, risk: float, event_id: str = "ev-review") -> dict:  # noqa: ANN001
    h.n += 1
    return {"source_id": f"r{h.n}", "title": f"第{h.n}条", "content": f"化工厂事件第{h.n}条讨论",
            "published_at": (T0 + timedelta(minutes=minutes)).isoformat(),
            "test_enrichment": {"risk_score": risk, "risk_level": "III", "polarity": polarity, "event_id": event_id,
                                "topic": "环境保护"}}


def test_effect_before_and_after_the_first_public_response(make_harness) -> None:  # noqa: ANN001
    h = make_harness(auto_start=False)
    runs = h.plans.runs
    # Response at T0 + 10h. Before (T0+4h … T0+10h, in the 6-hour window): 8 items, 6 negative, risk 80.
    # After (T0+10h … T0+16h): 4 items, 1 negative, risk 40. Items outside both windows must not count.
    before = [item(h, 60 * 4 + 30 * i, "negative" if i < 6 else "neutral", 80) for i in range(8)]
    after = [item(h, 60 * 10 + 60 * i, "negative" if i < 1 else "positive", 40) for i in range(4)]
    outside = [item(h, 60 * 1, "negative", 99), item(h, 60 * 17, "negative", 99), item(h, 60 * 11, "negative", 99, "ev-other")]
    h.ingest(*before, *after, *outside, source="weibo_a")
    run = runs.start_manual("major_incident", actor="duty", event_id="ev-review", detected=T0 + timedelta(hours=6))
    rid = run["id"]
    h.clock.set(T0 + timedelta(hours=7))
    runs.transition(rid, "assess", "in_progress", actor="x")
    runs.transition(rid, "assess", "done", actor="x")  # due 1h after detection (T0+7h): met exactly at the due
    h.clock.set(T0 + timedelta(hours=10))
    runs.transition(rid, "statement", "in_progress", actor="press_a")
    runs.add_evidence(rid, "statement", kind="link", actor="press_a", value="https://www.gov.cn/statement")
    runs.transition(rid, "statement", "awaiting_approval", actor="drafter_a")
    runs.approve(rid, "statement", actor="reviewer_a")
    runs.approve(rid, "statement", actor="leader_a")  # the first public response at T0+10h (due T0+11h: met)
    h.clock.set(T0 + timedelta(hours=40))  # press conference (due T0+30h) not held: missed
    review = h.plans.review.run(rid, window=timedelta(hours=6))
    assert review["time_to_first_response"] == 4 * 3600  # from detection at T0+6h
    d = review["deadlines"]
    outcomes = {s["step_id"]: s["outcome"] for s in d["steps"]}
    assert outcomes == {"assess": "met", "statement": "met", "press_conference": "missed",
                        "follow_up_release": "waiting", "review": "waiting"}
    assert (d["met"], d["missed"]) == (2, 1)
    assert next(s for s in d["steps"] if s["step_id"] == "press_conference")["late_seconds"] == 10 * 3600
    effect = review["effect"]
    assert effect["before"]["volume"] == 8 and effect["after"]["volume"] == 4
    assert effect["before"]["negative_share"] == 0.75 and effect["after"]["negative_share"] == 0.25
    assert effect["before"]["mean_risk"] == 80 and effect["after"]["mean_risk"] == 40
    assert effect["change"] == {"volume": -4, "negative_share": -0.5, "mean_risk": -40}
    assert effect["after_complete"] is True
    people = {p["actor"]: p["actions"] for p in review["who_did_what"]}
    assert people["leader_a"] == {"approve": 1} and people["drafter_a"] == {"submit": 1} and people["duty"] == {"start_run": 1}
    assert people["press_a"] == {"start": 1, "evidence": 1} and people["x"] == {"start": 1, "complete": 1}


def test_sla_by_period_and_csv(make_harness) -> None:  # noqa: ANN001
    h = make_harness()
    # Three consult work orders (2 working days: due Thu 2026-03-12 17:00); one answered in time, one late, one open.
    ids = h.ingest(*(h.payload(request_type="consult", region=r) for r in ("东湖区", "东湖区", "西湖区")), source="hotline_a")
    runs = h.plans.runs
    by_item = {i: h.runs(item_id=i)[0]["id"] for i in ids}
    for n, item_id in enumerate(ids[:2]):
        rid = by_item[item_id]
        h.clock.set(T0 + timedelta(days=1 if n == 0 else 4))
        runs.transition(rid, "close", "in_progress", actor="unit")
        runs.add_evidence(rid, "close", kind="text", actor="unit", value="已答复")
        runs.transition(rid, "close", "done", actor="unit")
    h.clock.set(T0 + timedelta(days=5))
    from datetime import datetime

    since, until = datetime.fromisoformat("2026-03-12T00:00+08:00"), datetime.fromisoformat("2026-03-13T00:00+08:00")
    period = h.plans.review.period(since, until)
    assert period["clocks"] == 3
    assert period["total"] == {"met": 1, "missed": 2, "open": 0, "skipped": 0, "compliance": round(1 / 3, 4)}
    regions = {g["key"]: g["compliance"] for g in period["by_region"]}
    assert regions == {"东湖区": 0.5, "西湖区": 0.0}
    assert period["by_playbook"][0]["key"] == "hotline_12345"
    rows = list(csv.DictReader(io.StringIO(h.plans.review.period_csv(since, until).lstrip("\ufeff"))))
    assert len(rows) == 3 and {r["outcome"] for r in rows} == {"met", "missed"}
    assert all(r["step"] == "close" for r in rows)
