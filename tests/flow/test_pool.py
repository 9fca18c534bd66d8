"""The enrichment pool (flow/pool.py): an import through worker processes stores exactly what a serial import does."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from core.config import parse_config
from core.models import Item
from flow.importer import FileImporter
from flow.ingest import chunks
from flow.pool import import_batches, pool_size
from storage.base import ItemQuery
from tests.helpers.pooled import canonical, open_service, stored
from yuqing.host import Service
from yuqing.service import pooled_stages


def write(path: Path, rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def sample(shared_data: Path, folder: Path, rows: int = 900) -> Path:
    """Real 泰迪杯 hot-issue posts (many repeat each other: near-duplicates and events), with exact re-posts under
    new ids, a repeated row (same id, same words) and two rows that cannot become items."""
    with (shared_data / "tipdm2020c_hot_issue_messages" / "messages.csv").open(encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        real = [row for _, row in zip(range(rows), reader, strict=False)]
    out = list(real)
    for n, row in enumerate(real[::40]):
        out.insert(3 * n + 50, {**row, "message_id": f"repost-{n}"})  # the same words under another id
    out.insert(400, dict(real[10]))  # the same record again
    out.insert(500, {**real[20], "message_id": "bad-time", "created_at": "not a time"})
    out.insert(600, {**real[21], "message_id": "no-text", "title": "", "body": "  "})
    return write(folder / "sample.csv", out)


def blanked(path: Path, count: int = 30) -> Path:
    """The sample again with the body of its first rows lost (a selector that stopped matching) and their likes
    changed: exact dedup puts the stored body back and the items are stored again, updated."""
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows[:count]:
        row["body"], row["likes"] = "", str(int(row["likes"] or 0) + 1)
    return write(path.with_name("blanked.csv"), rows)


def run_import(service: Service, path: Path, workers: int, *, serial_start: bool = False):  # noqa: ANN201
    """The import's report; with workers, every batch enriched by them (unless `serial_start`: until they are ready,
    the writer ingests alone)."""
    importer = FileImporter(path, "board_tipdm", service.config.sources["board_tipdm"].import_)
    batches = list(chunks(importer.records(), service.config.ingest.batch_size))
    report, pooled = import_batches(service.writer, service.config, batches, workers, pooled_stages,
                                    serial_start=serial_start)
    assert pooled == (0 if workers == 1 else len(batches) if not serial_start else pooled)
    return report


def events(service: Service, items: list[Item]) -> list[tuple]:
    """The writer's events: members (by first item), volume, span and title."""
    clusterer = service.analysis.events
    members: dict[str, list[int]] = {}
    for item in items:
        if item.enrichment.event_id:
            members.setdefault(clusterer.resolve(item.enrichment.event_id), []).append(item.id)
    return sorted((ids[0], len(ids), ev.volume, ev.first_seen, ev.last_seen, ev.title)
                  for event_id, ids in members.items() if (ev := clusterer.events.get(event_id)))


@pytest.mark.data
def test_pooled_import_stores_what_a_serial_import_stores(shared_data: Path, tmp_path: Path) -> None:
    path = sample(shared_data, tmp_path)
    serial, pooled = open_service(tmp_path, "serial"), open_service(tmp_path, "pooled")
    try:
        one = run_import(serial, path, workers=1)
        two = run_import(pooled, path, workers=2)
        assert one.model_dump() == two.model_dump()
        assert one.received == 926 and one.quarantined == 2 and one.stored + one.duplicates + one.unchanged == 924
        a, b = stored(serial), stored(pooled)
        assert len(a) == one.stored
        assert sum(i.enrichment.near_duplicate_of is not None for i in a) >= 20  # the re-posts at least
        assert len({i.enrichment.event_id for i in a}) < len(a) - 40  # hot issues: events of several posts
        assert all(i.enrichment.topic and i.enrichment.keywords and i.enrichment.risk_level for i in a)
        assert 5 <= sum("小区噪音" in i.enrichment.schemes for i in a) < 60
        assert canonical(a) == canonical(b)
        assert events(serial, a) == events(pooled, b)
        # Both imports ran as one transaction (import_commit_items 5,000): committing every batch stores the same
        ungrouped = open_service(tmp_path, "ungrouped", commit_items=1)
        try:
            assert run_import(ungrouped, path, workers=1).model_dump() == one.model_dump()
            c = stored(ungrouped)
            assert canonical(c) == canonical(a) and events(ungrouped, c) == events(serial, a)
        finally:
            ungrouped.close()
        for item in a[:40]:  # the full-text index (its words derived in the workers) finds the same items
            query = ItemQuery(q=item.enrichment.keywords[0], limit=200)
            found = [[i.id for i in s.store.search(query).data] for s in (serial, pooled)]
            assert item.id in found[0] and found[0] == found[1]
        quarantine = [sorted((q.stage, q.reason) for q in s.store.list_quarantine(limit=50).data)
                      for s in (serial, pooled)]
        assert quarantine[0] == quarantine[1] and len(quarantine[0]) == 2
        again = [run_import(serial, path, workers=1), run_import(pooled, path, workers=2, serial_start=True)]  # re-import
        assert again[0].model_dump() == again[1].model_dump() and again[0].stored == 0
        assert canonical(stored(serial)) == canonical(stored(pooled))
        # Stored bodies put back by exact dedup: the writer segments and classifies those items again (flow.pool.Redo)
        path = blanked(path)
        again = [run_import(serial, path, workers=1), run_import(pooled, path, workers=2)]
        assert again[0].model_dump() == again[1].model_dump() and again[0].updated >= 30
        after = [stored(serial), stored(pooled)]
        assert canonical(after[0]) == canonical(after[1])
        assert [i.content for i in after[0]] == [i.content for i in a]  # no body was lost
    finally:
        serial.close()
        pooled.close()


def test_pool_size_defaults_to_the_cores_beside_the_writer_and_one_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config({})
    for cores, size in ((1, 1), (2, 2), (3, 2), (8, 7)):  # at least two workers once there is a second core
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        assert pool_size(config) == size, cores
    assert pool_size(config, 3) == 3
    assert pool_size(parse_config({"ingest": {"workers": 1}})) == 1
