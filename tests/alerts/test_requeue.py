"""A notification given up on (dead after its retries, or failed) is listed and can be re-queued — API (admin only) and
CLI — and is then delivered with the same dedup key; every re-queue is in the audit trail with who asked."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml
from sqlalchemy import select

from alerts.store import alert_outbox
from api.main import create_app

REPO = Path(__file__).resolve().parents[2]


def outbox_rows(h) -> list:  # noqa: ANN001 - the alerts harness
    with h.service.store.read() as conn:
        return conn.execute(select(alert_outbox).order_by(alert_outbox.c.id)).all()


def config(receivers: list[dict], **extra) -> dict:  # noqa: ANN003
    return {"rules": [{"name": "high_risk", "min_risk_score": 80}],
            "route": {"receiver": receivers[0]["name"], "group_by": ["rule"], "group_wait": 0},
            "receivers": receivers, "retry": {"initial": "10s", "multiplier": 2, "max_delay": "1m", "max_attempts": 4},
            **extra}


def dead_webhook(make_harness, webhook_server):  # noqa: ANN001, ANN201
    webhook_server.script = [(503, {}, 0), (503, {}, 0)]
    h = make_harness(config([{"name": "hook", "webhook": {"url": webhook_server.url}}],
                            retry={"initial": "1s", "max_attempts": 2}))
    h.ingest(h.item())
    h.tick()
    h.tick(1)
    assert [r.status for r in outbox_rows(h)] == ["dead"]
    return h


def test_dead_notification_is_listed_requeued_by_an_admin_and_delivered(make_harness, webhook_server, signed_in):
    h = dead_webhook(make_harness, webhook_server)
    app = create_app(h.service, start_workers=False)
    with signed_in(app, role="manager") as manager:
        assert manager.get("/api/alerts/outbox/dead").status_code == 403
        assert manager.post("/api/alerts/outbox/requeue", json={"all": True}).status_code == 403
    with signed_in(app, role="admin") as admin:
        listed = admin.get("/api/alerts/outbox/dead").json()
        assert listed["count"] == 1 and listed["data"][0]["status"] == "dead"
        dead_id = listed["data"][0]["id"]
        assert admin.post("/api/alerts/outbox/requeue", json={}).status_code == 400
        answer = admin.post("/api/alerts/outbox/requeue", json={"ids": [dead_id]}).json()
        assert answer["requeued"] == [dead_id]
        assert admin.post("/api/alerts/outbox/requeue", json={"ids": [dead_id]}).json()["count"] == 0  # pending now
    webhook_server.default = (200, {}, 0)
    assert h.tick(1)["sent"] == 1
    row = outbox_rows(h)[0]
    assert row.status == "sent" and row.attempts == 1
    keys = {r["headers"]["Idempotency-Key"] for r in webhook_server.requests}
    assert len(webhook_server.requests) == 3 and len(keys) == 1
    trail = h.engine.reader.audit(decision="requeue")[0]
    assert len(trail) == 1 and "re-queued by token:2:test-admin" in trail[0]["reason"] and "was dead" in trail[0]["reason"]


def test_cli_requeues_every_dead_notification(make_harness, webhook_server, tmp_path):
    h = dead_webhook(make_harness, webhook_server)
    db = Path(h.service.store.engine.url.database)
    cfg = tmp_path / "cli.yaml"
    cfg.write_text(yaml.safe_dump({"storage": {"sqlite_path": str(db)}, "sources": {"board_a": {"channel": "board"}},
                                   "alerts": h.engine.config.model_dump(mode="json", by_alias=True, exclude_none=True)},
                                  allow_unicode=True))
    run = subprocess.run([sys.executable, "-c", "from yuqing.cli import main; main()", "alerts", "requeue", "--all",
                          "-c", str(cfg)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "re-queued 1 notification" in run.stderr
    with h.service.store.read() as conn:
        assert [r.status for r in conn.execute(select(alert_outbox))] == ["pending"]
    assert "re-queued by cli" in h.engine.reader.audit(decision="requeue")[0][0]["reason"]


def test_the_dispatcher_claims_no_more_than_its_workers_are_sending(make_harness, webhook_server):
    """A backlog of 300 notifications and 2 send workers: at most 2 x 25 rows are ever `sending`, so a crash re-sends
    at most those (it used to claim 500 per pass, and again on every wake-up)."""
    from alerts.notify.base import Message

    webhook_server.default = (200, {}, 0.02)
    h = make_harness({**config([{"name": "hook", "webhook": {"url": webhook_server.url}}]), "send_workers": 2,
                      "poll_interval": "0.05s"})
    with h.service.store.write() as conn:
        for n in range(300):
            h.engine.dispatcher.enqueue(conn, Message(kind="test", dedup_key=f"backlog-{n}", receiver="hook",
                                                      text=f"积压 {n}"), h.clock.now())
    worker = h.service.alerts_worker
    assert worker.max_in_flight == 50
    worker.start()
    most_sending = 0
    try:
        while len(webhook_server.requests) < 150:
            with h.service.store.read() as conn:
                sending = sum(1 for r in conn.execute(select(alert_outbox.c.status)) if r.status == "sending")
            most_sending = max(most_sending, sending)
            time.sleep(0.01)
    finally:
        worker.stop()
    assert 0 < most_sending <= 50
