"""The enrichment pool: the stateless stages of a file import run in worker processes, the rest on the one writer.

Why: the ingest chain is CPU-bound Python, and one process uses one core. The stages before exact dedup and the
text models after it — normalise, PII masking, segmentation, classification and the analysis stages' shared per-item
facts (keywords, places, term hits, near-duplicate signatures, event vectors: "prepare") (`POOLED`) — depend only on
the record and the config, so worker processes (each loads the models once; `start_method`) run them on whole
batches, and the writer process keeps everything that needs state: exact dedup against the store, near-duplicates,
events, risk (which reads event state), the store and the after-store stages. What the workers prepared travels in
`Batch.prepared`. Batches come back in the order they were read and the writer runs each as it would have, so the
stored items, scores, near-duplicates and events are the same as a serial import's (`tests/flow/test_pool.py`
compares the two on real texts).

A JSON-lines file's batches are byte ranges of it (`flow.importer.LineBlock`) that the worker reads and parses
itself (`enrich_block`); the writer reads a record again from the file only when it needs its payload (`ReadAgain`).

A worker also derives each item's full-text index text from its words (`nlp.search_tokens`), handed to the store in
place of the words (`IndexWords`, in `Batch.index_words`); the store's `PooledIndexWords` reads it off so that the
writer does not compute it again. Likewise each item's intake signature and content hash, which exact dedup needs
(`intake_hashes`, computed right after PII masking as the serial chain does): the writer takes them
(`Batch.signatures`, `core.models.seed_content_hashes`).

Differences from a serial import, both rare: segmentation and classification also run on records that exact dedup
then drops (an unchanged re-import pays them in the workers, not in the writer), and an item whose stored title or
content dedup puts back (`DedupStage._keep_stored_values`) is segmented and classified again on the writer.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING

from core.config import Config
from core.models import IngestReport, Item, QuarantineRecord, RawRecord, seed_content_hashes
from flow import wire
from flow.importer import LineBlock
from flow.stages import Batch, Chain, Stage

if TYPE_CHECKING:  # flow.writer imports this module: the writer's type only for annotations
    from flow.writer import IngestWriter

logger = logging.getLogger(__name__)

_fields = attrgetter("__dict__")  # a model's field values, read without pydantic's __getattr__ hook
_title_and_content = itemgetter("title", "content")

# A batch of an import: its records, or a range of a JSON-lines file that whoever ingests it reads (`LineBlock`).
ImportBatch = list[RawRecord | QuarantineRecord] | LineBlock

# Stages whose output depends only on the record and the config, in flow order: the workers run them.
POOLED: tuple[str, ...] = ("normalise", "pii_mask", "segment", "classify", "prepare")
# Of those, the ones the writer skips outright; the others stay in its chain as `Redo` (see there).
SKIPPED: frozenset[str] = frozenset({"normalise", "pii_mask"})


def pool_size(config: Config, workers: int | None = None) -> int:
    """Worker processes for an import: `workers` if given, else `ingest.workers`, else one per core beside the
    writer's (cores − 1) but at least two on two cores or more; 1 is no pool. On two idle cores two workers beside
    the writer imported 50,000 rows at 1,300 items/s against 1,189–1,204 serially (bench/bench_import.py): the
    writer is the bottleneck either way, and the workers take ≈ 0.1 ms per item off it. One core: no pool."""
    cores = os.cpu_count() or 1
    size = workers or config.ingest.workers or (max(2, cores - 1) if cores >= 2 else 1)
    return max(1, size)


class IndexWords(list):
    """What the store is handed as an item's words when a pool worker derived its full-text index text (title,
    content, each joined by spaces) and kept the words: no words, the text in `index`. Only `PooledIndexWords`
    (which the composition root wires into the SQLite store) reads it; it must not reach an `index_from_words` that
    expects the words themselves."""

    __slots__ = ("index",)

    def __init__(self, index: tuple[str, str]) -> None:
        super().__init__()
        self.index = index


class PooledIndexWords:
    """The SQLite store's `index_from_words` (the composition root gives it this): the index text a worker derived
    when the words carry it, else `derive`'s (title and content each as one string of index words). A backend that
    indexes its own way ignores the words it is handed."""

    def __init__(self, derive: Callable[[str, str, Sequence[str]], tuple[str, str]]) -> None:
        self.derive = derive

    def __call__(self, title: str, content: str, words: Sequence[str]) -> tuple[list[str], list[str]]:
        text = words.index if isinstance(words, IndexWords) else self.derive(title, content, words)
        return [text[0]], [text[1]]  # the store joins each list with spaces: one string each


@dataclass
class Enriched:
    """What a worker returns for one batch, as columns (one entry per item that survived its stages): the index of
    its record in the batch (`positions`), the item, its full-text index text (title, content; None without words),
    the originals PII masking kept apart (or None), what the stages prepared for the ones after them
    (`Batch.prepared`, or None) and its intake signature and content hash (`intake_hashes`); the records it
    quarantined; how many records it received; for a `LineBlock` it read itself, the lines that are no records
    (invalid JSON, not an object), which the writer quarantines after the batch as it does a list's QuarantineRecords.

    Not the words themselves: every stage on the writer reads what "prepare" made of them, and sending ~150 strings an
    item cost the worker's pickling and the writer's unpickling ~20 µs an item. A stage that still asks for an item's
    words (a monitoring scheme with NEAR) has them cut again (`analysis.stages.tokens_of`). Pickled as columns that
    the writer rebuilds by C loops (`flow.wire`)."""

    positions: list[int] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    index_texts: list[tuple[str, str] | None] = field(default_factory=list)
    originals: list[dict | None] = field(default_factory=list)
    prepared: list[object] = field(default_factory=list)
    hashes: list[tuple[str, str]] = field(default_factory=list)
    rejected: list[QuarantineRecord] = field(default_factory=list)
    received: int = 0
    unread: list[QuarantineRecord] = field(default_factory=list)

    def __reduce__(self) -> tuple:
        rest = (self.originals, self.hashes, self.rejected, self.received, self.unread)
        try:
            packed = (self.positions, wire.pack_items(self.items), wire.pack_index_texts(self.index_texts),
                      wire.pack_prepared(self.items, self.prepared))
        except wire.NotPackable:
            return Enriched, (self.positions, self.items, self.index_texts, self.originals, self.prepared, self.hashes,
                              self.rejected, self.received, self.unread)
        return _enriched_from_wire, (*packed, *rest)


def _enriched_from_wire(positions: list[int], items: tuple, index_texts: tuple, prepared: tuple, originals: list,
                        hashes: list, rejected: list, received: int, unread: list) -> Enriched:
    """An `Enriched` from its columns (`Enriched.__reduce__`), on the writer."""
    built = wire.unpack_items(*items)
    return Enriched(positions, built, wire.unpack_index_texts(len(built), *index_texts), originals,
                    wire.unpack_prepared(built, *prepared), hashes, rejected, received, unread)


# ---- in the worker process ---------------------------------------------------------------------------------

# The worker's stages in two parts: those the writer skips (up to PII masking, after which the serial chain runs
# exact dedup) and the rest.
_chain: tuple[Chain, Chain] | None = None


def _start_worker(config: Config, build: Callable[[Config], list[Stage]]) -> None:
    """Lower the worker's priority (`ingest.worker_niceness`), then load the models and build the pooled stages once
    per worker process (the initializer)."""
    global _chain
    if config.ingest.worker_niceness and hasattr(os, "nice"):  # POSIX only
        os.nice(config.ingest.worker_niceness)
    stages = build(config)
    _chain = (Chain([s for s in stages if s.name in SKIPPED]), Chain([s for s in stages if s.name not in SKIPPED]))


def intake_hashes(item: Item) -> tuple[str, str]:
    """What exact dedup computes of an item (`DedupStage`): its intake signature (`freeze_signature`) and its
    `content_hash`. A worker computes them where the serial chain does, right after PII masking, so that the writer
    takes them instead (`enriched_batch`)."""
    return item.intake_signature(), item.content_hash


def enrich(records: list[RawRecord]) -> Enriched:
    """Run the pooled stages on one batch of records (in a worker)."""
    from nlp.search_tokens import index_text_from_words
    from nlp.tokenize import repeat_runs
    from storage.held import held

    if _chain is None:  # only a process whose pool initializer (`_start_worker`) ran has one
        raise RuntimeError("this process is not an enrichment worker: _start_worker did not run")
    before_dedup, after_dedup = _chain
    batch = before_dedup.run(Batch(raw=list(records)))
    hashes = {id(item): intake_hashes(item) for item in batch.items}
    batch = after_dedup.run(batch)
    position = {id(raw): i for i, raw in enumerate(records)}
    out = Enriched(rejected=batch.quarantined, received=batch.report.received)
    titles_repeat = repeat_runs([item.title for item in batch.items])  # one array scan, not a regex per title
    for item, repeat_run in zip(batch.items, titles_repeat, strict=True):
        words = batch.tokens.get(id(item))
        out.positions.append(position[id(batch.origins[id(item)])])
        out.items.append(item)
        out.index_texts.append(index_text_from_words(item.title, item.content, words, repeat_run)
                               if words is not None else None)
        out.originals.append(held(item))
        out.prepared.append(batch.prepared.get(id(item)))
        out.hashes.append(hashes[id(item)])
    return out


def enrich_rows(rows: list[tuple[str, dict, str]]) -> Enriched:
    """`enrich` on records sent as `record_rows` (in a worker): the RawRecords rebuilt without validation, which the
    writer's own records already passed."""
    construct = RawRecord.model_construct
    return enrich([construct(source=source, payload=payload, origin=origin) for source, payload, origin in rows])


def enrich_block(block: LineBlock) -> Enriched:
    """`enrich` on the records of a range of a JSON-lines file, read and parsed here (in a worker)."""
    records = block.read()
    out = enrich([r for r in records if isinstance(r, RawRecord)])
    out.unread = [r for r in records if isinstance(r, QuarantineRecord)]
    return out


# ---- in the importing process --------------------------------------------------------------------------------


def record_rows(batch: Iterable[RawRecord | QuarantineRecord]) -> list[tuple[str, dict, str]]:
    """The batch's RawRecords as what a worker needs of them, (source, payload, origin). Why not the models: the
    writer's process pickles what it sends, and a model costs pydantic's __getstate__ and its state dict: 6.6 µs a
    record against 3.4 for the tuple, on the one process that limits the import."""
    return [(values["source"], values["payload"], values["origin"])
            for values in (r.__dict__ for r in batch if isinstance(r, RawRecord))]


class Redo:
    """On the writer, in place of a pooled stage it does not skip: runs the stage again on the items whose title or
    content changed after the worker enriched them (exact dedup put back a stored value), alone, so that their words,
    classes and prepared facts are those of the text that is stored (the segment stage's Redo drops what the worker
    made of the old text)."""

    def __init__(self, stage: Stage, texts: dict[int, tuple[str, str]]) -> None:
        self.stage = stage
        self.name = stage.name
        self.texts = texts  # id(item) → (title, content) as the worker enriched them

    def run(self, batch: Batch) -> None:
        changed = [item for item in batch.items if self.texts.get(id(item)) != (item.title, item.content)]
        if not changed:
            return
        if self.name == "segment":
            for item in changed:
                batch.tokens.pop(id(item), None)
                batch.prepared.pop(id(item), None)
                batch.index_words.pop(id(item), None)
        # The other items keep what the workers made of them (their words were not sent: see `Enriched`).
        again = batch.sub(changed)
        self.stage.run(again)
        batch.quarantined.extend(again.quarantined)


class ReadAgain:
    """The RawRecords of a `LineBlock` a worker read, indexed as the worker's `Enriched.items` index them, on the
    writer: each a `LineRecord` that reads the block again from the file only when its payload or origin is asked
    for — an item quarantined on the writer, or one whose stored values dedup keeps (`Batch.origins`), both rare —
    rather than every worker sending every payload back to the process that limits the import. (The file is read
    again as it is then: an import's file is not meant to change while it runs.)"""

    def __init__(self, block: LineBlock) -> None:
        self.block = block
        self._records: list[RawRecord] | None = None

    def __getitem__(self, index: int) -> LineRecord:
        return LineRecord(self, index)

    def record(self, index: int) -> RawRecord:
        if self._records is None:
            self._records = [r for r in self.block.read() if isinstance(r, RawRecord)]
        return self._records[index]


class LineRecord:
    """Stands in `Batch.origins` for one record of a block a worker read (see `ReadAgain`)."""

    __slots__ = ("index", "records")

    def __init__(self, records: ReadAgain, index: int) -> None:
        self.records = records
        self.index = index

    @property
    def source(self) -> str:
        return self.records.block.source

    @property
    def payload(self) -> dict:
        return self.records.record(self.index).payload

    @property
    def origin(self) -> str:
        return self.records.record(self.index).origin


def writer_chain(stages: list[Stage], texts: dict[int, tuple[str, str]]) -> Chain:
    """The writer's part of the chain up to the store for a batch the workers enriched."""
    return Chain([Redo(s, texts) if s.name in POOLED else s for s in stages if s.name not in SKIPPED])


def enriched_batch(records: Sequence[RawRecord] | ReadAgain, enriched: Enriched
                   ) -> tuple[Batch, dict[int, tuple[str, str]]]:
    """A writer's Batch from a worker's result: items with their records and words, what the worker quarantined;
    the intake signatures (`Batch.signatures`) and content hashes (`seed_content_hashes`) it computed. Column by
    column, in C loops (`map`, `zip`): no Python frame per item."""
    from storage.held import hold

    batch = Batch()
    batch.report.received = enriched.received
    batch.quarantined.extend(enriched.rejected)
    batch.report.quarantined += len(enriched.rejected)
    items = enriched.items
    keys = list(map(id, items))
    batch.items.extend(items)
    batch.origins.update(zip(keys, map(records.__getitem__, enriched.positions), strict=True))
    texts = dict(zip(keys, map(_title_and_content, map(_fields, items)), strict=True))
    batch.signatures.update(zip(keys, map(itemgetter(0), enriched.hashes), strict=True))
    seed_content_hashes(zip(items, map(itemgetter(1), enriched.hashes), strict=True))
    batch.index_words.update(zip(keys, map(IndexWords, enriched.index_texts), strict=True))
    batch.prepared.update(zip(keys, enriched.prepared, strict=True))
    # truth tests in C: an index text is a pair, a Prepared has no __bool__ (`in` would call the dataclass's __eq__)
    if not all(enriched.index_texts) or not all(enriched.prepared):  # items without words or prepared facts (rare)
        for key, text, prepared in zip(keys, enriched.index_texts, enriched.prepared, strict=True):
            if text is None:
                del batch.index_words[key]
            if prepared is None:
                del batch.prepared[key]
    if any(enriched.originals):
        for item, originals in zip(items, enriched.originals, strict=True):
            if originals:
                hold(item, originals)
    return batch, texts


def start_method() -> str:
    """How the pool's workers start: forked where Linux offers it and this process runs no other thread (`yuqing
    import` makes its pool before it starts any), so that a worker begins with every module its parent has imported
    (≈ 0.5 s of CPU each less than spawn: a new interpreter, the console script re-run as `__mp_main__` and the
    imports); spawned otherwise, since fork copies the locks that other threads hold. OpenBLAS, whose thread numpy's
    import starts, stops it before a fork (its own `pthread_atfork` handler) and starts it again when next used."""
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "spawn"


class EnrichPool:
    """Worker processes running `enrich` on batches (`start_method`). `warm` turns true once a worker has loaded its
    models."""

    def __init__(self, config: Config, workers: int, build: Callable[[Config], list[Stage]]) -> None:
        self.workers = workers
        self.warm = False
        self.start_method = start_method()
        # with fork, every worker is started by the first submit, before the executor starts its own thread
        self._executor = ProcessPoolExecutor(max_workers=workers,
                                             mp_context=multiprocessing.get_context(self.start_method),
                                             initializer=_start_worker, initargs=(config, build))
        for _ in range(workers):  # starts every worker; the first to answer has its models loaded
            self._executor.submit(os.getpid).add_done_callback(self._warmed)

    def _warmed(self, future: Future) -> None:
        if future.exception() is None:
            self.warm = True

    def submit(self, batch: ImportBatch) -> Future[Enriched]:
        if isinstance(batch, LineBlock):
            return self._executor.submit(enrich_block, batch)
        return self._executor.submit(enrich_rows, record_rows(batch))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


# Fewer batches than this are imported on the writer alone: the workers' start (each loads the models, a few seconds
# of CPU) would cost more than they save.
MIN_BATCHES = 4


class PooledImport:
    """An import's batches, read ahead and, when there are enough of them for the pool, already being enriched: made
    before the writer process builds its service (`yuqing import`), so the workers load their models and enrich the
    first batches while the writer loads its own, instead of after it on a core that stood idle (50,000 rows: the
    writer took ≈ 3 s to start and then ingested the first batches itself while the workers loaded theirs).

    `build(config)` makes the `POOLED` stages in flow order in each worker (`yuqing.pooled.pooled_stages`, which
    knows the packages that provide them); it is pickled by reference. With `workers` ≤ 1 or
    fewer than `MIN_BATCHES` batches there is no pool and `run` ingests serially. `close()` stops the workers; `run`
    does it too. With `prefetch` the first batches go to the pool at once (the writer is not ready yet); without, the
    writer ingests them itself while the workers load (`run`'s `serial_start`)."""

    def __init__(self, config: Config, batches: Iterable[ImportBatch], workers: int,
                 build: Callable[[Config], list[Stage]], *, prefetch: bool = True) -> None:
        self.config = config
        self._rest = iter(batches)
        self._head = list(itertools.islice(self._rest, MIN_BATCHES))
        self.pool: EnrichPool | None = None
        # in the pool, in order; at most two batches per worker, so the head is handed over at once
        self._window: deque[tuple[ImportBatch, Future[Enriched]]] = deque()
        if workers > 1 and len(self._head) >= MIN_BATCHES:
            self.pool = EnrichPool(config, workers, build)
            if prefetch:
                self._window.extend((batch, self.pool.submit(batch)) for batch in self._head)
                self._head = []

    def run(self, writer: IngestWriter, done: Callable[[int], None] | None = None, *, serial_start: bool = True
            ) -> tuple[IngestReport, int]:
        """Ingest the batches through `writer` (flow.writer.IngestWriter) in order. Until a worker has loaded its
        models (and while none of its batches is waiting) the writer ingests batches serially, unless not
        `serial_start`. Two batches per worker are in the pool at a time, and up to two enriched ones queue for the
        writer. The writer commits once per `ingest.import_commit_items` records, not per batch (groups:
        `IngestWriter.begin_group`). `done(n)` is told of each batch of n records ingested (its report's `received`:
        a `LineBlock`'s count of lines includes blank ones). A `LineBlock` the writer ingests itself is read on this
        thread, while the writer stores the batch before it. Returns the report and how many batches the workers
        enriched."""
        total = IngestReport()
        pending: deque[tuple[int, Future[IngestReport]]] = deque()
        grouped = 0  # records queued in the open group (see `hand`)

        def settle(keep: int) -> None:  # wait for the writer until at most `keep` batches are queued for it
            while len(pending) > keep or (pending and pending[0][1].done()):
                size, report = pending.popleft()
                result = report.result()
                total.merge(result)
                if done and size:
                    done(result.received)

        def hand(size: int, report: Future[IngestReport]) -> None:
            """Queue a batch's report; commit the group once it holds `import_commit_items` records and open the
            next (`IngestWriter.begin_group`). The group's futures queue like batches', so an error committing one
            stops the import at once."""
            nonlocal grouped
            pending.append((size, report))
            grouped += size
            if grouped >= self.config.ingest.import_commit_items:
                pending.append((0, writer.end_group()))
                pending.append((0, writer.begin_group()))
                grouped = 0

        pending.append((0, writer.begin_group()))
        pool, window = self.pool, self._window
        pooled = len(window)
        try:
            for batch in itertools.chain(self._head, self._rest):
                if pool is None or (serial_start and not pool.warm and not window):
                    # no pool, or its workers are still loading: the writer takes the batch
                    hand(len(batch), writer.ingest_soon(batch.read() if isinstance(batch, LineBlock) else batch))
                    settle(1)  # the next batch is read while the writer stores this one
                    continue
                window.append((batch, pool.submit(batch)))
                pooled += 1
                while len(window) > 2 * pool.workers:
                    records, enriched = window.popleft()
                    hand(len(records), writer.ingest_enriched(records, enriched))
                    settle(2)
            while window:
                records, enriched = window.popleft()
                hand(len(records), writer.ingest_enriched(records, enriched))
        finally:
            try:  # commit the last group and wait for every batch, before the pool closes: closing cancels what
                pending.append((0, writer.end_group()))  # its workers have not finished
                settle(0)
            finally:
                self.close()
        return total, pooled

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


def import_batches(writer: IngestWriter, config: Config, batches: Iterable[ImportBatch],
                   workers: int, build: Callable[[Config], list[Stage]], done: Callable[[int], None] | None = None, *,
                   serial_start: bool = True) -> tuple[IngestReport, int]:
    """`PooledImport(…).run(writer, done)` for a writer that is built already: nothing is sent to the pool before
    the writer could take it."""
    return PooledImport(config, batches, workers, build, prefetch=False).run(writer, done, serial_start=serial_start)
