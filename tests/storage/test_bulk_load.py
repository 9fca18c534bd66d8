"""`SqliteStore.bulk_load`: a load that at least doubles the store goes without the feed indexes and builds them at its
end; whatever happens (the load raises, the process is killed) the store has every index schema.py declares again,
at the latest when it is next opened, and readers get the same answers meanwhile."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.models import Enrichment, Item
from nlp.tokenize import segment
from storage import schema
from storage.base import ItemQuery
from storage.sqlite import SqliteStore, deferring_pays

AT = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
FEED = {index.name for index in schema.FEED_INDEXES}
DECLARED = {index.name for index in schema.items.indexes}
KEPT = {"ix_items_hash", "ix_items_event_stored"}  # dedup's and event reassignments' look-ups


def items(count: int, first: int = 0) -> list[Item]:
    return [Item(source="s", channel=("board", "weibo")[n % 2], source_id=str(n), content=f"第{n}条 小区停水",
                 published_at=AT + timedelta(minutes=n * 7 % 500), fetched_at=AT,
                 enrichment=Enrichment(topic=f"t{n % 3}", risk_score=n * 13 % 97 / 100))
            for n in range(first, first + count)]


def indexes(path: Path) -> set[str]:
    """The items table's named indexes as the file holds them (not through the store under test)."""
    with sqlite3.connect(path) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                                "AND tbl_name = 'items' AND sql IS NOT NULL")}


def page(store: SqliteStore, **filters: object) -> list[int]:
    return [i.id for i in store.search(ItemQuery(limit=20, **filters)).data]


def test_the_rule_defers_when_the_load_outweighs_the_store() -> None:
    assert deferring_pays(0, 1) and deferring_pays(1_000, 2_000) and deferring_pays(1_000_000, 1_600_000)
    assert not deferring_pays(1_000, 1_000) and not deferring_pays(1_000_000, 50_000)


def test_a_load_into_an_empty_store_defers_the_feed_indexes_and_builds_them_at_its_end(tmp_path: Path) -> None:
    path = tmp_path / "load.db"
    store = SqliteStore(path, segment=segment)
    try:
        assert indexes(path) == DECLARED and len(FEED) == 16 and KEPT == DECLARED - FEED
        with store.bulk_load(300) as load:
            assert set(load.deferred) == FEED and indexes(path) == DECLARED - FEED
            store.upsert(items(300))
            assert store.upsert(items(10))[0].outcome == "unchanged"  # dedup's look-ups are still there
        assert indexes(path) == DECLARED and load.rebuild_seconds > 0
        assert len(page(store, channel="weibo", sort="risk")) == 20
    finally:
        store.close()


def test_a_load_that_raises_midway_leaves_every_index(tmp_path: Path) -> None:
    path = tmp_path / "raise.db"
    store = SqliteStore(path, segment=segment)
    try:
        with pytest.raises(RuntimeError, match="midway"), store.bulk_load(1_000):
            store.upsert(items(100))
            raise RuntimeError("the import failed midway")
        assert indexes(path) == DECLARED
    finally:
        store.close()


def test_a_load_killed_midway_leaves_its_indexes_to_the_next_open_and_no_open_builds_them_under_it(
        tmp_path: Path) -> None:
    path = tmp_path / "killed.db"
    SqliteStore(path, segment=segment).close()
    loading = ("import sys\n"
               "from nlp.tokenize import segment\n"
               "from storage.sqlite import SqliteStore\n"
               "store = SqliteStore(sys.argv[1], segment=segment)\n"
               "with store.bulk_load(1_000) as load:\n"
               "    print(len(load.deferred), flush=True)\n"
               "    sys.stdin.readline()  # loading, until killed\n")
    process = subprocess.Popen([sys.executable, "-c", loading, str(path)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "16"
        assert indexes(path) == DECLARED - FEED
        SqliteStore(path, segment=segment).close()  # as `yuqing serve` starting meanwhile: the load's to build
        assert indexes(path) == DECLARED - FEED
    finally:
        process.kill()
        process.wait()
    assert indexes(path) == DECLARED - FEED
    SqliteStore(path, segment=segment).close()
    assert indexes(path) == DECLARED


def test_a_small_load_into_a_larger_store_keeps_its_indexes(tmp_path: Path) -> None:
    path = tmp_path / "small.db"
    store = SqliteStore(path, segment=segment)
    try:
        store.upsert(items(400))
        with store.bulk_load(100) as load:
            assert load.deferred == () and indexes(path) == DECLARED
            store.upsert(items(100, first=400))
        assert load.rebuild_seconds == 0
        assert not Path(f"{path}-bulk-load").exists()  # no load deferred here: no lock file beside the database
    finally:
        store.close()


def test_a_reader_of_the_file_gets_the_same_pages_while_the_indexes_are_deferred(tmp_path: Path) -> None:
    path = tmp_path / "read.db"
    store = SqliteStore(path, segment=segment)
    reader = SqliteStore.read_only(path, segment=segment)
    try:
        store.upsert(items(200))
        queries = [{}, {"sort": "risk"}, {"channel": "board"}, {"topic": "t1", "sort": "risk"}]
        before = [page(reader, **q) for q in queries]
        with store.bulk_load(1_000):
            assert indexes(path) == DECLARED - FEED
            assert [page(reader, **q) for q in queries] == before
        assert [page(reader, **q) for q in queries] == before
    finally:
        reader.close()
        store.close()
