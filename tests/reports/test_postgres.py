"""The report tables on PostgreSQL: a report kept, replaced while its period runs, listed, its deliveries counted."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

import reports.store  # noqa: F401 - registers the "reports" migrations
from reports.store import ReportArchive
from storage.state import SqlState

PG_URL = os.environ.get("YUQING_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_state():
    engine = create_engine(PG_URL)
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        message = f"PostgreSQL not reachable at {PG_URL}: {exc.orig}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    name = f"yq_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    scoped = create_engine(PG_URL, connect_args={"options": f"-csearch_path={name}"})
    yield SqlState(scoped)
    scoped.dispose()
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    engine.dispose()


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
