"""Login, lock-out, CSRF, tokens, region scoping, host and origin checks, headers, audit — against the real app."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.config import Config
from core.models import RawRecord
from storage.base import ItemQuery
from yuqing.service import build_service

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app(tmp_path):  # noqa: ANN201
    config = Config.model_validate({"storage": {"sqlite_path": str(tmp_path / "y.db")},
                                    "sources": {"board": {"channel": "board"}, "hotline": {"channel": "hotline"}}})
    service = build_service(config, enrich=False, extensions=False)
    app = create_app(service, start_workers=False)
    app.state.access.clock = Clock()
    app.state.access.create_user("alice", ["admin"], PASSWORD)
    yield app
    service.close()


def _client(app) -> TestClient:  # noqa: ANN001
    return TestClient(app, base_url="http://127.0.0.1")


def _audit(app, action: str) -> list[dict]:  # noqa: ANN001
    return app.state.access.list_audit(action=action, limit=1000)[0]


def test_login_sets_a_safe_cookie_and_state_changes_need_the_csrf_token(app):
    client = _client(app)
    answer = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert answer.status_code == 200 and answer.json()["roles"] == ["admin"]
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "yuqing_session=" in cookie
    csrf = answer.json()["csrf_token"]
    assert client.get("/api/items").status_code == 200  # the cookie alone reads
    body = {"username": "bob", "password": PASSWORD, "roles": ["staff"]}
    forged = client.post("/api/access/users", json=body)  # what a cross-site form could send: no header
    assert forged.status_code == 403 and "csrf" in forged.json()["error"].lower()
    wrong = client.post("/api/access/users", json=body, headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    assert [u["name"] for u in client.get("/api/access/users").json()["data"]] == ["alice"]  # nothing changed
    made = client.post("/api/access/users", json=body, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201
    assert client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert client.get("/api/items").status_code == 401
    assert [a["outcome"] for a in _audit(app, "login")] == ["ok"]
    assert any(a["detail"].get("reason", "").startswith("403 missing or wrong CSRF") for a in _audit(app, "denied"))


def test_wrong_passwords_lock_the_account_and_the_lock_expires(app):
    client = _client(app)
    access = app.state.access
    for _ in range(access.config.lockout.attempts):
        bad = client.post("/api/auth/login", json={"username": "alice", "password": "wrong password!"})
        assert bad.status_code == 401 and bad.json()["ok"] is False
    locked = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert locked.status_code == 401  # the right password does not open a locked account
    failures = _audit(app, "login_failed")
    assert failures[0]["detail"]["reason"] == "locked" and failures[1]["detail"]["locked"] is True
    access.clock.now += access.config.lockout.lock_minutes * 60 + 1
    assert client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD}).status_code == 200
    unknown = client.post("/api/auth/login", json={"username": "nobody", "password": PASSWORD})
    assert unknown.status_code == 401 and unknown.json()["error"] == locked.json()["error"]  # no account enumeration


def test_one_address_cannot_guess_at_speed(app):
    client = _client(app)
    limit = app.state.access.config.lockout.per_address_per_minute
    codes = [client.post("/api/auth/login", json={"username": f"u{i}", "password": "x" * 12}).json()["error"]
             for i in range(limit + 1)]
    assert "too many login attempts" in codes[-1] and "too many" not in codes[0]


def test_tokens_are_shown_once_work_on_every_route_and_can_be_revoked(app):
    admin = _client(app)
    csrf = admin.post("/api/auth/login", json={"username": "alice", "password": PASSWORD}).json()["csrf_token"]
    created = admin.post("/api/access/tokens", json={"name": "pusher", "role": "ingest", "sources": ["hotline"]},
                         headers={"X-CSRF-Token": csrf}).json()
    token = created["token"]
    assert token.startswith("yq_")
    listed = admin.get("/api/access/tokens").json()["data"]
    assert [t["name"] for t in listed] == ["pusher"] and token not in str(listed)  # only its digest is kept
    bot = TestClient(app, base_url="http://127.0.0.1", headers={"Authorization": f"Bearer {token}"})
    record = {"records": [{"title": "停水", "content": "小区停水三天", "published_at": "2026-12-01 10:00"}]}
    assert bot.post("/api/ingest/hotline", json=record).status_code in (200, 202)
    other = bot.post("/api/ingest/board", json=record)
    assert other.status_code == 403 and "hotline" in other.json()["error"]  # only its named sources
    assert bot.get("/api/items").status_code == 403  # an ingest token reads nothing
    assert bot.post("/api/alerts/silences", json={}).status_code in (403, 404)
    assert admin.delete(f"/api/access/tokens/{created['id']}", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert bot.post("/api/ingest/hotline", json=record).status_code == 401
    expired = app.state.access.create_token("short", "manager", expires_days=1, by="tests")[1]
    app.state.access.clock.now += 2 * 86400
    late = TestClient(app, base_url="http://127.0.0.1", headers={"Authorization": f"Bearer {expired}"})
    assert late.get("/api/items").status_code == 401
    assert TestClient(app, base_url="http://127.0.0.1",
                      headers={"Authorization": "Bearer yq_made-up"}).get("/api/items").status_code == 401
    assert TestClient(app, base_url="http://127.0.0.1",
                      cookies={"yuqing_session": "forged"}).get("/api/items").status_code == 401
    assert {a["action"] for a in app.state.access.list_audit(limit=1000)[0]} >= {"token_create", "token_use",
                                                                                  "token_revoke", "denied"}


def test_bad_roles_and_scopes_are_refused_with_their_field(app):
    access = app.state.access
    client = TestClient(app, base_url="http://127.0.0.1",
                        headers={"Authorization": f"Bearer {access.create_token('root', 'admin', by='t')[1]}"})
    ghost_role = client.post("/api/access/users", json={"username": "x", "password": PASSWORD, "roles": ["boss"]})
    assert ghost_role.status_code == 400 and "boss" in ghost_role.json()["error"]
    ghost_region = client.post("/api/access/users", json={"username": "x", "password": PASSWORD, "roles": ["staff"],
                                                          "regions": ["亚特兰蒂斯"]})
    assert ghost_region.status_code == 400 and ghost_region.json()["errors"][0]["loc"] == ["regions"]
    assert client.post("/api/access/tokens", json={"name": "p", "role": "ingest"}).status_code == 400  # no source
    assert [u["name"] for u in access.list_users()] == ["alice"]  # nothing half-created


def test_region_scoped_staff_see_only_their_district(app):
    service = app.state.service
    records = [RawRecord(source="board", payload={"title": f"{region}停水", "content": f"{region}某小区停水", "region": region,
                                                   "published_at": "2026-12-01 10:00"}, origin="test")
               for region in ("江城市雨花区", "江城市岳麓区")]
    service.ingestor.ingest(records)
    access = app.state.access
    token = access.create_token("district", "press_office", regions=["雨花区"], by="tests")[1]
    scoped = TestClient(app, base_url="http://127.0.0.1", headers={"Authorization": f"Bearer {token}"})
    feed = scoped.get("/api/items").json()
    assert [i["region"] for i in feed["data"]] == ["江城市雨花区"] and feed["count"] == 1
    (other,) = service.store.search(ItemQuery(region="江城市岳麓区")).data
    assert scoped.get(f"/api/items/{other.id}").status_code == 404  # outside the scope: as if it did not exist


def test_host_origin_headers_and_health(app):
    client = _client(app)
    rebinding = client.get("/health", headers={"Host": "attacker.example"})
    assert rebinding.status_code == 400
    cross = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD},
                        headers={"Origin": "http://attacker.example"})
    assert cross.status_code == 403
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["items"] is None  # no counts for anonymous callers
    assert "server" not in health.headers
    csp = health.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert health.headers["x-content-type-options"] == "nosniff"
    page = client.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert client.get("/docs").status_code == 401 and client.get("/openapi.json").status_code == 401
    assert client.get("/login").status_code == 200


def test_a_token_revoked_elsewhere_is_refused_within_a_second(app):
    """Token rows are remembered for TOKEN_ROW_SECONDS: a revocation by another process (the CLI, another instance)
    takes effect within that time, one through this service at once."""
    from access.service import TOKEN_ROW_SECONDS, AccessService

    access = app.state.access
    (first_id, first), (_, second) = (access.create_token(n, "manager", by="tests") for n in ("one", "two"))
    bot = TestClient(app, base_url="http://127.0.0.1", headers={"Authorization": f"Bearer {first}"})
    assert bot.get("/api/items").status_code == 200
    elsewhere = AccessService(access.store, access.config, clock=access.clock)  # as `yuqing token revoke` would
    elsewhere.revoke_token(first_id, by="cli")
    access.clock.now += TOKEN_ROW_SECONDS / 2
    assert bot.get("/api/items").status_code == 200  # still remembered
    access.clock.now += TOKEN_ROW_SECONDS / 2
    assert bot.get("/api/items").status_code == 401
    other = TestClient(app, base_url="http://127.0.0.1", headers={"Authorization": f"Bearer {second}"})
    assert other.get("/api/items").status_code == 200
    access.revoke_token(access.token(second).id, by="tests")
    assert other.get("/api/items").status_code == 401  # revoked here: at once
