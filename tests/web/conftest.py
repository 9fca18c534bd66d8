"""One real server for the browser tests (the whole service: enrichment, alerts, plans, the SSE streams) on
127.0.0.1, one Chromium for the session, a signed-in page per role, and screenshots kept in test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.main import create_app
from core.config import parse_config
from core.models import SHANGHAI
from storage.base import ItemQuery
from tests.helpers.browser import serving

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "web test password 1"
ROLES = ("press_office", "staff", "manager", "admin")
# Crawled text is hostile: these land in titles and bodies and must show as text, never run.
XSS_TITLE = '<img src=x onerror="document.title=\'pwned\'">油烟扰民<script>document.title="pwned"</script>'
XSS_BODY = '楼下烧烤店油烟扰民严重，多次投诉无果，群众聚集。<svg onload="window.__pwned=1"></svg><b onclick="x()">加粗</b>'


def recent(hours: float) -> str:
    return (datetime.now(SHANGHAI) - timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M")


@dataclass
class Site:
    url: str
    app: Any
    ingest_token: str
    hostile_id: int = 0
    ids: dict[str, int] = field(default_factory=dict)

    def push(self, source: str, records: list[dict]) -> dict:
        """Ingest through the HTTP push API, as a platform would, and wait for the report."""
        response = httpx.post(f"{self.url}/api/ingest/{source}?wait=true", json={"records": records},
                              headers={"Authorization": f"Bearer {self.ingest_token}"}, timeout=60)
        response.raise_for_status()
        return response.json()["report"]


def _config(tmp: Path) -> Any:
    return parse_config({
        "storage": {"sqlite_path": str(tmp / "web.db")},
        "sources": {"board_a": {"channel": "board", "name": "市民留言板", "region": "江城市"},
                    "weibo_a": {"channel": "weibo", "name": "微博监测"},
                    "hotline_a": {"channel": "hotline", "name": "12345热线", "region": "江城市雨花区"}},
        "alerts": {"rules": [{"name": "high_risk", "min_risk_score": 30, "severity": "warning"}],
                   "route": {"receiver": "duty", "group_wait": "0s", "group_interval": "1s"},
                   "receivers": [{"name": "duty", "inapp": {"audience": "duty"}}]},
    })


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from yuqing.service import build_service

    tmp = tmp_path_factory.mktemp("web")
    service = build_service(_config(tmp))
    app = create_app(service, start_workers=True)
    for role in ROLES:
        app.state.access.create_user(role, [role], PASSWORD)
    _id, token = app.state.access.create_token("platform", "ingest", sources=("board_a", "weibo_a", "hotline_a"), by="tests")
    with serving(app) as url:
        yield from _seeded(Site(url, app, token), service)
    service.close()


def _seeded(site: Site, service: Any) -> Iterator[Site]:
    """The site with the hostile, recent, old and three-channel items every page test reads."""
    site.push("board_a", [
        {"source_id": "b1", "title": XSS_TITLE, "content": XSS_BODY, "published_at": recent(2)},
        {"source_id": "b2", "title": "拖欠工资", "content": "包工头拖欠农民工工资两万元，多次讨薪无果，准备集体上访",
         "published_at": recent(5)},
        {"source_id": "b-old", "title": "2015年的路灯问题", "content": "小区路灯不亮已经一个月", "published_at": "2015-03-01 10:00"},
    ])
    site.push("weibo_a", [{"source_id": "w1", "content": "#江城# 公交线路调整后出行不便，大家都很愤怒", "published_at": recent(3),
                           "reposts": 12}])
    site.push("hotline_a", [{"source_id": "h1", "title": "噪音扰民投诉", "content": "工地夜间施工噪音扰民，凌晨两点还在施工",
                             "published_at": recent(1), "extra": {"request_type": "投诉"}}])
    stored = service.store.search(ItemQuery(limit=50))
    site.ids = {item.source_id: item.id for item in stored.data}
    site.hostile_id = site.ids["b1"]
    yield site


class Session:
    """A signed-in browser context of one role; collects console errors (CSP violations show there)."""

    def __init__(self, browser: Any, site: Site, role: str, *, mobile: bool = False) -> None:
        size = {"width": 390, "height": 844} if mobile else {"width": 1280, "height": 900}
        self.context = browser.new_context(viewport=size, locale="zh-CN", timezone_id="Asia/Shanghai")
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.site = site
        self.page.goto(site.url + "/login")
        self.page.fill("#username", role)
        self.page.fill("#password", PASSWORD)
        self.page.click("#login-submit")
        self.page.wait_for_url(lambda url: "/login" not in url)

    def open(self, path: str) -> Any:
        self.page.goto(self.site.url + path)
        return self.page

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def signed(browser: Any, site: Site) -> Iterator[Any]:
    """`signed(role, mobile=False)` → a Session; closed after the test."""
    sessions: list[Session] = []

    def make(role: str, *, mobile: bool = False) -> Session:
        session = Session(browser, site, role, mobile=mobile)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()
