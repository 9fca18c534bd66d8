"""The one writer: every run of the ingest chain — API push, crawl drain, file import — happens on one thread.

Why one thread and not one lock: the chain's stages keep long-lived state (the near-duplicate index, events, the
lexicon) that every batch mutates. With one owner none of it needs a lock, a push can be answered (202) as soon as
its records are durable in the inbox, and callers that want the outcome wait for a future. The same design as
Datasette's single write thread; the cost is one thread hand-off per batch of hundreds of items.

Records pushed through `submit` are in the inbox before the caller is answered and leave it only once ingested, so a
process that dies first loses nothing: `drain` (run at start) ingests whatever is still there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from core.models import IngestReport, QuarantineRecord, RawRecord
from core.worker import PeriodicWorker
from flow.ingest import Ingestor, chunks
from storage.base import Inbox

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    """Records accepted into the inbox: their ids, and the report of their ingest once the writer has run it."""

    inbox_ids: list[int]
    outcome: Future[IngestReport]


class IngestWriter:
    """Owns the ingest chain: jobs run one at a time, in the order they were handed in."""

    def __init__(self, ingestor: Ingestor, inbox: Inbox, batch_size: int) -> None:
        self.ingestor = ingestor
        self.inbox = inbox
        self.batch_size = batch_size
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-writer")
        # Inbox ids a queued `submit` job will ingest from the records in hand; `drain` leaves them alone, so a
        # record is never ingested twice. Guarded together with the inbox reads and writes that decide it.
        self._reserved: set[int] = set()
        # Coalescing pushes not yet taken by the writer: (inbox ids, records, the future their callers hold).
        self._waiting: list[tuple[list[int], list[RawRecord], Future[IngestReport]]] = []
        self._guard = threading.Lock()

    def submit(self, records: list[RawRecord], *, coalesce: bool = False) -> Submission:
        """Store the records in the inbox and queue their ingest; returns at once (the API's 202).

        `coalesce`: the records may share one ingest batch with other coalescing pushes queued meanwhile, and the
        outcome is that batch's report. Why: at 50 pushes of 5 records a second, one chain run per push pays each
        stage's per-batch cost 50 times a second; a writer that finds ten pushes waiting runs them as one batch."""
        outcome: Future[IngestReport] = Future()
        with self._guard:
            ids = self.inbox.put(records)
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
            total.merge(self._executor.submit(self.ingestor.ingest_batch, chunk).result())
        return total

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

    def _ingest_inbox_records(self, ids: list[int], records: list[RawRecord]) -> IngestReport:
        total = IngestReport()
        try:
            for start in range(0, len(records), self.batch_size):
                end = start + self.batch_size
                total.merge(self.ingestor.ingest_batch(records[start:end]))
                self.inbox.done(ids[start:end])
        finally:  # after a failure what is left stays pending, for the next drain
            with self._guard:
                self._reserved.difference_update(ids)
        return total

    def _redrive(self) -> int:
        total = 0
        while done := self.ingestor.redrive_pending():
            total += done
        return total

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
            with self._guard:
                taken = self.inbox.take(self.batch_size, after_id=after)
                todo = [(i, r) for i, r in taken if i not in self._reserved]
            if not taken:
                return total
            after = taken[-1][0]
            if todo:
                total.merge(self.ingestor.ingest_batch([r for _, r in todo]))
                self.inbox.done([i for i, _ in todo])


class RedriveWorker(PeriodicWorker):
    """Re-drives the after-store outbox through the writer at start (after the inbox drain queued before it) and then
    every `interval` seconds, so an item stored just before a crash, or whose rules hit a storage error, is alerted."""

    name = "after-store-redrive"
    join_timeout = 10.0

    def __init__(self, writer: IngestWriter, interval: float = 5.0) -> None:
        super().__init__()
        self.writer = writer
        self.every = interval

    def interval(self) -> float:
        return self.every

    def run_once(self) -> bool | None:
        try:
            redriven = self.writer.redrive_soon().result()
        except RuntimeError:  # the writer is shutting down
            return False
        if redriven:
            logger.warning("after-store stages re-driven for items left pending count=%d", redriven)
        return None
