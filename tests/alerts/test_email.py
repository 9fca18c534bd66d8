"""The e-mail channel: hand-assembled MIME parses cleanly, connections are reused, and a dropped one is replaced."""

from __future__ import annotations

import email
import email.policy

import pytest
from aiosmtpd.controller import Controller

from alerts.notify import email as email_notify
from alerts.notify.base import Message
from alerts.notify.email import EmailNotifier, email_bytes
from core.config_alerts import EmailIntegration, SmtpConfig
from tests.helpers.smtp import SinkHandler


def alert(i: int) -> dict:
    return {"id": i, "rule": "high_risk", "severity": "critical", "item_id": 1000 + i, "state": "firing",
            "labels": {"source": "board_a", "region": "江城市"},
            "annotations": {"title": f"小区停水第{i}天无人管" * 4, "summary": "几十户业主聚集要求恢复供水。",
                            "link": f"http://127.0.0.1:8000/items/{1000 + i}", "risk_score": 90, "risk_level": "I",
                            "reasons": [{"feature": "群体性", "weight": 30, "detail": "多人聚集", "evidence": "几十户"}]}}


def message(n: int, key: str = "k1:duty:email") -> Message:
    return Message(kind="alert", dedup_key=key, receiver="duty", alerts=[alert(i) for i in range(n)], total=n, new=n,
                   group_key="g", group_labels={"region": "江城市"})


def test_assembled_email_parses_without_defects():
    smtp = SmtpConfig(host="127.0.0.1", sender="舆情系统 <yuqing@example.gov.cn>")
    raw = email_bytes(message(200), smtp, ["duty@example.gov.cn", "张三 <zhang@example.gov.cn>"])
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998  # RFC 5322 line limit, even with 200 ids
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert all(not part.defects for part in mail.walk())
    assert mail["Subject"] == "【舆情预警·严重】high_risk 共 200 条"
    assert mail["From"].addresses[0].display_name == "舆情系统"
    assert [a.addr_spec for a in mail["To"].addresses] == ["duty@example.gov.cn", "zhang@example.gov.cn"]
    assert mail["Message-ID"] == "<k1.duty.email@yuqing>"
    assert mail["X-Yuqing-Item-Ids"].replace(" ", "").split(",") == [str(1000 + i) for i in range(200)]
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "小区停水第0天无人管" in text and "共 200 条预警" in text and "<table" in html


@pytest.mark.parametrize("probe_after", [0.0, email_notify.PROBE_AFTER_IDLE])
def test_connections_are_reused_and_a_dropped_one_is_replaced(smtp_server, monkeypatch, probe_after):
    """A dropped pooled session is found by the RSET probe (idle a while) or by the send itself (used a moment ago);
    either way the message goes out once, on a fresh connection."""
    monkeypatch.setattr(email_notify, "PROBE_AFTER_IDLE", probe_after)
    smtp = SmtpConfig(host=smtp_server.host, port=smtp_server.port, sender="yuqing@example.gov.cn", timeout=5)
    notifier = EmailNotifier(EmailIntegration(to=["duty@example.gov.cn"]), smtp, pool_size=2)
    for i in range(5):
        notifier.send(message(1, key=f"k{i}:duty:email"))
    assert len(smtp_server.wait_for(5)) == 5
    assert notifier.connections_opened == 1  # one session carried all five

    # The server restarts: the pooled connection is dead; the send finds out and goes out on a fresh connection.
    smtp_server.controller.stop()
    smtp_server.controller = Controller(SinkHandler(smtp_server), hostname=smtp_server.host, port=smtp_server.port)
    smtp_server.controller.start()
    notifier.send(message(1, key="k9:duty:email"))
    assert len(smtp_server.wait_for(6)) == 6
    assert notifier.connections_opened == 2
    assert [m["Message-ID"] for m in smtp_server.messages][-1] == "<k9.duty.email@yuqing>"
    notifier.close()


def test_reuse_count_limits_messages_per_connection(smtp_server):
    smtp = SmtpConfig(host=smtp_server.host, port=smtp_server.port, sender="yuqing@example.gov.cn", reuse_count=2)
    notifier = EmailNotifier(EmailIntegration(to=["duty@example.gov.cn"]), smtp)
    for i in range(5):
        notifier.send(message(1, key=f"r{i}:duty:email"))
    assert len(smtp_server.wait_for(5)) == 5
    assert notifier.connections_opened == 3  # 2 + 2 + 1
    notifier.close()
