"""Reports by e-mail through the alert receivers, to a real SMTP server (aiosmtpd): HTML body, PDF attached under its
Chinese name, each outcome kept; the schedule makes and sends a period's report once, also across a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.service import ReportScheduler
from tests.helpers.reports import DAY, pdf_text, require_cjk_font


def smtp_block(sink) -> dict:  # noqa: ANN001
    return {"host": sink.host, "port": sink.port, "sender": "舆情系统 <yuqing@example.gov.cn>", "timeout": 5}


@pytest.fixture
def sink(smtp_server):
    smtp_server.messages.clear()
    smtp_server.received_at.clear()
    return smtp_server


def test_send_mails_html_and_the_pdf_to_each_receiver(make_harness, sink, tmp_path: Path) -> None:
    require_cjk_font()
    harness = make_harness(smtp=smtp_block(sink), settings={"receivers": ["leaders", "press"]})
    report = harness.reports.get_or_make(harness.reports.period("daily", DAY))
    outcomes = harness.reports.send(report)
    assert [(o["receiver"], o["status"]) for o in outcomes] == [("leaders", "sent"), ("press", "sent")]
    messages = sink.wait_for(2)
    leaders = next(m for m in messages if "leader@example.gov.cn" in m["To"])
    assert "mayor@example.gov.cn" in leaders["To"]
    assert str(leaders["Subject"]) == "舆情日报（2026年3月9日）"
    html = leaders.get_body(("html",)).get_content()
    assert "雨花小区停水第1天无人管" in html
    assert 'href="https://yuqing.example.gov.cn/items/' in html  # e-mail links are absolute (alerts.public_url)
    text = leaders.get_body(("plain",)).get_content()
    assert "https://yuqing.example.gov.cn/events/ev-water" in text
    attachments = list(leaders.iter_attachments())
    assert len(attachments) == 1 and attachments[0].get_filename() == "舆情日报（2026年3月9日）.pdf"
    assert attachments[0].get_content_type() == "application/pdf"
    assert "高风险信息" in pdf_text(attachments[0].get_content(), tmp_path)
    kept = harness.reports.archive.deliveries(report.id)
    assert [(d["receiver"], d["status"], d["attempts"]) for d in kept] == [("leaders", "sent", 1), ("press", "sent", 1)]


def test_a_relay_that_is_down_is_recorded_and_the_next_run_sends(make_harness, sink) -> None:
    require_cjk_font()
    from tests.helpers.browser import free_port

    down = {**smtp_block(sink), "port": free_port()}  # nothing listens there
    harness = make_harness(smtp=down, settings={"receivers": ["leaders"], "weekly": {"enabled": False}})
    result = harness.reports.run_scheduled("daily")
    assert result["made"] and result["sent"][0]["status"] == "failed" and "unreachable" in result["sent"][0]["error"]
    assert harness.reports.missed() == ["daily"]  # still owed to leaders
    harness.reports.config.alerts.smtp.port = sink.port  # the relay is back
    again = harness.reports.run_scheduled("daily")
    assert not again["made"] and [s["status"] for s in again["sent"]] == ["sent"]
    assert len(sink.wait_for(1)) == 1
    assert harness.reports.missed() == []


def test_the_schedule_runs_once_per_period_across_a_restart(make_harness, sink, tmp_path: Path) -> None:
    require_cjk_font()
    db = tmp_path / "restart.db"
    first = make_harness(smtp=smtp_block(sink), settings={"receivers": ["leaders"], "weekly": {"enabled": False}}, db=db)
    assert first.reports.missed() == ["daily"]  # 10:00: the 08:00 job of the day is owed
    scheduler = ReportScheduler(first.reports, catch_up_delay=0)
    scheduler.start()  # catches the missed job up at once, in APScheduler's thread
    try:
        assert len(sink.wait_for(1, timeout=60)) == 1
    finally:
        scheduler.stop()
    kept = first.reports.archive.get("daily", DAY)
    assert kept is not None and kept.trigger == "schedule" and kept.complete
    # A restart: a new service on the same database finds the report made and sent, and does nothing again.
    second = make_harness(smtp=smtp_block(sink), settings={"receivers": ["leaders"], "weekly": {"enabled": False}},
                          db=db, ingest=False)
    assert second.reports.missed() == []
    result = second.reports.run_scheduled("daily")
    assert result == {"kind": "daily", "date": DAY, "made": False, "sent": []}
    assert second.reports.archive.get("daily", DAY).generated_ts == kept.generated_ts
    assert len(sink.messages) == 1


def test_before_the_job_time_nothing_is_owed(make_harness, sink) -> None:
    from datetime import UTC, datetime

    harness = make_harness(smtp=smtp_block(sink), settings={"receivers": ["leaders"], "daily": {"at": "11:30"}},
                           ingest=False)
    harness.clock.set(datetime(2026, 3, 10, 3, 0, tzinfo=UTC))  # 11:00 in Beijing
    assert "daily" not in harness.reports.missed()
    harness.clock.set(datetime(2026, 3, 10, 3, 31, tzinfo=UTC))
    assert "daily" in harness.reports.missed()
