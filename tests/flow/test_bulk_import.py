"""A file import around `IngestWriter.bulk_load`: what the writer itself reads while the feed indexes are deferred is
still served by an index (dedup, known items, event reassignments), and an import that raises midway leaves the
store with every index."""

from __future__ import annotations

import csv
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import parse_config
from core.models import RawRecord
from flow.importer import FileImporter
from flow.ingest import chunks
from flow.pool import import_batches
from storage import schema
from tests.helpers.query_plans import executed
from yuqing.service import build_service, pooled_stages

COLUMNS = {"message_id": "source_id", "user_id": "author", "title": "title", "created_at": "published_at",
           "body": "content", "likes": "likes", "dislikes": "dislikes"}
DECLARED = {index.name for index in schema.items.indexes}
FEED = {index.name for index in schema.FEED_INDEXES}


def config(folder: Path, name: str):  # noqa: ANN201 - core.config.Config
    return parse_config({"storage": {"sqlite_path": str(folder / f"{name}.db")},
                         "ingest": {"batch_size": 150, "import_commit_items": 300},
                         "sources": {"board_tipdm": {"channel": "board", "import": {"columns": COLUMNS}}}})


def indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                                "AND tbl_name = 'items' AND sql IS NOT NULL")}


def hot_issues(shared_data: Path, folder: Path, rows: int) -> Path:
    """The first rows of the real 泰迪杯 hot-issue posts (many repeat each other: events merge, items move)."""
    with (shared_data / "tipdm2020c_hot_issue_messages" / "messages.csv").open(encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        real = [row for _, row in zip(range(rows), reader, strict=False)]
    path = folder / "hot.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(real[0]))
        writer.writeheader()
        writer.writerows(real)
    return path


@pytest.mark.data
def test_what_the_writer_reads_during_a_deferred_import_is_served_by_an_index(shared_data: Path,
                                                                              tmp_path: Path) -> None:
    cfg = config(tmp_path, "plans")
    service = build_service(cfg)
    path = hot_issues(shared_data, tmp_path, 900)
    importer = FileImporter(path, "board_tipdm", cfg.sources["board_tipdm"].import_)
    try:
        with service.writer.bulk_load(importer.estimated_records()) as load:
            assert set(load.deferred) == FEED
            with executed(service.store.engine) as statements:
                report, _ = import_batches(service.writer, cfg, chunks(importer.records(), 150), 1, pooled_stages)
            assert report.stored > 800
            on_items = [(sql, params) for sql, params in statements
                        if re.match(r"\s*(SELECT|UPDATE|DELETE)\b", sql) and re.search(r"\bitems\b", sql)]
            assert any(sql.lstrip().startswith("UPDATE items SET event_id") for sql, _ in on_items)  # events merged
            with service.store.read() as conn:  # still without the feed indexes
                for sql, params in on_items:
                    many = isinstance(params, list)  # an executemany: its first row's parameters
                    plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql,
                                                                   params[0] if many else params)]
                    assert not any(re.fullmatch(r"SCAN items", step) for step in plan), (sql, plan)
        assert indexes(Path(cfg.storage.sqlite_path)) == DECLARED and load.rebuild_seconds > 0
    finally:
        service.close()


def test_an_import_that_raises_midway_leaves_every_index(tmp_path: Path) -> None:
    cfg = config(tmp_path, "raise")
    service = build_service(cfg, enrich=False, extensions=False)

    def records() -> Iterator[RawRecord]:
        for n in range(1_000):
            if n == 700:  # after two commit groups and into a third
                raise OSError("the export's disk went away")
            yield RawRecord(source="board_tipdm", payload={"source_id": str(n), "title": f"第{n}号 反映小区停水",
                                                           "content": "停水三天", "published_at": "2019-02-28 11:25:05"})

    try:
        with pytest.raises(OSError, match="went away"), service.writer.bulk_load(1_000) as load:
            assert set(load.deferred) == FEED
            import_batches(service.writer, cfg, chunks(records(), 150), 1, pooled_stages)
        assert indexes(Path(cfg.storage.sqlite_path)) == DECLARED and load.rebuild_seconds > 0
        assert service.store.stats().items == 600  # the groups committed before the error
    finally:
        service.close()
