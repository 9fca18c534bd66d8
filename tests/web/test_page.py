"""The web page in real headless Chromium against a real server on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from api.main import create_app
from core.config import parse_config
from core.models import RawRecord
from yuqing.service import build_service

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        message = "Chromium not found: `make test` installs it (Debian package chromium) when run as root"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


PASSWORD = "reader password 1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("web")
    config = parse_config({"storage": {"sqlite_path": str(tmp / "web.db")},
                           "sources": {"board_a": {"channel": "board"}, "weibo_a": {"channel": "weibo"}}})
    service = build_service(config, enrich=False, extensions=False)
    service.ingestor.ingest([
        RawRecord(source="board_a", payload={"source_id": "1", "title": "小区油烟扰民", "content": "楼下烧烤店油烟扰民严重",
                                             "published_at": "2026-11-20 10:00"}),
        RawRecord(source="weibo_a", payload={"source_id": "2", "content": "#江城# 公交线路调整后出行不便",
                                             "published_at": "2026-11-21 10:00", "reposts": 12}),
        RawRecord(source="board_a", payload={"source_id": "3", "title": "拖欠工资", "content": "包工头拖欠工资两万元",
                                             "published_at": "2026-11-22 10:00"}),
    ])
    port = free_port()
    app = create_app(service, start_workers=False)
    app.state.access.create_user("reader", ["press_office"], PASSWORD)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 15
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)
    service.close()


def test_feed_search_and_error(browser, server: str, tmp_path: Path) -> None:
    page = browser.new_page()
    page.goto(server + "/")  # not signed in: the login form, then back to the feed
    page.wait_for_url("**/login**")
    page.fill("#username", "reader")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(server + "/")
    page.wait_for_selector("#feed > li")
    assert page.locator("#feed > li").count() == 3
    assert "共 3 条" in page.inner_text("#count")
    page.fill("#q", "油烟扰民")
    page.click("#search button")
    expect = pytest.importorskip("playwright.sync_api").expect
    expect(page.locator("#feed > li")).to_have_count(1)  # locators, not eval: the page's CSP forbids eval
    assert "小区油烟扰民" in page.inner_text("#feed")
    page.fill("#q", "AND OR (")
    page.click("#search button")
    page.wait_for_selector("#error:not([hidden])")
    assert "检索出错" in page.inner_text("#error")
    page.select_option("#channel", "weibo")
    page.fill("#q", "")
    page.click("#search button")
    expect(page.locator("#feed")).to_contain_text("公交线路")
    assert page.locator("#feed > li").count() == 1
    assert "微博" in page.inner_text("#feed")
    page.screenshot(path=str(tmp_path / "feed.png"), full_page=True)
    page.close()
