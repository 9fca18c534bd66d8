"""Originals (analysis.pii.keep_raw) are kept apart from the items as served and read through store.original only."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from analysis.stages import pre_stages
from core.config import parse_config
from core.errors import NotFound
from core.models import RawRecord
from flow.ingest import Ingestor
from nlp.tokenize import segment
from storage.base import ItemQuery
from storage.sqlite import SqliteStore

PERSONAL = "我叫张三，电话13812345678，家住雨花区XX小区3栋2单元501室"


def _ingestor(tmp_path, keep_raw: bool) -> tuple[Ingestor, SqliteStore]:
    config = parse_config({"sources": {"mailbox_a": {"channel": "mailbox"}},
                           "analysis": {"pii": {"enabled": True, "keep_raw": keep_raw}}})
    store = SqliteStore(tmp_path / "o.db", segment=segment)
    return Ingestor(config, store, pre_stages(config)), store


def _record(content: str, **extra: str) -> RawRecord:
    return RawRecord(source="mailbox_a", payload={"source_id": "7", "published_at": "2026-01-05 10:00", "title": "停水",
                                                   "content": content, "author": "张三", **extra})


def test_originals_are_kept_apart_and_read_only_through_store_original(tmp_path) -> None:
    ingest, store = _ingestor(tmp_path, keep_raw=True)
    item_id = ingest.ingest([_record(PERSONAL, contact_phone="13812345678")]).item_ids[0]
    served = [store.get(item_id), *store.search(ItemQuery()).data]
    for item in served:
        dumped = item.model_dump_json()
        assert "raw" not in item.extra and "13812345678" not in dumped and "张三" not in dumped and "501" not in dumped
    with store.read() as conn:  # nothing of the original in the items table, its index or its duplicates either
        doc = conn.execute(text("SELECT doc || title || content || coalesce(author, '') FROM items")).scalar_one()
    assert "13812345678" not in doc and "张三" not in doc
    original = store.original(item_id)
    assert original == {"content": PERSONAL, "author": "张三", "extra": {"contact_phone": "13812345678"}}
    store.close()


def test_nothing_is_kept_without_keep_raw_and_updates_replace_or_drop_originals(tmp_path) -> None:
    ingest, store = _ingestor(tmp_path, keep_raw=False)
    item_id = ingest.ingest([_record(PERSONAL)]).item_ids[0]
    assert store.original(item_id) is None
    store.close()

    ingest, store = _ingestor(tmp_path / "kept", keep_raw=True)
    item_id = ingest.ingest([_record(PERSONAL)]).item_ids[0]
    assert store.original(item_id)["content"] == PERSONAL
    changed = "我叫张三，电话13912345678"
    assert ingest.ingest([_record(changed)]).updated == 1
    assert store.original(item_id)["content"] == changed  # the new version's original replaces the old one
    assert ingest.ingest([RawRecord(source="mailbox_a", payload={"source_id": "7", "published_at": "2026-01-05 10:00",
                                                                 "title": "停水", "content": "已经恢复供水"})]).updated == 1
    assert store.original(item_id) is None  # nothing masked any more: the stale original is gone
    with pytest.raises(NotFound):
        store.original(999_999)
    store.close()


def test_migration_moves_extra_raw_out_of_stored_items(tmp_path) -> None:
    """Items stored while keep_raw wrote `extra.raw` (served to everyone) lose it; the originals move apart."""
    ingest, store = _ingestor(tmp_path, keep_raw=False)
    item_id = ingest.ingest([_record(PERSONAL)]).item_ids[0]
    item = store.get(item_id)
    item.extra["raw"] = {"content": PERSONAL}  # as the old code stored it
    with store.write() as conn:
        conn.execute(text("UPDATE items SET doc = :doc WHERE id = :id"),
                     {"doc": item.model_dump_json(exclude={"id"}), "id": item_id})
        conn.execute(text("DELETE FROM schema_version WHERE component = 'originals'"))
        conn.execute(text("DROP TABLE item_originals"))
    store.close()

    reopened = SqliteStore(tmp_path / "o.db", segment=segment)
    assert reopened.versions["originals"] == 1
    migrated = reopened.get(item_id)
    assert "raw" not in migrated.extra and "13812345678" not in migrated.model_dump_json()
    assert reopened.original(item_id) == {"content": PERSONAL}
    with reopened.read() as conn:
        signature = conn.execute(text("SELECT signature FROM items WHERE id = :id"), {"id": item_id}).scalar_one()
    assert signature == migrated.signature  # a re-crawl still compares as unchanged
    ingest = Ingestor(ingest.config, reopened, pre_stages(ingest.config))
    assert ingest.ingest([_record(PERSONAL)]).unchanged == 1
    reopened.close()


def test_nested_extra_is_served_masked_and_kept_whole(tmp_path) -> None:
    ingest, store = _ingestor(tmp_path, keep_raw=True)
    nested = {"who": {"name": "李四", "phones": ["13812345678", 13912345678], "note": "联系人：王五"}, "unit": "城管局"}
    item_id = ingest.ingest([_record("请回电", extra=nested)]).item_ids[0]
    served = store.get(item_id).model_dump_json()
    for secret in ("李四", "13812345678", "13912345678", "王五"):
        assert secret not in served, secret
    assert store.get(item_id).extra["unit"] == "城管局"
    assert json.loads(json.dumps(store.original(item_id)["extra"])) == nested
    store.close()
