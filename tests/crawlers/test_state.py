"""Resumable crawls, health rules, one run per source at a time, the scheduler, and GET /api/sources."""

from __future__ import annotations

import threading
import time

from fastapi.testclient import TestClient

from api.main import create_app
from core.config_crawl import HealthSpec
from crawlers.health import RunResult, health_changes, record_run, source_health
from crawlers.runner import job_dir
from crawlers.service import CrawlScheduler
from storage.base import ItemQuery
from tests.crawlers.conftest import example_sources, make_config, make_service


def test_interrupted_crawl_resumes(site, tmp_path):
    spec = example_sources(site.base_url)["demo_board"]
    spec["crawl"]["max_pages"] = 25  # the page cap stops the first run part-way, as an interruption would
    config = make_config(tmp_path, {"demo_board": spec})
    service = make_service(config)
    crawl = service.components["crawl"]
    first = crawl.run_source("demo_board")
    assert first.outcome == "partial" and 0 < first.items < 40
    assert job_dir(config, "demo_board").exists()  # Scrapy's queue of pending requests, kept for the next run
    second = crawl.run_source("demo_board")
    assert second.resumed and second.finish_reason == "finished" and second.items == 40 - first.items
    assert not job_dir(config, "demo_board").exists()
    stored = service.store.search(ItemQuery(source="demo_board", limit=100))
    assert 35 <= stored.count <= 40  # 40 letters; a few repeat another's words and are kept as duplicates
    assert len({i.source_id for i in stored.data}) == stored.count
    assert crawl.run_source("demo_board").items == 0
    assert source_health(service.store)["demo_board"].state == "ok"
    service.close()


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
    service.close()


def test_one_run_per_source_at_a_time_and_api(site, tmp_path):
    sources = example_sources(site.base_url)
    service = make_service(make_config(tmp_path, {"demo_wechat": sources["demo_wechat"], "demo_board2": sources["demo_board2"]}))
    crawl = service.components["crawl"]
    results = []
    threads = [threading.Thread(target=lambda: results.append(crawl.run_source("demo_wechat"))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r is None for r in results) == [False, True]  # the second request found a run going on
    with TestClient(create_app(service, start_workers=False)) as client:
        body = client.get("/api/sources").json()
        assert body["count"] == 2
        by_id = {s["source"]: s for s in body["data"]}
        assert by_id["demo_wechat"]["state"] == "ok" and by_id["demo_wechat"]["last_items"] == 40
        assert by_id["demo_board2"]["state"] == "unknown" and by_id["demo_board2"]["schedule"] == {"interval_seconds": 60}
        detail = client.get("/api/sources/demo_wechat").json()
        assert detail["runs"][0]["items"] == 40 and detail["runs"][0]["outcome"] == "ok"
        missing = client.get("/api/sources/nope")
        assert missing.status_code == 404 and missing.json()["ok"] is False
        items = client.get("/api/items", params={"source": "demo_wechat", "limit": 5}).json()
        assert items["count"] == service.store.stats().by_source["demo_wechat"] >= 35  # the rest: same words, kept as duplicates
    service.close()


def test_scheduler_runs_sources_on_start(site, tmp_path):
    spec = example_sources(site.base_url)["demo_mailbox"]
    service = make_service(make_config(tmp_path, {"demo_mailbox": spec}))
    scheduler = CrawlScheduler(service.components["crawl"])
    scheduler.start()
    try:
        deadline = time.monotonic() + 60
        while "demo_mailbox" not in source_health(service.store) and time.monotonic() < deadline:
            time.sleep(0.3)
    finally:
        scheduler.stop()
    assert source_health(service.store)["demo_mailbox"].last_items == 40
    assert service.store.stats().by_source["demo_mailbox"] >= 30
    service.close()
