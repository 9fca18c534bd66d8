"""Spike rules run analysis.spikes (binomial test) over really stored items at a controlled time, and carry its
explanation (terms that grew, sources, regions) into the alert and the e-mail."""

from __future__ import annotations

from datetime import timedelta

SPIKE_RULE = {"name": "topic_spike", "kind": "spike", "severity": "warning",
              "spike": {"window": "1h", "min_count": 5, "factor": 3, "baseline_windows": 12, "by": "topic"}}


def config(smtp_cfg: dict) -> dict:
    return {"smtp": smtp_cfg, "rules": [SPIKE_RULE],
            "route": {"receiver": "duty", "group_by": ["rule", "topic"], "group_wait": 0},
            "receivers": [{"name": "duty", "email": {"to": ["duty@example.gov.cn"]}}]}


def posted(h, ago: timedelta, topic: str, keywords: list[str]) -> dict:
    payload = h.item(risk=20, level="IV", topic=topic)
    payload["published_at"] = (h.clock.now() - ago).isoformat()
    payload["test_enrichment"]["keywords"] = keywords
    return payload


def test_spike_is_found_by_binomial_test_and_explained(make_harness, smtp_cfg, smtp_server):
    h = make_harness(config(smtp_cfg))
    # Baseline: 城乡建设 at about one item every two hours, 教育 steadily at 5 an hour.
    h.ingest(*[posted(h, timedelta(hours=2 + 2 * k), "城乡建设", ["物业"]) for k in range(6)])
    h.ingest(*[posted(h, timedelta(hours=1, minutes=5 + 12 * k), "教育", ["学校"]) for k in range(55)])
    assert h.engine.reader.list(rule="topic_spike")[1] == 0
    h.clock.advance(60)  # past check_every

    # The last hour: 9 items about water cuts (城乡建设) and 6 ordinary 教育 items (ratio ~1.3: no spike).
    ids = h.ingest(*[posted(h, timedelta(minutes=5 + 5 * k), "城乡建设", ["停水", "物业"]) for k in range(9)],
                   *[posted(h, timedelta(minutes=3 + 9 * k), "教育", ["学校"]) for k in range(6)])
    alerts, count = h.engine.reader.list(rule="topic_spike")
    assert count == 1
    alert = alerts[0]
    assert alert["labels"]["topic"] == "城乡建设" and alert["labels"]["spike_dimension"] == "topic"
    assert alert["labels"]["spike_count"] == "9"
    spike = alert["annotations"]["spike"]
    assert spike["recent"] == 9 and spike["baseline"] == 6 and spike["p_value"] < 0.01
    assert spike["explanation"]["terms"][0]["term"] == "停水"  # grew from 0; 物业 was there before
    assert spike["explanation"]["sources"] == [{"source": "board_a", "count": 9}]
    assert spike["explanation"]["regions"] == [{"region": "江城市", "count": 9}]
    assert set(spike["item_ids"]) <= set(ids)

    h.tick()
    mail = smtp_server.wait_for(1)[0]
    assert "topic_spike" in mail["Subject"]
    text = mail.get_body(("plain",)).get_content()
    assert "信息量激增：主题 城乡建设" in text and "停水(9/0)" in text and "二项检验" in text and "board_a 9 条" in text

    # More of the same within check_every does not re-run detection; later in the same window it finds the same
    # spike, whose fingerprint (rule, value, window) already exists: still one alert.
    h.ingest(posted(h, timedelta(minutes=1), "城乡建设", ["停水"]))
    h.clock.advance(120)
    h.ingest(posted(h, timedelta(minutes=1), "城乡建设", ["停水"]))
    assert h.engine.reader.list(rule="topic_spike")[1] == 1


def test_rule_conditions_choose_which_items_can_trigger(make_harness, smtp_cfg, smtp_server):
    rule = {**SPIKE_RULE, "regions": ["东湖区"]}  # only items from 东湖区 (hotline_a) may raise it
    h = make_harness({**config(smtp_cfg), "rules": [rule]})
    h.ingest(*[posted(h, timedelta(hours=3 + 3 * k), "城乡建设", ["物业"]) for k in range(3)])  # its baseline
    h.ingest(*[posted(h, timedelta(minutes=5 + 5 * k), "城乡建设", ["停水"]) for k in range(9)])  # board_a: 江城市
    assert h.engine.reader.list(rule="topic_spike")[1] == 0
    h.clock.advance(60)
    h.ingest(posted(h, timedelta(minutes=1), "城乡建设", ["停水"]), source="hotline_a")
    alerts, count = h.engine.reader.list(rule="topic_spike")
    assert count == 1 and alerts[0]["annotations"]["spike"]["recent"] == 10


def test_no_spike_alert_before_a_baseline(make_harness, smtp_cfg, smtp_server):
    """At start-up a topic has no history: 12 items in the first hour are not a spike (it waits for a baseline)."""
    h = make_harness(config(smtp_cfg))
    h.ingest(*[posted(h, timedelta(minutes=2 + 4 * k), "城乡建设", ["停水"]) for k in range(12)])
    assert h.engine.reader.list(rule="topic_spike")[1] == 0
