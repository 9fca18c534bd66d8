"""The report tables on PostgreSQL: a report kept, replaced while its period runs, listed, its deliveries counted."""

from __future__ import annotations

import pytest

import reports.store  # noqa: F401 - registers the "reports" migrations
from reports.store import ReportArchive
from storage.state import SqlState
from tests.helpers.postgres import pg_schema


@pytest.fixture
def pg_state():
    with pg_schema() as (engine, _name):
        yield SqlState(engine)


def test_reports_and_deliveries_on_postgres(pg_state: SqlState) -> None:
    archive = ReportArchive(pg_state)
    content = {"title": "舆情日报", "period": {"label": "2026年3月9日", "start": "2026-03-08T16:00:00+00:00",
                                             "end": "2026-03-09T16:00:00+00:00"}, "volume": {"total": 3}}
    common = {"kind": "daily", "period_key": "2026-03-09", "start_ts": 1.0, "end_ts": 2.0, "trigger": "demand",
              "content": content, "html": "<p>日报</p>", "link_base": ""}
    first = archive.save(**common, generated_ts=1.5, complete=False, pdf=None)
    second = archive.save(**common, generated_ts=2.5, complete=True, pdf=b"%PDF-1.4")
    assert second.id == first.id and second.complete and second.pdf == b"%PDF-1.4"
    rows, count = archive.list()
    assert count == 1 and rows[0]["has_pdf"] and rows[0]["complete"]
    archive.record_delivery(second.id, "leaders", error="SMTP down", now=3.0)
    archive.record_delivery(second.id, "leaders", error=None, now=4.0)
    assert [(d["status"], d["attempts"], d["error"]) for d in archive.deliveries(second.id)] == [("sent", 2, None)]
