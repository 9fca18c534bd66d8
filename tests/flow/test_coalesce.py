"""Coalescing pushes: pushes queued while the writer is busy are ingested as one batch, and nothing is lost."""

from __future__ import annotations

import threading

from core.config import parse_config
from core.models import RawRecord
from yuqing.service import build_service


def test_pushes_waiting_for_the_writer_share_one_batch(tmp_path) -> None:  # noqa: ANN001
    config = parse_config({"storage": {"sqlite_path": str(tmp_path / "c.db")},
                           "sources": {"board_a": {"channel": "board"}}})
    service = build_service(config, enrich=False, extensions=False)
    try:
        writer = service.writer
        busy = threading.Event()
        writer._executor.submit(busy.wait, 10)  # the writer is on a long job meanwhile
        pushes = [writer.submit([RawRecord(source="board_a", payload={
            "source_id": f"{p}-{n}", "title": f"路灯{p}-{n}", "content": "坏了", "published_at": "2026-12-01"})
            for n in range(5)], coalesce=True) for p in range(10)]
        busy.set()
        reports = [push.outcome.result(timeout=30) for push in pushes]
        assert all(report is reports[0] for report in reports)  # one batch ran them all
        assert reports[0].stored == 50 and service.store.pending() == 0
        assert service.store.stats().items == 50
    finally:
        service.close()
