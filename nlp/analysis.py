"""The analysis half of enrichment: what runs before segmentation and what runs after classification.

`nlp.pipeline.build_enrich_stages` calls `pre_stages(config)` + [segment, classify] + `analysis_stages(config, store)`.
The analysis stages share one `AnalysisState` (keyword table, gazetteer, scheme automaton, near-duplicate index,
event clusterer). Each reads `batch.tokens.get(id(item))`, falling back to segmenting itself. With a store, events
and signatures are rebuilt from it on start and saved by `PersistStage` after each stored batch (added by
`nlp.service.attach`); without one (the batch CLI) state lives in memory.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from core.config import Config
from core.config_analysis import AnalysisConfig
from core.models import Item
from flow.stages import Batch, Stage
from nlp.cluster import EventClusterer, item_vector
from nlp.dedup import NearDuplicateIndex, signatures
from nlp.gazetteer import Gazetteer, find_names
from nlp.keywords import KeywordExtractor
from nlp.pii import PiiMaskStage
from nlp.risk import RiskContext, RiskScorer, RiskStage
from nlp.schemes import EXAMPLES_FILE, SchemeMatcher, SchemeStage, load_specs
from nlp.tokenize import segment

logger = logging.getLogger(__name__)


def analysis_config(config: Config) -> AnalysisConfig:
    return getattr(config, "analysis", None) or AnalysisConfig()


def tokens_of(batch: Batch, item: Item) -> list[str]:
    """The segment stage's words for the item, or a fresh segmentation when it did not run."""
    tokens = batch.tokens.get(id(item))
    if tokens is None:
        tokens = segment(item.text)
        batch.tokens[id(item)] = tokens
    return tokens


def scheme_specs(cfg: AnalysisConfig) -> list:
    specs = load_specs(EXAMPLES_FILE) if cfg.schemes.examples else []
    if cfg.schemes.file is not None:
        specs.extend(load_specs(cfg.schemes.file))
    specs.extend(cfg.schemes.items)
    return specs


class AnalysisState:
    """Everything the analysis stages share, built once per service."""

    def __init__(self, config: AnalysisConfig, store: Any = None, now: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.store = store
        self.now = now or (lambda: datetime.now(UTC))
        self.keywords = KeywordExtractor(top_k=config.keywords.top_k)
        self.gazetteer = Gazetteer(extra_places=config.keywords.places)
        self.schemes = SchemeMatcher(scheme_specs(config))
        self.dedup = NearDuplicateIndex(threshold=config.dedup.threshold, max_entries=config.dedup.max_entries)
        self.events = EventClusterer(config.events)
        self.dup_counts: Counter[int] = Counter()  # repeats per chain root, for the risk feature
        self.known: dict[tuple[str, str], tuple[int | None, str | None, int]] = {}  # memory mode: key → (id, event, eng)
        self.scratch: dict[int, dict[str, Any]] = {}
        self.pending: dict[int, list[Item]] = {}  # temporary id → items in this batch that repeat it
        self.temp_ids: dict[int, int] = {}  # id(item) → temporary id until the store gives a real one
        self._next_temp = -1
        if store is not None:
            from nlp import event_store

            event_store.ensure_schema(store)
            event_store.load(store, self.events, self.dedup)
            self.events.dirty.clear()

    def new_temp_id(self) -> int:
        self._next_temp -= 1
        return self._next_temp

    def lookup_known(self, items: list[Item]) -> dict[tuple[str, str], tuple[int | None, str | None, int]]:
        """Items seen before (re-crawls): their id, event and engagement, from the store or from memory."""
        keys = [(it.source, it.source_id) for it in items]
        if self.store is None:
            return {k: self.known[k] for k in keys if k in self.known}
        from storage.schema import items as table

        T = table.c
        found: dict[tuple[str, str], tuple[int | None, str | None, int]] = {}
        by_source: dict[str, list[str]] = {}
        for source, sid in keys:
            by_source.setdefault(source, []).append(sid)
        with self.store.read() as conn:
            for source, sids in by_source.items():
                for start in range(0, len(sids), 500):
                    rows = conn.execute(select(T.id, T.source_id, T.event_id, T.likes, T.reposts, T.comments)
                                        .where(T.source == source, T.source_id.in_(sids[start:start + 500]))).all()
                    for r in rows:
                        found[(source, r.source_id)] = (r.id, r.event_id, r.likes + r.reposts + r.comments)
        return found

    def risk_context(self, item: Item) -> RiskContext:
        e = item.enrichment
        root = e.near_duplicate_of
        repeats = self.dup_counts.get(self.dedup.root(root), 0) if root else 0
        event = self.events.events.get(e.event_id) if e.event_id else None
        return RiskContext(repeats=repeats, event_volume=event.volume if event else 1)


class KeywordStage:
    """Keywords (tf-idf), places and organisations; fills an empty region from the first place mentioned."""

    name = "keywords"

    def __init__(self, state: AnalysisState) -> None:
        self.state = state

    def run(self, batch: Batch) -> None:
        state = self.state
        fill = state.config.keywords.fill_region
        for item in batch.items:
            tokens = tokens_of(batch, item)
            weights = state.keywords.weights(tokens)
            item.enrichment.keywords = [w for w, _ in sorted(weights.items(), key=lambda kv: -kv[1])[:state.keywords.top_k]]
            places = state.gazetteer.find_places(item.text)
            orgs = state.gazetteer.find_orgs(tokens, places)
            item.enrichment.entities = {"places": places[:10], "orgs": orgs}
            if fill and not item.region and places:
                item.region = places[0]
            state.scratch[id(item)] = {"weights": weights, "entities": places[:5], "names": find_names(item.text)}


class NearDuplicateStage:
    """Sets near_duplicate_of to the stored item the text repeats (the first of its repost chain)."""

    name = "near_duplicates"

    def __init__(self, state: AnalysisState) -> None:
        self.state = state

    def run(self, batch: Batch) -> None:
        state = self.state
        if not batch.items:
            return
        known = state.lookup_known(batch.items)
        sigs = signatures([tokens_of(batch, it) for it in batch.items])
        for item, sig in zip(batch.items, sigs, strict=True):
            info = known.get((item.source, item.source_id))
            own = item.id if item.id is not None else (info[0] if info else None)
            state.scratch.setdefault(id(item), {})["known"] = info
            match = state.dedup.query(sig, exclude=own)
            if match is not None and own is not None and match.item_id > own:
                match = None  # a re-crawled item is never a copy of something that came after it
            root = state.dedup.root(match.item_id) if match else None
            if own is None:
                temp = state.new_temp_id()
                state.temp_ids[id(item)] = temp
                state.dedup.add(temp, sig, root)
            if root is None:
                item.enrichment.near_duplicate_of = None
                continue
            state.dup_counts[root] += 1 if own is None else 0
            if root < 0:
                if state.store is None:
                    continue  # memory mode: the item it repeats has no id to point at
                state.pending.setdefault(root, []).append(item)
            item.enrichment.near_duplicate_of = root


class EventStage:
    """Joins each item to an event (enrichment.event_id); a re-crawled item keeps its event."""

    name = "events"

    def __init__(self, state: AnalysisState) -> None:
        self.state = state

    def run(self, batch: Batch) -> None:
        state = self.state
        known = None
        for item in batch.items:
            scratch = state.scratch.setdefault(id(item), {})
            if "known" not in scratch:
                known = known if known is not None else state.lookup_known(batch.items)
                scratch["known"] = known.get((item.source, item.source_id))
            info = scratch["known"]
            engagement = item.engagement.total
            if info is not None and info[1] is not None:
                item.enrichment.event_id = info[1]
                state.events.update_engagement(info[1], engagement - info[2])
            else:
                weights = scratch.get("weights") or state.keywords.weights(tokens_of(batch, item))
                vector = item_vector(weights, scratch.get("entities", []), scratch.get("names", []))
                item.enrichment.event_id = state.events.assign(
                    vector, item.published_at.timestamp(), title=item.title or item.content[:60], source=item.source,
                    channel=item.channel.value, region=item.region, engagement=engagement)
            if state.store is None:
                state.known[(item.source, item.source_id)] = (item.id, item.enrichment.event_id, engagement)


class PersistStage:
    """After the store: real ids replace temporary ones, then changed events and new signatures are saved."""

    name = "analysis_persist"

    def __init__(self, state: AnalysisState) -> None:
        self.state = state

    def run(self, batch: Batch) -> None:
        from nlp import event_store

        state = self.state
        store = state.store
        new_sigs = []
        fixups: list[Item] = []
        for item in batch.stored:
            temp = state.temp_ids.pop(id(item), None)
            if temp is None or item.id is None:
                continue
            sig = state.dedup.rekey(temp, item.id)
            if state.dup_counts.get(temp):
                state.dup_counts[item.id] += state.dup_counts.pop(temp)
            for repeat in state.pending.pop(temp, []):
                repeat.enrichment.near_duplicate_of = item.id
                fixups.append(repeat)
            if sig is not None:
                new_sigs.append((item.id, state.dedup.root(item.id), sig))
        changed = [state.events.events[e] for e in state.events.dirty if e in state.events.events]
        state.events.dirty.clear()
        if store is not None:
            with store.write() as conn:
                event_store.save(conn, changed, new_sigs)
            for item in fixups:
                if item.id is not None:
                    store.update_enrichment(item.id, item.enrichment)
        state.scratch.clear()
        state.temp_ids.clear()
        state.pending.clear()


def pre_stages(config: Config) -> list[Stage]:
    """Stages that must run before anything reads the text: personal data masking."""
    cfg = analysis_config(config)
    return [PiiMaskStage(keep_raw=cfg.pii.keep_raw)] if cfg.pii.enabled else []


_STATES: dict[int, AnalysisState] = {}


def state_for(store: Any) -> AnalysisState | None:
    """The state the analysis stages of this store use (for the API and the persist stage)."""
    return _STATES.get(id(store))


def analysis_stages(config: Config, store=None, now: Callable[[], datetime] | None = None) -> list[Stage]:  # noqa: ANN001
    """Stages after topic/emotion: keywords, schemes, near-duplicates, events, risk (state in `store` if given)."""
    cfg = analysis_config(config)
    state = AnalysisState(cfg, store, now=now)
    if store is not None:
        _STATES[id(store)] = state
    stages: list[Stage] = [KeywordStage(state), SchemeStage(state.schemes, tokens_of)]
    if cfg.dedup.enabled:
        stages.append(NearDuplicateStage(state))
    if cfg.events.enabled:
        stages.append(EventStage(state))
    stages.append(RiskStage(RiskScorer(cfg.risk), state.risk_context, state.now))
    if store is None:
        stages.append(PersistStage(state))  # memory mode: only clears per-batch scratch
    return stages
