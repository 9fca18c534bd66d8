"""The only place that knows the order of the ingest stages: `STAGES`, a list of (stage name, package).

Packages provide stages by name (as Scrapy's ITEM_PIPELINES names them); the list alone decides the chain. A stage
provided under a name the list does not hold, or under another package's name, is an error when it is provided; a
listed stage that an enabled package (one that provided any stage) does not provide is an error at start
(`missing_stages`). A package provides None for a stage its config switches off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from itertools import repeat

from core.config import Config
from core.errors import ConfigError, NotFound, StorageError
from core.metrics import (
    AFTER_STORE_FAILURES,
    AFTER_STORE_REDRIVEN,
    ITEMS_INGESTED,
    RECORDS_COLLECTED,
    RECORDS_QUARANTINED,
    count_by_source,
)
from core.models import IngestReport, Item, QuarantineRecord, RawRecord
from flow import after_store
from flow.importer import LineBlock, chunks
from flow.intake import DedupStage, NormaliseStage, StoreStage
from flow.pool import Enriched, ImportBatch, ReadAgain, enriched_batch, writer_chain
from flow.stages import Batch, Chain, Stage
from storage.base import Store

logger = logging.getLogger(__name__)

# (stage, package that provides it), in flow order. "pii_mask" changes what an item *is*, so it runs before the
# exact-duplicate check; the stages after "store" see stored items (`batch.stored`).
STAGES: list[tuple[str, str]] = [
    ("normalise", "flow"),
    ("pii_mask", "enrich"),
    ("dedup", "flow"),
    ("segment", "enrich"),
    ("classify", "enrich"),
    # What the analysis stages after it share about each item (keywords, places, term hits, signatures, event
    # vectors), from the words alone: its own stage so that an import's enrichment pool runs it (flow.pool.POOLED).
    ("prepare", "enrich"),
    ("keywords", "enrich"),
    ("schemes", "enrich"),
    ("near_duplicates", "enrich"),
    ("events", "enrich"),
    ("risk", "enrich"),
    ("store", "flow"),
    ("analysis_persist", "enrich"),
    ("alert_rules", "alerts"),
    # Response plans: runs for stored work orders and letters (alerts start runs through the alert engine).
    ("plan_triggers", "playbooks"),
]
STAGE_PACKAGE: dict[str, str] = dict(STAGES)
# After-store stages that need only the stored item, so the outbox of flow/after_store.py can run them again after a
# crash; "analysis_persist" works on the batch's in-memory scratch, which a restart rebuilds from the store anyway.
REDRIVEN_AFTER_STORE: frozenset[str] = frozenset({"alert_rules", "plan_triggers"})


class StageOrderError(ConfigError):
    """The provided stages do not match `STAGES` (a programming error in the wiring, found at start)."""


def check_provided(package: str, names: Iterable[str]) -> None:
    """Each name is listed in STAGES, under `package`."""
    for name in names:
        owner = STAGE_PACKAGE.get(name)
        if owner is None:
            raise StageOrderError(f"stage {name!r} provided by {package!r} is not listed in flow.ingest.STAGES; "
                                  f"listed: {', '.join(STAGE_PACKAGE)}")
        if owner != package:
            raise StageOrderError(f"stage {name!r} is listed for package {owner!r}, not {package!r}")


def missing_stages(provided: Mapping[str, Stage | None]) -> list[str]:
    """Listed stages of an enabled package (one that provided some stage) that nobody provided."""
    enabled = {STAGE_PACKAGE[name] for name in provided if name in STAGE_PACKAGE}
    return [name for name, package in STAGES if package in enabled and name not in provided]


def order_stages(provided: Mapping[str, Stage | None]) -> list[Stage]:
    """The provided stages (None: switched off) in the order of STAGES; an unlisted name, or a stage provided
    under a name other than its own, is an error."""
    unknown = [name for name in provided if name not in STAGE_PACKAGE]
    if unknown:
        raise StageOrderError(f"stages not listed in flow.ingest.STAGES: {', '.join(unknown)}")
    for name, stage in provided.items():
        if stage is not None and stage.name != name:
            raise StageOrderError(f"stage provided as {name!r} calls itself {stage.name!r}")
    return [stage for name, _ in STAGES if (stage := provided.get(name)) is not None]


class Ingestor:
    """Carries raw records through the chain in batches, quarantining what fails, and reports counts.

    Not thread-safe by design: the chain's stages keep long-lived state, so only the ingest writer
    (`flow.writer.IngestWriter`) calls it in a running service."""

    def __init__(
        self,
        config: Config,
        store: Store,
        stages: Mapping[str, Stage | None] | None = None,
        *,
        now: datetime | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.provided: dict[str, Stage | None] = {
            "normalise": NormaliseStage(config, now=now), "dedup": DedupStage(store), "store": StoreStage(store)}
        if "flow" not in store.versions:
            store.migrate()  # the after-store outbox's table (registered when flow.after_store was imported)
        self.chain = Chain(order_stages(self.provided))
        self.up_to_store = Chain([])
        self.after_store = Chain([])
        self.redriven = Chain([])
        # Told of the items each batch stored (new or changed), after their after-store stages committed: the web
        # page's live feed. A failing listener is logged; it never fails the ingest.
        self.listeners: list[Callable[[list[Item]], None]] = []
        self._split()
        for name, stage in (stages or {}).items():  # each under the package STAGES lists it for
            self.provide(STAGE_PACKAGE.get(name, "an unlisted package"), {name: stage})

    def provide(self, package: str, stages: Mapping[str, Stage | None]) -> None:
        """Add `package`'s stages by name and rebuild the chain in the order of STAGES."""
        check_provided(package, stages)
        provided = {**self.provided, **stages}
        self.chain.stages = order_stages(provided)
        self.provided = provided
        self._split()

    def _split(self) -> None:
        """The chain in two at "store": the after-store part runs in its own transaction with the outbox clear."""
        names = [stage.name for stage in self.chain.stages]
        cut = names.index("store") + 1 if "store" in names else len(names)
        self.up_to_store.stages = self.chain.stages[:cut]
        self.after_store.stages = self.chain.stages[cut:]
        self.redriven.stages = [s for s in self.after_store.stages if s.name in REDRIVEN_AFTER_STORE]

    def ingest(self, records: Iterable[RawRecord | QuarantineRecord], batch_size: int | None = None) -> IngestReport:
        """Ingest in batches; QuarantineRecords (rows a reader could not parse) are kept and counted."""
        total = IngestReport()
        for chunk in chunks(records, batch_size or self.config.ingest.batch_size):
            total.merge(self.ingest_batch(chunk))
        return total

    def ingest_batch(self, records: list[RawRecord | QuarantineRecord]) -> IngestReport:
        raw = [r for r in records if isinstance(r, RawRecord)]
        count_by_source(RECORDS_COLLECTED, (r.source for r in records))
        self._split()  # `chain.stages` is the one list of record: probes and benches insert stages into it in place
        return self._finish(self.up_to_store.run(Batch(raw=raw)), unread(records))

    def ingest_enriched(self, records: ImportBatch, enriched: Enriched) -> IngestReport:
        """Ingest a batch whose stateless stages (`flow.pool.POOLED`) a pool worker ran on its RawRecords: the
        rest of the chain, as `ingest_batch` runs it. For a `LineBlock` the worker read the records itself, and
        reports the lines that are none (`Enriched.unread`)."""
        if isinstance(records, LineBlock):
            raw, rejected = ReadAgain(records), enriched.unread
            count_by_source(RECORDS_COLLECTED, repeat(records.source, enriched.received + len(rejected)))
        else:
            raw, rejected = [r for r in records if isinstance(r, RawRecord)], unread(records)
            count_by_source(RECORDS_COLLECTED, (r.source for r in records))
        self._split()
        batch, texts = enriched_batch(raw, enriched)
        return self._finish(writer_chain(self.up_to_store.stages, texts).run(batch), rejected)

    def _finish(self, batch: Batch, rejected: list[QuarantineRecord]) -> IngestReport:
        """The after-store stages, then what the reader quarantined (`rejected`), metrics, listeners and the
        report."""
        self._after_store(batch, self.after_store)
        batch.quarantined.extend(rejected)
        batch.report.received += len(rejected)
        batch.report.quarantined += len(rejected)
        self.store.quarantine(batch.quarantined)
        count_by_source(ITEMS_INGESTED, (item.source for item in batch.stored))
        for stage in {q.stage for q in batch.quarantined}:
            count_by_source(RECORDS_QUARANTINED, (q.source for q in batch.quarantined if q.stage == stage), stage=stage)
        self._tell(batch.stored)
        report = batch.report
        logger.info("ingest received=%d stored=%d updated=%d unchanged=%d duplicates=%d quarantined=%d",
                    report.received, report.stored, report.updated, report.unchanged, report.duplicates,
                    report.quarantined)
        return report

    def _tell(self, stored: list[Item]) -> None:
        if not stored:
            return
        for listener in list(self.listeners):
            try:
                listener(stored)
            except Exception:  # noqa: BLE001 - a listener (a web page's stream) must not fail the ingest
                logger.exception("ingest listener failed listener=%r", listener)

    def _after_store(self, batch: Batch, chain: Chain) -> None:
        """Run the after-store stages and clear the items' outbox record in one transaction: what the stages write
        (alerts) and the record that they ran commit together or not at all."""
        if not batch.stored:
            return
        ids = [item.id for item in batch.stored if item.id is not None]
        with after_store.stages_transaction(self.store, ids):
            chain.run(batch)

    def redrive_pending(self, limit: int = 200) -> int:
        """Run the re-drivable after-store stages for items the outbox still holds (a crash between the store commit
        and the rules, or a storage failure in them); returns how many items were re-driven. Writer thread only."""
        with self.store.item_read() as conn:
            ids = after_store.oldest_pending(conn, limit)
        if not ids:
            return 0
        self._split()
        items: list[Item] = []
        for item_id in ids:
            try:
                items.append(self.store.get(item_id))
            except NotFound:  # deleted since: nothing left to alert on
                continue
        batch = Batch(items=list(items), stored=list(items))
        try:
            with after_store.stages_transaction(self.store, ids):
                self.redriven.run(batch)
        except StorageError as exc:
            with self.store.item_write() as conn:
                after_store.note_failure(conn, ids, str(exc))
            logger.warning("after-store re-drive failed items=%d error=%s", len(ids), exc)
            AFTER_STORE_FAILURES.inc()
            return 0
        self.store.quarantine(batch.quarantined)
        AFTER_STORE_REDRIVEN.inc(len(items))
        logger.info("after-store stages re-driven items=%d", len(items))
        return len(items)


def unread(records: list[RawRecord | QuarantineRecord]) -> list[QuarantineRecord]:
    """What the file's reader quarantined among a batch's records (a line it could not read)."""
    return [r for r in records if isinstance(r, QuarantineRecord)]
