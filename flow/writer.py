"""The one writer: every run of the ingest chain — API push, crawl drain, file import — happens on one thread.

Why one thread and not one lock: the chain's stages keep long-lived state (the near-duplicate index, events, the
lexicon) that every batch mutates. With one owner none of it needs a lock, a push can be answered (202) as soon as
its records are durable in the inbox, and callers that want the outcome wait for a future. The same design as
Datasette's single write thread; the cost is one thread hand-off per batch of hundreds of items.

Records pushed through `submit` are in the inbox before the caller is answered and leave it only once ingested, so a
process that dies first loses nothing: `drain` (run at start) ingests whatever is still there.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from core.errors import StorageError
from core.models import IngestReport, QuarantineRecord, RawRecord
from core.worker import PeriodicWorker
from flow.importer import chunks
from flow.ingest import Ingestor
from flow.pool import Enriched, ImportBatch
from storage.base import BulkLoad, Inbox

logger = logging.getLogger(__name__)


class IngestGate:
    """One ingest batch at a time across every instance sharing the state database, each with current analysis state.

    Why: the chain's analysis state (events, the near-duplicate index) lives in the memory of the instance running it.
    Each batch takes the cluster lock "ingest" (storage/cluster.py) and leaves a mark; an instance that finds another
    instance's mark first reloads its analysis state from the store (`on_stale`), so events and near-duplicates join
    across instances as they do in one. Alone, an instance only ever finds its own mark and reloads nothing."""

    MARK = "ingest:last-batch"

    def __init__(self, locks: Any, store: Any, on_stale: Callable[[], None] | None = None) -> None:
        self.locks = locks
        self.store = store
        self.on_stale = on_stale
        self._seen = self._current()  # read before the analysis state loads: a batch in between is seen as foreign

    def _current(self) -> str | None:
        with self.store.read() as conn:
            return self.locks.read_mark(conn, self.MARK)

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        with self.locks.hold("ingest"):
            current = self._current()
            if current != self._seen and self.on_stale is not None:
                logger.info("another instance ingested since our last batch: reloading analysis state mark=%s", current)
                self.on_stale()
            self._seen = current
            try:
                yield
            finally:
                mark = f"{self.locks.instance_id}:{uuid.uuid4().hex[:12]}"
                try:
                    with self.store.write() as conn:
                        self.locks.write_mark(conn, self.MARK, mark)
                    self._seen = mark
                except Exception:  # noqa: BLE001 - unknown whether it landed: reload before the next batch
                    self._seen = None
                    logger.warning("could not record the ingest mark; analysis state reloads before the next batch")


@dataclass(frozen=True)
class Submission:
    """Records accepted into the inbox: their ids, and the report of their ingest once the writer has run it."""

    inbox_ids: list[int]
    outcome: Future[IngestReport]


class IngestWriter:
    """Owns the ingest chain: jobs run one at a time, in the order they were handed in."""

    def __init__(self, ingestor: Ingestor, inbox: Inbox, batch_size: int, *, gate: IngestGate | None = None,
                 holder: str | None = None) -> None:
        self.ingestor = ingestor
        self.inbox = inbox
        self.batch_size = batch_size
        self.gate = gate
        self.holder = holder  # this instance's id: pushes are put in the inbox as held by it
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-writer")
        # Inbox ids a queued `submit` job will ingest from the records in hand; `drain` leaves them alone, so a
        # record is never ingested twice. Guarded together with the inbox reads and writes that decide it.
        self._reserved: set[int] = set()
        # Coalescing pushes not yet taken by the writer: (inbox ids, records, the future their callers hold).
        self._waiting: list[tuple[list[int], list[RawRecord], Future[IngestReport]]] = []
        self._guard = threading.Lock()
        # Open between `begin_group` and `end_group` (writer thread only): the ingest turn and the store's bulk
        # transaction the batches of a file import share.
        self._group: contextlib.ExitStack | None = None
        self._bulk_load: contextlib.ExitStack | None = None  # open inside `bulk_load` (writer thread only)

    def submit(self, records: list[RawRecord], *, coalesce: bool = False) -> Submission:
        """Store the records in the inbox and queue their ingest; returns at once (the API's 202).

        `coalesce`: the records may share one ingest batch with other coalescing pushes queued meanwhile, and the
        outcome is that batch's report. Why: at 50 pushes of 5 records a second, one chain run per push pays each
        stage's per-batch cost 50 times a second; a writer that finds ten pushes waiting runs them as one batch."""
        outcome: Future[IngestReport] = Future()
        with self._guard:
            ids = self.inbox.put(records, holder=self.holder) if self.holder else self.inbox.put(records)
            self._reserved.update(ids)
            if coalesce:
                self._waiting.append((ids, records, outcome))
        try:
            if coalesce:
                self._executor.submit(self._ingest_waiting)
            else:
                outcome = self._executor.submit(self._ingest_inbox_records, ids, records)
        except RuntimeError:  # shutting down: the records stay in the inbox for the next start
            with self._guard:
                self._reserved.difference_update(ids)
                if coalesce:
                    self._waiting = [w for w in self._waiting if w[2] is not outcome]
            raise
        return Submission(ids, outcome)

    def ingest(self, records: Iterable[RawRecord | QuarantineRecord]) -> IngestReport:
        """Ingest records held by the caller (a file import, demo data), batch by batch, and wait for the report.
        Batches of other callers may run in between; the records do not pass through the inbox (a failed import is
        simply run again: re-importing adds nothing)."""
        total = IngestReport()
        for chunk in chunks(records, self.batch_size):
            total.merge(self._executor.submit(self._ingest_batch, chunk).result())
        return total

    def ingest_soon(self, records: list[RawRecord | QuarantineRecord]) -> Future[IngestReport]:
        """Queue one batch of records held by the caller; returns at once with the future of its report."""
        return self._executor.submit(self._ingest_batch, records)

    def ingest_enriched(self, records: ImportBatch, enriched: Future[Enriched]
                        ) -> Future[IngestReport]:
        """Queue one batch whose stateless stages an enrichment pool worker runs (`flow.pool`); the writer takes
        the worker's result when its turn comes. Returns at once, so the caller can read and hand in the next."""
        return self._executor.submit(self._ingest_enriched, records, enriched)

    def begin_group(self) -> Future[IngestReport]:
        """Queue the start of a group: the jobs queued after it, until `end_group`, run in one ingest turn and one
        transaction of the store (`Store.bulk`: each batch a savepoint of it), committed by `end_group`. For a file
        import, whose records are kept in the file: a crash loses the group's batches from the store, and running the
        import again stores them. A job that raises rolls the whole group back (earlier batches' reports included).
        Both futures hold an empty report, or the error that opening or committing the group raised. Meant for a
        process that takes no pushes meanwhile (`yuqing import`): other threads' writes wait for the group's end."""
        return self._executor.submit(self._begin_group)

    def end_group(self) -> Future[IngestReport]:
        return self._executor.submit(self._end_group)

    @contextlib.contextmanager
    def bulk_load(self, expected_records: int) -> Iterator[BulkLoad]:
        """Around a file import of about `expected_records` records, on the caller's thread: the store may go without
        the indexes only reads need while the import's jobs (queued inside the block) write, and builds them after
        the last of them, also when the import fails (`Store.bulk_load`). Yields what the store did; its
        `rebuild_seconds` are known once the block has ended."""
        load = self._executor.submit(self._begin_bulk_load, expected_records).result()
        try:
            yield load
        finally:  # queued behind every job the block queued, even those an error left unawaited
            self._executor.submit(self._end_bulk_load).result()

    def drain(self) -> IngestReport:
        """Ingest everything pending in the inbox (crawl results, pushes left by a previous process) and wait."""
        return self.drain_soon().result()

    def drain_soon(self) -> Future[IngestReport]:
        return self._executor.submit(self._drain)

    def queued(self) -> int:
        """Jobs waiting for the writer thread (pushes, imports, drains), for /metrics."""
        return self._executor._work_queue.qsize()

    def redrive_soon(self) -> Future[int]:
        """Queue a re-drive of the after-store outbox (flow/after_store.py) behind the jobs already queued."""
        return self._executor.submit(self._redrive)

    def close(self) -> None:
        """Finish the running job; queued pushes stay in the inbox for the next start."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    # ---- on the writer thread ------------------------------------------------------------------------------

    def _turn(self) -> contextlib.AbstractContextManager[None]:
        if self._group is not None:  # the group holds the turn for all its batches
            return contextlib.nullcontext()
        return self.gate.turn() if self.gate is not None else contextlib.nullcontext()

    def _begin_group(self) -> IngestReport:
        if self._group is None:
            with contextlib.ExitStack() as stack:
                stack.enter_context(self._turn())
                stack.enter_context(self.ingestor.store.bulk())
                self._group = stack.pop_all()
        return IngestReport()

    def _end_group(self) -> IngestReport:
        group, self._group = self._group, None
        if group is not None:
            group.close()
        return IngestReport()

    def _begin_bulk_load(self, expected_records: int) -> BulkLoad:
        with contextlib.ExitStack() as stack:
            load = stack.enter_context(self.ingestor.store.bulk_load(expected_records))
            self._bulk_load = stack.pop_all()
        return load

    def _end_bulk_load(self) -> None:
        stack, self._bulk_load = self._bulk_load, None
        if stack is not None:
            stack.close()

    @contextlib.contextmanager
    def _group_fails_whole(self) -> Iterator[None]:
        """A job of an open group that raises rolls the group back (and gives up its turn) before the error goes on."""
        try:
            yield
        except BaseException as exc:
            group, self._group = self._group, None
            if group is not None:
                group.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def _ingest_batch(self, records: list[RawRecord | QuarantineRecord]) -> IngestReport:
        with self._group_fails_whole(), self._turn():
            return self.ingestor.ingest_batch(records)

    def _ingest_enriched(self, records: ImportBatch, enriched: Future[Enriched]
                         ) -> IngestReport:
        with self._group_fails_whole():
            result = enriched.result()
            with self._turn():
                return self.ingestor.ingest_enriched(records, result)

    def _ingest_inbox_records(self, ids: list[int], records: list[RawRecord]) -> IngestReport:
        total = IngestReport()
        try:
            for start in range(0, len(records), self.batch_size):
                end = start + self.batch_size
                with self._turn():
                    total.merge(self.ingestor.ingest_batch(records[start:end]))
                    self.inbox.done(ids[start:end])
        finally:  # after a failure what is left stays pending, for the next drain
            with self._guard:
                self._reserved.difference_update(ids)
        return total

    def _redrive(self) -> int:
        total = 0
        while True:
            with self._turn():
                done = self.ingestor.redrive_pending()
            if not done:
                return total
            total += done

    def _ingest_waiting(self) -> None:
        """Take the coalescing pushes waiting (up to one batch of records, at least one push) and ingest them
        together; a job that finds none (an earlier job took them) does nothing."""
        with self._guard:
            taken, size = [], 0
            while self._waiting and (not taken or size + len(self._waiting[0][1]) <= self.batch_size):
                taken.append(self._waiting.pop(0))
                size += len(taken[-1][1])
        if not taken:
            return
        ids = [i for got, _, _ in taken for i in got]
        records = [r for _, got, _ in taken for r in got]
        try:
            report = self._ingest_inbox_records(ids, records)
        except BaseException as exc:
            for _, _, outcome in taken:
                outcome.set_exception(exc)
            raise
        for _, _, outcome in taken:
            outcome.set_result(report)

    def _drain(self) -> IngestReport:
        total = IngestReport()
        after = 0
        while True:
            # Taken, ingested and marked done in one turn of the cluster lock: another instance's drain cannot take
            # the same records in between (records another instance holds from a push are left to it).
            with self._turn():
                with self._guard:
                    taken = (self.inbox.take(self.batch_size, after_id=after, holder=self.holder) if self.holder
                             else self.inbox.take(self.batch_size, after_id=after))
                    todo = [(i, r) for i, r in taken if i not in self._reserved]
                if not taken:
                    return total
                after = taken[-1][0]
                if todo:
                    total.merge(self.ingestor.ingest_batch([r for _, r in todo]))
                    self.inbox.done([i for i, _ in todo])


class RedriveWorker(PeriodicWorker):
    """Re-drives the after-store outbox through the writer at start (after the inbox drain queued before it) and then
    every `interval` seconds, so an item stored just before a crash, or whose rules hit a storage error, is alerted.

    With `drain` (state in a database of its own, maybe shared by several instances) each pass first drains the inbox:
    records a failed batch left there, or another instance's that it can no longer ingest, are stored within seconds
    rather than at the next start. While the database is away each pass fails fast and the next one waits twice as
    long (up to `max_backoff`); the records stay in the inbox meanwhile."""

    name = "after-store-redrive"
    join_timeout = 10.0
    max_backoff = 60.0

    def __init__(self, writer: IngestWriter, interval: float = 5.0, *, drain: bool = False) -> None:
        super().__init__()
        self.writer = writer
        self.every = interval
        self.drain = drain
        self.failures = 0

    def interval(self) -> float:
        return min(self.every * 2 ** self.failures, self.max_backoff)

    def run_once(self) -> bool | None:
        try:
            drained = self.writer.drain_soon().result() if self.drain else None
            redriven = self.writer.redrive_soon().result()
        except RuntimeError:  # the writer is shutting down
            return False
        except StorageError as exc:
            self.failures += 1
            logger.warning("inbox drain and after-store re-drive failed (records stay in the inbox); next try in "
                           "%.0f s: %s", self.interval(), exc)
            return None
        if self.failures:
            logger.info("inbox drain and after-store re-drive work again after %d failed tries", self.failures)
        self.failures = 0
        if drained is not None and drained.received:
            logger.info("inbox drained received=%d stored=%d", drained.received, drained.stored)
        if redriven:
            logger.warning("after-store stages re-driven for items left pending count=%d", redriven)
        return None
