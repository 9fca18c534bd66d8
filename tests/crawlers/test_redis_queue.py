"""The crawl queue on Redis (`crawling.redis_url`): a crawl stopped part-way on one machine resumes on another from
the shared queue and duplicate filter, with the state on PostgreSQL; a clean run clears the queue; Redis away is a
failed run saying so (real Scrapy, real demo site, real Redis and PostgreSQL on 127.0.0.1)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from core.config import parse_config
from crawlers.health import source_health
from crawlers.settings import redis_keys
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
