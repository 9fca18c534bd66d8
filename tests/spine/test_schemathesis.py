"""schemathesis against the service's own OpenAPI schema, signed in as an admin: no request it can make answers 500.

Short by design (a few examples per operation); `SCHEMATHESIS_EXAMPLES=200` runs a long pass. Operations with effects
outside the process are left out: the SSE streams never end, a manual crawl starts Scrapy, a receiver test sends
messages and a reload reads the config file — each has its own tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from api.main import create_app
from core.config import parse_config
from yuqing.service import build_service

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "6"))
LEFT_OUT = {"/api/alerts/stream", "/api/feed/stream", "/api/sources/{source}/crawl", "/api/alerts/receivers/{name}/test",
            "/api/alerts/reload", "/api/auth/logout"}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - a schemathesis schema
    db = Path(tmp_path_factory.mktemp("fuzz")) / "fuzz.db"
    config = parse_config({"storage": {"sqlite_path": str(db)},
                           "sources": {"board_a": {"channel": "board", "region": "江城市"}},
                           "crawling": {"scheduler": False},
                           "alerts": {"rules": [{"name": "every_item"}], "route": {"receiver": "duty"},
                                      "receivers": [{"name": "duty", "inapp": {}}]}})
    service = build_service(config, enrich=False)
    app = create_app(service, start_workers=False)
    _id, token = app.state.access.create_token("fuzz-admin", "admin", by="tests")
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = app
    schema.auth_header = {"Authorization": f"Bearer {token}"}  # read by the test below
    yield schema
    service.close()


def test_no_request_answers_500(api_schema) -> None:  # noqa: ANN001 - a schemathesis schema
    headers = {**api_schema.auth_header, "Host": "127.0.0.1"}
    failures: list[str] = []
    checked = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if operation.path in LEFT_OUT:
            continue
        checked += 1

        @given(operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def no_server_error(case) -> None:  # noqa: ANN001 - a schemathesis Case
            response = case.call(headers=headers)
            assert response.status_code < 500, (f"{case.method} {case.formatted_path} query={case.query} "
                                                f"body={case.body!r:.300} → {response.status_code} {response.text[:300]}")

        try:
            no_server_error()
        except AssertionError as exc:
            failures.append(str(exc).splitlines()[0])
    assert checked > 20
    assert failures == []
