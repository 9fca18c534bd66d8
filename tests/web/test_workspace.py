"""The workspace in real headless Chromium: each role's pages and actions, the live feed, evidence highlighting,
hostile text under the CSP, alert and plan actions, the manager review, a 390 px phone, offline API docs."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.models import SHANGHAI, Item

try:
    from playwright.sync_api import expect
except ImportError:  # every test needs the `browser` fixture, which fails under CI=true and skips elsewhere
    expect = None

NAV = {"press_office": ["风险动态", "热点", "趋势", "信息源", "预警", "处置", "复盘", "设置"],
       "staff": ["预警", "处置"],
       "manager": ["风险动态", "热点", "趋势", "信息源", "预警", "处置", "复盘", "设置"],
       "admin": ["风险动态", "热点", "趋势", "信息源", "预警", "处置", "复盘", "设置"]}
PAGES = ["/", "/hot", "/trends", "/sources", "/alerts", "/plans", "/review", "/settings"]


def test_each_role_sees_only_its_pages_and_actions(signed, site) -> None:
    for role, nav in NAV.items():
        s = signed(role)
        page = s.page
        page.wait_for_load_state("networkidle")
        assert page.locator("#nav a").all_inner_texts() == nav, role
        s.shot(f"first-visit-{role}")  # what a first-time user of the role sees after logging in
        page = s.open("/alerts")
        expect(page.locator("#alerts > li").first).to_be_visible()
        acts = page.locator("#alerts button.ack").count()
        assert (acts > 0) == (role in ("press_office", "staff", "admin")), role  # manager: read-only
        assert page.locator("#silences").is_visible() == (role == "admin")
        page = s.open("/plans")
        expect(page.locator("[data-run]").first).to_be_visible()
        assert (page.locator("button.start").count() > 0) == (role != "manager"), role
        assert not s.errors, (role, s.errors)
        if role == "staff":
            assert s.page.goto(site.url + "/").url.endswith("/alerts")  # staff start at their inbox
            for path in ("/settings", "/review", "/hot"):
                response = s.page.goto(site.url + path)
                assert response.status == 403 and "无权" in s.page.inner_text("h1"), path
            s.shot("staff-forbidden")
        else:
            page = s.open("/settings")
            expect(page.locator("#rules td.dry-run").first).not_to_have_text("计算中…")
            assert page.locator("#users").is_visible() == (role == "admin")
        if role == "manager":  # the API refuses what the page does not offer
            alert_id = s.page.request.get(site.url + "/api/alerts?limit=1").json()["data"][0]["id"]
            csrf = s.page.request.get(site.url + "/api/auth/me").json()["csrf_token"]
            refused = s.page.request.post(f"{site.url}/api/alerts/{alert_id}/ack", data={},
                                          headers={"X-CSRF-Token": csrf})
            assert refused.status == 403


def test_every_page_loads_without_errors(signed, site) -> None:
    s = signed("admin")
    for path in PAGES:
        page = s.open(path)
        page.wait_for_load_state("networkidle")
        s.shot("page" + (path.replace("/", "-") if path != "/" else "-feed"))
    event_id = s.page.request.get(f"{site.url}/api/items/{site.ids['b2']}").json()["enrichment"]["event_id"]
    page = s.open(f"/events/{event_id}")
    page.wait_for_load_state("networkidle")
    s.shot("page-event")
    expect(page.locator("#timeline canvas")).to_have_count(1)  # the volume / sentiment timeline, drawn by ECharts
    expect(page.locator("#items > li").first).to_be_visible()
    page = s.open("/hot")
    expect(page.locator("#hot-chart canvas, #hot li.muted").first).to_be_attached()
    assert not s.errors, s.errors


def test_feed_default_is_recent_risk_and_history_is_one_filter_away(signed, site) -> None:
    page = signed("press_office").open("/")
    expect(page.locator("#feed > li").first).to_be_visible()
    assert page.input_value("#since") == "7天前" and page.input_value("#sort") == "risk"
    titles = page.locator("#feed .title").all_inner_texts()
    assert "2015年的路灯问题" not in titles  # imported history does not bury today's incident
    scores = [int(t.split("·")[1].strip().rstrip("分")) for t in page.locator("#feed .badge").all_inner_texts() if "·" in t]
    assert scores == sorted(scores, reverse=True)
    page.select_option("#since", "")
    expect(page.locator("#feed")).to_contain_text("2015年的路灯问题")
    assert "since=" not in page.url or "since=&" in page.url or page.url.endswith("since=")


def test_feed_fills_live_when_an_item_is_ingested(signed, site) -> None:
    s = signed("press_office")
    page = s.open("/?sort=time&since=1天前")
    expect(page.locator("#live.on")).to_have_count(1)  # connected to the item stream
    expect(page.locator("#count")).to_contain_text("共")
    before = page.locator("#feed > li").count()
    now = datetime.now(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    site.push("weibo_a", [{"source_id": "live-1", "content": "江城大桥突发交通事故，造成两人死亡，大批群众聚集围观", "published_at": now}])
    expect(page.locator("#feed")).to_contain_text("江城大桥突发交通事故")  # no reload: the SSE `items` event
    assert page.locator("#feed > li").count() == before + 1
    expect(page.locator("#alerts")).to_contain_text("江城大桥突发交通事故")  # its alert joins the side panel
    s.shot("feed-live")


def test_item_page_marks_its_risk_reasons_in_the_text(signed, site) -> None:
    s = signed("press_office")
    page = s.open(f"/items/{site.ids['b2']}")
    expect(page.locator("#item-content mark").first).to_be_visible()
    marked = set(page.locator("#item-content mark").all_inner_texts())
    assert {"讨薪", "集体上访"} <= marked | set(page.locator("#item-title mark").all_inner_texts())
    assert "敏感词" in page.inner_text("#reasons")
    assert page.locator("#reasons li").count() >= 2
    s.shot("item-reasons")
    assert not s.errors, s.errors


def test_hostile_text_is_shown_as_text_under_the_csp(signed, site) -> None:
    payload = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>"><svg onload=alert(1)>'
    now = datetime.now(SHANGHAI)
    store = site.app.state.service.store
    # Straight into the store, past the normaliser that strips markup: the page alone must keep it inert.
    [result] = store.upsert([Item(source="board_a", channel="board", source_id="xss-raw", title="恶意标题" + payload,
                                  content="恶意正文" + payload + "<a href='javascript:alert(1)'>点我</a>",
                                  url="javascript:alert(1)", published_at=now - timedelta(minutes=5), fetched_at=now)])
    s = signed("press_office")
    page = s.open("/?sort=time&q=恶意标题")
    expect(page.locator("#feed > li")).to_have_count(1)
    assert "<script>window.__pwned=2</script>" in page.inner_text("#feed")
    page = s.open(f"/items/{result.item_id}")
    expect(page.locator("#item-title")).to_contain_text("<img src=x")
    assert page.locator("#app img, #app script, #app svg").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0
    assert "null" not in page.inner_text("#item")  # parts the item lacks are left out, not printed
    assert page.title().startswith("恶意标题<img src=x")  # the title is text, shown as written
    assert page.evaluate("() => window.__pwned") is None  # nothing of it ran (CDP evaluation is not bound by the CSP)
    s.shot("hostile-item")


def test_bad_query_shows_a_chinese_error_and_clears_stale_results(signed, site) -> None:
    s = signed("press_office")
    page = s.open("/")
    expect(page.locator("#feed > li").first).to_be_visible()
    page.fill("#q", "AND OR (")
    page.click("#search-button")
    expect(page.locator("#feed-status .error")).to_contain_text("检索式有误")
    assert page.locator("#feed > li").count() == 0
    s.shot("feed-bad-query")


def test_staff_acknowledges_an_alert(signed, site) -> None:
    s = signed("staff")
    page = s.open("/alerts")
    first = page.locator("#alerts > li[data-state=firing]").first
    expect(first).to_be_visible()
    alert_id = first.get_attribute("data-id")
    first.locator("input.comment").fill("已联系属地街道核实")
    first.locator("button.ack").click()
    expect(page.locator(f"#alerts > li[data-id='{alert_id}']")).to_have_count(0)  # gone from 待处理
    page.click("#tabs button[data-state=acknowledged]")
    done = page.locator(f"#alerts > li[data-id='{alert_id}']")
    expect(done).to_contain_text("staff")
    expect(done).to_contain_text("已联系属地街道核实")
    s.shot("alert-acknowledged")


def test_staff_completes_a_plan_step_with_evidence(signed, site) -> None:
    s = signed("staff")
    page = s.open("/plans")
    run = page.locator("[data-run]", has_text="hotline_12345").first
    step = run.locator("[data-step]").first
    step.locator("button.start").click()
    step = page.locator("[data-run]", has_text="hotline_12345").first.locator("[data-step]").first
    expect(step.locator("form .evidence-value")).to_be_visible()
    step.locator(".evidence-value").fill("已电话联系市民，工地已承诺夜间停工")
    step.locator("button.complete").click()
    step = page.locator("[data-run]", has_text="hotline_12345").first.locator("[data-step]").first
    expect(step).to_contain_text("已完成")
    expect(step).to_contain_text("已电话联系市民")
    s.shot("plan-step-done")


def test_manager_review_page(signed, site) -> None:
    s = signed("manager")
    page = s.open("/review")
    expect(page.locator("#runs-table tr")).not_to_have_count(0)
    assert page.locator("#runs-table tr").count() >= 2
    assert "时限达标率" in page.inner_text("#summary")
    href = page.get_attribute("#daily-pdf", "href")
    assert href.startswith("/api/reports/daily?date=") and href.endswith("&format=pdf")
    assert page.get_attribute("#daily-html", "href").endswith("&format=html")
    s.shot("review-manager")
    assert not s.errors, s.errors


def test_phone_width(signed, site) -> None:
    s = signed("press_office", mobile=True)
    page = s.open("/")
    expect(page.locator("#feed > li").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator("header.top").bounding_box()["width"] <= 390
    assert page.locator("aside").bounding_box()["y"] < page.locator("#feed").bounding_box()["y"]  # panels first
    s.shot("phone-feed")
    page = s.open("/alerts")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    s.shot("phone-alerts")


def test_api_docs_work_offline(signed, site) -> None:
    s = signed("manager")
    outside: list[str] = []
    # Fetched from elsewhere = a request that completed (ReDoc's footer logo points at its CDN; the CSP blocks it).
    s.page.on("requestfinished", lambda r: outside.append(r.url) if not r.url.startswith(site.url) and
              not r.url.startswith(("data:", "blob:")) else None)
    page = s.open("/docs")
    # Both bundles are about 1 MB of script and render the whole schema: on a loaded 2-core machine that takes a while.
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("yuqing", timeout=30_000)
    s.shot("docs")
    page = s.open("/redoc")
    expect(page.locator("h1").first).to_contain_text("yuqing", timeout=30_000)
    assert not outside, outside


def test_review_downloads_the_daily_report_pdf(signed, site, tmp_path) -> None:
    """The 舆情日报 link of the review page gives a PDF with Chinese text (the reports part serves /api/reports)."""
    import subprocess

    from tests.helpers.reports import require_tool

    require_tool("pdftotext")
    s = signed("manager")
    page = s.open("/review")
    href = page.get_attribute("#daily-pdf", "href")
    response = page.request.get(site.url + href)  # the signed-in session, as the link would send it
    assert response.status == 200, (href, response.text()[:300])
    pdf = tmp_path / "daily.pdf"
    pdf.write_bytes(response.body())
    assert pdf.read_bytes()[:5] == b"%PDF-", href
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "舆情" in text
