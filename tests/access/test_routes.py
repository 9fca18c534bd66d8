"""Every route of the app — including the routers extensions add — refuses an anonymous caller (401) and a caller
without the role (403); only /health and the login page and endpoint are open."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from access.guard import api_routes, route_roles, unguarded_routes
from access.roles import Role
from api.main import create_app
from core.config import Config
from yuqing.service import build_service

OPEN = {"GET /health", "GET /login", "POST /api/auth/login"}


@pytest.fixture(scope="module")
def app(tmp_path_factory):  # noqa: ANN201
    config = Config.model_validate({"storage": {"sqlite_path": str(tmp_path_factory.mktemp("routes") / "y.db")},
                                    "sources": {"board": {"channel": "board"}}})
    service = build_service(config)  # every extension: crawlers, analysis, alerts, ...
    yield create_app(service, start_workers=False)
    service.close()


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def _routes(app) -> list[tuple[str, str]]:  # noqa: ANN001
    return [(method, path) for path, methods, _dep in api_routes(app) for method in sorted(methods) if method != "HEAD"]


def test_no_route_is_left_without_an_access_rule(app):
    assert unguarded_routes(app) == []
    roles = route_roles(app)
    assert {key for key, allowed in roles.items() if allowed is None and not key.startswith("HEAD")} == OPEN
    # the routers extensions add are walked too (proof that the walk sees them)
    assert any(path.startswith("/api/alerts") for _m, path in _routes(app))
    assert any(path.startswith("/api/events") for _m, path in _routes(app))
    assert any(path.startswith("/api/sources") for _m, path in _routes(app))


def test_every_route_refuses_anonymous_callers_and_callers_without_the_role(app):
    roles = route_roles(app)
    tokens = {role: app.state.access.create_token(f"walk-{role.value}", role.value, sources=("board",), by="tests")[1]
              for role in Role}
    client = TestClient(app, base_url="http://127.0.0.1")
    checked = 0
    for method, path in _routes(app):
        key = f"{method} {path}"
        allowed = roles[key]
        url = _concrete(path)
        if allowed is None:
            assert key in OPEN, key
            continue
        anonymous = client.request(method, url, json={})
        assert anonymous.status_code == 401, (key, anonymous.status_code, anonymous.text[:200])
        assert anonymous.json()["ok"] is False
        for role in set(Role) - allowed:
            refused = client.request(method, url, json={}, headers={"Authorization": f"Bearer {tokens[role]}"})
            assert refused.status_code == 403, (key, role, refused.status_code, refused.text[:200])
        checked += 1
    assert checked >= 30
