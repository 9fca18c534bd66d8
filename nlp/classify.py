"""Loads the trained topic, emotion and polarity artifacts and predicts in batches (never trains).

The three models read the same hashed features (`nlp.features`), so a batch is featurised once and scored by one
sparse × dense product against the stacked weights of all three models (`Classifier.predict`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from core.errors import ModelError
from core.paths import REPO_ROOT
from nlp import artifacts, derived, features
from nlp.features import Doc, FeatureSpec, Featurizer, WordIds, sorted_unique
from nlp.polarity import EMOTION_WEIGHT, NEUTRAL_BAND, combine_polarity

EMOTIONS = ("anger", "fear", "sadness", "disgust", "happiness", "surprise", "neutral")


@dataclass
class Prediction:
    topic: str | None  # None for a document with no words
    topic_score: float | None
    emotion: str
    polarity: str
    polarity_score: float
    emotion_score: float = 0.0  # calibrated confidence of `emotion` (0 for an abstention, served as neutral)


class Classifier:
    """The three models together; `predict(docs)` featurises the batch once and scores all models in one product."""

    def __init__(self, topic: artifacts.LinearArtifact, emotion: artifacts.LinearArtifact,
                 polarity: artifacts.LinearArtifact, *, neutral_band: float = NEUTRAL_BAND,
                 emotion_weight: float = EMOTION_WEIGHT, tables: dict[str, np.ndarray] | None = None) -> None:
        """`tables`: `serving_tables()` of a classifier of the same models, kept by an earlier process (`load`)."""
        unknown = set(emotion.classes) - set(EMOTIONS)
        if unknown:
            raise ModelError(f"emotion model has unknown classes {sorted(unknown)}")
        if polarity.classes != ["negative", "positive"]:
            raise ModelError(f"polarity model classes must be negative, positive; got {polarity.classes}")
        if not (topic.spec == emotion.spec == polarity.spec):
            raise ModelError("topic, emotion and polarity models were trained on different feature specs; "
                             "retrain them together with `yuqing nlp train`")
        self.topic, self.emotion, self.polarity = topic, emotion, polarity
        self.neutral_band = neutral_band
        self.emotion_weight = emotion_weight
        # below this calibrated confidence the emotion model abstains: the item is served as neutral (card's value)
        self.emotion_min_confidence = float(emotion.card.get("calibration", {}).get("threshold", 0.0))
        self.featurizer = Featurizer(topic.spec, tables)
        models = (topic, emotion, polarity)
        widths = [m.n_rows + 1 for m in models]  # each model's class rows, then its norm column
        starts = np.cumsum([0, *widths]).tolist()
        self._slices: list[slice] = [slice(start, start + width) for start, width in zip(starts, widths, strict=False)]
        if tables is None:
            tables = self._stacked(models, starts[-1])
        self._weights, self._remap = tables["weights"], tables["remap"]

    @staticmethod
    def _stacked(models: tuple[artifacts.LinearArtifact, ...], width: int) -> dict[str, np.ndarray]:
        """The models' weight columns side by side, one row per hashed column any of them reads (`weights`, the last
        row zeros for the others), and the row of each hashed column (`remap`)."""
        union = sorted_unique(np.concatenate([m.used for m in models]))
        weights = np.zeros((len(union) + 1, width), dtype=np.float32)  # last row: columns no model reads
        at = 0
        for m in models:
            cols = m.weight_columns()
            weights[np.searchsorted(union, m.used), at:at + cols.shape[1]] = cols
            at += cols.shape[1]
        return {"weights": weights, "remap": artifacts.column_remap(union, models[0].spec.n_features)}

    def serving_tables(self) -> dict[str, np.ndarray]:
        """The arrays this classifier derived from its models (stacked weights, column remap, lexicon lookup)."""
        return {"weights": self._weights, "remap": self._remap, **self.featurizer.lexicon_tables()}

    @classmethod
    def load(cls, models_dir: Path | str, **kwargs: float) -> Classifier:
        """The three models of `models_dir`, with what serving derives from them read from where an earlier process
        kept it (`nlp.derived`: the artifacts and the derived arrays memory-mapped, ≈ 0.25 s of CPU less a process)."""
        path = Path(models_dir)
        path = path if path.is_absolute() else REPO_ROOT / path
        files = [path / name / file for name in artifacts.TASKS for file in ("model.json", "weights.npz")]
        if not all(file.is_file() for file in files):  # artifacts.load says which is missing and what to do
            return cls(*(artifacts.load(path, name) for name in artifacts.TASKS), **kwargs)
        meta, arrays = derived.load_or_derive(path, "classifier", [*files, *_DERIVING_CODE], partial(_derive, path))
        spec = FeatureSpec(bits=meta["spec"]["bits"], lexicon=meta["spec"]["lexicon"])
        models = [artifacts.LinearArtifact(spec=spec, **fields, **{key: arrays[f"{fields['name']}.{key}"]
                                                                   for key in _ARTIFACT_ARRAYS})
                  for fields in meta["models"]]
        return cls(*models, tables=arrays, **kwargs)

    def decisions(self, docs: list[Doc], words: np.ndarray | WordIds | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Topic, emotion and polarity decisions (offsets included) for a batch, from one shared feature matrix.
        `words`: the docs' tokens hashed or encoded already (`Featurizer.entries`)."""
        products = self.featurizer.products(docs, self._weights, self._remap, words)
        return tuple(m.decisions_from(products[:, s]) for m, s in  # type: ignore[return-value]
                     zip((self.topic, self.emotion, self.polarity), self._slices, strict=True))

    def predict(self, docs: list[Doc]) -> list[Prediction]:
        if not docs:
            return []
        return [Prediction(*row) for row in zip(*self.columns(docs), strict=True)]

    def columns(self, docs: list[Doc], words: np.ndarray | WordIds | None = None
                ) -> tuple[list[str | None], list[float | None], list[str], list[str], list[float], list[float]]:
        """`predict` as six lists (topic, topic score, emotion, polarity, polarity score, emotion score), without an
        object per document: the classify stage writes them straight into the items."""
        if not docs:
            return [], [], [], [], [], []
        td, ed, pd_ = self.decisions(docs, words)
        tp = artifacts.margins_to_proba(td, self.topic.scale)
        ep = artifacts.margins_to_proba(ed, self.emotion.scale)
        pp = artifacts.margins_to_proba(pd_, self.polarity.scale)[:, 1]
        score = combine_polarity(pp, ep, self.emotion.classes, self.emotion_weight) if self.emotion_weight else 2 * pp - 1
        # The sign of polarity_score is the polarity decision: never let rounding turn it into 0.
        rounded = np.round(score, 4)
        rounded = np.where((rounded == 0) & (score != 0), np.copysign(1e-4, score), rounded)
        ti, ei = tp.argmax(axis=1), ed.argmax(axis=1)
        topic_scores: list[float | None] = np.round(tp[np.arange(len(docs)), ti], 4).tolist()
        topics: list[str | None] = np.array(self.topic.classes, dtype=object)[ti].tolist()
        emotion_conf = ep[np.arange(len(docs)), ei]
        confident = emotion_conf >= self.emotion_min_confidence
        emotions = np.where(confident, np.array(self.emotion.classes, dtype=object)[ei], "neutral").tolist()
        emotion_scores = np.where(confident, np.round(emotion_conf, 4), 0.0).tolist()
        band = self.neutral_band
        labels = np.where(rounded >= band, "positive", np.where(rounded <= -band, "negative", "neutral")).tolist()
        scores = rounded.tolist()
        for k, doc in enumerate(docs):
            if not doc.tokens:  # nothing to read (empty, emoji-only): no subject to guess, no feeling either way
                topics[k], topic_scores[k] = None, None
                emotions[k], labels[k], scores[k], emotion_scores[k] = "neutral", "neutral", 0.0, 0.0
        return topics, topic_scores, emotions, labels, scores, emotion_scores


# The artifacts' arrays kept with the derived ones (`Classifier.load`), and the modules whose code derives them.
_ARTIFACT_ARRAYS = ("used", "col_weight", "coef", "intercept")
_DERIVING_CODE = (Path(__file__), Path(artifacts.__file__), Path(features.__file__))


def _derive(path: Path) -> derived.Derived:
    """What `Classifier.load` keeps of the models of `path`: their fields and arrays, and the derived arrays."""
    clf = Classifier(*(artifacts.load(path, name) for name in artifacts.TASKS))  # checks that they fit together
    models = (clf.topic, clf.emotion, clf.polarity)
    meta = {"spec": clf.topic.spec.to_json(),
            "models": [{"name": m.name, "classes": m.classes, "offsets": m.offsets.tolist(), "card": m.card,
                        "scale": m.scale} for m in models]}
    arrays = clf.serving_tables()
    arrays.update({f"{m.name}.{key}": getattr(m, key) for m in models for key in _ARTIFACT_ARRAYS})
    return meta, arrays


_cache: dict[tuple[str, float, float], Classifier] = {}
_lock = threading.Lock()


def get_classifier(models_dir: Path | str, neutral_band: float = NEUTRAL_BAND,
                   emotion_weight: float = EMOTION_WEIGHT) -> Classifier:
    """One loaded Classifier per models folder and settings, shared by all stages of the process."""
    key = (str(Path(models_dir)), neutral_band, emotion_weight)
    with _lock:
        clf = _cache.get(key)
        if clf is None:
            clf = Classifier.load(models_dir, neutral_band=neutral_band, emotion_weight=emotion_weight)
            _cache[key] = clf
    return clf
