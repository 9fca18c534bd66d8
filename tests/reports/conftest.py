"""Fixtures of the reports tests: a service with alerts, plans and reports attached on a manual clock (the day's items
ingested), and a real SMTP server (aiosmtpd) for report e-mails."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.clock import ManualClock
from tests.helpers.enrich import EnrichmentFromPayload
from tests.helpers.reports import DAY_START, REPORT_TIME, Harness, day_items, reports_config
from tests.helpers.smtp import SmtpSink, running_sink


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[SmtpSink]:
    with running_sink() as sink:
        yield sink


@pytest.fixture(scope="module")
def make_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Harness]]:
    made: list[Any] = []

    def build(*, smtp: dict[str, Any] | None = None, settings: dict[str, Any] | None = None, db: Path | None = None,
              ingest: bool = True, sections: dict[str, Any] | None = None) -> Harness:
        import alerts.service
        import playbooks.service
        import reports.service
        from yuqing.service import build_service

        db = db or tmp_path_factory.mktemp("reports") / "reports.db"
        service = build_service(reports_config(db, smtp=smtp, settings=settings, sections=sections), enrich=False, extensions=False)
        service.provide_stages("enrich", {"risk": EnrichmentFromPayload()})
        clock = ManualClock(DAY_START + timedelta(hours=12))
        engine = alerts.service.attach(service)
        engine.clock = clock
        playbooks.service.attach(service, alerts=engine)
        reports.service.attach(service)
        service.reports.clock = clock
        made.append(service)
        if ingest:
            service.writer.ingest(day_items())
            firing, _ = engine.reader.list(state="firing", limit=50)
            firing.sort(key=lambda a: a["id"])
            engine.acknowledge(firing[0]["id"], "值班员")
            engine.resolve(firing[1]["id"], "值班员", "已回复")
        clock.set(REPORT_TIME)
        return Harness(service, clock)

    yield build
    for service in made:
        service.close()
