"""The analysis half of enrichment: what runs before segmentation and what runs after classification.

`nlp.pipeline.build_enrich_stages` calls `pre_stages(config)` + [segment, classify] + `analysis_stages(config, store)`.
Each stage reads `batch.tokens.get(id(item))` (falling back to segmenting itself) and fills `item.enrichment`.
"""

from __future__ import annotations

from core.config import Config
from flow.stages import Stage
from nlp.pii import PiiMaskStage


def _analysis_config(config: Config):  # noqa: ANN202 - AnalysisConfig, imported lazily to keep config optional
    from core.config_analysis import AnalysisConfig

    return getattr(config, "analysis", None) or AnalysisConfig()


def pre_stages(config: Config) -> list[Stage]:
    """Stages that must run before anything reads the text: personal data masking."""
    cfg = _analysis_config(config)
    return [PiiMaskStage(keep_raw=cfg.pii.keep_raw)] if cfg.pii.enabled else []


def analysis_stages(config: Config, store=None) -> list[Stage]:  # noqa: ANN001 - SqliteStore or None
    """Stages after topic/emotion: keywords, schemes, risk, near-duplicates, events (state in `store` if given)."""
    return []
