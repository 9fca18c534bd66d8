"""Inside `SqlState.bulk` (an import's commit group) the full-text rows wait for the group's commit, outside the
batches' savepoints (FTS5 would write a segment at each release): what the index holds after the group must be what
committing each batch would have left, for items inserted, then updated, in one group, and none of a batch that
rolled back."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.models import Item
from nlp.search_tokens import index_tokens
from nlp.tokenize import segment
from storage.base import ItemQuery, UpsertOutcome
from storage.fts import fts_key
from storage.sqlite import SqliteStore

AT = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


def item(source_id: str, content: str, hours: int = 0) -> Item:
    return Item(source="s", channel="board", source_id=source_id, content=content,
                published_at=AT.replace(hour=8 + hours), fetched_at=AT)


def found(store: SqliteStore, q: str) -> list[str]:
    return sorted(i.source_id for i in store.search(ItemQuery(q=q, limit=50)).data)


def test_full_text_rows_of_a_group_land_at_its_commit_and_match_batch_commits(tmp_path: Path) -> None:
    path = tmp_path / "bulk.db"
    store = SqliteStore(path, segment=segment, index_segment=index_tokens)
    try:
        with store.bulk():
            store.upsert([item("1", "小区楼下烧烤油烟扰民"), item("2", "路灯坏了无人维修")])
            assert found(store, "烧烤") == []  # not indexed yet: at the group's commit
            # Updated in the same group, published an hour later (its index key moves): the old words go
            assert store.upsert([item("1", "小区噪音扰民严重", hours=1)])[0].outcome == UpsertOutcome.updated
            with pytest.raises(RuntimeError), store.write():
                store.upsert([item("3", "垃圾清运不及时")])
                raise RuntimeError("a batch failed after the store stage")
        assert found(store, "烧烤") == [] and found(store, "噪音") == ["1"] and found(store, "路灯") == ["2"]
        assert found(store, "垃圾") == [] and store.stats().items == 2
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO items_fts(items_fts) VALUES ('integrity-check')")  # raises on a corrupt index
        keys = {row[0] for row in conn.execute("SELECT rowid FROM items_fts")}
        stored = conn.execute("SELECT id, published_ts FROM items").fetchall()
        garbage = [row[0] for row in conn.execute("SELECT rowid FROM items_fts WHERE items_fts MATCH '垃圾'")]
    assert keys == {fts_key(ts, item_id) for item_id, ts in stored}  # one entry per stored item, at its current key
    assert garbage == []  # the rolled-back batch left no words behind


def test_a_groups_inserts_go_in_as_one_sorted_statement_until_an_update(tmp_path: Path) -> None:
    """FTS5 writes a segment whenever a row's key is lower than the last: the inserts deferred by a group's batches
    (each starting again at an early publication time) are written as one statement in key order; an update (the old
    words taken out first) keeps its place between them."""
    from sqlalchemy import event

    path = tmp_path / "sorted.db"
    store = SqliteStore(path, segment=segment, index_segment=index_tokens)
    statements: list[tuple[str, list]] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if "items_fts" in statement and statement.startswith("INSERT"):
            statements.append((statement, list(parameters) if executemany else [parameters]))

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        with store.bulk():
            store.upsert([item("1", "小区楼下烧烤油烟扰民", hours=3), item("2", "路灯坏了无人维修", hours=1)])
            store.upsert([item("3", "垃圾清运不及时", hours=2), item("4", "噪音扰民严重", hours=0)])
            store.upsert([item("1", "小区烧烤已经停了", hours=4)])  # an update: its old words out, then the new in
            store.upsert([item("5", "井盖缺失", hours=1)])
        inserts = [params for statement, params in statements if "'delete'" not in statement]
        assert [len(params) for params in inserts] == [4, 1, 1]
        assert [row[0] for row in inserts[0]] == sorted(row[0] for row in inserts[0])
        assert sum("'delete'" in statement for statement, _ in statements) == 1
        assert found(store, "烧烤") == ["1"] and found(store, "油烟") == [] and found(store, "井盖") == ["5"]
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO items_fts(items_fts) VALUES ('integrity-check')")
