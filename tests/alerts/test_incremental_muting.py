"""Inhibition and silences are re-evaluated only where something changed: a tick with no silence ended and no
inhibiting alert gone reads no alert, however many are muted (issue 16: the idle service burnt a core comparing every
silenced alert with every firing one each second)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from tests.helpers.query_plans import executed, plans_during


def receivers(*names: str) -> list[dict]:
    return [{"name": n, "email": {"to": [f"{n}@example.gov.cn"]}} for n in names]


def alerts_of(h, **filters) -> list[dict]:  # noqa: ANN001 - the alerts Harness
    return h.engine.reader.list(limit=500, **filters)[0]


@contextmanager
def statements(h) -> Iterator[list[str]]:  # noqa: ANN001 - the alerts Harness
    """The SQL run on the harness's store inside the block."""
    seen: list[str] = []
    with executed(h.service.store.engine) as run:
        yield seen
    seen.extend(statement for statement, _parameters in run)


def item_states(h, event_id: str) -> set[str]:  # noqa: ANN001
    return {a["state"] for a in alerts_of(h, event_id=event_id) if a["kind"] == "item"}


def test_only_the_items_of_an_inhibitor_that_went_away_are_looked_at(make_harness, smtp_cfg, smtp_server) -> None:
    h = make_harness({
        "smtp": smtp_cfg,
        "rules": [{"name": "item_risk", "min_risk_score": 80, "severity": "warning"},
                  {"name": "event_heat", "kind": "event", "min_event_items": 3, "severity": "critical"}],
        "inhibit_rules": [{"source_matchers": ['kind="event"'], "target_matchers": ['kind="item"'], "equal": ["event_id"]}],
        "route": {"receiver": "duty", "group_by": ["event_id"], "group_wait": "10s"},
        "receivers": receivers("duty"),
    })
    for event_id in ("ev-1", "ev-2"):
        h.ingest(*[h.item(event_id=event_id) for _ in range(4)])
    h.tick(10)
    assert item_states(h, "ev-1") == item_states(h, "ev-2") == {"silenced"}
    h.engine.unmute_expired(h.clock.now())
    with statements(h) as idle:
        assert h.engine.unmute_expired(h.clock.now()) == 0
    assert idle == []
    ev1 = next(a for a in alerts_of(h, event_id="ev-1") if a["kind"] == "event")
    h.engine.resolve(ev1["id"], "王五", "已处置")
    with statements(h) as after_resolve:
        assert h.engine.unmute_expired(h.clock.now()) == 4
    assert item_states(h, "ev-1") == {"firing"} and item_states(h, "ev-2") == {"silenced"}
    # The silenced alerts read were those under ev-1 only (through alert_labels), not every silenced alert.
    assert any("alert_labels" in s for s in after_resolve if "muted_by" in s)
    h.engine.unmute_expired(h.clock.now())  # the freed alerts changed the sources once more
    with statements(h) as idle_again:
        assert h.engine.unmute_expired(h.clock.now()) == 0
    assert idle_again == []


def test_a_silence_that_ends_releases_its_alerts_and_idle_ticks_read_nothing(make_harness, smtp_cfg, smtp_server) -> None:
    h = make_harness({"smtp": smtp_cfg, "rules": [{"name": "item_risk", "min_risk_score": 80}],
                      "route": {"receiver": "duty", "group_wait": "10s"}, "receivers": receivers("duty")})
    short = h.engine.create_silence(matchers=['rule="item_risk"'], reason="排查误报", owner="duty",
                                    ends_at=h.clock.now() + timedelta(hours=1))
    long = h.engine.create_silence(matchers=['rule="item_risk"'], reason="重叠的静默", owner="duty",
                                   ends_at=h.clock.now() + timedelta(hours=3))
    h.ingest(h.item(), h.item())
    assert {a["muted_by"] for a in alerts_of(h)} == {f"silence:{short['id']}"}
    h.engine.unmute_expired(h.clock.now())
    with statements(h) as idle:
        assert h.engine.unmute_expired(h.clock.now()) == 0
    assert idle == []
    h.clock.advance(2 * 3600)  # the first silence ended; the second still covers them: muted, now by the second
    assert h.engine.unmute_expired(h.clock.now()) == 0
    assert {(a["state"], a["muted_by"]) for a in alerts_of(h)} == {("silenced", f"silence:{long['id']}")}
    h.engine.expire_silence(long["id"], by="duty")
    assert h.engine.unmute_expired(h.clock.now()) == 2
    assert {a["state"] for a in alerts_of(h)} == {"firing"}


def test_an_events_active_alerts_are_found_without_reading_its_item_alerts(make_harness, smtp_cfg, smtp_server) -> None:
    """The after-store stage asks for them every batch; a burst gives an event thousands of item alerts."""
    h = make_harness({
        "smtp": smtp_cfg,
        "rules": [{"name": "item_risk", "min_risk_score": 80, "severity": "warning"},
                  {"name": "event_heat", "kind": "event", "min_event_items": 3, "severity": "critical"}],
        "route": {"receiver": "duty", "group_by": ["event_id"], "group_wait": "10s"},
        "receivers": receivers("duty"),
    })
    h.ingest(*[h.item(event_id="ev-1") for _ in range(6)])
    plans, active = plans_during(h.service.store, lambda: h.engine.reader.active_event_alerts(["ev-1"]))
    assert [a["kind"] for a in active] == ["event"] and len(alerts_of(h, event_id="ev-1")) == 7
    [(statement, plan)] = plans  # one query for the one event
    assert "FROM alerts" in statement, statement
    assert any("USING INDEX ix_alerts_event_kind" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan
