"""In real headless Chromium (Debian's, driven by Playwright): a manager logs in, reads the 日报 page and downloads
the 日报 PDF from /api/reports/daily?format=pdf; pdftotext finds its Chinese text. The page is kept as a screenshot
in test-artifacts/screenshots/ (gitignored)."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.main import create_app
from tests.helpers.browser import serving
from tests.helpers.reports import DAY, pdf_text, require_cjk_font, require_tool

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "manager password 1"


@pytest.fixture(scope="module")
def server(make_harness):
    """The service on a real port: the day's items, and a manager account (reports clock: the next morning)."""
    harness = make_harness()
    app = create_app(harness.service, start_workers=False)
    app.state.access.create_user("manager1", ["manager"], PASSWORD)
    with serving(app) as url:
        yield url


def test_manager_reads_the_report_and_downloads_the_pdf(browser, server: str, tmp_path: Path) -> None:
    require_cjk_font()
    require_tool("pdftotext")
    playwright_api = pytest.importorskip("playwright.sync_api")
    context = browser.new_context(accept_downloads=True, viewport={"width": 1000, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.goto(server + "/login")
    page.fill("input[name=username]", "manager1")
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)

    page.goto(server + "/api/reports/daily")  # no date: the last complete day, the morning after the items
    heading = page.locator("h1")
    playwright_api.expect(heading).to_have_text("舆情日报")
    assert "2026年3月9日" in page.inner_text(".meta")
    assert "雨花小区停水第1天无人管" in page.inner_text("body")
    assert page.locator("img.chart").count() == 4
    # Chinese really drawn: each chart image has loaded (a broken data: URI has no natural width).
    widths = [page.locator("img.chart").nth(i).evaluate("img => img.naturalWidth") for i in range(4)]
    assert all(w > 100 for w in widths), widths
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "report-daily.png"), full_page=True)

    with page.expect_download() as info:  # the page's own 下载 PDF link
        page.click("#pdf-link")
    linked = info.value
    assert linked.suggested_filename == "舆情日报（2026年3月9日）.pdf"

    download_page = context.new_page()
    with download_page.expect_download() as info:
        try:
            download_page.goto(server + "/api/reports/daily?format=pdf")
        except playwright_api.Error as exc:  # a navigation that turns into a download "fails" by design
            assert "Download is starting" in str(exc)
    download = info.value
    assert download.failure() is None
    target = tmp_path / download.suggested_filename
    download.save_as(str(target))
    assert target.name == "舆情日报（2026年3月9日）.pdf"
    text = pdf_text(target.read_bytes(), tmp_path)
    for expected in ("舆情日报", "2026年3月9日", "高风险信息", "雨花小区停水第1天无人管", "热点事件"):
        assert expected in text, expected
    assert DAY in page.url or "/api/reports/daily" in page.url
    context.close()
