"""Revisits: a reply (or new likes) arriving after an entry was first collected reaches the store, within the caps.

Real Scrapy against a demo site of its own (the shared one must not change under other tests); the site answers a
letter or adds likes between runs, as an office and readers do.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from core.config_crawl import CrawlSpec
from core.models import SHANGHAI
from crawlers.state import CrawlState, SeenEntry, crawl_seen
from demo.site import DemoSite, reply_of
from storage.base import ItemQuery
from storage.migrations import migrate
from storage.sqlite import SqliteStore
from tests.crawlers.conftest import example_sources, make_config, make_service

HISTORY = 12


@pytest.fixture(scope="module")
def own_site() -> DemoSite:
    demo = DemoSite(seed=31, history=HISTORY, new_item_seconds=10**7, incident_after_minutes=10**6,
                    start=datetime.now(SHANGHAI) - timedelta(minutes=1))
    demo.start("127.0.0.1", 0)
    yield demo
    demo.stop()


def _items(service: Any, source: str) -> dict[str, Any]:
    return {i.source_id: i for i in service.store.search(ItemQuery(source=source, limit=100)).data}


def _board_runs(site: DemoSite, tmp: Path) -> dict[str, Any]:
    """Three runs of the board, three revisits per run, unreplied letters only; a reply is added after run 1."""
    spec = example_sources(site.base_url)["demo_board"]
    spec["crawl"]["revisit"] = {"days": 15, "max_items": 3, "interval_hours": 0, "only_unreplied": True}
    service = make_service(make_config(tmp / "board", {"demo_board": spec}))
    crawl = service.components["crawl"]
    now = datetime.now(SHANGHAI)
    unreplied = sorted(i.key for i in site.feed.visible("board") if reply_of(i, now) is None)
    out: dict[str, Any] = {"unreplied": unreplied, "runs": [], "ingest": [], "hits": []}

    def run() -> None:
        before = dict(site.hits)
        out["runs"].append(crawl.run_source("demo_board"))
        out["ingest"].append(crawl.last_ingest["demo_board"])
        out["hits"].append({p.rsplit("/", 1)[1] for p, n in site.hits.items()
                            if p.startswith("/board/thread/") and n > before.get(p, 0)})

    run()
    out["before"] = _items(service, "demo_board")
    answered = site.feed.add_reply("board", unreplied[0], text="已转城管部门处理，油烟问题已整改。", department="市城市管理局")
    out["reply"] = answered.payload["reply"]
    run()
    out["after"] = _items(service, "demo_board")
    run()
    out["final"] = _items(service, "demo_board")
    service.close()
    return out


def _weibo_runs(site: DemoSite, tmp: Path) -> dict[str, Any]:
    """Two runs of Weibo with revisits on; one post gains likes and reposts in between."""
    spec = example_sources(site.base_url)["demo_weibo"]
    spec["crawl"]["revisit"] = {"enabled": True, "interval_hours": 0, "max_items": 100}
    service = make_service(make_config(tmp / "weibo", {"demo_weibo": spec}))
    crawl = service.components["crawl"]
    first = crawl.run_source("demo_weibo")
    before = _items(service, "demo_weibo")
    post = site.feed.visible("weibo")[0]
    site.feed.engage("weibo", post.key, likes=7, reposts=2)
    second = crawl.run_source("demo_weibo")
    out = {"first": first, "second": second, "ingest": crawl.last_ingest["demo_weibo"], "key": post.key,
           "before": before, "after": _items(service, "demo_weibo"), "payload": dict(post.payload)}
    service.close()
    return out


@pytest.fixture(scope="module")
def revisits(own_site: DemoSite, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("revisit")
    with ThreadPoolExecutor(2) as pool:
        board = pool.submit(_board_runs, own_site, tmp)
        weibo = pool.submit(_weibo_runs, own_site, tmp)
        return {"board": board.result(), "weibo": weibo.result()}


def test_reply_added_later_updates_the_stored_letter(revisits):
    board = revisits["board"]
    first, second, third = board["runs"]
    key = board["unreplied"][0]
    assert first.items == HISTORY and first.revisited == 0  # nothing was collected before the first run
    assert board["before"][key].reply is None
    # Run 2: no new letters; three letters fetched again, one of them answered since → one update.
    assert second.outcome == "ok" and second.errors == {}
    assert second.revisited == 3 and second.revisit_changed == 1 and second.items == 1
    assert board["ingest"][1].updated == 1 and board["ingest"][1].stored == 0
    stored = board["after"][key]
    assert stored.id == board["before"][key].id  # the same item, updated in place
    assert stored.reply is not None and stored.reply.text == board["reply"]["text"]
    assert stored.reply.department == "市城市管理局"
    # Run 3: the next three unanswered letters; nothing changed, nothing reaches the store.
    assert third.revisited == 3 and third.revisit_changed == 0 and third.items == 0
    assert board["ingest"][2].updated == 0 and board["ingest"][2].stored == 0
    assert {k: i.reply for k, i in board["final"].items()} == {k: i.reply for k, i in board["after"].items()}


def test_revisits_respect_the_cap_and_take_unreplied_letters_in_turn(revisits):
    board = revisits["board"]
    unreplied = board["unreplied"]
    assert len(unreplied) >= 7, "the seed must give enough unanswered letters for two rounds of three"
    assert len(board["hits"][0]) == HISTORY  # run 1: every detail page, as new entries
    # Runs 2 and 3 fetch only three detail pages each: unanswered ones, longest unchecked first.
    assert board["hits"][1] == set(unreplied[:3])
    assert board["hits"][2] == set(unreplied[3:6])  # the answered letter is no longer due; the next ones are


def test_weibo_revisit_updates_counts(revisits):
    weibo = revisits["weibo"]
    first, second, key = weibo["first"], weibo["second"], weibo["key"]
    assert first.items == HISTORY and second.errors == {}
    assert second.revisited == HISTORY and second.revisit_changed == 1 and second.items == 1
    assert weibo["ingest"].updated == 1
    before, after = weibo["before"][key].engagement, weibo["after"][key].engagement
    assert (after.likes, after.reposts) == (before.likes + 7, before.reposts + 2)
    assert (after.likes, after.reposts) == (weibo["payload"]["likes"], weibo["payload"]["reposts"])


# ---- the rules, without a crawl -------------------------------------------------------------------------------------


def _state(tmp_path: Path) -> tuple[SqliteStore, CrawlState]:
    store = SqliteStore(str(tmp_path / "state.db"), segment=str.split, fts=False)
    store.migrate()
    return store, CrawlState(store, "s")


def test_due_entries_window_interval_order_and_marking(tmp_path):
    store, state = _state(tmp_path)
    with store.write() as conn:
        state.mark_seen(conn, [SeenEntry(f"k{n}", f"f{n}", f"http://x/{n}", replied=n % 2 == 0) for n in range(6)])
        state.mark_seen(conn, [SeenEntry("no-url", "f")])  # no detail URL (e.g. a work order): never revisited
        long_ago = (datetime.now(UTC) - timedelta(days=20)).isoformat()
        two_days = (datetime.now(UTC) - timedelta(days=2)).isoformat()
        conn.execute(crawl_seen.update().where(crawl_seen.c.key == "k5").values(first_seen_at=long_ago))  # out of window
        conn.execute(crawl_seen.update().where(crawl_seen.c.key == "k3").values(checked_at=two_days))  # longest unchecked
    with store.write() as conn:
        assert state.due_for_revisit(conn, 15, 10, True, interval_hours=72) == []  # all checked within three days
        due = state.due_for_revisit(conn, 15, 10, True, interval_hours=0)
    assert [k for k, _, _ in due] == ["k3", "k1"]  # unreplied only, longest unchecked first; k5 is too old
    assert due[0][1] == "http://x/3"
    with store.write() as conn:
        everything = [k for k, _, _ in state.due_for_revisit(conn, 15, 10, False, interval_hours=0)]
        capped = [k for k, _, _ in state.due_for_revisit(conn, 15, 1, False, interval_hours=0)]
    assert everything == ["k1", "k3", "k0", "k2", "k4"]  # unreplied first (however recently checked), then replied ones
    assert capped == ["k1"]
    store.close()


def test_migration_from_v1_keeps_seen_keys_and_allows_revisits(tmp_path):
    store = SqliteStore(str(tmp_path / "old.db"), segment=str.split, fts=False)
    with store.write() as conn:
        conn.execute(text("DROP TABLE IF EXISTS crawl_seen"))
        conn.execute(text("CREATE TABLE crawl_seen (source VARCHAR(100) NOT NULL, key VARCHAR(300) NOT NULL, "
                          "fingerprint VARCHAR(100) NOT NULL, seen_at VARCHAR(40) NOT NULL, PRIMARY KEY (source, key))"))
        conn.execute(text("INSERT INTO crawl_seen VALUES ('s', 'old', '', '2026-01-01T00:00:00+00:00')"))
        conn.execute(text("DELETE FROM schema_version WHERE component = 'crawl'"))
        conn.execute(text("INSERT INTO schema_version VALUES ('crawl', 1, '2026-01-01T00:00:00+00:00')"))
        assert migrate(conn)["crawl"] >= 2
        row = conn.execute(text("SELECT first_seen_at, checked_at, replied, url FROM crawl_seen WHERE key = 'old'")).one()
    assert tuple(row) == ("2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00", 0, "")
    state = CrawlState(store, "s")
    assert state.is_seen("old")
    with store.write() as conn:
        state.mark_seen(conn, [SeenEntry("old", "new-fingerprint", "http://x/old")])
        assert conn.execute(text("SELECT first_seen_at FROM crawl_seen WHERE key = 'old'")).scalar() == "2026-01-01T00:00:00+00:00"
    store.close()


def test_revisit_config_defaults_and_validation():
    board = CrawlSpec.model_validate({"kind": "html", "html": {"list_url": "http://x/list", "row": "li"}})
    assert board.revisit.enabled and board.revisit.only_unreplied and board.revisit.max_items == 50
    weibo = CrawlSpec.model_validate({"kind": "weibo_api", "weibo": {"keywords": ["江城"]}})
    assert weibo.revisit is not None and not weibo.revisit.enabled
    hotline = CrawlSpec.model_validate({"kind": "hotline_api", "start_url": "http://x/api"})
    assert hotline.revisit is None
    with pytest.raises(ValidationError, match="updated_since"):
        CrawlSpec.model_validate({"kind": "hotline_api", "start_url": "http://x/api", "revisit": {"days": 3}})
    with pytest.raises(ValidationError, match="getappmsgext"):
        CrawlSpec.model_validate({"kind": "wechat", "wechat": {"profile_urls": ["http://x"]}, "revisit": {}})
    with pytest.raises(ValidationError):
        CrawlSpec.model_validate({"kind": "html", "html": {"list_url": "http://x", "row": "li"}, "revisit": {"max_items": 0}})
