"""Configuration of the analysis stages: PII masking, risk grading, schemes, near-duplicates, events, spikes."""

from __future__ import annotations

from core.config import Strict


class PiiConfig(Strict):
    """Masking of mobile, ID-card, bank-card numbers and e-mail addresses before anything is stored."""

    enabled: bool = True
    keep_raw: bool = False  # true keeps the unmasked text in item.extra["raw"]; only where the law allows it


class AnalysisConfig(Strict):
    """The `analysis:` section of yuqing.yaml."""

    pii: PiiConfig = PiiConfig()
