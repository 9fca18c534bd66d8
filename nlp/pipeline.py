"""The text-model stages of enrichment: segment once, classify in batches.

`analysis.stages.build_enrich_stages` puts them between PII masking and the analysis stages; classification can
encode the batch's words into the analysis lexicon (`word_ids`), which gives the featuriser each distinct word's hash
and the analysis stages their id array.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from functools import partial

from core.models import Item, item_texts, text_of
from flow.stages import Batch
from nlp import tokenize
from nlp.classify import Classifier
from nlp.features import MAX_CHARS, Doc, WordIds

logger = logging.getLogger(__name__)
_PREDICTED = ("topic", "topic_score", "emotion", "polarity", "polarity_score", "emotion_score")
# `Doc(text, words, title_words)` from C: a named tuple's own __new__ is a Python function (~1,000 instructions a doc)
_new_doc = partial(tuple.__new__, Doc)


class SegmentStage:
    """Fills `batch.tokens[id(item)]` once per item with the words of `item.text`."""

    name = "segment"

    def __init__(self, backend: str | None = None) -> None:
        self.backend = backend

    def run(self, batch: Batch) -> None:
        todo = [item for item in batch.items if id(item) not in batch.tokens]
        if not todo:
            return
        for item, words in zip(todo, tokenize.segment_many(item_texts(todo), self.backend), strict=True):
            batch.tokens[id(item)] = words


class ClassifyStage:
    """Sets enrichment.topic/topic_score/emotion/polarity/polarity_score with one batched predict per model.

    `word_ids(batch, items)`, when given (`AnalysisState.word_ids`), supplies the items' words as lexicon ids: the
    batch is then encoded once here for the analysis stages after it, and the featuriser hashes and looks up each
    distinct word once, not every token in every batch. Without it (the stage on its own) it hashes the tokens."""

    name = "classify"

    def __init__(self, classifier: Classifier | None = None, *, load: Callable[[], Classifier] | None = None,
                 max_chars: int = MAX_CHARS, backend: str | None = None,
                 word_ids: Callable[[Batch, list[Item]], WordIds] | None = None) -> None:
        if (classifier is None) == (load is None):
            raise TypeError("ClassifyStage takes a classifier or a function that loads one, not both")
        self._classifier = classifier
        self._load = load
        self.max_chars = max_chars
        self.backend = backend
        self.word_ids = word_ids

    @property
    def classifier(self) -> Classifier:
        """The models; given `load`, loaded at the first batch: a pooled import's writer classifies only the rare item
        whose stored text dedup put back, and loading them (≈ 0.2 s of CPU, scipy with them) would delay its start."""
        if self._classifier is None:
            self._classifier = self._load()  # type: ignore[misc]
        return self._classifier

    def docs(self, batch: Batch) -> list[Doc]:
        items = batch.items
        missing = [item for item in items if id(item) not in batch.tokens]
        if missing:
            for item, words in zip(missing, tokenize.segment_many([it.text for it in missing], self.backend), strict=True):
                batch.tokens[id(item)] = words
        tokens, max_chars = batch.tokens, self.max_chars
        # The title's words are the leading words of the text (title + "\n" + content): the segmenter cuts at the
        # newline, so they are read off the text's words instead of segmenting the title again. A title with a run
        # of repeated characters (shortened before cutting) is segmented on its own, each distinct one once.
        title_words: dict[str, list[str]] = {}
        # the items' fields read off their __dict__: an attribute read on a model goes through pydantic's
        # Python-level __getattr__ hook, and this loop made four per item
        fields = [item.__dict__ for item in items]
        titles = [title for values in fields if (title := values["title"])]
        repeated = list(dict.fromkeys(title for title, run in zip(titles, tokenize.repeat_runs(titles), strict=True)
                                      if run))
        if repeated:
            title_words.update(zip(repeated, tokenize.segment_many(repeated, self.backend), strict=True))
        docs = []
        for item, values in zip(items, fields, strict=True):
            words = tokens[id(item)]
            title = values["title"]
            if not title:
                docs.append(_new_doc((values["content"][:max_chars], words, [])))  # the text is the content when untitled
                continue
            text = text_of(values)  # `item.text`: joins title and content, once per item
            leading = title_words.get(title)
            if leading is None:
                leading = tokenize.leading_words(words, text, len(title))
            docs.append(_new_doc((text[:max_chars], words, leading)))
        return docs

    def run(self, batch: Batch) -> None:
        if not batch.items:
            return
        docs = self.docs(batch)  # fills batch.tokens first
        words = self.word_ids(batch, batch.items) if self.word_ids is not None else None
        columns = self.classifier.columns(docs, words)
        for item, topic, topic_score, emotion, polarity, polarity_score, emotion_score in zip(batch.items, *columns,
                                                                                            strict=True):
            # Six plain fields, set as pydantic's own __setattr__ sets them (no validate_assignment), in one go.
            e = item.__dict__["enrichment"]  # the field itself, without pydantic's __getattr__ hook
            values = e.__dict__
            values["topic"], values["topic_score"], values["emotion"] = topic, topic_score, emotion
            values["polarity"], values["polarity_score"], values["emotion_score"] = polarity, polarity_score, emotion_score
            e.__pydantic_fields_set__.update(_PREDICTED)


def tune_gc(threshold0: int = 250_000) -> None:
    """Called by `build_enrich_stages` once the models and analysis state are loaded (idempotent).

    Why: enrichment allocates millions of short-lived, acyclic objects (token lists, tuples, numpy scalars) while the
    process holds a large long-lived heap (models, lexicon, event and near-duplicate state). With CPython's default
    generation-0 threshold of 700, collections start every few hundred allocations and the full ones walk that whole
    heap several times per batch. `gc.freeze()` moves everything loaded so far out of the collector's sight, and a
    higher first threshold makes young collections rare; cycles are still collected, just less often. 250,000, not
    50,000: a 50,000-row import's writer ran ≈ 300 young collections (1.4–1.5 s of its ≈ 37 s of CPU) at 50,000 and 2
    at 250,000 (≈ 0.3 s), for 8–10 % more items/s (bench/bench_import.py, two alternated pairs); at most a few tens of
    MB of young objects wait for a collection."""
    gc.collect()
    gc.freeze()
    first, second, third = gc.get_threshold()
    gc.set_threshold(max(threshold0, first), second, third)
