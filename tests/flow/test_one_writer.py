"""Concurrent ingests must not share one batch's scratch: 16 pushes of 100 records at once while crawls drain give
the same store as the same input ingested one batch at a time (issue 12: before the single writer, items kept a
negative, temporary near_duplicate_of, and valid items were quarantined with an IndexError from the index).

Only the HTTP API is used, so the test runs unchanged against the code from before the writer (`?wait=true` was
ignored there: every push answered with its report).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.main import create_app
from core.config import Config, parse_config
from core.models import SHANGHAI
from core.paths import data_dir
from demo.generator import DemoGenerator
from demo.site import DemoSite
from storage.schema import items as items_table
from tests.helpers.crawl import example_sources
from yuqing.service import build_service

THREADS = 16
PER_REQUEST = 100
CRAWLED = ("demo_board", "demo_mailbox", "demo_weibo")
PUSH_SOURCES = {"push_board": {"channel": "board"}}


@pytest.fixture(scope="module")
def site() -> Iterator[DemoSite]:
    demo = DemoSite(seed=3, history=60, new_item_seconds=10**7, incident_after_minutes=10**6,
                    start=datetime.now(SHANGHAI) - timedelta(minutes=1))
    demo.start("127.0.0.1", 0)
    yield demo
    demo.stop()


def pushed_records(n: int) -> list[dict[str, Any]]:
    """Real messages of the 泰迪杯 hot-issue export when the shared data is there (it is full of near-duplicates:
    that is what made it a hot issue), else demo messages made from templates (near-duplicates too)."""
    path = data_dir() / "tipdm2020c_hot_issue_messages" / "messages.csv"
    if path.exists():
        import pandas as pd

        frame = pd.read_csv(path, nrows=n)
        return [{"source_id": str(r.message_id), "title": str(r.title), "content": " ".join(str(r.body).split()),
                 "published_at": str(r.created_at), "likes": int(r.likes)} for r in frame.itertuples()]
    return [{**d.payload, "source_id": f"p{i}"} for i, d in enumerate(DemoGenerator(11).items(n))][:n]


def make_config(tmp_path: Path, base_url: str, name: str) -> Config:
    crawl_sources = {k: v for k, v in example_sources(base_url).items() if k in CRAWLED}
    return parse_config({"storage": {"sqlite_path": str(tmp_path / f"{name}.db")},
                         "crawling": {"state_dir": str(tmp_path / f"{name}-state"), "scheduler": False},
                         "sources": {**PUSH_SOURCES, **crawl_sources}})


def crawl(client: TestClient, source: str) -> None:
    """Start a crawl through the API and wait until its run (and the drain after it) is over."""
    assert client.post(f"/api/sources/{source}/crawl").status_code == 202
    deadline = time.monotonic() + 120
    while True:
        entry = client.get(f"/api/sources/{source}").json()
        if entry["runs"] and not entry["running"]:
            return
        assert time.monotonic() < deadline, f"crawl of {source} did not finish"
        time.sleep(0.1)


def push(client: TestClient, records: list[dict[str, Any]]) -> None:
    response = client.post("/api/ingest/push_board?wait=true", json={"records": records})
    assert response.status_code == 200, response.text


def outcome(service: Any) -> dict[str, int]:
    """What was stored: items, quarantined records, and the near_duplicate_of of stored items (in the item document)."""
    repeat_of = func.json_extract(items_table.c.doc, "$.enrichment.near_duplicate_of")
    with service.store.read() as conn:
        negative = conn.execute(select(func.count()).select_from(items_table).where(repeat_of < 0)).scalar()
        repeats = conn.execute(select(func.count()).select_from(items_table).where(repeat_of > 0)).scalar()
    return {"items": service.store.stats().items, "quarantined": service.store.list_quarantine(limit=500).count,
            "negative_near_duplicate_of": negative, "near_duplicates": repeats}


def run(config: Config, records: list[dict[str, Any]], concurrent: bool) -> dict[str, int]:
    service = build_service(config)
    try:
        app = create_app(service, start_workers=False)
        token = app.state.access.create_token("one-writer", "admin", by="tests")[1]
        with TestClient(app, base_url="http://127.0.0.1", headers={"Authorization": f"Bearer {token}"}) as client:
            chunks = [records[i:i + PER_REQUEST] for i in range(0, len(records), PER_REQUEST)]
            if concurrent:
                with ThreadPoolExecutor(THREADS + len(CRAWLED)) as pool:
                    crawls = [pool.submit(crawl, client, source) for source in CRAWLED]
                    pushes = [pool.submit(push, client, chunk) for chunk in chunks]
                    for future in [*crawls, *pushes]:
                        future.result()
            else:
                for source in CRAWLED:
                    crawl(client, source)
                for chunk in chunks:
                    push(client, chunk)
        return outcome(service)
    finally:
        service.close()


def test_concurrent_pushes_and_crawl_drains_store_what_one_at_a_time_stores(site: DemoSite, tmp_path: Path) -> None:
    records = pushed_records(THREADS * PER_REQUEST)
    serial = run(make_config(tmp_path, site.base_url, "serial"), records, concurrent=False)
    concurrent = run(make_config(tmp_path, site.base_url, "concurrent"), records, concurrent=True)
    assert serial["quarantined"] == 0 and serial["negative_near_duplicate_of"] == 0
    assert serial["near_duplicates"] > 0  # the input exercises the near-duplicate index
    assert concurrent["quarantined"] == 0, f"valid items were quarantined: {concurrent}"
    assert concurrent["negative_near_duplicate_of"] == 0, f"stored items point at temporary ids: {concurrent}"
    assert concurrent["items"] == serial["items"], f"{concurrent} vs serial {serial}"
