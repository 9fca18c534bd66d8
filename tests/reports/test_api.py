"""GET /api/reports/{kind} (HTML, PDF), GET /api/reports, POST /api/reports/{kind}/send: who may, what comes back."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest

from access.guard import route_roles
from access.roles import Role
from api.main import create_app
from tests.helpers.reports import DAY, pdf_text, require_cjk_font


@pytest.fixture(scope="module")
def app(make_harness, smtp_server):
    harness = make_harness(smtp={"host": smtp_server.host, "port": smtp_server.port, "sender": "舆情系统 <yuqing@example.gov.cn>"},
                           settings={"receivers": ["leaders"]})
    application = create_app(harness.service, start_workers=False)
    application.state.harness = harness
    return application


def test_routes_are_guarded_for_managers_and_the_press_office(app) -> None:
    roles = route_roles(app)
    readers = frozenset({Role.press_office, Role.manager, Role.admin})
    assert roles["GET /api/reports"] == readers and roles["GET /api/reports/{kind}"] == readers
    assert roles["POST /api/reports/{kind}/send"] == frozenset({Role.manager, Role.admin})


def test_html_report_for_the_press_office(app, signed_in) -> None:
    with signed_in(app, "press_office") as client:
        answer = client.get("/api/reports/daily", params={"date": DAY})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        assert "雨花小区停水第1天无人管" in answer.text and "舆情日报" in answer.text
        disposition = answer.headers["content-disposition"]
        assert disposition.startswith('inline; filename="yuqing-daily-2026-03-09.html"; filename*=UTF-8\'\'')
        assert quote("舆情日报（2026年3月9日）.html", safe="") in disposition


def test_pdf_download_names_the_file_in_chinese(app, signed_in, tmp_path: Path) -> None:
    require_cjk_font()
    with signed_in(app, "manager") as client:
        answer = client.get("/api/reports/daily", params={"date": DAY, "format": "pdf"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-disposition"] == (
        "attachment; filename=\"yuqing-daily-2026-03-09.pdf\"; filename*=UTF-8''"
        + quote("舆情日报（2026年3月9日）.pdf", safe=""))
    assert "雨花小区停水第1天无人管" in pdf_text(answer.content, tmp_path)


def test_a_complete_report_is_kept_and_served_again(app, signed_in) -> None:
    harness = app.state.harness
    with signed_in(app, "manager") as client:
        first = client.get("/api/reports/daily", params={"date": DAY}).text
        harness.clock.advance(timedelta(hours=3))
        again = client.get("/api/reports/daily", params={"date": DAY}).text
        listed = client.get("/api/reports").json()
        fresh = client.get("/api/reports/daily", params={"date": DAY, "refresh": "true"}).text
    assert again == first  # same generation time: not made again
    assert fresh != first
    daily = [r for r in listed["data"] if r["kind"] == "daily" and r["date"] == DAY]
    assert len(daily) == 1 and daily[0]["complete"] and daily[0]["has_pdf"] in (True, False)
    assert daily[0]["pdf_url"] == f"/api/reports/daily?date={DAY}&format=pdf"


def test_a_running_period_is_made_again_each_time(app, signed_in) -> None:
    harness = app.state.harness
    today = harness.clock.now().date().isoformat()  # 2026-03-10 in Beijing as well (10:00+)
    with signed_in(app, "press_office") as client:
        one = client.get("/api/reports/weekly", params={"date": today})
        harness.clock.advance(timedelta(minutes=5))
        two = client.get("/api/reports/weekly", params={"date": today})
    assert one.status_code == two.status_code == 200
    assert "本期尚未结束" in one.text and one.text != two.text
    assert "2026年3月9日—3月15日" in one.text


def test_who_may_not(app, signed_in) -> None:
    with signed_in(app, "staff") as client:
        assert client.get("/api/reports/daily", params={"date": DAY}).status_code == 403
        assert client.get("/api/reports").status_code == 403
    with signed_in(app, "press_office") as client:
        assert client.post("/api/reports/daily/send", json={"date": DAY}).status_code == 403
    with signed_in(app, "manager", regions=("雨花区",)) as client:
        answer = client.get("/api/reports/daily", params={"date": DAY})
        assert answer.status_code == 403 and "属地" in answer.json()["error"]
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="http://127.0.0.1") as anonymous:
        assert anonymous.get("/api/reports/daily", params={"date": DAY}).status_code == 401


def test_bad_input_is_a_clear_error(app, signed_in) -> None:
    with signed_in(app, "manager") as client:
        bad_date = client.get("/api/reports/daily", params={"date": "2026-13-40"})
        assert bad_date.status_code == 400 and "YYYY-MM-DD" in bad_date.json()["error"]
        assert client.get("/api/reports/monthly").status_code == 422
        assert client.get("/api/reports/daily", params={"format": "docx"}).status_code == 422
        unknown = client.post("/api/reports/daily/send", json={"date": DAY, "receivers": ["nobody"]})
        assert unknown.status_code == 400 and "nobody" in unknown.json()["error"]
        assert client.get("/api/reports/weekly", params={"date": "0001-01-01"}).status_code == 400
        assert client.get("/api/reports/weekly", params={"date": "9999-12-31"}).status_code == 400
