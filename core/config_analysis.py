"""Configuration of the analysis stages: PII masking, risk grading, schemes, keywords, near-duplicates, events, spikes.

Every weight and list has a shipped default, so an empty `analysis:` section works; each can be overridden.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from core.config_base import Strict


class PiiConfig(Strict):
    """Masking of personal data (numbers, e-mail, names, home addresses, authors, payload fields) before anything is
    stored (analysis/pii.py)."""

    enabled: bool = True
    # true keeps the unmasked values apart from the item (table item_originals, read only through store.original);
    # only where the law allows it
    keep_raw: bool = False


class RiskLevels(Strict):
    """Lowest score of each grade; below III is IV (一般). Default I 特别重大 / II 重大 / III 较大 / IV 一般."""

    I: float = Field(80, ge=0, le=100)  # noqa: E741 - the grade names users know
    II: float = Field(60, ge=0, le=100)
    III: float = Field(40, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> RiskLevels:
        if not self.I > self.II > self.III:
            raise ValueError("risk levels must descend: I > II > III")
        return self


class RiskCategory(Strict):
    """A sensitive-term category: points added when any term occurs (more distinct terms add up to 50 % more)."""

    weight: float = Field(ge=0, le=100)
    label: str = ""
    terms: list[str] = Field(default_factory=list)


class RiskConfig(Strict):
    """Weights (points out of 100) of every risk feature; the score is their sum, capped at 100."""

    levels: RiskLevels = Field(default_factory=RiskLevels)
    terms_file: Path | None = None  # replaces the shipped analysis/resources/risk_terms.yaml
    categories: dict[str, RiskCategory] = Field(default_factory=dict)  # added to / replacing shipped categories
    # × the classifier's calibrated confidence; only anger, fear and sadness signal risk
    emotion_weights: dict[str, float] = Field(default_factory=lambda: {
        "angry": 15, "anger": 15, "愤怒": 15, "fear": 12, "fearful": 12, "恐惧": 12, "sad": 5, "sadness": 5, "悲伤": 5})
    emotion_min_confidence: float = Field(0.5, ge=0, le=1)  # below it the emotion adds nothing
    horizon_days: float = Field(7, gt=0)  # older items keep only a decaying share of their score
    stale_half_life_days: float = Field(30, gt=0)  # beyond the horizon, the score halves every this many days
    growth_weight: float = 8  # the item's event growing fast (items per day, log-scaled)
    growth_saturation: float = Field(20, gt=0)  # items per day at which the full weight applies
    negative_weight: float = 8  # × |polarity_score| when polarity is negative
    engagement_weight: float = 12
    engagement_saturation: int = Field(10_000, ge=1)  # likes+reposts+comments at which the full weight applies (log)
    velocity_weight: float = 10
    velocity_saturation: float = Field(500, gt=0)  # engagement per hour at which the full weight applies (log)
    channel_weights: dict[str, float] = Field(default_factory=lambda: {
        "weibo": 6, "news": 6, "wechat": 5, "board": 3, "mailbox": 3, "hotline": 2})
    repeat_weight: float = 12
    repeat_saturation: int = Field(10, ge=1)  # repeats (near-duplicates + other items of the event) for full weight
    reply_missing_weight: float = 10
    reply_late_weight: float = 4
    # Days to reply per channel (信访/领导信箱 15 days; 12345 by request type, working days × 7/5).
    reply_deadline_days: dict[str, float] = Field(default_factory=lambda: {"mailbox": 15, "board": 15, "hotline": 21})
    hotline_deadline_days: dict[str, float] = Field(default_factory=lambda: {
        "consult": 2.8, "help": 14, "suggest": 14, "complain": 21, "report": 21})


class SchemeSpec(Strict):
    """One monitoring scheme: (any region word) AND (any subject word) AND (any event word) NOT (any exclude word)."""

    name: str = Field(min_length=1, max_length=100)
    region: list[str] = Field(default_factory=list)
    subject: list[str] = Field(default_factory=list)
    event: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    expression: str | None = Field(None, description="full boolean form: AND OR NOT ( ) \"phrase\" NEAR/n")


class SchemesConfig(Strict):
    """Schemes from the config itself, from a YAML file, and (unless turned off) the shipped examples."""

    examples: bool = True
    file: Path | None = None
    items: list[SchemeSpec] = Field(default_factory=list)


class KeywordsConfig(Strict):
    top_k: int = Field(8, ge=1, le=50)
    places: list[str] = Field(default_factory=list)  # local place names (街道, 社区) added to the gazetteer
    fill_region: bool = True  # set item.region from the first place mentioned when the source gave none


class DedupConfig(Strict):
    """Near-duplicate merging; 0.6 estimated Jaccard was chosen on the near-duplicate groups of the shared data."""

    enabled: bool = True
    threshold: float = Field(0.6, gt=0, le=1)
    # Items the in-memory index holds before it forgets the oldest tenth: about 800 bytes each (bench/
    # bench_dedup_memory.py), so 80 MB at the default. 100,000 items are months of a district office's letters and
    # posts (reposts and repeated complaints come within days or weeks); raise it on a big machine for a longer memory.
    max_entries: int = Field(100_000, ge=1000)


class EventsConfig(Strict):
    """Incremental clustering of items into events (cosine of tf-idf keyword vectors)."""

    enabled: bool = True
    threshold: float = Field(0.3, gt=0, le=1)  # joins an event active within window_days
    strong_threshold: float = Field(0.5, gt=0, le=1)  # joins an open event (or links to a closed one's issue)
    name_threshold: float = Field(0.2, gt=0, le=1)  # joins an open event naming the same site or body (ditto)
    window_days: float = Field(30, gt=0)
    # an event without a new item for this long is closed; a later report of the same matter starts a new event of
    # the same issue (热点问题)
    close_days: float = Field(14, gt=0)
    # an event spans at most this long (first to last item): reports that keep coming past it start a new event of
    # the same issue, so no event grows without bound (nor the per-batch alert-rule totals over its items)
    max_days: float = Field(30, gt=0)
    max_active: int = Field(200_000, ge=100)


class SpikesConfig(Strict):
    """Volume of the last `recent_hours` against the previous `baseline_hours` (binomial test)."""

    recent_hours: float = Field(1, gt=0)
    baseline_hours: float = Field(12, gt=0)
    alpha: float = Field(0.01, gt=0, lt=1)
    min_count: int = Field(5, ge=1)
    min_ratio: float = Field(2.0, ge=1)
    min_baseline: int = Field(3, ge=0)  # items a group needs in its baseline window before it can spike


class AnalysisConfig(Strict):
    """The `analysis:` section of yuqing.yaml."""

    pii: PiiConfig = Field(default_factory=PiiConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    schemes: SchemesConfig = Field(default_factory=SchemesConfig)
    keywords: KeywordsConfig = Field(default_factory=KeywordsConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    spikes: SpikesConfig = Field(default_factory=SpikesConfig)
