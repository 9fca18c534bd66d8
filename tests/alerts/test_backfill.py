"""History is not news: imported (backfill) items and items older than a rule's `max_age` raise no alert."""

from __future__ import annotations

from datetime import timedelta

RULES = [{"name": "high_risk", "min_risk_score": 80, "severity": "critical"},
         {"name": "big_event", "kind": "event", "min_event_items": 1, "min_risk_score": 80},
         {"name": "old_letters_too", "min_risk_score": 80, "max_age": "400d", "regions": ["旧城区"]}]


def config(smtp_cfg: dict) -> dict:
    return {"smtp": smtp_cfg, "rules": RULES, "route": {"receiver": "duty", "group_by": ["rule"], "group_wait": 0},
            "receivers": [{"name": "duty", "email": {"to": ["duty@example.gov.cn"]}}]}


def old(h, days: float, **extra) -> dict:
    payload = h.item(risk=100, level="I", event_id="e-old", **extra)
    payload["published_at"] = (h.clock.now() - timedelta(days=days)).isoformat()
    return payload


def test_imported_history_raises_no_alert(make_harness, smtp_cfg, smtp_server):
    """20 red alerts fired for 2011–2019 posts after an import: a backfill record raises nothing, however grave."""
    h = make_harness(config(smtp_cfg))
    h.ingest(*[old(h, 3000 + k, backfill=True) for k in range(5)], h.item(risk=95, backfill=True))
    assert h.engine.reader.list()[1] == 0


def test_items_older_than_the_horizon_raise_no_alert_unless_a_rule_asks(make_harness, smtp_cfg, smtp_server):
    h = make_harness(config(smtp_cfg))
    h.ingest(old(h, 8), old(h, 30, region="旧城区"), old(h, 2000, region="旧城区"))
    alerts, count = h.engine.reader.list()
    # default max_age 7 days: high_risk and big_event see none of them; old_letters_too (400 days) the 30-day one
    assert count == 1 and alerts[0]["rule"] == "old_letters_too"
    h.ingest(old(h, 6.5))
    assert {a["rule"] for a in h.engine.reader.list()[0]} == {"old_letters_too", "high_risk", "big_event"}
