"""Enrichment stages for the ingest flow: segment once, classify in batches, then the analysis stages.

`build_enrich_stages(config, store)` is the one entry point the flow uses. PII masking (`nlp.analysis.pre_stages`)
runs before segmentation and the risk/keyword/event stages (`nlp.analysis.analysis_stages`) after classification;
both come from another module and are imported lazily, so this works before that module lands.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from core.models import Item
from flow.stages import Batch, Stage
from nlp import tokenize
from nlp.classify import Classifier, get_classifier
from nlp.features import MAX_CHARS, Doc

logger = logging.getLogger(__name__)


class SegmentStage:
    """Fills `batch.tokens[id(item)]` once per item with the words of `item.text`."""

    name = "segment"

    def __init__(self, backend: str | None = None) -> None:
        self.backend = backend

    def run(self, batch: Batch) -> None:
        todo = [item for item in batch.items if id(item) not in batch.tokens]
        if not todo:
            return
        for item, words in zip(todo, tokenize.segment_many([item.text for item in todo], self.backend), strict=True):
            batch.tokens[id(item)] = words


class ClassifyStage:
    """Sets enrichment.topic/topic_score/emotion/polarity/polarity_score with one batched predict per model."""

    name = "classify"

    def __init__(self, classifier: Classifier, *, max_chars: int = MAX_CHARS, backend: str | None = None) -> None:
        self.classifier = classifier
        self.max_chars = max_chars
        self.backend = backend

    def docs(self, batch: Batch) -> list[Doc]:
        docs = []
        for item in batch.items:
            words = batch.tokens.get(id(item))
            if words is None:
                words = tokenize.segment(item.text, self.backend)
                batch.tokens[id(item)] = words
            title_words = tokenize.segment(item.title, self.backend) if item.title else []
            docs.append(Doc(item.text[: self.max_chars], words, title_words))
        return docs

    def run(self, batch: Batch) -> None:
        if not batch.items:
            return
        for item, pred in zip(batch.items, self.classifier.predict(self.docs(batch)), strict=True):
            apply_prediction(item, pred)


def apply_prediction(item: Item, pred: Any) -> None:
    e = item.enrichment
    e.topic, e.topic_score = pred.topic, pred.topic_score
    e.emotion = pred.emotion
    e.polarity, e.polarity_score = pred.polarity, pred.polarity_score


def _analysis(attr: str, *args: Any) -> list[Stage]:
    """Stages from nlp.analysis (another engineer's module); an absent module means 'not landed yet'."""
    try:
        module = importlib.import_module("nlp.analysis")
    except ImportError as exc:
        if exc.name not in ("nlp.analysis",):
            raise
        logger.debug("nlp.analysis not available yet; no %s", attr)
        return []
    fn = getattr(module, attr, None)
    if fn is None:
        return []
    return list(fn(*args))


def build_enrich_stages(config: Any, store: Any = None) -> list[Stage]:
    """pre_stages (PII masking) → segment → classify → analysis stages (risk, keywords, events, ...)."""
    nlp = getattr(config, "nlp", None)
    backend = nlp.segmenter if nlp is not None else None
    if backend:
        tokenize.set_default_backend(backend)
    models_dir = nlp.models_dir if nlp is not None else "models"
    classifier = get_classifier(models_dir, *((nlp.neutral_band, nlp.emotion_weight) if nlp is not None else ()))
    max_chars = nlp.max_chars if nlp is not None else MAX_CHARS
    stages: list[Stage] = [*_analysis("pre_stages", config), SegmentStage(backend),
                           ClassifyStage(classifier, max_chars=max_chars, backend=backend)]
    stages.extend(_analysis("analysis_stages", config, store))
    return stages
