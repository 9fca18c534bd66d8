"""The only place that knows the order of the ingest stages.

normalise → [prepare: PII masking] → dedup → [enrich] → store → [after-store stages: alert rules, plan triggers]
Later packages plug in by passing stages here, not by touching one another.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice

from core.config import Config
from core.models import IngestReport, QuarantineRecord, RawRecord
from flow.intake import DedupStage, NormaliseStage, StoreStage
from flow.stages import Batch, Chain, Stage

logger = logging.getLogger(__name__)


class Ingestor:
    """Carries raw records through the chain in batches, quarantining what fails, and reports counts."""

    def __init__(
        self,
        config: Config,
        store,  # noqa: ANN001 - any store offering lookup/upsert/quarantine
        *,
        prepare: list[Stage] | None = None,
        enrich: list[Stage] | None = None,
        after_store: list[Stage] | None = None,
        now: datetime | None = None,
    ) -> None:
        self.config = config
        self.store = store
        # `prepare` stages change what an item *is* (e.g. PII masking), so they run before the duplicate check.
        stages: list[Stage] = [NormaliseStage(config, now=now), *(prepare or []), DedupStage(store), *(enrich or []),
                               StoreStage(store), *(after_store or [])]
        self.chain = Chain(stages)

    def ingest(self, records: Iterable[RawRecord | QuarantineRecord], batch_size: int | None = None) -> IngestReport:
        """Ingest in batches; QuarantineRecords (rows a reader could not parse) are kept and counted."""
        total = IngestReport()
        for chunk in _chunks(records, batch_size or self.config.ingest.batch_size):
            total.merge(self.ingest_batch(chunk))
        return total

    def ingest_batch(self, records: list[RawRecord | QuarantineRecord]) -> IngestReport:
        raw = [r for r in records if isinstance(r, RawRecord)]
        rejected = [r for r in records if isinstance(r, QuarantineRecord)]
        batch = self.chain.run(Batch(raw=raw))
        batch.quarantined.extend(rejected)
        batch.report.received += len(rejected)
        batch.report.quarantined += len(rejected)
        self.store.quarantine(batch.quarantined)
        report = batch.report
        logger.info("ingest received=%d stored=%d updated=%d unchanged=%d duplicates=%d quarantined=%d",
                    report.received, report.stored, report.updated, report.unchanged, report.duplicates,
                    report.quarantined)
        return report

    def drain(self, limit: int | None = None) -> IngestReport:
        """Ingest what collectors left in the inbox; each record leaves the inbox only once handled."""
        total = IngestReport()
        size = self.config.ingest.batch_size
        handled = 0
        while limit is None or handled < limit:
            taken = self.store.take(size if limit is None else min(size, limit - handled))
            if not taken:
                break
            ids = [i for i, _ in taken]
            total.merge(self.ingest_batch([r for _, r in taken]))
            self.store.done(ids)
            handled += len(ids)
        return total


def _chunks(records: Iterable, size: int) -> Iterator[list]:
    it = iter(records)
    while chunk := list(islice(it, size)):
        yield chunk
