"""Kill the service between enqueue and send, restart it: the alert is delivered, once."""

from __future__ import annotations

import signal
import socket
import time
from datetime import UTC, datetime

import yaml
from sqlalchemy import select

from alerts.store import alert_outbox
from tests.helpers.dispatcher import start_dispatcher, wait_until


def outbox(service) -> list:
    with service.store.read() as conn:
        return conn.execute(select(alert_outbox)).all()


def test_kill_between_enqueue_and_send_then_restart_delivers_once(make_harness, smtp_server, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_SMTP_PORT", str(smtp_server.port))
    alerts = {"smtp": {"host": "127.0.0.1", "port": {"$env": "TEST_SMTP_PORT"}, "sender": "yuqing@example.gov.cn",
                       "timeout": 60},
              "rules": [{"name": "high_risk", "min_risk_score": 80}],
              "route": {"receiver": "duty", "group_wait": 0},
              "receivers": [{"name": "duty", "email": {"to": ["duty@example.gov.cn"]}}],
              "poll_interval": "0.2s"}
    db = tmp_path / "crash.db"
    config_path = tmp_path / "crash.yaml"
    config_path.write_text(yaml.safe_dump({"sources": {"board_a": {"channel": "board", "region": "江城市"}},
                                           "storage": {"sqlite_path": str(db)}, "alerts": alerts}, allow_unicode=True))
    h = make_harness(alerts, start=datetime.now(UTC), db_path=db)  # the subprocesses run on the wall clock
    h.ingest(h.item(risk=95))  # stored, alert raised and grouped; this process sends nothing
    h.engine.dispatcher.flush_due(h.clock.now())  # enqueue into the outbox, as the dispatcher would
    assert [r.status for r in outbox(h.service)] == ["pending"]

    # A relay that accepts the TCP connection and never says hello: the send hangs, and we kill the process.
    with socket.socket() as black_hole:
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(8)
        first = start_dispatcher(config_path, black_hole.getsockname()[1], seconds=120)
        try:
            wait_until(lambda: [r.status for r in outbox(h.service)] == ["sending"])
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
    assert first.returncode == -signal.SIGKILL
    assert smtp_server.messages == []

    second = start_dispatcher(config_path, smtp_server.port, seconds=3)
    assert second.wait(30) == 0
    assert len(smtp_server.wait_for(1)) == 1
    row = outbox(h.service)[0]
    assert row.status == "sent"
    resumed = h.engine.reader.audit(decision="resume")[0]
    assert len(resumed) == 1 and "same dedup key" in resumed[0]["reason"]

    third = start_dispatcher(config_path, smtp_server.port, seconds=1.5)  # another restart: nothing is re-sent
    assert third.wait(30) == 0
    time.sleep(0.2)
    assert len(smtp_server.messages) == 1
    assert smtp_server.messages[0]["Message-ID"].startswith("<" + row.dedup_key.split(":")[0])
