"""Two instances, one cluster: two real `yuqing serve` processes on different ports share the state on PostgreSQL,
the items (one SQLite file, or one Elasticsearch: osmem-server), and Redis (crawl queue, live stream). Records are pushed through both at once (some to both),
both schedule the same crawls; nothing is duplicated or lost, each scheduled crawl runs once, every stored item is
alerted once and every alert reaches the real webhook receiver once."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text

from core.config_storage import ElasticsearchConfig
from core.models import SHANGHAI
from crawlers.settings import redis_keys
from demo.site import DemoSite
from storage.base import ItemQuery
from storage.opening import open_store
from tests.helpers.cluster import Receiver, record
from tests.helpers.crawl import example_sources
from tests.helpers.elastic import drop_indices, new_prefix
from tests.helpers.serve import free_port, start_service
from tests.helpers.services import REDIS_URL, pg_schema, redis_client

RULE = "every_item"


def push(port: int, token: str, numbers: list[int], answers: list[int]) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        for begin in range(0, len(numbers), 10):
            chunk = numbers[begin:begin + 10]
            answers.append(c.post("/api/ingest/push_src", json={"records": [record(n) for n in chunk]}).status_code)


@pytest.fixture(params=["sqlite", "elasticsearch"])
def items_storage(request, tmp_path: Path):  # noqa: ANN001, ANN201
    """The `storage` section for the items: one SQLite file both instances open, or one Elasticsearch (its own index
    prefix on the session's osmem-server, deleted afterwards)."""
    if request.param == "sqlite":
        yield {"sqlite_path": str(tmp_path / "items.db")}
        return
    url = request.getfixturevalue("elasticsearch_url")
    prefix = new_prefix()
    yield {"backend": "elasticsearch", "sqlite_path": str(tmp_path / "unused.db"),
           "elasticsearch": {"url": url, "index_prefix": prefix, "compatible_with": False, "replicas": 0, "shards": 1}}
    drop_indices(url, prefix)


def stored_items(store) -> list:  # noqa: ANN001
    """Every item, through the store's interface (either backend), page by page."""
    if hasattr(store, "refresh"):
        store.refresh()  # another process wrote: a cluster shows its documents after a refresh
    items, cursor = [], None
    while True:
        page = store.search(ItemQuery(limit=500, cursor=cursor))
        items.extend(page.data)
        cursor = page.next_cursor
        if cursor is None:
            return items


@pytest.fixture
def cluster(tmp_path: Path, items_storage: dict):  # noqa: ANN201
    redis = redis_client()
    board = f"board_{uuid.uuid4().hex[:8]}"
    site = DemoSite(seed=11, history=30, new_item_seconds=10**7, incident_after_minutes=10**6,
                    start=datetime.now(SHANGHAI) - timedelta(minutes=1))
    site.start("127.0.0.1", 0)
    receiver = Receiver()
    with pg_schema() as state_url:
        yield {"state_url": state_url, "items": items_storage, "board": board, "site": site, "receiver": receiver, "redis": redis}
    receiver.close()
    site.stop()
    redis.delete(*redis_keys(board))
    redis.close()


def test_two_instances_share_one_cluster_without_duplicates_or_losses(tmp_path: Path, cluster) -> None:
    from access.app import open_access
    from core.config import load_config
    from yuqing.service import build_service

    board, receiver = cluster["board"], cluster["receiver"]
    spec = example_sources(cluster["site"].base_url)["demo_board"]
    spec["crawl"]["schedule"] = {"interval_seconds": 3600}  # runs at start on each instance's scheduler: once overall
    ports = [free_port(), free_port()]
    configs = []
    for n, port in enumerate(ports):
        path = tmp_path / f"instance{n}.yaml"
        path.write_text(yaml.safe_dump({
            "server": {"host": "127.0.0.1", "port": port},
            "storage": {**cluster["items"], "state_url": cluster["state_url"]},
            "sources": {"push_src": {"channel": "hotline", "region": "江城市"}, board: spec},
            "crawling": {"scheduler": True, "redis_url": REDIS_URL, "state_dir": str(tmp_path / f"crawl{n}")},
            "alerts": {"rules": [{"name": RULE, "max_age": "3650d"}],
                       "route": {"receiver": "duty", "group_by": ["item_id"], "group_wait": "1s", "group_interval": "1s"},
                       "receivers": [{"name": "duty", "webhook": {"url": receiver.url}}],
                       "poll_interval": "1s"},
        }, allow_unicode=True))
        configs.append(path)
    setup = build_service(load_config(configs[0]), enrich=False, extensions=False)
    _id, token = open_access(setup.store, load_config(configs[0])).create_token("cluster-test", "ingest",
                                                                               sources=["push_src"], by="test")
    setup.close()

    logs = [tmp_path / "instance0.log", tmp_path / "instance1.log"]
    procs = [start_service(configs[0], ports[0], logs[0], log_level="info", timeout=90),
                 start_service(configs[1], ports[1], logs[1], log_level="info", timeout=90)]
    try:
        answers: list[int] = []
        first, second = list(range(0, 120)), list(range(100, 220))  # 100–119 go to both instances
        pushers = [threading.Thread(target=push, args=(ports[0], token, first, answers)),
                   threading.Thread(target=push, args=(ports[1], token, second, answers))]
        for t in pushers:
            t.start()
        for t in pushers:
            t.join(120)
        assert answers and set(answers) == {202}

        state = create_engine(cluster["state_url"])
        items_config = cluster["items"]
        es = items_config.get("elasticsearch")
        store = open_store(items_config["sqlite_path"], cluster["state_url"], segment=str.split, fts=False,
                           elasticsearch=ElasticsearchConfig.model_validate(es) if es else None)
        deadline = time.monotonic() + 120
        while True:
            items = stored_items(store)
            pushed = [item.source_id for item in items if item.source == "push_src"]
            crawled = [item.source_id for item in items if item.source == board]
            ids = {item.id for item in items}
            with store.item_read() as conn:  # the after-store outbox sits beside the items' identities
                waiting = conn.execute(text("SELECT count(*) FROM pending_after_store")).scalar_one()
            with state.connect() as conn:
                alerted = Counter(conn.execute(text("SELECT item_id FROM alerts WHERE rule = :r"), {"r": RULE}).scalars())
                inbox = conn.execute(text("SELECT count(*) FROM inbox")).scalar_one()
                runs = conn.execute(text("SELECT count(*) FROM crawl_runs WHERE source = :b"), {"b": board}).scalar_one()
                sent = conn.execute(text("SELECT count(*) FROM alert_outbox WHERE status = 'sent'")).scalar_one()
                unsent = conn.execute(text("SELECT count(*) FROM alert_outbox WHERE status != 'sent'")).scalar_one()
            done = (len(pushed) == 220 and len(crawled) >= 25 and runs >= 1 and inbox == 0 and waiting == 0
                    and set(alerted) == ids and unsent == 0 and sum(receiver.new_alert_ids().values()) == len(ids))
            if done:
                break
            assert time.monotonic() < deadline, json.dumps({
                "pushed": len(pushed), "crawled": len(crawled), "runs": runs, "inbox": inbox, "after_store": waiting,
                "alerted": len(alerted), "items": len(ids), "sent": sent, "unsent": unsent,
                "received": sum(receiver.new_alert_ids().values())})
            time.sleep(1)
        time.sleep(3)  # a late duplicate send or a second scheduled crawl would show up now
        with state.connect() as conn:
            runs = conn.execute(text("SELECT count(*) FROM crawl_runs WHERE source = :b"), {"b": board}).scalar_one()
            alerted = Counter(conn.execute(text("SELECT item_id FROM alerts WHERE rule = :r"), {"r": RULE}).scalars())
        assert sorted(pushed) == sorted(f"wo-{n}" for n in range(220))  # each record once, none lost
        assert len(set(crawled)) == len(crawled) >= 25
        assert runs == 1  # both schedulers fired at start: the crawl ran once
        assert set(alerted.values()) == {1}  # one alert per item
        new_ids = receiver.new_alert_ids()
        assert len(new_ids) == len(ids) and set(new_ids.values()) == {1}  # each alert sent once
        keys = Counter(body["dedup_key"] for body in receiver.bodies)
        assert set(keys.values()) == {1}
        for log in logs:
            assert "Traceback" not in log.read_text(), log.read_text()[-4000:]
        both = [log.read_text() for log in logs]
        assert all("msg=ingest received=" in text_ for text_ in both)  # each instance ingested some of it
        # ... and picked up what the other one learnt before its next batch, so events stay one set: every event an
        # item points at is stored, none was absorbed by one instance and kept alive by the other.
        assert any("another instance ingested since our last batch" in text_ for text_ in both)
        used = {item.enrichment.event_id for item in stored_items(store) if item.enrichment.event_id}
        with state.connect() as conn:
            stored_events = set(conn.execute(text("SELECT id FROM events")).scalars())
        assert used and used <= stored_events
        if es:  # nothing was written to a SQLite items file: the crawl processes opened the state alone
            assert not Path(items_config["sqlite_path"]).exists()
        state.dispose()
        store.close()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
