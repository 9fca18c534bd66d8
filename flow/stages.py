"""Stage protocol and the chain that runs stages in order (after Alertmanager's MultiStage).

A stage works on a whole batch so that models and the store can amortise their cost; a stage that fails on the
batch is retried item by item, and only the items that still fail are quarantined with the stage and the reason.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from core.errors import StorageError
from core.metrics import STAGE_SECONDS
from core.models import IngestReport, Item, QuarantineRecord, RawRecord, published_timestamps

logger = logging.getLogger(__name__)


@dataclass
class Batch:
    """What flows between stages: raw input first, then items; quarantine and report collect along the way."""

    raw: list[RawRecord] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    origins: dict[int, RawRecord] = field(default_factory=dict)
    quarantined: list[QuarantineRecord] = field(default_factory=list)
    report: IngestReport = field(default_factory=IngestReport)
    stored: list[Item] = field(default_factory=list)
    # Segmented words per item (keyed by id(item)), filled once by the segment stage and reused by later stages.
    tokens: dict[int, list[str]] = field(default_factory=dict)
    # The full-text index's words of items whose words an import's pool worker kept (flow.pool.IndexWords), for the
    # store stage.
    index_words: dict[int, list[str]] = field(default_factory=dict)
    # Intake signatures (`Item.intake_signature`) an import's pool worker computed right after PII masking, where
    # exact dedup computes them (flow.pool.intake_hashes): dedup freezes these instead of computing them again, and
    # drops an item's when it changes the fields they cover (`DedupStage._keep_stored_values`).
    signatures: dict[int, str] = field(default_factory=dict)
    # The items exact dedup kept whose (source, source_id) the store did not hold (`DedupStage`), by id(item) (held,
    # so no other object can take the id): the analysis stages need not ask the store again whether they are
    # re-crawls (`AnalysisState.fill_known`).
    unstored: dict[int, Item] = field(default_factory=dict)
    # Each item's `published_at.timestamp()` by id(item), computed once for the event and risk stages and the store
    # (`published_timestamps`), and the items timed, held so that no other object can take one of their ids.
    published: dict[int, float] = field(default_factory=dict)
    timed: list[Item] = field(default_factory=list)
    # Exact copies of another item of this batch, dropped before enrichment: ((source, source_id) of the kept item,
    # the copy). The store stage records each against the kept item's id once it has one.
    copies: list[tuple[tuple[str, str], Item]] = field(default_factory=list)
    # Scratch of the analysis stages, owned by this batch so that no other batch can see or clear it:
    # shared facts per item (keyed by id(item)), the words encoded as lexicon ids (item keys, encoded),
    # temporary near-duplicate ids until the store gives real ones, and the items that repeat a temporary id.
    prepared: dict[int, Any] = field(default_factory=dict)
    encoded: tuple[list[int], Any] | None = None
    temp_ids: dict[int, int] = field(default_factory=dict)
    pending: dict[int, list[Item]] = field(default_factory=dict)

    def sub(self, items: list[Item]) -> Batch:
        """A batch of some of these items that shares this one's per-item scratch and report (a stage run on part of
        a batch: item by item after a failure, or on the items an import's writer enriches again); its items,
        quarantine and stored items are its own, for the caller to take back."""
        return Batch(items=list(items), origins=self.origins, report=self.report, tokens=self.tokens,
                     index_words=self.index_words, signatures=self.signatures, unstored=self.unstored,
                     published=self.published, timed=self.timed, copies=self.copies, prepared=self.prepared,
                     temp_ids=self.temp_ids, pending=self.pending)

    def published_timestamps(self) -> list[float]:
        """`item.published_at.timestamp()` of each item, computed once per batch for the stages that read it (events,
        risk, the store): ≈ 6,000 instructions a call on an aware datetime; the look-ups run from C."""
        known = self.published
        items = self.items
        stamps = list(map(known.get, map(id, items)))
        if None not in stamps:
            return stamps
        stamps = published_timestamps(items)  # the first stage to ask (or items it did not see): all of them
        known.update(zip(map(id, items), stamps, strict=True))
        self.timed.extend(items)
        return stamps

    def reject(self, source: str, stage: str, reason: str, payload: dict | str, origin: str = "") -> None:
        self.quarantined.append(
            QuarantineRecord(source=source, stage=stage, reason=reason, payload=payload, origin=origin,
                             created_at=datetime.now(UTC))
        )
        self.report.quarantined += 1

    def reject_item(self, item: Item, stage: str, reason: str) -> None:
        raw = self.origins.get(id(item))
        payload = raw.payload if raw else item.model_dump(mode="json")
        self.reject(item.source, stage, reason, payload, raw.origin if raw else "")


class Stage(Protocol):
    """One step of the flow; mutates the batch (drops items, adds fields), never reorders other stages."""

    name: str

    def run(self, batch: Batch) -> None: ...


class Chain:
    """Runs stages in order and isolates failures to the items that cause them."""

    def __init__(self, stages: list[Stage]) -> None:
        self.stages = stages

    def run(self, batch: Batch) -> Batch:
        for stage in self.stages:
            started = time.perf_counter()
            try:
                stage.run(batch)
            except StorageError:
                raise
            except Exception as exc:  # noqa: BLE001 - any stage bug must not lose the batch
                logger.warning("stage=%s failed on batch of %d: %s; retrying item by item", stage.name, len(batch.items), exc)
                self._isolate(stage, batch)
            STAGE_SECONDS.labels(stage=stage.name).observe(time.perf_counter() - started)
        for _kept, copy in batch.copies:  # the item they copy never reached the store: keep the copies in quarantine
            batch.reject_item(copy, "dedup", "exact copy of an item of the same batch that was not stored")
        batch.copies.clear()
        return batch

    def _isolate(self, stage: Stage, batch: Batch) -> None:
        survivors: list[Item] = []
        stored: list[Item] = []
        for item in batch.items:
            single = batch.sub([item])
            try:
                stage.run(single)
            except StorageError:
                raise
            except Exception as exc:  # noqa: BLE001
                batch.reject_item(item, stage.name, f"{exc.__class__.__name__}: {exc}")
                continue
            survivors.extend(single.items)
            stored.extend(single.stored)
            batch.quarantined.extend(single.quarantined)
        batch.items = survivors
        batch.stored.extend(stored)
