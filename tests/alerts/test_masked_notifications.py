"""Alert notifications (e-mail, webhook, in-app, the alerts API) are built from stored items, so masking at ingest
covers them; log lines of the flow carry ids and counts, never a citizen's text."""

from __future__ import annotations

import json
import logging

from fastapi.testclient import TestClient
from sqlalchemy import select

from alerts.store import alert_outbox
from analysis.pii import PiiMaskStage
from api.main import create_app

ID_CARD = "11010519491231002X"
SECRETS = ("13812345678", ID_CARD, "张三", "0731-88888888", "501室", "lisi@example.com")


def test_alert_notifications_and_logs_carry_only_masked_data(make_harness, webhook_server, smtp_server, smtp_cfg,
                                                              caplog) -> None:
    """E-mail, webhook and in-app messages are built from stored items, so masking at ingest covers them; the log
    lines of the whole flow carry ids and counts, never the text."""
    alerts = {"rules": [{"name": "high_risk", "min_risk_score": 80}],
              "route": {"receiver": "duty", "group_by": ["rule"], "group_wait": 0},
              "receivers": [{"name": "duty", "email": {"to": ["duty@example.gov.cn"]}, "inapp": {},
                             "webhook": {"url": webhook_server.url + "/hook"}}],
              "smtp": smtp_cfg}
    h = make_harness(alerts)
    h.service.ingestor.chain.stages.insert(1, PiiMaskStage())  # as build_service puts it, before dedup
    payload = h.item()
    payload.update(title="我叫张三，电话13812345678求助", author="张三",
                   content=f"身份证{ID_CARD}，家住XX小区3栋2单元501室，联系人：张三 0731-88888888，邮箱lisi@example.com",
                   contact_phone="13812345678")
    with caplog.at_level(logging.DEBUG):
        h.ingest(payload)
        h.tick()
        mails = smtp_server.wait_for(1)
        hooks = webhook_server.wait_for(1)
    sent = [mail.get_body(("plain",)).get_content() + mail.get_body(("html",)).get_content() + str(mail["Subject"])
            for mail in mails]
    sent += [json.dumps(r["json"], ensure_ascii=False) for r in hooks]
    sent += [json.dumps(e.data, ensure_ascii=False) for e in h.engine.broadcaster._history]
    with TestClient(create_app(h.service, start_workers=False)) as client:
        sent.append(client.get("/api/alerts").text)
        sent.append(client.get("/api/items").text)
    with h.service.store.read() as conn:
        sent += [row.payload for row in conn.execute(select(alert_outbox))]
    assert "求助" in sent[0]  # the alert did carry the item's (masked) title
    for text in [*sent, caplog.text]:
        for secret in SECRETS:
            assert secret not in text, secret
    assert "张*" in sent[0] or "138****5678" in sent[0]
    assert "求助" not in caplog.text  # logs: ids and counts only
