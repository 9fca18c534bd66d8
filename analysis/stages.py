"""The analysis half of enrichment: what runs before segmentation and what runs after classification.

`enrich_stages(config, state)` provides PII masking, segment, classify and the analysis stages by their names in
`flow.ingest.STAGES` (which alone decides their order), all sharing one `AnalysisState` that the composition root
builds. The state is long-lived (lexicon, near-duplicate index, events, counters) and only the ingest writer
(`flow.writer`) runs the stages; what concerns one batch (prepared facts, encoded words, temporary ids) lives in the
`Batch`, so no batch can see or clear another's.

They work per batch, not per item: the batch's words become one id array (`analysis.lexicon`; the classify stage
encodes it first and reads its features' word hashes off it) from which keywords, organisation positions and
near-duplicate signatures are computed with numpy; one Aho-Corasick pass per batch (`analysis.termscan`) finds
places, scheme terms and risk terms at once. Each stage reads the segment stage's `batch.tokens`, falling back to
segmenting itself, and prepares what it needs when an earlier stage did not (a stage run alone, or item by item
after a failure). With a store, events and signatures are rebuilt from it on start and saved by `PersistStage`
after each stored batch; without one (the batch CLI) state lives in memory.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from itertools import repeat
from operator import attrgetter
from typing import Any

import numpy as np
from pydantic import BaseModel

from analysis.cluster import ITEM_TERMS, EventClusterer, JoinRow, item_vector, item_vectors, load_matters
from analysis.dedup import NearDuplicateIndex, band_groups, band_keys, signatures_from_hashes
from analysis.gazetteer import HEAD_WORDS, Gazetteer, names_many, ordered_places_many, org_flags, orgs_many
from analysis.keywords import KeywordExtractor, TopTerms, batch_top_terms_flat, useful_many
from analysis.lexicon import Encoded, Lexicon
from analysis.pii import PiiMaskStage
from analysis.risk import RiskContext, RiskScorer, RiskStage
from analysis.schemes import EXAMPLES_FILE, SchemeMatcher, SchemeStage, load_specs
from analysis.termscan import Hits, TermScanner
from core.config import Config
from core.config_analysis import AnalysisConfig
from core.models import Item, item_texts
from flow.stages import Batch, Stage
from nlp import tokenize
from nlp.classify import get_classifier
from nlp.features import MAX_CHARS, WordIds
from nlp.pipeline import ClassifyStage, SegmentStage, tune_gc
from nlp.tokenize import segment

logger = logging.getLogger(__name__)

_ORG_SCAN = 2000  # tokens looked at for organisations


class _Unknown:
    """`Prepared.known` before the store was asked: one object, kept when pickled (a pool worker's prepared facts
    travel to the writer, which still has to ask)."""

    def __reduce__(self) -> str:
        return "_UNKNOWN"


_UNKNOWN = _Unknown()


def _engagement_total(counts: dict[str, int]) -> int:
    """`Engagement.total` from the model's field dict (`Engagement.__dict__`): the property reads its four fields
    through pydantic's __getattr__ hook, ~1,500 instructions an item against ~300 (a test keeps the two equal)."""
    return counts["likes"] + counts["dislikes"] + counts["reposts"] + counts["comments"]


_fields = attrgetter("__dict__")  # a model's field values (where pydantic keeps them), by a C-level call


def analysis_config(config: Config) -> AnalysisConfig:
    return getattr(config, "analysis", None) or AnalysisConfig()


def tokens_of(batch: Batch, item: Item) -> list[str]:
    """The segment stage's words for the item, or a fresh segmentation when it did not run."""
    tokens = batch.tokens.get(id(item))
    if tokens is None:
        tokens = segment(item.text)
        batch.tokens[id(item)] = tokens
    return tokens


def assign(model: BaseModel, **values: Any) -> None:
    """Set several fields of a pydantic model at once, as its own __setattr__ does for plain fields (no validation
    on assignment), without paying that call per field: the analysis stages set ten fields on every item."""
    model.__dict__.update(values)
    model.__pydantic_fields_set__.update(values)


def scheme_specs(cfg: AnalysisConfig) -> list:
    specs = load_specs(EXAMPLES_FILE) if cfg.schemes.examples else []
    if cfg.schemes.file is not None:
        specs.extend(load_specs(cfg.schemes.file))
    specs.extend(cfg.schemes.items)
    return specs


@dataclass(slots=True)
class Prepared:
    """What the stages share about one item of the current batch."""

    item: Item  # held so that id(item) cannot be reused by another object while this entry exists
    top: TopTerms  # the batch's best words by tf-idf (flat arrays); this item's are at `row`
    row: int
    keywords: list[str]  # the first top_k of those words: the item's keywords
    places: list[str]
    orgs: list[str]
    names: list[str]  # named sites and bodies (魅力之城小区), for events
    hits: Hits
    # (signatures, LSH keys, row) of the batch arrays the item was signed in: the arrays and a row rather than views of
    # the two rows (two views an item cost more than the rest of the signing loop)
    signed: tuple[np.ndarray, np.ndarray, int] | None = None
    known: Any = _UNKNOWN  # (id, event id, engagement) of a re-crawled item, None when new
    vector: dict[str, float] | None = None  # the item's event vector (`analysis.cluster.item_vector`)

    @property
    def terms(self) -> list[tuple[str, float]]:
        """Best words by tf-idf with their weights, best first."""
        return self.top.terms(self.row)

    @classmethod
    def to_columns(cls, prepared: list[Prepared]) -> tuple[bool, list[list[Any]]]:
        """A pool worker's prepared facts for the writer (`flow.wire`), one list per field but `item` (it travels
        with the items). Once every event vector is made (the usual case), without what only `_vectors` reads: the
        batch's term arrays (`top`) and of the term hits all but the scheme and risk terms (the writer's stages read
        no other; `from_columns` leaves them None). Together ~25 % of the writer's cost of unpickling the facts."""
        columns = [list(map(attrgetter(name), prepared)) for name in _WIRE_FIELDS]
        slim = all(p.vector is not None for p in prepared)
        if slim:
            hits = columns[_WIRE_FIELDS.index("hits")]
            columns[_WIRE_FIELDS.index("top")] = [None] * len(prepared)
            columns[_WIRE_FIELDS.index("hits")] = [list(map(attrgetter("scheme"), hits)),
                                                   list(map(attrgetter("risk"), hits))]
        return slim, columns

    @classmethod
    def from_columns(cls, items: list[Item], packed: tuple[bool, list[list[Any]]]) -> list[Prepared]:
        """The Prepared of `to_columns`, their slots set by C loops (no Python frame per item)."""
        slim, columns = packed
        count = len(items)
        if slim:
            columns = list(columns)
            scheme, risk = columns[_WIRE_FIELDS.index("hits")]
            hits = list(map(object.__new__, repeat(Hits, count)))
            for name, column in (("scheme", scheme), ("risk", risk), ("places", repeat(None)),
                                 ("heads", repeat(None)), ("matters", repeat(None))):
                deque(map(setattr, hits, repeat(name), column), maxlen=0)
            columns[_WIRE_FIELDS.index("hits")] = hits
        prepared = list(map(object.__new__, repeat(cls, count)))
        for name, column in zip(("item", *_WIRE_FIELDS), (items, *columns), strict=True):
            deque(map(setattr, prepared, repeat(name), column), maxlen=0)
        return prepared


_WIRE_FIELDS = ("top", "row", "keywords", "places", "orgs", "names", "hits", "signed", "known", "vector")


class AnalysisState:
    """What the analysis stages keep from batch to batch, built once per service by the composition root: lexicon,
    dictionaries, the near-duplicate index, events and counters. Only the ingest writer runs the stages, so none of
    it needs a lock; per-batch scratch lives in the `Batch`, never here."""

    def __init__(self, config: AnalysisConfig, store: Any = None, now: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.store = store
        self.now = now or (lambda: datetime.now(UTC))
        self.keywords = KeywordExtractor(top_k=config.keywords.top_k)
        self.gazetteer = Gazetteer(extra_places=config.keywords.places)
        self.schemes = SchemeMatcher(scheme_specs(config))
        self.risk = RiskScorer(config.risk)
        stop = self.keywords.stop
        # both judge the new words of a batch in one call (a cold start meets thousands, a warm batch about a thousand)
        self.lexicon = Lexicon(self.keywords.idf, self.keywords.default_idf, partial(useful_many, stop=stop),
                               partial(org_flags, tags=self.gazetteer.org_tags))
        self.scanner = TermScanner(self.gazetteer.places, HEAD_WORDS, self.schemes.terms, self.risk.term_categories,
                                   load_matters())
        self.term_count = max(config.keywords.top_k, ITEM_TERMS + 2)
        self._dedup = NearDuplicateIndex(threshold=config.dedup.threshold, max_entries=config.dedup.max_entries)
        self._events = EventClusterer(config.events)
        self._unloaded = store is not None  # events and signatures are read from the store by the first batch
        self.dup_counts: Counter[int] = Counter()  # repeats per chain root, for the risk feature
        self._contexts: dict[tuple[int, int, int], RiskContext] = {}  # (repeats, event volume, days) → its RiskContext
        self.known: dict[tuple[str, str], tuple[int | None, str | None, int]] = {}  # memory mode: key → (id, event, eng)
        # Temporary ids stay unique across batches: one whose item never reached the store stays in the index.
        self._next_temp = -1
        if store is not None:
            from analysis import event_store

            event_store.ensure_schema(store)

    def _load_from_store(self) -> None:
        """Rebuild the active events and the near-duplicate index from the store, once, when a batch first needs
        them: a service that only answers reads never pays their memory or start-up time."""
        if self._unloaded:
            from analysis import event_store

            self._unloaded = False
            event_store.load(self.store, self._events, self._dedup)
            self._events.dirty.clear()

    @property
    def events(self) -> EventClusterer:
        self._load_from_store()
        return self._events

    @property
    def dedup(self) -> NearDuplicateIndex:
        self._load_from_store()
        return self._dedup

    def reload(self) -> None:
        """Rebuild events and the near-duplicate index from the store: another instance ingested since this one last
        did (flow.writer.IngestGate), so what it learnt is in the store and not in this memory."""
        if self.store is None:
            return
        self._dedup = NearDuplicateIndex(threshold=self.config.dedup.threshold, max_entries=self.config.dedup.max_entries)
        self._events = EventClusterer(self.config.events)
        self.dup_counts.clear()
        self._contexts.clear()
        self._unloaded = True  # read from the store again by the next batch that needs them (`_load_from_store`)

    def new_temp_id(self) -> int:
        self._next_temp -= 1
        return self._next_temp

    def encode(self, batch: Batch, items: list[Item]) -> Encoded:
        """The batch's words as ids (once per batch: the stages after the first reuse it)."""
        key = [id(it) for it in items]
        if batch.encoded is not None and batch.encoded[0] == key:
            return batch.encoded[1]
        encoded = self.lexicon.encode([tokens_of(batch, it) for it in items])
        batch.encoded = (key, encoded)
        return encoded

    def word_ids(self, batch: Batch, items: list[Item]) -> WordIds:
        """The items' words as lexicon ids, for the featuriser (`nlp.features.WordIds`): the classify stage encodes
        the batch for the stages after it, and word facts are computed once per distinct word, not per token."""
        return self.lexicon.word_ids(self.encode(batch, items).ids)

    def prepare(self, batch: Batch) -> list[Prepared]:
        """Keywords, places, organisations, names and term hits of every item of the batch, computed once."""
        prepared = batch.prepared
        todo = [it for it in batch.items if id(it) not in prepared]
        if todo:
            self._prepare(batch, todo)
        return [prepared[id(it)] for it in batch.items]

    def _prepare(self, batch: Batch, items: list[Item]) -> None:
        enc = self.encode(batch, items)
        top, keywords = batch_top_terms_flat(enc, self.lexicon, self.term_count, self.keywords.top_k)
        flagged = np.flatnonzero((self.lexicon.flag.take(enc.ids) > 0) & (enc.position < _ORG_SCAN))
        texts = item_texts(items)
        all_hits = self.scanner.scan_many(texts)
        all_places = ordered_places_many([h.places for h in all_hits], texts)
        orgs = orgs_many(enc.token_lists, enc.owner[flagged].tolist(), enc.position[flagged].tolist(), all_places)
        names = names_many(texts, [h.heads for h in all_hits])
        # one Prepared per item, made from C (no loop body per item)
        batch.prepared.update(zip(map(id, items), map(Prepared, items, repeat(top), range(len(items)), keywords,
                                                      all_places, orgs, names, all_hits), strict=True))

    def item_vectors(self, prepared: list[Prepared]) -> list[dict[str, float]]:
        """Event vectors of these items: those the prepare stage made, the others made now (`_vectors`)."""
        todo = [p for p in prepared if p.vector is None]
        if todo:
            for p, vector in zip(todo, self._vectors(todo), strict=True):
                p.vector = vector
        return [p.vector for p in prepared]

    def _vectors(self, prepared: list[Prepared]) -> list[dict[str, float]]:
        """Event vectors (`analysis.cluster.item_vector`) of these items: for the whole batch at once from its flat term
        arrays when they all come from one (the usual case), else item by item."""
        if not prepared:
            return []
        top = prepared[0].top
        if top.generation != self.lexicon.generation or any(p.top is not top for p in prepared):
            return [item_vector(p.terms, p.places[:5], p.names, p.hits.matters) for p in prepared]
        word_id = self.lexicon.index.get  # -1 for a word it does not hold, without a Python-level __missing__ call
        rows = np.fromiter([p.row for p in prepared], dtype=np.int64, count=len(prepared))
        return item_vectors(top.words, top.word_ids, top.scores, np.asarray(top.starts, dtype=np.int64)[rows],
                            np.asarray(top.ends, dtype=np.int64)[rows],
                            [[word_id(name.lower(), -1) for name in p.places[:5]] for p in prepared],
                            [p.names for p in prepared], [p.hits.matters for p in prepared])

    def hits_of(self, kind: str) -> Callable[[Batch], list[Any]]:
        def get(batch: Batch) -> list[Any]:
            return [getattr(p.hits, kind) for p in self.prepare(batch)]

        return get

    def signatures(self, batch: Batch, prepared: list[Prepared]) -> None:
        """Near-duplicate signatures and LSH keys of the items that have none yet (`Prepared.signed`), in one
        vectorised pass."""
        todo = [(it, p) for it, p in zip(batch.items, prepared, strict=True) if p.signed is None]
        if not todo:
            return
        items = [it for it, _ in todo]
        enc = self.encode(batch, items)
        sigs = signatures_from_hashes(self.lexicon.hash.take(enc.ids), enc.owner, enc.position, len(items))
        keys = band_keys(sigs, self._dedup.bands)  # a setting: no need to load the index from the store for it
        for row, (_, p) in enumerate(todo):
            p.signed = (sigs, keys, row)

    def fill_known(self, items: list[Item], prepared: list[Prepared], unstored: dict[int, Item] | None = None) -> None:
        """`Prepared.known` of the items that have none yet: one key and one look-up per item (memory mode reads
        `self.known` directly; a store answers for all keys at once). `unstored`: items exact dedup found the store
        without (`Batch.unstored`), known to be new without asking it again (≈ 10,000 instructions an item)."""
        todo = [p for p in prepared if p.known is _UNKNOWN]
        if todo and unstored and self.store is not None:
            asked = []
            for p in todo:
                if unstored.get(id(p.item)) is p.item:
                    p.known = None
                else:
                    asked.append(p)
            todo = asked
        if not todo:
            return
        if len(todo) < len(prepared):
            items = [p.item for p in todo]
        keys = [(f["source"], f["source_id"]) for f in map(_fields, items)]  # no pydantic __getattr__ hook per read
        get = (self.known if self.store is None else self.store.known_items(keys)).get
        for p, found in zip(todo, map(get, keys), strict=True):
            p.known = found

    def risk_contexts(self, items: list[Item]) -> list[RiskContext]:
        """Each item's RiskContext (repeats of its near-duplicate chain, volume and span of its event), for a batch."""
        dup_counts, root_of, events, interned = self.dup_counts, self.dedup.root, self.events.events, self._contexts
        if len(interned) > 10_000:  # a few hundred in real data; a stream of growing events makes more
            interned.clear()
        out: list[RiskContext] = []
        for item in items:
            e = item.__dict__["enrichment"].__dict__  # fields read off the models' dicts: no __getattr__ hook per read
            root = e["near_duplicate_of"]
            event = events.get(event_id) if (event_id := e["event_id"]) else None
            # A plain pair finds the equal named tuple (a few hundred distinct ones): no Python-level __new__ per item
            pair = (dup_counts.get(root_of(root), 0) if root else 0, event.volume if event else 1,
                    int((event.last_seen - event.first_seen) // 86400) if event else 0)
            context = interned.get(pair)
            if context is None:
                context = interned[pair] = RiskContext(*pair)
            out.append(context)
        return out


class PrepareStage:
    """Computes once per batch what the analysis stages after it share about each item (`AnalysisState.prepare`, the
    near-duplicate signatures and the event vectors). It reads only the text, the words and fixed tables, never the
    item's analysis state, and changes no item: an import's pool workers run it (flow.pool), and the writer receives
    the result in `batch.prepared`. Stages after it prepare what is missing themselves (a stage run alone, items
    whose text dedup changed)."""

    name = "prepare"

    def __init__(self, state: AnalysisState) -> None:
        self.state = state

    def run(self, batch: Batch) -> None:
        state = self.state
        prepared = state.prepare(batch)
        if state.config.dedup.enabled:
            state.signatures(batch, prepared)
        if state.config.events.enabled:
            state.item_vectors(prepared)


class KeywordStage:
    """Keywords (tf-idf), places and organisations; fills an empty region from the first place mentioned."""

    name = "keywords"

    def __init__(self, state: AnalysisState) -> None:
        self.state = state

    def run(self, batch: Batch) -> None:
        state = self.state
        fill = state.config.keywords.fill_region
        fields = ("keywords", "entities")
        for item, p in zip(batch.items, state.prepare(batch), strict=True):
            places = p.places
            item_fields = item.__dict__  # fields read and set as `assign` sets them: no __getattr__ hook, no call
            e = item_fields["enrichment"]
            values = e.__dict__
            values["keywords"], values["entities"] = p.keywords, {"places": places[:10], "orgs": p.orgs}
            e.__pydantic_fields_set__.update(fields)
            if fill and places and not item_fields["region"]:
                item_fields["region"] = places[0]
                item.__pydantic_fields_set__.add("region")


class NearDuplicateStage:
    """Sets near_duplicate_of to the stored item the text repeats (the first of its repost chain)."""

    name = "near_duplicates"

    def __init__(self, state: AnalysisState) -> None:
        self.state = state

    def run(self, batch: Batch) -> None:
        state = self.state
        if not batch.items:
            return
        prepared = state.prepare(batch)
        state.fill_known(batch.items, prepared, batch.unstored)
        state.signatures(batch, prepared)
        index = state.dedup
        memory = state.store is None
        # fields read off the models' __dict__: an attribute read on a model goes through pydantic's __getattr__ hook
        fields = list(map(_fields, batch.items))
        owns = [own if (own := f["id"]) is not None else (p.known[0] if p.known else None)
                for f, p in zip(fields, prepared, strict=True)]
        signed = [p.signed for p in prepared]
        if all(s[0] is signed[0][0] for s in signed):  # all signed in one batch (the usual case): rows of its arrays
            rows = [s[2] for s in signed]
            sigs, keys = signed[0][0][rows], signed[0][1][rows]
        else:
            sigs = np.stack([s[0][s[2]] for s in signed])
            keys = np.stack([s[1][s[2]] for s in signed])
        codes = np.empty(keys.shape, dtype=np.int64)  # what the index holds under each band key, for add_many
        groups = band_groups(keys)  # shared by match_batch and, when every item is new, add_many
        matches = index.match_batch(sigs, keys, owns, codes, groups)
        ids: list[int] = []  # each item's id in the index: its own, or a temporary one until the store gives it
        roots: list[int | None] = []
        # Temporary ids handed out here as `new_temp_id` would, from a local counter (a call less per item)
        next_temp, temp_ids, dup_counts, root_of = state._next_temp, batch.temp_ids, state.dup_counts, index.root
        for item, f, match, own in zip(batch.items, fields, matches, owns, strict=True):
            if own is None:
                next_temp -= 1
                own_key = temp_ids[id(item)] = next_temp
            else:
                own_key = own
            ids.append(own_key)
            if match is None:
                roots.append(None)
                if f["enrichment"].__dict__["near_duplicate_of"] is not None:
                    item.enrichment.near_duplicate_of = None
                continue
            at = match[1]
            if match[0] == "index":
                root = root_of(at)
            elif (root := roots[at]) is None:  # an earlier item of the batch: its root, or itself
                root = ids[at]
            roots.append(root)
            dup_counts[root] += 1 if own is None else 0
            if root < 0:
                if memory:
                    continue  # memory mode: the item it repeats has no id to point at
                batch.pending.setdefault(root, []).append(item)
            item.enrichment.near_duplicate_of = root
        state._next_temp = next_temp
        new = [i for i, own in enumerate(owns) if own is None]
        if len(new) == len(owns):  # every item is new (the usual case): the batch's own lists and arrays, no copies
            index.add_many(ids, sigs, keys, roots, codes, groups)
        else:
            index.add_many([ids[i] for i in new], sigs[new], keys[new], [roots[i] for i in new], codes[new])


class EventStage:
    """Joins each item to an event (enrichment.event_id); a re-crawled item keeps its event."""

    name = "events"

    def __init__(self, state: AnalysisState) -> None:
        self.state = state

    def run(self, batch: Batch) -> None:
        state = self.state
        prepared = state.prepare(batch)
        items = batch.items
        state.fill_known(items, prepared, batch.unstored)
        events = state.events
        # The items' fields read off their __dict__ (where pydantic keeps them): an attribute read on a model goes
        # through its Python-level __getattr__ hook, ~360 instructions against ~50, and this stage reads ~15 per item.
        fields = [item.__dict__ for item in items]
        engagements = [_engagement_total(values["engagement"].__dict__) for values in fields]
        new = [i for i, p in enumerate(prepared) if p.known is None or p.known[1] is None]
        vectors = state.item_vectors([prepared[i] for i in new])
        published = batch.published_timestamps()  # computed once for this stage, risk and the store
        fresh: list[JoinRow] = []
        for i, vector in zip(new, vectors, strict=True):
            values = fields[i]
            # `_value_`, not `.value`: the enum's `value` is a Python-level property (6x the cost)
            fresh.append((vector, published[i], values["title"] or values["content"][:60],
                          values["source"], values["channel"]._value_, values["region"], engagements[i],
                          prepared[i].names))
        joined = iter(events.join_batch(fresh))  # the batch's new items in order, each seeing those before it
        known = state.known if state.store is None else None
        for values, p, engagement in zip(fields, prepared, engagements, strict=True):
            info = p.known
            if info is not None and info[1] is not None:
                event_id = events.resolve(info[1])
                events.update_engagement(event_id, engagement - info[2])
            else:
                event_id = next(joined)
            e = values["enrichment"]  # one plain field, set as `assign` does
            e.__dict__["event_id"] = event_id
            e.__pydantic_fields_set__.add("event_id")
            if known is not None:
                known[(values["source"], values["source_id"])] = (values["id"], event_id, engagement)


class PersistStage:
    """After the store: real ids replace temporary ones, then changed events and new signatures are saved.

    A repeat of an item of an earlier batch that never reached the store (quarantined after the near-duplicate
    stage: its temporary id stays in the index) points at nothing rather than at that temporary id. Only one batch
    runs at a time (`flow.writer`), so a temporary id of an earlier batch can no longer be given a real one."""

    name = "analysis_persist"

    def __init__(self, state: AnalysisState) -> None:
        self.state = state

    def run(self, batch: Batch) -> None:
        state = self.state
        store = state.store
        fixups: list[Item] = []
        pending = batch.pending
        dedup, dup_counts = state.dedup, state.dup_counts  # a property that may load the store: read once
        slots: list[int] = []  # renamed index slots, their new ids and roots, in order
        new_ids: list[int] = []
        roots: list[int] = []
        temp_ids = batch.temp_ids
        for item in batch.stored:
            temp = temp_ids.pop(id(item), None)
            if temp is None or (item_id := item.__dict__["id"]) is None:  # the field itself, no __getattr__ hook
                continue
            slot = dedup.rename(temp, item_id)  # `rekey`, its array writes made for the batch below
            if dup_counts.get(temp):
                dup_counts[item_id] += dup_counts.pop(temp)
            for copy in pending.pop(temp, []):
                copy.enrichment.near_duplicate_of = item_id
                fixups.append(copy)
            if slot is not None:
                slots.append(slot)
                new_ids.append(item_id)
                roots.append(dedup.root(item_id))
        new_sigs = (new_ids, roots, dedup.finish_renames(slots, new_ids))
        of_this_batch = set(batch.temp_ids.values())  # not stored yet (or run item by item after a failure)
        for temp in [t for t in pending if t not in of_this_batch]:
            for copy in pending.pop(temp):
                copy.enrichment.near_duplicate_of = None
                fixups.append(copy)
        clusterer = state.events
        clusterer.consolidate()
        # Memory mode's `state.known` keeps the event ids it was given: EventStage resolves them (the clusterer's
        # aliases follow every merge), so merges need no walk over all items seen so far (that was ~10 µs/item).
        merged, clusterer.merged = clusterer.merged, {}
        changed = [clusterer.events[e] for e in clusterer.dirty if e in clusterer.events]
        clusterer.dirty.clear()
        if store is not None:
            from analysis import event_store  # only with a store (importing it costs 60 ms of SQLAlchemy tables)

            event_store.save(store, changed, event_store.SignatureBlock(*new_sigs),
                             {a: clusterer.resolve(t) for a, t in merged.items()})
            for item in fixups:
                if item.id is not None:
                    store.update_enrichment(item.id, item.enrichment)


def analysis_state(config: Config, store: Any = None, now: Callable[[], datetime] | None = None) -> AnalysisState:
    """The long-lived state of the analysis stages (events and signatures loaded from `store` when given)."""
    return AnalysisState(analysis_config(config), store, now=now)


def enrich_stages(config: Any, state: AnalysisState, *, models_on_demand: bool = False) -> dict[str, Stage | None]:
    """Every stage enrichment provides, keyed by its name in `flow.ingest.STAGES` (which decides the order);
    None for a stage the config switches off. All share `state`. `models_on_demand`: the classifier loads at its
    first batch, not here (a writer whose pool workers classify)."""
    nlp = getattr(config, "nlp", None)
    backend = nlp.segmenter if nlp is not None else None
    if backend:
        tokenize.set_default_backend(backend)
    models_dir = nlp.models_dir if nlp is not None else "models"
    load = partial(get_classifier, models_dir, *((nlp.neutral_band, nlp.emotion_weight) if nlp is not None else ()))
    classifier = {"load": load} if models_on_demand else {"classifier": load()}
    max_chars = nlp.max_chars if nlp is not None else MAX_CHARS
    stages: dict[str, Stage | None] = {
        **pre_stages(config),
        "segment": SegmentStage(backend),
        "classify": ClassifyStage(**classifier, max_chars=max_chars, backend=backend, word_ids=state.word_ids),
        **analysis_stages(config, state),
    }
    tune_gc()  # models and analysis state are loaded now: what the flow allocates from here on is per batch
    return stages


def pre_stages(config: Config) -> dict[str, Stage | None]:
    """Stages that must run before anything reads the text: personal data masking."""
    cfg = analysis_config(config)
    return {"pii_mask": PiiMaskStage(keep_raw=cfg.pii.keep_raw) if cfg.pii.enabled else None}


def analysis_stages(config: Config, state: AnalysisState) -> dict[str, Stage | None]:
    """Stages after topic/emotion: keywords, schemes, near-duplicates, events, risk, and persisting what they
    learnt after the store (in memory mode it only consolidates events)."""
    cfg = analysis_config(config)
    return {
        "prepare": PrepareStage(state),
        "keywords": KeywordStage(state),
        "schemes": SchemeStage(state.schemes, tokens_of, state.hits_of("scheme")),
        "near_duplicates": NearDuplicateStage(state) if cfg.dedup.enabled else None,
        "events": EventStage(state) if cfg.events.enabled else None,
        "risk": RiskStage(state.risk, state.risk_contexts, state.now, state.hits_of("risk")),
        "analysis_persist": PersistStage(state),
    }


def build_enrich_stages(config: Any, store: Any = None) -> list[Stage]:
    """The enrichment stages alone, in flow order, for a chain without normalise, dedup and store (the batch CLI,
    benchmarks): PII masking → segment → classify → analysis stages → persist."""
    from flow.ingest import order_stages

    return order_stages(enrich_stages(config, analysis_state(config, store)))
