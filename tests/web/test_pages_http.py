"""The workspace's pages and reads over HTTP, without a browser: which role gets which page and which links, the CSP
on every page, offline docs, and the reads' errors. (User names, the one value the server writes into a page, are
limited to letters, digits and _ . - @ by access/service.py, and escaped all the same.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.routes.web import PAGES
from core.config import parse_config
from core.models import RawRecord
from yuqing.service import build_service

ALLOWED = {  # page → the roles that get it (others: 403, a Chinese page)
    "/": {"press_office", "manager", "admin"}, "/hot": {"press_office", "manager", "admin"},
    "/trends": {"press_office", "manager", "admin"}, "/sources": {"press_office", "manager", "admin"},
    "/alerts": {"press_office", "staff", "manager", "admin"}, "/plans": {"press_office", "staff", "manager", "admin"},
    "/review": {"press_office", "manager", "admin"}, "/settings": {"press_office", "manager", "admin"},
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - the FastAPI app
    tmp = Path(tmp_path_factory.mktemp("pages"))
    config = parse_config({"storage": {"sqlite_path": str(tmp / "p.db")}, "crawling": {"scheduler": False},
                           "sources": {"board_a": {"channel": "board", "name": "留言板A", "region": "江城市"}}})
    service = build_service(config, enrich=False)
    service.ingestor.ingest([RawRecord(source="board_a", payload={"source_id": "1", "title": "路灯不亮",
                                                                  "content": "小区路灯坏了", "published_at": "2026-11-20 10:00"})])
    application = create_app(service, start_workers=False)
    yield application
    service.close()


def client(app, role: str) -> TestClient:  # noqa: ANN001
    _id, token = app.state.access.create_token(f"pages-{role}", role, by="tests")
    return TestClient(app, base_url="http://127.0.0.1",
                      headers={"Authorization": f"Bearer {token}", "Accept": "text/html"}, follow_redirects=False)


@pytest.mark.parametrize("role", ["press_office", "staff", "manager", "admin"])
def test_each_role_gets_its_pages_with_the_csp(app, role: str) -> None:  # noqa: ANN001
    http = client(app, role)
    for path, roles in ALLOWED.items():
        response = http.get(path)
        if role in roles:
            assert response.status_code == 200, (role, path)
            csp = response.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert not re.search(r"<script>(?!</script>)", response.text)  # scripts are files, never inline
            nav = re.findall(r'<a href="(/[a-z]*)"', response.text.split("<nav", 1)[1].split("</nav>", 1)[0])
            assert set(nav) == {p for p, r in ALLOWED.items() if role in r}
        elif path == "/" and role == "staff":
            assert response.status_code == 303 and response.headers["location"] == "/alerts"
        else:
            assert response.status_code == 403 and "无权" in response.text, (role, path)
    assert http.get("/items/1").status_code == 200
    assert http.get("/items/99").status_code == 404 and "不存在" in http.get("/items/99").text
    assert http.get("/events/ev-nope").status_code == (403 if role == "staff" else 404)


def test_the_pages_name_every_page_they_serve() -> None:
    assert {p.path for p in PAGES if p.in_nav} == set(ALLOWED)


def test_docs_use_local_assets(app) -> None:  # noqa: ANN001
    http = client(app, "manager")
    for path in ("/docs", "/redoc"):
        page = http.get(path).text
        sources = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert sources and all(s.startswith("/static/") for s in sources), sources
        for asset in sources:
            assert http.get(asset).status_code == 200, asset


def test_feed_reads(app) -> None:  # noqa: ANN001
    http = client(app, "press_office")
    facets = http.get("/api/feed/facets").json()
    assert {"id": "board_a", "name": "留言板A"} in facets["sources"] and "board" in facets["channels"]
    assert facets["topics"] and "江城市" in facets["regions"]
    volume = http.get("/api/feed/volume", params={"days": 3}).json()
    assert len(volume["days"]) == 3 and all(len(s["counts"]) == 3 for s in volume["series"])
    assert http.get("/api/feed/volume", params={"by": "nonsense"}).status_code == 400
    assert client(app, "staff").get("/api/feed/facets").status_code == 403
