"""The HTTP API: playbooks, runs, steps, approvals, evidence, the deadline calculator; errors in the one shape."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from api.main import create_app


class ActingClient(TestClient):
    """Signs each request in as the `actor` its JSON body names (a token of that name), else as an admin: who acts on
    a plan is the signed-in caller, and the API refuses a body that claims to be someone else."""

    def __init__(self, app, **kwargs) -> None:  # noqa: ANN001
        super().__init__(app, base_url="http://127.0.0.1", **kwargs)
        self.tokens: dict[str, str] = {}

    def token(self, name: str, role: str = "press_office") -> str:
        if name not in self.tokens:
            self.tokens[name] = self.app.state.access.create_token(name, role, by="tests")[1]
        return self.tokens[name]

    def request(self, method, url, **kwargs):  # noqa: ANN001, ANN201
        body = kwargs.get("json")
        actor = body.get("actor") if isinstance(body, dict) else None
        name, role = (actor, "press_office") if isinstance(actor, str) else ("tester", "admin")
        kwargs["headers"] = {"Authorization": f"Bearer {self.token(name, role)}", **(kwargs.get("headers") or {})}
        return super().request(method, url, **kwargs)


@pytest.fixture
def client(harness):  # noqa: ANN001, ANN201
    with ActingClient(create_app(harness.service, start_workers=False)) as c:
        c.h = harness
        yield c


def test_nobody_acts_as_someone_else(client: TestClient) -> None:
    started = client.post("/api/plans/runs", json={"playbook_id": "major_incident", "actor": "duty", "event_id": "ev-1"})
    rid = started.json()["id"]
    assert started.json()["started_by"] == "duty"
    forged = client.post(f"/api/plans/runs/{rid}/comments", json={"actor": "leader_a", "text": "x"},
                         headers={"Authorization": f"Bearer {client.token('press_a')}"})
    assert forged.status_code == 403 and "leader_a" in forged.json()["error"]
    anonymous = TestClient(client.app, base_url="http://127.0.0.1").get(f"/api/plans/runs/{rid}")
    assert anonymous.status_code == 401


def error(resp, status: int) -> dict:  # noqa: ANN001
    body = resp.json()
    assert resp.status_code == status, body
    assert body["ok"] is False and body["status"] == status and isinstance(body["errors"], list)
    return body


def test_deadline_endpoint(client: TestClient) -> None:
    resp = client.get("/api/calendar/deadline", params={"start": "2024-02-08T10:00:00+08:00", "due": "2wd"})
    assert resp.json() == {"start": "2024-02-08T10:00:00+08:00", "due_spec": "2wd", "due": "2024-02-18T17:00:00+08:00",
                           "calendar": "official", "working_days": ["2024-02-09", "2024-02-18"]}
    assert client.get("/api/calendar/deadline", params={"start": "2026-12-30 10:00", "due": "15wd"}).json()["calendar"] == "fallback"
    assert client.get("/api/calendar/deadline", params={"start": "2026-12-30T10:00Z", "due": "5h"}).json()["due"] == \
        "2026-12-30T23:00:00+08:00"
    assert error(client.get("/api/calendar/deadline", params={"start": "2026-12-30", "due": "3 weeks"}), 400)["errors"][0]["loc"] == ["query", "due"]
    assert error(client.get("/api/calendar/deadline", params={"start": "yesterday", "due": "1h"}), 400)["errors"][0]["loc"] == ["query", "start"]


def test_playbooks_and_validation(client: TestClient) -> None:
    body = client.get("/api/playbooks").json()
    assert body["count"] == 5 and {p["id"] for p in body["data"]} >= {"major_incident", "hotline_12345"}
    assert client.get("/api/playbooks/major_incident").json()["steps"][1]["due"] == "5h"
    error(client.get("/api/playbooks/nope"), 404)
    bad = {"id": "x", "name": "x", "basis": "x", "steps": [{"id": "a", "title": "a", "due": "soon"}]}
    body = error(client.post("/api/playbooks/validate", json=bad), 400)
    assert body["errors"][0]["loc"] == ["<request>", "steps", "0", "due"]


def test_runs_steps_approvals_evidence_over_http(client: TestClient) -> None:
    resp = client.post("/api/plans/runs", json={"playbook_id": "major_incident", "actor": "duty", "event_id": "ev-9",
                                                "title": "化工厂气味"})
    assert resp.status_code == 201, resp.json()
    run = resp.json()
    assert [s["state"] for s in run["steps"]] == ["pending"] * 5 and run["steps"][1]["time_left"] == 5 * 3600
    body = error(client.post("/api/plans/runs", json={"playbook_id": "major_incident", "actor": "duty", "event_id": "ev-9"}), 409)
    assert f"run {run['id']}" in body["error"]
    error(client.post("/api/plans/runs", json={"playbook_id": "major_incident", "actor": "duty", "colour": 1}), 422)
    found = client.get("/api/plans/runs", params={"event_id": "ev-9"}).json()
    assert found["count"] == 1 and found["data"][0]["id"] == run["id"]
    rid = run["id"]
    base = f"/api/plans/runs/{rid}/steps/statement"
    body = error(client.post(f"{base}/transition", json={"to": "done", "actor": "press_a"}), 409)
    assert body["errors"][0]["loc"] == ["to"]
    error(client.post(f"{base}/transition", json={"to": "in_progress", "actor": "stranger"}), 403)
    assert client.post(f"{base}/transition", json={"to": "in_progress", "actor": "press_a"}).status_code == 200
    big = base64.b64encode(b"x" * (client.h.plans.config.max_evidence_bytes + 1)).decode()
    body = error(client.post(f"{base}/evidence", json={"kind": "file", "actor": "press_a", "content_b64": big,
                                                       "filename": "a.pdf"}), 400)
    assert body["errors"][0]["loc"] == ["content_b64"]
    error(client.post(f"{base}/transition", json={"to": "awaiting_approval", "actor": "drafter_a"}), 400)  # evidence
    ev = client.post(f"{base}/evidence", json={"kind": "link", "actor": "press_a", "value": "https://www.gov.cn/a"})
    assert ev.status_code == 201
    assert client.post(f"{base}/transition", json={"to": "awaiting_approval", "actor": "drafter_a"}).status_code == 200
    assert client.post(f"{base}/approvals", json={"actor": "reviewer_a", "decision": "approve"}).status_code == 200
    error(client.post(f"{base}/approvals", json={"actor": "reviewer_a", "decision": "approve"}), 403)
    done = client.post(f"{base}/approvals", json={"actor": "leader_a", "decision": "approve", "comment": "同意"}).json()
    step = done["steps"][1]
    assert step["state"] == "done" and [a["decision"] for a in step["approvals"]] == ["drafted", "approved", "approved"]
    assert done["first_response_at"] is not None
    assert client.post(f"/api/plans/runs/{rid}/steps/assess/assign", json={"assignee": "张三", "actor": "leader_a"}).status_code == 200
    assert client.post(f"/api/plans/runs/{rid}/comments", json={"actor": "leader_a", "text": "注意口径"}).status_code == 201
    audit = client.get(f"/api/plans/runs/{rid}/audit").json()
    assert audit["count"] == len(audit["data"]) and [a["action"] for a in audit["data"]][-2:] == ["assign", "comment"]
    error(client.get("/api/plans/runs/99999"), 404)
    error(client.post(f"/api/plans/runs/{rid}/steps/nope/transition", json={"to": "done", "actor": "x"}), 404)
    file_ev = client.post(f"/api/plans/runs/{rid}/steps/press_conference/evidence",
                          json={"kind": "file", "actor": "press_a", "content_b64": base64.b64encode("记录".encode()).decode(),
                                "filename": "记录.txt", "media_type": "text/plain"}).json()
    got = client.get(f"/api/plans/runs/{rid}/evidence/{file_ev['id']}/file")
    assert got.content == "记录".encode() and "filename*=UTF-8''" in got.headers["content-disposition"]
    assert client.post("/api/plans/tick").json().keys() == {"warning", "breach", "stale"}


def test_runs_for_an_item_and_openapi(client: TestClient) -> None:
    [item_id] = client.h.ingest(client.h.payload(request_type="consult"), source="hotline_a")
    body = client.get("/api/plans/runs", params={"item_id": item_id}).json()
    assert body["count"] == 1 and body["data"][0]["playbook_id"] == "hotline_12345"
    detail = client.get(f"/api/plans/runs/{body['data'][0]['id']}").json()
    assert {"due", "state", "time_left"} <= set(detail["steps"][0])
    manual = client.post("/api/plans/runs", json={"playbook_id": "disclosure_request", "actor": "x", "item_id": item_id})
    assert manual.status_code == 201 and manual.json()["received_at"] is not None
    spec = client.get("/openapi.json").json()
    for path in ("/api/plans/runs", "/api/plans/runs/{run_id}", "/api/calendar/deadline",
                 "/api/plans/runs/{run_id}/steps/{step_id}/approvals", "/api/playbooks"):
        assert path in spec["paths"], path
    assert {"RunPublic", "StepPublic", "RunsPublic", "DeadlinePublic", "EvidenceCreate", "ErrorPublic", "RunReview",
            "PeriodReview"} <= set(spec["components"]["schemas"])
    responses = spec["paths"]["/api/plans/runs/{run_id}/steps/{step_id}/transition"]["post"]["responses"]
    assert {"200", "403", "404", "409"} <= set(responses)
