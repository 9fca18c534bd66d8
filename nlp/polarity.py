"""Polarity from two models: the binary polarity model and the emotion model, blended into a score in [-1, 1]."""

from __future__ import annotations

import numpy as np

NEGATIVE_EMOTIONS = ("anger", "fear", "sadness", "disgust")
POSITIVE_EMOTIONS = ("happiness",)
EMOTION_WEIGHT = 0.0   # share of the emotion model in the score (0: blending lowered CV macro-F1 on ChnSentiCorp)
NEUTRAL_BAND = 0.2     # |score| below this is "neutral"


def combine_polarity(p_positive: np.ndarray, emotion_proba: np.ndarray, emotion_classes: list[str],
                     emotion_weight: float = EMOTION_WEIGHT) -> np.ndarray:
    """Score = (1-w)·(2·P(positive)-1) + w·(P(happiness) - P(anger|fear|sadness|disgust)), clipped to [-1, 1]."""
    p_positive = np.asarray(p_positive, dtype=float)
    emotion_proba = np.asarray(emotion_proba, dtype=float)
    pos = [emotion_classes.index(c) for c in POSITIVE_EMOTIONS if c in emotion_classes]
    neg = [emotion_classes.index(c) for c in NEGATIVE_EMOTIONS if c in emotion_classes]
    emo = emotion_proba[:, pos].sum(axis=1) - emotion_proba[:, neg].sum(axis=1)
    score = (1.0 - emotion_weight) * (2.0 * p_positive - 1.0) + emotion_weight * emo
    return np.clip(score, -1.0, 1.0)
