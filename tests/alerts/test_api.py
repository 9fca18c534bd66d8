"""The alerts API: list/filter, acknowledge/resolve, silences, audit trail, test a receiver, dry run, reload,
and the live SSE stream served by a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from alerts.clock import SystemClock
from api.main import create_app


@pytest.fixture
def api(make_harness, smtp_cfg, webhook_server, signed_in):
    h = make_harness({
        "smtp": smtp_cfg,
        "rules": [{"name": "high_risk", "min_risk_score": 80, "severity": "critical"},
                  {"name": "angry_board", "channels": ["board"], "emotions": ["愤怒"], "severity": "warning"}],
        "route": {"receiver": "duty", "group_wait": 0, "group_by": ["rule"]},
        "receivers": [{"name": "duty", "email": {"to": ["duty@example.gov.cn"]}, "inapp": {"audience": "duty"}},
                      {"name": "hook", "webhook": {"url": webhook_server.url}},
                      {"name": "nowhere", "email": {"to": ["x@example.gov.cn"], "smtp": {**smtp_cfg, "port": 1}}}],
    })
    with signed_in(create_app(h.service, start_workers=False)) as client:
        yield h, client


def test_list_filter_ack_resolve(api, smtp_server):
    h, client = api
    ids = h.ingest(h.item(risk=90), h.item(risk=40, emotion="平静"))
    h.tick()
    everything = client.get("/api/alerts").json()
    assert everything["count"] == 2  # item 1: high_risk + angry_board; item 2: nothing (calm, low risk)
    critical = client.get("/api/alerts", params={"severity": "critical"}).json()["data"]
    assert len(critical) == 1 and critical[0]["item_id"] == ids[0]
    by_label = client.get("/api/alerts", params={"label": ["rule=angry_board", "channel=board"]}).json()
    assert by_label["count"] == 1
    assert client.get("/api/alerts", params={"label": "oops"}).json()["error"].startswith("label filter")
    alert_id = critical[0]["id"]
    acked = client.post(f"/api/alerts/{alert_id}/ack", json={"owner": "张三", "comment": "处理中"}).json()
    # Who acted is the authenticated caller, never a name the request claims.
    assert acked["state"] == "acknowledged" and acked["acked_by"].endswith(":test-admin")
    resolved = client.post(f"/api/alerts/{alert_id}/resolve", json={}).json()
    assert resolved["state"] == "resolved"
    again = client.post(f"/api/alerts/{alert_id}/ack", json={"owner": "李四"})
    assert again.status_code == 409 and again.json()["ok"] is False and "resolved" in again.json()["error"]
    assert client.get("/api/alerts/99999").status_code == 404
    assert client.post(f"/api/alerts/{alert_id}/ack", json={"comment": 5}).status_code == 422
    trail = client.get("/api/alerts/audit", params={"alert_id": alert_id}).json()["data"]
    assert [a["decision"] for a in trail][:2] == ["resolve", "ack"]
    assert client.get("/api/alerts", params={"state": "nonsense"}).status_code == 400


def test_silences_crud_and_bad_matchers(api):
    h, client = api
    created = client.post("/api/alerts/silences", json={"matchers": ['region="江城市"'], "reason": "维修",
                                                        "duration": "2h"})
    assert created.status_code == 201
    silence = created.json()
    assert silence["status"] == "active" and silence["matchers"][0]["value"] == "江城市"
    h.ingest(h.item(region="江城市"))
    assert {a["state"] for a in client.get("/api/alerts").json()["data"]} == {"silenced"}
    assert client.get("/api/alerts/silences").json()["count"] == 1
    bad = client.post("/api/alerts/silences", json={"matchers": ['region=~"("'], "reason": "x", "duration": "1h"})
    assert bad.status_code == 400 and "regular expression" in bad.json()["error"]
    empty = client.post("/api/alerts/silences", json={"matchers": [], "reason": "x", "duration": "1h"})
    assert empty.status_code == 400 and "at least one matcher" in empty.json()["error"]
    forever = client.post("/api/alerts/silences", json={"matchers": {"a": "b"}, "reason": "x"})
    assert forever.status_code == 400 and "always expires" in forever.json()["error"]
    century = client.post("/api/alerts/silences", json={"matchers": ['rule=~".*"'], "reason": "x", "duration": "5200w"})
    assert century.status_code == 400 and "at most 90 days" in century.json()["error"]
    ended = client.delete(f"/api/alerts/silences/{silence['id']}").json()
    assert ended["status"] == "expired"
    assert client.get("/api/alerts/silences").json()["count"] == 0
    h.tick()
    assert {a["state"] for a in client.get("/api/alerts").json()["data"]} == {"firing"}


def test_test_receiver_reports_each_channel(api, smtp_server, webhook_server):
    _, client = api
    ok = client.post("/api/alerts/receivers/duty/test").json()
    assert ok["ok"] is True and ok["results"]["email"]["ok"] and ok["results"]["inapp"]["ok"]
    assert "测试消息" in smtp_server.wait_for(1)[0]["Subject"]
    assert client.post("/api/alerts/receivers/hook/test").json()["ok"] is True
    assert webhook_server.requests[0]["json"]["kind"] == "test"
    broken = client.post("/api/alerts/receivers/nowhere/test").json()
    assert broken["ok"] is False and "unreachable" in broken["results"]["email"]["error"]
    missing = client.post("/api/alerts/receivers/ghost/test")
    assert missing.status_code == 404 and "duty" in missing.json()["error"]


def test_dry_run_counts_over_stored_items(api):
    h, client = api
    h.ingest(*[h.item(risk=r) for r in (95, 85, 60, 30)])
    by_name = client.post("/api/alerts/dry-run", json={"rule": "high_risk", "since": "2026-03-01T00:00:00+08:00",
                                                       "until": "2026-03-31T00:00:00+08:00"}).json()
    assert by_name["items_scanned"] == 4 and by_name["would_alert"] == 2
    proposed = client.post("/api/alerts/dry-run", json={"rule": {"name": "p", "min_risk_score": 50},
                                                        "since": "2026-03-01T00:00:00+08:00",
                                                        "until": "2026-03-31T00:00:00+08:00"}).json()
    assert proposed["would_alert"] == 3
    empty = client.post("/api/alerts/dry-run", json={"rule": "high_risk", "since": "2025-01-01T00:00:00+08:00",
                                                     "until": "2025-02-01T00:00:00+08:00"}).json()
    assert empty["items_scanned"] == 0 and empty["would_alert"] == 0
    bad = client.post("/api/alerts/dry-run", json={"rule": {"name": "p", "min_risk_level": "V"}})
    assert bad.status_code == 400 and "invalid rule" in bad.json()["error"]
    assert client.post("/api/alerts/dry-run", json={"rule": "ghost"}).status_code == 404


def test_failed_reload_keeps_the_old_rules(api, tmp_path):
    h, client = api
    bad = client.post("/api/alerts/reload", json={"alerts": {"route": {"receiver": "ghost"}}})
    assert bad.status_code == 400 and "receiver 'ghost' is not defined" in bad.json()["error"]
    assert [r.name for r in h.engine.config.rules] == ["high_risk", "angry_board"]
    secret = tmp_path / "secret.yaml"
    secret.write_text("root:$6$hash-that-must-not-leak:19000:0:99999:7:::\n", encoding="utf-8")
    disclosed = client.post("/api/alerts/reload", json={"path": str(secret)})
    assert disclosed.status_code == 422 and "hash-that-must-not-leak" not in disclosed.text  # a path is never taken
    good = client.post("/api/alerts/reload", json={"alerts": {"rules": [{"name": "only_red", "min_risk_level": "I"}],
                                                              "route": {"receiver": "duty", "group_wait": 0},
                                                              "receivers": [{"name": "duty", "inapp": {}}]}}).json()
    assert good["ok"] and good["rules"] == 1
    assert [r.name for r in h.engine.config.rules] == ["only_red"]
    reasons = [a["reason"] for a in client.get("/api/alerts/audit", params={"decision": "reload"}).json()["data"]]
    assert reasons[0].startswith("applied") and reasons[1].startswith("rejected, old config kept")


def test_sse_stream_delivers_in_app_notifications_live(api, smtp_server):
    h, _ = api
    h.engine.clock = SystemClock()  # the worker runs on the wall clock here
    app = create_app(h.service, start_workers=True)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    events: list[dict] = []
    _id, token = app.state.access.create_token("stream", "staff", by="tests")

    def listen() -> None:
        with httpx.stream("GET", f"http://127.0.0.1:{port}/api/alerts/stream", timeout=10,
                          headers={"Authorization": f"Bearer {token}"}) as response:
            kind = None
            for line in response.iter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and kind == "notification":
                    events.append(json.loads(line.split(":", 1)[1]))
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    while h.engine.broadcaster.subscribers == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    payload = h.item(risk=97)
    payload["published_at"] = datetime.now(UTC).isoformat()
    h.ingest(payload)
    listener.join(10)
    # The same notification also goes out by e-mail, from the delivery process (alerts/delivery.py): waited for
    # before the service stops (a stop leaves unsent rows for the next start).
    mailed = smtp_server.wait_for(1, timeout=30)
    server.should_exit = True
    thread.join(10)
    assert events and events[0]["receiver"] == "duty" and events[0]["audience"] == "duty"
    assert any("小区停水" in a["annotations"]["title"] for a in events[0]["alerts"])
    assert mailed


def test_status_and_outbox(api):
    h, client = api
    h.ingest(h.item())
    h.tick()
    status = client.get("/api/alerts/status").json()
    assert status["rules"] == ["high_risk", "angry_board"] and "duty" in status["receivers"]
    rows = client.get("/api/alerts/outbox").json()
    assert rows["count"] >= 2 and {r["status"] for r in rows["data"]} == {"sent"}


def test_region_scoped_staff_see_and_act_on_their_district_only(api):
    h, client = api
    h.ingest(h.item(region="江城市雨花区"), h.item(region="江城市岳麓区"))
    h.tick()
    app = client.app
    token = app.state.access.create_token("yuhua", "staff", regions=["雨花区"], by="tests")[1]
    staff = TestClient(app, base_url="http://127.0.0.1", headers={"Authorization": f"Bearer {token}"})
    mine = staff.get("/api/alerts").json()
    assert mine["count"] >= 1 and {a["labels"]["region"] for a in mine["data"]} == {"江城市雨花区"}
    other = next(a for a in client.get("/api/alerts").json()["data"] if a["labels"].get("region") == "江城市岳麓区")
    assert staff.get(f"/api/alerts/{other['id']}").status_code == 404
    assert staff.post(f"/api/alerts/{other['id']}/ack", json={}).status_code == 404
    assert client.get(f"/api/alerts/{other['id']}").json()["state"] == "firing"  # untouched
    token_id = app.state.access.list_tokens()[-1]["id"]
    assert staff.post(f"/api/alerts/{mine['data'][0]['id']}/ack", json={}).json()["acked_by"] == f"token:{token_id}:yuhua"
