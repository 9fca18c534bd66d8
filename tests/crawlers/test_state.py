"""Resumable crawls, health rules, one run per source at a time, the scheduler, and GET /api/sources.

The resume chain (three runs, one after another) starts in the background when the module starts and is checked
last, so its runs overlap the other tests' instead of adding to them.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from api.main import create_app
from core.config_crawl import HealthSpec
from crawlers.health import RunResult, health_changes, record_run, source_health
from crawlers.runner import job_dir
from crawlers.service import CrawlScheduler
from demo.site import DemoSite
from storage.base import ItemQuery
from tests.helpers.crawl import example_sources, make_config, make_service


def _resume_chain(site: DemoSite, tmp: Path) -> dict[str, Any]:
    spec = example_sources(site.base_url)["demo_board"]
    spec["crawl"]["max_pages"] = 25  # the page cap stops the first run part-way, as an interruption would
    config = make_config(tmp, {"demo_board": spec})
    service = make_service(config)
    crawl = service.crawl
    out: dict[str, Any] = {"first": crawl.run_source("demo_board")}
    out["job_dir_kept"] = job_dir(config, "demo_board").exists()  # Scrapy's queue of pending requests
    out["second"] = crawl.run_source("demo_board")
    out["job_dir_after"] = job_dir(config, "demo_board").exists()
    out["stored"] = service.store.search(ItemQuery(source="demo_board", limit=100))
    out["third"] = crawl.run_source("demo_board")
    out["health"] = source_health(service.store)["demo_board"]
    service.close()
    return out


@pytest.fixture(scope="module", autouse=True)
def resume_chain(site: DemoSite, tmp_path_factory: pytest.TempPathFactory) -> Future:
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(_resume_chain, site, tmp_path_factory.mktemp("resume"))
        yield future


def _run(source: str, outcome: str, entries: int = 10, **errors: int) -> RunResult:
    pages_ok = 0 if outcome == "failed" else 3
    return RunResult(source=source, started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:01:00+00:00",
                     finish_reason="finished", pages=3, pages_ok=pages_ok, entries=entries, items=entries, errors=errors)


def test_health_rules_and_changes(tmp_path):
    service = make_service(make_config(tmp_path, {}))
    rules = HealthSpec(failing_after=3)
    assert record_run(service.store, _run("s", "ok"), rules).state == "ok"
    assert record_run(service.store, _run("s", "failed", 0, http_500=2), rules).state == "degraded"
    assert record_run(service.store, _run("s", "failed", 0, timeout=1), rules).state == "degraded"
    failing = record_run(service.store, _run("s", "failed", 0, timeout=1), rules)
    assert failing.state == "failing" and failing.consecutive_failures == 3 and "3 failed runs" in failing.reason
    recovered = record_run(service.store, _run("s", "ok"), rules)
    assert recovered.state == "ok" and recovered.consecutive_failures == 0 and recovered.last_success_at
    assert record_run(service.store, _run("s", "ok", 10, parse_error=6), rules).state == "degraded"  # errors jumped
    changes = [(c["from_state"], c["to_state"]) for c in health_changes(service.store)]
    assert changes == [("unknown", "ok"), ("ok", "degraded"), ("degraded", "failing"), ("failing", "ok"), ("ok", "degraded")]
    # What collection publishes for other packages (alert rules), in domain terms, and what alerts was given.
    [status] = service.crawl.statuses()
    assert (status.source, status.status) == ("s", "degraded") and "parse" in status.reason and status.last_success
    assert service.alerts.source_health == service.crawl.statuses
    service.close()


def test_scheduler_runs_sources_one_run_at_a_time_and_api(site, tmp_path, signed_in):
    sources = example_sources(site.base_url)
    disabled = {**sources["demo_board2"], "enabled": False}  # listed by the API, never scheduled
    service = make_service(make_config(tmp_path, {"demo_wechat": sources["demo_wechat"], "demo_board2": disabled}))
    crawl = service.crawl
    scheduler = CrawlScheduler(crawl)
    scheduler.start()  # interval sources run at start-up
    try:
        deadline = time.monotonic() + 60
        while "demo_wechat" not in crawl.running and "demo_wechat" not in source_health(service.store):
            assert time.monotonic() < deadline, "the scheduler did not start the source"
            time.sleep(0.05)
        during = crawl.run_source("demo_wechat")  # the scheduled run is going on
        while "demo_wechat" not in source_health(service.store) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        scheduler.stop()
    assert during is None
    with signed_in(create_app(service, start_workers=False)) as client:
        body = client.get("/api/sources").json()
        assert body["count"] == 2
        by_id = {s["source"]: s for s in body["data"]}
        assert by_id["demo_wechat"]["state"] == "ok" and by_id["demo_wechat"]["last_items"] == 40
        assert by_id["demo_board2"]["state"] == "unknown" and by_id["demo_board2"]["schedule"] == {"interval_seconds": 60}
        detail = client.get("/api/sources/demo_wechat").json()
        assert detail["runs"][0]["items"] == 40 and detail["runs"][0]["outcome"] == "ok" and len(detail["runs"]) == 1
        missing = client.get("/api/sources/nope")
        assert missing.status_code == 404 and missing.json()["ok"] is False
        items = client.get("/api/items", params={"source": "demo_wechat", "limit": 5}).json()
        assert items["count"] == service.store.stats().by_source["demo_wechat"] >= 35  # the rest: same words, kept as duplicates
    service.close()


def test_interrupted_crawl_resumes(resume_chain):
    result = resume_chain.result()
    first, second = result["first"], result["second"]
    assert first.outcome == "partial" and 0 < first.items < 40
    assert result["job_dir_kept"]
    assert second.resumed and second.finish_reason == "finished" and second.items == 40 - first.items
    assert not result["job_dir_after"]
    stored = result["stored"]
    assert 35 <= stored.count <= 40  # 40 letters; a few repeat another's words and are kept as duplicates
    assert len({i.source_id for i in stored.data}) == stored.count
    assert result["third"].items == 0
    assert result["health"].state == "ok"
