"""What exact dedup computes of an item — its intake signature and content hash — computed by an import's pool worker
right after PII masking (flow.pool.intake_hashes) and taken by the writer instead of computing them again: the store
ends up with what a serial import stores, and a value that no longer describes the item is never used."""

from __future__ import annotations

import sqlite3
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core import models
from core.config import parse_config
from core.models import Item, RawRecord, freeze_signature, seed_content_hashes
from flow import pool
from flow.intake import DedupStage
from flow.stages import Batch
from yuqing.host import Service
from yuqing.service import build_service, pooled_stages

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SOURCE = "board_x"
CLOCK = ("created_at", "updated_at", "fetched_at")


def records(blank: bool = False) -> list[RawRecord]:
    """Odd items: personal data to mask, a reply, extra keys, no id of the site's own, no region (filled from the text
    after dedup: not part of the signature), a repeated record; `blank`: the first ones' bodies lost (a selector that
    stopped matching) and their likes changed, so dedup puts the stored bodies back."""
    rows = [
        {"source_id": "a1", "title": "小区噪音扰民", "content": "雨花区魅力之城小区夜间施工噪音，联系电话13812345678，身份证"
         "430105199001011234", "published_at": "2026-11-01T08:00:00+08:00", "likes": 3,
         "reply_text": "已转交雨花区住建局处理", "shop": "某某超市"},
        {"title": "", "content": "公交线路调整意见：希望恢复 12 路夜班车", "published_at": "2026-11-02 09:00"},
        {"source_id": "a3", "title": "道路积水", "content": "芙蓉区人民路积水严重，车辆无法通行", "region": "芙蓉区",
         "published_at": "2026-11-03T10:30:00+08:00", "comments": 7, "reply_text": "已安排抽排",
         "reply_department": "市政局", "replied_at": "2026-11-04T10:30:00+08:00"},
        {"source_id": "a4", "title": "小区噪音扰民", "content": "雨花区魅力之城小区夜间施工噪音，已经持续一周",
         "published_at": "2026-11-05T22:00:00+08:00", "reposts": 2},
    ]
    rows.append(dict(rows[0]))  # the same record again: the later copy of a key in a batch is kept
    out = []
    for n, row in enumerate(rows):
        payload = dict(row)
        if blank and n in (0, 2):
            payload["content"], payload["likes"] = "", payload.get("likes", 0) + 1
        out.append(RawRecord(source=SOURCE, payload=payload, origin=f"row {n}"))
    return out


def open_service(folder: Path, name: str) -> Service:
    config = parse_config({"storage": {"sqlite_path": str(folder / f"{name}.db")},
                           "sources": {SOURCE: {"channel": "board", "import": {}}}})
    service = build_service(config)
    for stage in service.ingestor.chain.stages:
        if stage.name == "risk":
            stage.now = lambda: NOW
    return service


def enriched(batch: list[RawRecord]) -> Future:
    done: Future = Future()
    done.set_result(pool.enrich(batch))  # the worker's function, in this process
    return done


def rows(path: Path) -> list[dict]:
    """The items as stored, but for the clock's columns, each event named by its first item (event ids are random)."""
    with sqlite3.connect(path) as db:
        columns = [c[1] for c in db.execute("PRAGMA table_info(items)") if c[1] not in CLOCK]
        found = [dict(zip(columns, row, strict=True))
                 for row in db.execute(f"SELECT {', '.join(columns)} FROM items ORDER BY id")]
    first: dict[str, int] = {}
    for row in found:
        row["event_id"] = row["event_id"] and first.setdefault(row["event_id"], row["id"])
    return found


def test_the_hashes_a_worker_computes_are_what_a_serial_import_stores(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool, "_chain", None)  # this process becomes a worker for the test, and stops after it
    serial, pooled = open_service(tmp_path, "serial"), open_service(tmp_path, "pooled")
    pool._start_worker(pooled.config, pooled_stages)
    try:
        reports = []
        for blank in (False, False, True):  # an import, the same again (unchanged), one that loses bodies
            one = serial.writer.ingest(records(blank))
            two = pooled.writer.ingest_enriched(records(blank), enriched(records(blank))).result()
            assert one.model_dump() == two.model_dump()
            assert rows(tmp_path / "serial.db") == rows(tmp_path / "pooled.db")
            reports.append(one)
        assert reports[0].stored == 4 and reports[1].unchanged == 5 and reports[2].updated == 2
        with sqlite3.connect(tmp_path / "pooled.db") as db:
            masked, region = db.execute("SELECT content, region FROM items WHERE source_id = 'a1'").fetchone()
        # masked before the signature was taken, the region filled from the text after it (the re-import was unchanged)
        assert "13812345678" not in masked and region == "雨花区"
    finally:
        serial.close()
        pooled.close()


def test_a_worker_computes_the_hashes_right_after_pii_masking(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(pool, "_chain", None)
    service = open_service(tmp_path, "chain")
    try:
        pool._start_worker(service.config, pooled_stages)
        before_dedup, after_dedup = pool._chain
        assert [s.name for s in before_dedup.stages] == ["normalise", "pii_mask"]
        batch = before_dedup.run(Batch(raw=records()))
        expected = {id(item): (item.intake_signature(), Item.content_hash.fget(item)) for item in batch.items}
        models._CONTENT_HASHES.clear()
        got = pool.enrich(records())
        assert len(got.items) == len(expected) == 5
        assert got.hashes == list(expected.values())
        after = after_dedup.run(batch)  # segment, classify, prepare change none of the fields the hashes cover
        assert [pool.intake_hashes(item) for item in after.items] == list(expected.values())
    finally:
        service.close()


class _Store:
    """What DedupStage asks of a store, with one stored item."""

    def __init__(self, stored: Item) -> None:
        self.stored = stored

    def lookup(self, items: list[Item]) -> tuple[dict, dict]:
        return {(self.stored.source, self.stored.source_id): (1, self.stored.signature)}, {}

    def get(self, item_id: int) -> Item:
        return self.stored

    def record_duplicates(self, pairs: list) -> None:
        assert not pairs


def item(content: str, likes: int = 0) -> Item:
    return Item(source=SOURCE, channel="board", source_id="s1", title="标题", content=content, published_at=NOW,
                fetched_at=NOW, engagement={"likes": likes})


def test_dedup_takes_a_given_signature_only_while_it_describes_the_item() -> None:
    stored = item("原来的正文")
    # unchanged: the given signature (equal to the item's own) says so
    again = item("原来的正文")
    batch = Batch(items=[again], signatures={id(again): again.intake_signature()})
    DedupStage(_Store(stored)).run(batch)
    assert batch.items == [] and batch.report.unchanged == 1
    # changed: the given signature is frozen as it is
    changed = item("新的正文")
    given = changed.intake_signature()
    batch = Batch(items=[changed], signatures={id(changed): given})
    DedupStage(_Store(stored)).run(batch)
    assert batch.items == [changed] and changed.signature == given
    # the body lost: dedup puts the stored one back, and the signature given for the empty body is not used
    lost = item("", likes=5)
    stale = lost.intake_signature()
    batch = Batch(items=[lost], signatures={id(lost): stale})
    DedupStage(_Store(stored)).run(batch)
    assert batch.items == [lost] and lost.content == "原来的正文"
    assert lost.signature == lost.intake_signature() != stale and id(lost) not in batch.signatures


def test_freeze_signature_takes_the_value_given() -> None:
    one = item("正文")
    assert freeze_signature(one, "given") == "given" == one.signature
    two = item("正文")
    assert freeze_signature(two) == two.intake_signature() == two.signature


def test_seeded_content_hashes_are_found_only_for_the_fields_they_were_computed_from() -> None:
    models._CONTENT_HASHES.clear()
    one, other = item("正文"), item("正文")
    seed_content_hashes([(one, "seeded")])
    assert other.content_hash == "seeded"  # the same fields: the value given
    other.content = "另一段正文"
    assert other.content_hash == Item.content_hash.fget(item("另一段正文")) != "seeded"
    # a cache too full for a batch's values is cleared first, so that none of them is pushed out before it is asked
    models._CONTENT_HASHES.update({("s", str(n), "", ""): "x" for n in range(models._CONTENT_HASHES_MAX - 1)})
    many = [item(f"正文 {n}") for n in range(3)]
    seed_content_hashes([(it, f"h{n}") for n, it in enumerate(many)])
    assert len(models._CONTENT_HASHES) == 3 and [it.content_hash for it in many] == ["h0", "h1", "h2"]
    models._CONTENT_HASHES.clear()
