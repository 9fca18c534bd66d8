"""The crawl queue on Redis (`crawling.redis_url`): a crawl stopped part-way on one machine resumes on another from
the shared queue and duplicate filter, with the state on PostgreSQL; a clean run clears the queue; Redis away is a
failed run saying so (real Scrapy, real demo site, real Redis and PostgreSQL on 127.0.0.1)."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from core.config import parse_config
from core.models import SHANGHAI
from crawlers.health import source_health
from crawlers.settings import redis_keys
from crawlers.shared_queue import workers_key
from demo.site import DemoSite
from storage.base import ItemQuery
from tests.helpers.crawl import example_sources, make_service
from tests.helpers.services import pg_schema, redis_client


@pytest.fixture
def shared(tmp_path: Path):  # noqa: ANN201 - (state URL, redis URL, a source id of this test's own)
    client = redis_client()
    source = f"board_{uuid.uuid4().hex[:8]}"
    with pg_schema() as state_url:
        yield state_url, "redis://127.0.0.1:6379/0", source
    client.delete(*redis_keys(source))
    client.close()


def _machine(tmp: Path, name: str, state_url: str, redis_url: str, sources: dict) -> object:
    """One crawler machine: its own working folder, the shared items file, state database and queue."""
    config = parse_config({"storage": {"sqlite_path": str(tmp / "items.db"), "state_url": state_url},
                           "crawling": {"state_dir": str(tmp / name / "state"), "scheduler": False,
                                        "redis_url": redis_url},
                           "sources": sources})
    return make_service(config)


def test_a_crawl_stopped_on_one_machine_resumes_on_another_from_the_shared_queue(site: DemoSite, tmp_path: Path,
                                                                                 shared) -> None:
    state_url, redis_url, source = shared
    spec = example_sources(site.base_url)["demo_board"]
    spec["crawl"]["max_pages"] = 25  # the page cap stops the first run part-way, as an interruption would
    first_machine = _machine(tmp_path, "a", state_url, redis_url, {source: spec})
    first = first_machine.crawl.run_source(source)
    assert first.outcome == "partial" and 0 < first.items < 40
    client = redis_client()
    queue_key, seen_key = redis_keys(source)
    assert client.zcard(queue_key) > 0 and client.scard(seen_key) > 0  # the pending requests and what was fetched
    first_machine.close()

    second_machine = _machine(tmp_path, "b", state_url, redis_url, {source: spec})
    second = second_machine.crawl.run_source(source)
    assert second.resumed and second.finish_reason == "finished"
    assert second.items == 40 - first.items  # nothing fetched twice, nothing missed
    assert client.exists(queue_key, seen_key) == 0  # a clean run clears the shared queue, as a finished JOBDIR goes
    stored = second_machine.store.search(ItemQuery(source=source, limit=100))
    assert 35 <= stored.count <= 40 and len({i.source_id for i in stored.data}) == stored.count
    third = second_machine.crawl.run_source(source)
    assert third.items == 0 and source_health(second_machine.store)[source].state == "ok"
    second_machine.close()
    client.close()


def test_redis_away_is_a_failed_run_that_says_so(site: DemoSite, tmp_path: Path, shared) -> None:
    state_url, _, source = shared
    spec = example_sources(site.base_url)["demo_board"]
    machine = _machine(tmp_path, "a", state_url, "redis://127.0.0.1:1/0", {source: spec})  # nothing listens on port 1
    result = machine.crawl.run_source(source)
    assert result.finish_reason == "redis_unreachable" and result.outcome == "failed"
    assert "crawling.redis_url=redis://127.0.0.1:1/0" in result.message and "unreachable" in result.message
    assert machine.store.pending() == 0  # nothing half-collected
    machine.close()


def test_two_crawler_processes_work_one_source_queue_at_once_each_page_fetched_once(tmp_path: Path, shared) -> None:
    """Machine a starts the run (list pages); machine b joins it while it goes on: both fetch detail pages from the one
    queue, no page is fetched twice, every entry arrives once, and the last one out clears the queue."""
    state_url, redis_url, source = shared
    site = DemoSite(seed=7, history=40, new_item_seconds=10**7, incident_after_minutes=10**6,
                    start=datetime.now(SHANGHAI) - timedelta(minutes=1))
    site.start("127.0.0.1", 0)
    spec = example_sources(site.base_url)["demo_board"]
    spec["crawl"].update({"concurrency": 1, "download_delay": 0.5})  # ≈ 20 s alone: b starts while a is at it
    machines = [_machine(tmp_path, name, state_url, redis_url, {source: spec}) for name in ("a", "b")]
    client = redis_client()
    queue_key, seen_key = redis_keys(source)
    results: dict[str, object] = {}
    leader = threading.Thread(target=lambda: results.update(a=machines[0].crawl.run_source(source)))
    try:
        leader.start()
        deadline = time.monotonic() + 60
        while not client.hlen(workers_key(source)):  # the first run's process is working the queue
            assert leader.is_alive() and time.monotonic() < deadline, "the first run never started"
            time.sleep(0.05)
        results["b"] = machines[1].crawl.join_source(source)
        leader.join(120)
        first, second = results["a"], results["b"]
        assert first.finish_reason == "finished" and second.finish_reason == "finished", (first, second)
        details = {path: n for path, n in site.hits.items() if path.startswith("/board/thread/")}
        assert len(details) == 40 and set(details.values()) == {1}, details  # each page fetched once, none missed
        assert first.items > 0 and second.items > 0 and first.items + second.items == 40  # both did part of it
        assert client.exists(queue_key, seen_key, workers_key(source)) == 0  # the last one out cleared the queue
        stored = machines[1].store.search(ItemQuery(source=source, limit=100))
        assert stored.count == 40 and len({item.source_id for item in stored.data}) == 40
        with machines[0].store.read() as conn:  # the run is the first machine's; joining records none of its own
            runs = conn.execute(text("SELECT count(*) FROM crawl_runs WHERE source = :s"), {"s": source}).scalar_one()
        assert runs == 1
    finally:
        leader.join(120)
        for machine in machines:
            machine.close()
        client.close()
        site.stop()
