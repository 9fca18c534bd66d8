"""The delivery process (alerts/delivery.py): the network channels are sent from a process of their own, their
metrics reach the service's /metrics, a delivery process that dies is restarted and re-sends only what it was
sending, and it never outlives a service killed with -9."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import yaml
from prometheus_client import REGISTRY
from sqlalchemy import select

from alerts.store import alert_outbox
from tests.helpers.dispatcher import start_dispatcher, wait_until


def outbox_rows(h) -> list:  # noqa: ANN001 - the alerts harness
    with h.service.store.read() as conn:
        return conn.execute(select(alert_outbox).order_by(alert_outbox.c.id)).all()


def hook_config(url: str, **extra) -> dict:  # noqa: ANN003
    return {"rules": [{"name": "high_risk", "min_risk_score": 80}],
            "route": {"receiver": "hook", "group_by": ["item_id"], "group_wait": 0},
            "receivers": [{"name": "hook", "webhook": {"url": url, "timeout": 60}, "inapp": {"audience": "duty"}}],
            "poll_interval": "0.1s", **extra}


def latency_count(integration: str) -> float:
    return REGISTRY.get_sample_value("yuqing_alert_latency_seconds_count", {"integration": integration}) or 0.0


def test_webhooks_go_out_from_the_delivery_process_and_in_app_from_the_service(make_harness, webhook_server):
    h = make_harness(hook_config(webhook_server.url))
    worker = h.service.alerts_worker
    sent_before = latency_count("webhook")
    h.ingest(h.item(), h.item())
    worker.start()
    try:
        wait_until(lambda: worker.delivery is not None and worker.delivery.alive)
        webhook_server.wait_for(2, timeout=30)
        wait_until(lambda: {(r.integration, r.status) for r in outbox_rows(h)} == {("webhook", "sent"), ("inapp", "sent")})
        claimed = {r.integration: r.claimed_by for r in outbox_rows(h)}
        assert claimed["webhook"].endswith("#delivery") and claimed["inapp"] is None
        wait_until(lambda: latency_count("webhook") >= sent_before + 2)  # reported over the pipe to this process
        assert len(h.engine.broadcaster._history) == 2  # the in-app ones were published here, for the live stream
    finally:
        worker.stop()
    assert worker.delivery is None


def test_a_delivery_process_that_dies_is_restarted_and_resends_only_what_it_was_sending(make_harness, webhook_server):
    webhook_server.script = [(200, {}, 30.0)]  # the first POST hangs: its row stays `sending`
    h = make_harness(hook_config(webhook_server.url))
    worker = h.service.alerts_worker
    h.ingest(h.item())
    worker.start()
    try:
        webhook_server.wait_for(1, timeout=30)
        assert [r.status for r in outbox_rows(h) if r.integration == "webhook"] == ["sending"]
        first = worker.delivery._proc.pid
        os.kill(first, signal.SIGKILL)
        webhook_server.wait_for(2, timeout=30)  # restarted, resumed its own claim, sent it again
        wait_until(lambda: [r.status for r in outbox_rows(h) if r.integration == "webhook"] == ["sent"])
        assert worker.delivery._proc.pid != first
        h.ingest(h.item())  # and goes on delivering
        webhook_server.wait_for(3, timeout=30)
    finally:
        worker.stop()
    keys = [r["headers"]["Idempotency-Key"] for r in webhook_server.requests]
    assert len(keys) == 3 and keys[0] == keys[1] != keys[2]
    resumed = h.engine.reader.audit(decision="resume")[0]
    assert len(resumed) == 1


def children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found.update(int(child) for child in task.read_text().split())
    return found


def test_the_delivery_process_dies_with_a_service_killed_with_9(make_harness, tmp_path, webhook_server, smtp_server):
    from datetime import UTC, datetime

    config_path = tmp_path / "svc.yaml"
    config_path.write_text(yaml.safe_dump({
        "sources": {"board_a": {"channel": "board"}}, "storage": {"sqlite_path": str(tmp_path / "svc.db")},
        "alerts": hook_config(webhook_server.url)}, allow_unicode=True))
    h = make_harness(hook_config(webhook_server.url), start=datetime.now(UTC), db_path=tmp_path / "svc.db")
    h.ingest(h.item())
    h.engine.dispatcher.flush_due(h.clock.now())
    service = start_dispatcher(config_path, smtp_server.port, seconds=120)
    try:
        webhook_server.wait_for(1, timeout=30)  # the delivery process is up and sending
        spawned = children(service.pid)
        assert spawned
        service.send_signal(signal.SIGKILL)
        service.wait(10)
    finally:
        if service.poll() is None:
            service.kill()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
              for pid in spawned):
        assert time.monotonic() < deadline, [Path(f"/proc/{pid}/cmdline").read_text() for pid in spawned
                                             if Path(f"/proc/{pid}").exists()]
        time.sleep(0.05)
