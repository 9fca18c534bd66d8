"""Issue 16's migrations (core v4: risk_rank and the feed indexes; v5: the time-keyed contentless full-text index)
on a database written by the code before them: tests/storage/fixtures/core_v3.db holds the contract suite's corpus
as that code stored it."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from core.models import Item
from nlp.search_tokens import index_tokens
from nlp.tokenize import segment
from storage.base import ItemQuery, UpsertOutcome
from storage.fts import fts_key
from storage.sqlite import SqliteStore

FIXTURE = Path(__file__).parent / "fixtures" / "core_v3.db"


def sids(items: list[Item]) -> list[str]:
    return [item.source_id for item in items]


def test_a_v3_database_migrates_and_answers_as_before(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    shutil.copy(FIXTURE, path)
    store = SqliteStore(path, segment=segment, index_segment=index_tokens)
    try:
        assert store.versions["core"] >= 5
        assert sids(store.search(ItemQuery(sort="risk")).data) == ["4", "1", "2", "3", "5"]
        assert sids(store.search(ItemQuery(q="油烟")).data) == ["5", "1"]
        assert sids(store.search(ItemQuery(q="烧烤 NEAR/3 油烟", channel="weibo")).data) == ["5"]
        assert sids(store.search(ItemQuery(min_risk=55)).data) == ["4", "2", "1"]
        # An edited item leaves the index under its old text and enters it under the new one.
        first = next(i for i in store.search(ItemQuery()).data if i.source_id == "1")
        edited = first.model_copy(update={"id": None, "title": "小区噪音扰民", "content": "楼下烧烤店噪音扰民"})
        assert store.upsert([edited])[0].outcome == UpsertOutcome.updated
        assert sids(store.search(ItemQuery(q="油烟")).data) == ["5"]
        assert sids(store.search(ItemQuery(q="噪音")).data) == ["2", "1"]
        item_ids = {i.source_id: i.id for i in store.search(ItemQuery()).data}
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO items_fts(items_fts) VALUES ('integrity-check')")
        keys = {row[0] for row in conn.execute("SELECT rowid FROM items_fts")}
        stored = conn.execute("SELECT id, published_ts FROM items").fetchall()
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        ranks = dict(conn.execute("SELECT id, risk_rank FROM items").fetchall())
        fts_sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'items_fts'").fetchone()[0]
        hashsize = conn.execute("SELECT v FROM items_fts_config WHERE k = 'hashsize'").fetchone()  # core v9
    assert keys == {fts_key(ts, item_id) for item_id, ts in stored}
    assert {"ix_items_topic_time", "ix_items_topic_risk", "ix_items_risk_rank"} <= indexes
    assert not {"ix_items_risk", "ix_items_event"} & indexes
    assert ranks[item_ids["5"]] == -1.0 and ranks[item_ids["4"]] == 80.0
    assert "content=''" in fts_sql  # the index keeps no copy of the text
    assert hashsize == (16 * 1024 * 1024,)


def test_v7_stores_each_fact_once_and_items_read_as_before(tmp_path: Path) -> None:
    """core v7: the document keeps only what no column holds; every item reads back equal to what the old document
    said, and importing it again is `unchanged` (the rewritten document compares like a newly written one)."""
    path = tmp_path / "v3.db"
    shutil.copy(FIXTURE, path)
    with sqlite3.connect(path) as conn:
        before = {row[0]: Item.model_validate_json(row[1]).model_copy(update={"id": row[0]})
                  for row in conn.execute("SELECT id, doc FROM items")}
    store = SqliteStore(path, segment=segment, index_segment=index_tokens)
    try:
        assert store.versions["core"] >= 7
        after = {item_id: store.get(item_id) for item_id in before}
        assert after == before
        again = [item.model_copy(update={"id": None}) for item in before.values()]
        assert {r.outcome for r in store.upsert(again)} == {UpsertOutcome.unchanged}
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        docs = [row[0] for row in conn.execute("SELECT doc FROM items")]
    for doc in docs:
        assert not {"title", "content", "source", "published_at"} & set(json.loads(doc)), doc
