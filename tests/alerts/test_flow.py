"""End to end: an ingested high-risk item reaches a real SMTP server and a real webhook on 127.0.0.1."""

from __future__ import annotations

from alerts.store import alert_outbox


def base_alerts(smtp, webhook_url: str, **route: object) -> dict:
    return {
        "smtp": smtp,
        "public_url": "http://yuqing.test",
        "rules": [{"name": "high_risk", "min_risk_score": 80, "severity": "critical", "labels": {"team": "press"}},
                  {"name": "medium_risk", "min_risk_score": 50, "severity": "warning"}],
        "route": {"receiver": "duty", "group_by": ["rule"], "group_wait": 0, "group_interval": "5m",
                  "repeat_interval": "4h", **route,
                  "routes": [{"matchers": ['severity="critical"'], "receiver": "press", "continue": True}]},
        "receivers": [{"name": "duty", "email": {"to": ["duty@example.gov.cn"]}},
                      {"name": "press", "email": {"to": ["press@example.gov.cn"]}, "webhook": {"url": webhook_url}}],
    }


def test_high_risk_item_reaches_smtp_and_webhook(make_harness, smtp_server, smtp_cfg, webhook_server):
    h = make_harness(base_alerts(smtp_cfg, webhook_server.url + "/hook"))
    ids = h.ingest(h.item(risk=92, level="I", region="江城市"))
    counts = h.tick()
    # high_risk (critical) → press: e-mail + webhook; medium_risk (warning) → root → duty: e-mail.
    assert counts["sent"] == 3
    mails = smtp_server.wait_for(2)
    subjects = sorted(m["Subject"] for m in mails)
    assert all("舆情预警" in s for s in subjects)
    to = sorted(m["To"] for m in mails)
    assert to == ["duty@example.gov.cn", "press@example.gov.cn"]
    mail = mails[0]
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "小区停水" in text and "群体性" in text and f"http://yuqing.test/items/{ids[0]}" in text
    assert "<table" in html and "小区停水" in html
    assert mail["Message-ID"].startswith("<") and "@yuqing>" in mail["Message-ID"]
    hook = webhook_server.wait_for(1)[0]
    body = hook["json"]
    assert hook["path"] == "/hook"
    assert body["alerts"][0]["labels"]["risk_level"] == "I"
    assert body["alerts"][0]["labels"]["team"] == "press"
    assert body["alerts"][0]["item_id"] == ids[0]
    assert hook["headers"]["Idempotency-Key"] == body["dedup_key"]
    # Every decision is in the audit trail.
    audit, _ = h.engine.reader.audit(limit=100)
    decisions = {a["decision"] for a in audit}
    assert {"raise", "group", "send", "sent"} <= decisions
    with h.service.store.read() as conn:
        statuses = [r.status for r in conn.execute(alert_outbox.select())]
    assert statuses == ["sent"] * 3


def test_low_risk_item_raises_nothing(make_harness, smtp_server, smtp_cfg, webhook_server):
    h = make_harness(base_alerts(smtp_cfg, webhook_server.url))
    h.ingest(h.item(risk=20, level="IV"))
    assert h.tick()["sent"] == 0
    data, count = h.engine.reader.list()
    assert count == 0
