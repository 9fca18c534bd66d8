"""The stages an import's enrichment pool worker runs, built from the packages that provide them and nothing else.

Why a module of its own: a spawned worker imports the module of the function it is handed (`flow.pool.PooledImport`'s
`build`), and the composition root (`yuqing.service`) imports every package — alerts, SQLAlchemy tables, crawlers,
reports —, about a second of CPU per worker that none of the pooled stages uses. Nor `flow.ingest`: it imports the
after-store outbox and with it SQLAlchemy (≈ 0.25 s of CPU); `POOLED` holds the stages in flow order."""

from __future__ import annotations

from analysis.stages import analysis_state, enrich_stages
from core.config import Config
from flow.intake import NormaliseStage
from flow.pool import POOLED
from flow.stages import Stage


def pooled_stages(config: Config) -> list[Stage]:
    """The stateless stages a worker of the import's enrichment pool runs (`flow.pool.POOLED`), in flow order, with
    the models loaded; the lexicon the classifier reads words through is the worker's own."""
    stages = {"normalise": NormaliseStage(config), **enrich_stages(config, analysis_state(config))}
    return [stage for name in POOLED if (stage := stages.get(name)) is not None]
