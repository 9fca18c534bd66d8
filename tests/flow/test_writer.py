"""The ingest writer: one thread runs every job in order, and a push is ingested once, by its own job, even when a
drain is going through the inbox at the moment it arrives."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import parse_config
from core.errors import StorageError
from core.models import RawRecord
from flow.stages import Batch
from yuqing.service import Service, build_service


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    config = parse_config({"storage": {"sqlite_path": str(tmp_path / "w.db")}, "sources": {"b": {"channel": "board"}}})
    svc = build_service(config, enrich=False, extensions=False)
    yield svc
    svc.close()


def record(n: int) -> RawRecord:
    return RawRecord(source="b", payload={"source_id": str(n), "content": f"第{n}条留言：路灯坏了", "published_at": "2026-11-01"})


class Gate:
    """A stage that holds the first batch until released, and notes which thread ran each batch."""

    name = "gate"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: set[str] = set()

    def run(self, batch: Batch) -> None:
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        assert self.release.wait(30)


def test_a_push_arriving_during_a_drain_is_ingested_once_by_its_own_job(service: Service) -> None:
    gate = Gate()
    service.ingestor.chain.stages.insert(1, gate)
    service.store.put([record(0)])  # left by a crawl
    draining = service.writer.drain_soon()
    assert gate.entered.wait(30)
    pushed = service.writer.submit([record(1), record(2)])  # put while the drain is in its first batch
    gate.release.set()
    assert draining.result(30).stored == 1  # the drain left the pushed records to their job
    report = pushed.outcome.result(30)
    assert (report.stored, report.unchanged) == (2, 0)
    assert service.store.stats().items == 3 and service.store.pending() == 0
    assert len(gate.threads) == 1 and next(iter(gate.threads)).startswith("ingest-writer")


def test_import_and_push_both_run_on_the_writer_thread(service: Service) -> None:
    gate = Gate()
    gate.release.set()
    service.ingestor.chain.stages.insert(1, gate)
    assert service.writer.ingest([record(1)]).stored == 1
    assert service.writer.submit([record(2)]).outcome.result(30).stored == 1
    assert len(gate.threads) == 1 and next(iter(gate.threads)).startswith("ingest-writer")


class FailOnce:
    """A stage that raises a storage error on the batch holding record `n` (a database gone mid-import)."""

    name = "fail_once"

    def __init__(self, n: int) -> None:
        self.source_id = str(n)

    def run(self, batch: Batch) -> None:
        if any(item.source_id == self.source_id for item in batch.items):
            raise StorageError("disk I/O error")


def test_a_group_commits_at_its_end_and_a_failing_batch_rolls_it_back_whole(service: Service) -> None:
    writer = service.writer
    writer.begin_group().result(30)
    assert writer.ingest_soon([record(1), record(2)]).result(30).stored == 2
    assert service.store.stats().items == 0  # not committed yet (stats reads on another thread)
    writer.end_group().result(30)
    assert service.store.stats().items == 2
    service.ingestor.chain.stages.insert(1, FailOnce(4))
    writer.begin_group().result(30)
    assert writer.ingest_soon([record(3)]).result(30).stored == 1
    with pytest.raises(StorageError):
        writer.ingest_soon([record(4)]).result(30)
    writer.end_group().result(30)  # nothing left to commit
    assert service.store.stats().items == 2  # record 3 went with the group
    assert writer.ingest_soon([record(3)]).result(30).stored == 1  # the writer works on, outside a group
    assert service.store.stats().items == 3
