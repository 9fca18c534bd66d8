"""Runs start by themselves: once per event on alerts, once per work order or letter; replies finish steps."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.helpers.plans import T0


def test_alerts_about_one_event_start_one_major_incident_run(harness) -> None:  # noqa: ANN001
    h = harness
    h.ingest(*(h.payload("I", event_id="ev-chem") for _ in range(3)), source="weibo_a")
    assert len(h.alerts(rule="red_risk")) == 3 and len(h.alerts(rule="hot_event")) == 1
    runs = h.runs(event_id="ev-chem")
    assert [r["playbook_id"] for r in runs] == ["major_incident"]
    run = runs[0]
    assert run["subject"] == "event:ev-chem" and run["trigger"] == "alert" and run["labels"]["grade"] == "I"
    # A second batch, new alerts for the same event: still one run.
    h.clock.advance(600)
    h.ingest(*(h.payload("I", event_id="ev-chem") for _ in range(2)), source="weibo_a")
    assert len(h.alerts(rule="red_risk")) == 5
    assert len(h.runs(event_id="ev-chem")) == 1
    # An item of the event finds the event's run (GET /api/plans/runs?item_id=N).
    item_id = h.alerts(rule="red_risk")[0]["item_id"]
    assert [r["id"] for r in h.runs(item_id=item_id)] == [run["id"]]
    statement = next(s for s in h.plans.runs.get(run["id"])["steps"] if s["step_id"] == "statement")
    assert statement["due_spec"] == "5h"
    assert datetime.fromisoformat(statement["due"]) == datetime.fromisoformat(run["detected_at"]) + timedelta(hours=5)


def test_a_grade_iii_alert_starts_the_48h_plan_for_the_item(harness) -> None:  # noqa: ANN001
    h = harness
    [item_id] = h.ingest(h.payload("III"), source="weibo_a")
    runs = h.runs(item_id=item_id)
    assert [r["playbook_id"] for r in runs] == ["government_opinion"]
    respond = next(s for s in h.plans.runs.get(runs[0]["id"])["steps"] if s["step_id"] == "respond")
    assert respond["time_left"] == 48 * 3600


def test_work_orders_start_the_12345_plan_with_the_clock_of_their_request_type(harness) -> None:  # noqa: ANN001
    h = harness
    ids = h.ingest(h.payload(request_type="咨询"), h.payload(request_type="complain"), h.payload(request_type="help"),
                   h.payload(), source="hotline_a")  # the last one has no request type
    dues = {}
    for item_id in ids[:3]:
        [run] = h.runs(item_id=item_id)
        assert run["playbook_id"] == "hotline_12345" and run["trigger"] == "item"
        close = next(s for s in run["steps"] if s["step_id"] == "close")
        dues[run["labels"]["request_type"]] = (close["due_spec"], close["due"])
    # Received Tuesday 2026-03-10 10:00: 2 working days → Thursday 17:00; 15 → 2026-03-31; 10 → 2026-03-24.
    assert dues == {"consult": ("2wd", "2026-03-12T09:00:00+00:00"), "complain": ("15wd", "2026-03-31T09:00:00+00:00"),
                    "help": ("10wd", "2026-03-24T09:00:00+00:00")}
    assert h.runs(item_id=ids[3]) == []
    # Re-collecting the same work orders changes nothing.
    h.ingest(h.payload(request_type="咨询", source_id="t1"), source="hotline_a")
    assert len(h.runs(playbook_id="hotline_12345")) == 3


def test_a_reply_finishes_the_close_step_and_starts_the_follow_up_clock(harness) -> None:  # noqa: ANN001
    h = harness
    replied = (T0 + timedelta(days=1)).isoformat()
    [answered] = h.ingest(h.payload(request_type="consult", reply={"text": "已答复：办理流程如下……", "replied_at": replied}),
                          source="hotline_a")
    run = h.runs(item_id=answered)[0]
    close = next(s for s in run["steps"] if s["step_id"] == "close")
    follow = next(s for s in run["steps"] if s["step_id"] == "follow_up")
    assert close["state"] == "done" and close["met"] is True and close["finished_at"] == datetime.fromisoformat(replied).isoformat()
    assert follow["due"] is not None and run["first_response_at"] is not None
    # A work order answered later: the revisit stores the reply and the step finishes then.
    payload = h.payload(request_type="complain")
    [later] = h.ingest(payload, source="hotline_a")
    assert next(s for s in h.runs(item_id=later)[0]["steps"] if s["step_id"] == "close")["state"] == "pending"
    h.clock.advance(timedelta(days=2))
    h.ingest({**payload, "reply": {"text": "经核查已整改", "replied_at": h.clock.now().isoformat()}}, source="hotline_a")
    detail = h.plans.runs.get(h.runs(item_id=later)[0]["id"])
    close = next(s for s in detail["steps"] if s["step_id"] == "close")
    assert close["state"] == "done" and close["evidence"][0]["value"] == "经核查已整改"


def test_letters_start_the_petition_plan(harness) -> None:  # noqa: ANN001
    h = harness
    [letter] = h.ingest(h.payload(), source="mailbox_a")
    [run] = h.runs(item_id=letter)
    assert run["playbook_id"] == "petition_letter"
    accept = next(s for s in run["steps"] if s["step_id"] == "accept")
    assert accept["due"] == "2026-03-25T16:00:00+00:00"  # end (24:00 Beijing) of the 15th day after 2026-03-10


def test_imported_history_starts_no_run_but_its_replies_still_finish_steps(harness) -> None:  # noqa: ANN001
    """`yuqing import` marks history `backfill`: a work order or letter closed years ago would start an overdue run
    and ring a breach alert. A live work order whose reply arrives through an import is still finished by it."""
    h = harness
    ids = h.ingest(h.payload(request_type="consult", backfill=True), h.payload(request_type="complain", backfill=True),
                   source="hotline_a")
    [letter] = h.ingest(h.payload(backfill=True), source="mailbox_a")
    assert all(h.runs(item_id=item_id) == [] for item_id in [*ids, letter]) and h.runs() == []
    payload = h.payload(request_type="complain")
    [live] = h.ingest(payload, source="hotline_a")
    assert len(h.runs(item_id=live)) == 1
    h.clock.advance(timedelta(days=1))
    h.ingest({**payload, "backfill": True, "reply": {"text": "已办结", "replied_at": h.clock.now().isoformat()}},
             source="hotline_a")
    detail = h.plans.runs.get(h.runs(item_id=live)[0]["id"])
    assert next(s for s in detail["steps"] if s["step_id"] == "close")["state"] == "done"
    assert len(h.runs()) == 1


def test_auto_start_can_be_switched_off(make_harness) -> None:  # noqa: ANN001
    h = make_harness(auto_start=False)
    h.ingest(h.payload(request_type="consult"), source="hotline_a")
    h.ingest(*(h.payload("I", event_id="ev-x") for _ in range(3)), source="weibo_a")
    assert h.runs() == []


def test_a_failing_plan_trigger_never_loses_the_stored_items(harness, monkeypatch) -> None:  # noqa: ANN001
    h = harness

    def broken(items):  # noqa: ANN001, ANN202
        raise RuntimeError("trigger bug")

    monkeypatch.setattr(h.plans, "on_items", broken)
    ids = h.ingest(h.payload(request_type="consult"), source="hotline_a")
    assert len(ids) == 1 and h.service.store.get(ids[0]).id == ids[0]
    assert h.service.store.list_quarantine().count == 0


def test_an_event_graded_up_after_its_alert_fired_starts_the_major_plan(harness) -> None:  # noqa: ANN001
    h = harness
    h.ingest(*(h.payload(None, event_id="ev-grow") for _ in range(3)), source="weibo_a")  # grade IV: hot_event fires
    assert len(h.alerts(rule="hot_event")) == 1 and h.runs(event_id="ev-grow") == []
    h.clock.advance(600)
    h.ingest(h.payload("II", event_id="ev-grow"), source="board_a")  # no item rule fires for it; the event is II now
    assert len(h.alerts(rule="hot_event")) == 1 and len(h.alerts()) == 1
    [run] = h.runs(event_id="ev-grow")
    assert run["playbook_id"] == "major_incident" and run["labels"]["grade"] == "II"
    h.ingest(h.payload("II", event_id="ev-grow"), source="weibo_a")
    assert len(h.runs(event_id="ev-grow")) == 1
