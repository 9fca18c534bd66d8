"""A test stage in the place of the risk stage: `test_enrichment` in a record's payload becomes the item's
enrichment (risk reasons included), so each item's topic, emotion, grade, reasons and event are known."""

from __future__ import annotations

from core.models import Enrichment, RiskReason
from flow.stages import Batch


class EnrichmentFromPayload:
    name = "risk"

    def run(self, batch: Batch) -> None:
        for item in batch.items:
            data = item.extra.pop("test_enrichment", None)
            if data:
                reasons = [RiskReason(**r) for r in data.pop("risk_reasons", [])]
                item.enrichment = Enrichment(**data, risk_reasons=reasons)
