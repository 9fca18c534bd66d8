"""Loads the trained topic, emotion and polarity artifacts and predicts in batches (never trains)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import ModelError
from core.paths import REPO_ROOT
from nlp import artifacts
from nlp.features import Doc
from nlp.polarity import EMOTION_WEIGHT, NEUTRAL_BAND, combine_polarity, polarity_label

EMOTIONS = ("anger", "fear", "sadness", "disgust", "happiness", "surprise", "neutral")


@dataclass
class Prediction:
    topic: str
    topic_score: float
    emotion: str
    polarity: str
    polarity_score: float


class Classifier:
    """The three models together; `predict(docs)` runs each model once over the whole batch."""

    def __init__(self, topic: artifacts.LinearArtifact, emotion: artifacts.LinearArtifact,
                 polarity: artifacts.LinearArtifact, *, neutral_band: float = NEUTRAL_BAND,
                 emotion_weight: float = EMOTION_WEIGHT) -> None:
        unknown = set(emotion.classes) - set(EMOTIONS)
        if unknown:
            raise ModelError(f"emotion model has unknown classes {sorted(unknown)}")
        if sorted(polarity.classes) != ["negative", "positive"]:
            raise ModelError(f"polarity model classes must be negative/positive, got {polarity.classes}")
        self.topic, self.emotion, self.polarity = topic, emotion, polarity
        self.neutral_band = neutral_band
        self.emotion_weight = emotion_weight
        self._pos = polarity.classes.index("positive")

    @classmethod
    def load(cls, models_dir: Path | str, **kwargs: float) -> Classifier:
        path = Path(models_dir)
        path = path if path.is_absolute() else REPO_ROOT / path
        return cls(*(artifacts.load(path, name) for name in artifacts.TASKS), **kwargs)

    def predict(self, docs: list[Doc]) -> list[Prediction]:
        if not docs:
            return []
        tp = self.topic.scores(docs)
        ep = self.emotion.scores(docs)
        pp = self.polarity.scores(docs)[:, self._pos]
        score = combine_polarity(pp, ep, self.emotion.classes, self.emotion_weight)
        ti, ei = tp.argmax(axis=1), ep.argmax(axis=1)
        out = []
        for k in range(len(docs)):
            s = round(float(score[k]), 4)
            if not docs[k].tokens:  # nothing to read (empty, emoji-only): no feeling either way
                out.append(Prediction(topic=self.topic.classes[ti[k]], topic_score=round(float(tp[k, ti[k]]), 4),
                                      emotion="neutral", polarity="neutral", polarity_score=0.0))
                continue
            out.append(Prediction(topic=self.topic.classes[ti[k]], topic_score=round(float(tp[k, ti[k]]), 4),
                                  emotion=self.emotion.classes[ei[k]], polarity=polarity_label(s, self.neutral_band),
                                  polarity_score=s))
        return out


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


def top_classes(proba: np.ndarray, classes: list[str], k: int = 3) -> list[list[tuple[str, float]]]:
    order = np.argsort(-proba, axis=1)[:, :k]
    return [[(classes[j], float(proba[i, j])) for j in row] for i, row in enumerate(order)]
