"""Training and cross-validation of the topic, emotion and polarity models (never imported by the flow).

Data come from the shared data folder (see each folder's README); evaluation is GroupKFold on the folders'
`near_dup_group`, so re-posted near-duplicates never sit on both sides of a split.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.metrics import f1_score, precision_recall_fscore_support
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from core.errors import ModelError
from nlp import artifacts
from nlp.features import Doc, FeatureSpec, clean_padding, vectorizer
from nlp.polarity import NEGATIVE_EMOTIONS, combine_polarity
from nlp.tokenize import content_words, segment_many

logger = logging.getLogger(__name__)

EMOTIONS = ("anger", "fear", "sadness", "disgust", "happiness", "surprise", "neutral")
SMP_MAP = {"happy": "happiness", "angry": "anger", "sad": "sadness", "fear": "fear", "surprise": "surprise",
           "neural": "neutral"}
EMO7_MAP = {"optimism": "happiness", "gratitude": "happiness", "anger": "anger", "disgust": "disgust",
            "sadness": "sadness", "surprise": "surprise", "fear": "fear"}
_WEIBO_EMOTICON = re.compile(r"\[[^\[\]\s]{1,8}\]")

TOPIC_SPEC = dict(title_weight=2, drop_stopwords=True, word_bigrams=False, char_bigrams=False, emoticons=False)
EMOTION_SPEC = dict(word_bigrams=True, char_bigrams=True, emoticons=True)
POLARITY_SPEC = dict(word_bigrams=True, char_bigrams=True, emoticons=True)


@dataclass
class Dataset:
    """Documents, labels and near-duplicate groups; `eval_mask` marks rows that are scored in CV."""

    docs: list[Doc]
    labels: np.ndarray
    groups: np.ndarray
    eval_mask: np.ndarray
    description: list[str]


def make_docs(texts: list[str], titles: list[str] | None = None) -> list[Doc]:
    tokens = segment_many(texts)
    title_tokens = segment_many(titles) if titles is not None else [[] for _ in texts]
    return [Doc(t, k, tt) for t, k, tt in zip(texts, tokens, title_tokens, strict=True)]


def _read(data_dir: Path, rel: str) -> pd.DataFrame:
    path = data_dir / rel
    if not path.is_file():
        raise ModelError(f"training data not found: {path} (set --data-dir or YUQING_DATA_DIR)")
    return pd.read_csv(path, keep_default_na=False)


# ---------------------------------------------------------------- data sets

def topic_data(data_dir: Path, limit: int | None = None) -> Dataset:
    df = _read(data_dir, "tipdm2020c_messages_labeled/messages.csv")
    df = df[~df["label_conflict"].astype(str).str.lower().eq("true")]
    if limit:
        df = df.groupby("label_l1").head(max(2, limit // 7))
    titles = [clean_padding(t) for t in df["title"]]
    texts = [f"{t}\n{clean_padding(b)}" for t, b in zip(titles, df["body"], strict=True)]
    return Dataset(make_docs(texts, titles), df["label_l1"].to_numpy(), df["near_dup_group"].to_numpy(),
                   np.ones(len(df), bool),
                   [f"tipdm2020c_messages_labeled: {len(df)} message-board posts, 7 first-level labels (一级标签)"])


def topic_csv_data(path: Path) -> Dataset:
    """A deployment's own taxonomy: CSV with columns text,label (optional title)."""
    try:
        df = pd.read_csv(path, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read topic CSV: {exc}") from exc
    if not {"text", "label"} <= set(df.columns):
        raise ModelError(f"{path}: topic CSV needs columns text,label; found {', '.join(df.columns)}")
    df = df[df["label"].astype(str).str.strip() != ""]
    if df["label"].nunique() < 2:
        raise ModelError(f"{path}: need at least two labels to train a topic model")
    titles = [clean_padding(str(t)) for t in df["title"]] if "title" in df.columns else None
    texts = [clean_padding(str(t)) for t in df["text"]]
    if titles:
        texts = [f"{t}\n{x}" if t else x for t, x in zip(titles, texts, strict=True)]
    return Dataset(make_docs(texts, titles), df["label"].astype(str).to_numpy(), np.arange(len(df)),
                   np.ones(len(df), bool), [f"{path}: {len(df)} rows, {df['label'].nunique()} labels"])


def taxonomy_words(data_dir: Path, classes: set[str]) -> tuple[str, ...]:
    """Words of the 附件1 second/third-level labels under our first-level classes (seed vocabulary)."""
    path = data_dir / "tipdm2020c_label_taxonomy/taxonomy.csv"
    if not path.is_file():
        return ()
    tax = pd.read_csv(path, keep_default_na=False)
    tax = tax[tax["level1"].isin(classes)]
    names = list(tax["level2"]) + list(tax["level3"])
    words = {w for toks in segment_many(names) for w in content_words(toks) if len(w) >= 2}
    return tuple(sorted(words))


def emotion_data(data_dir: Path, limit: int | None = None) -> Dataset:
    smp = _read(data_dir, "smp2020_ewect_virus_weibo/data.csv")
    emo = _read(data_dir, "weibo_covid19_emotion7/data.csv")
    emo = emo[~emo["text_in_other_weibo_set"].astype(str).str.lower().eq("true")]
    if limit:
        smp, emo = smp.head(limit), emo.head(limit // 2)
    texts = list(smp["text"].astype(str)) + list(emo["text"].astype(str))
    labels = np.array([SMP_MAP[x] for x in smp["label"]] + [EMO7_MAP[x] for x in emo["label_name"]], dtype=object)
    # groups: SMP groups as they are, emotion7 rows get their own (offset) ids; only SMP rows are scored.
    groups = np.concatenate([smp["near_dup_group"].to_numpy(), emo["near_dup_group"].to_numpy() + 10_000_000])
    mask = np.r_[np.ones(len(smp), bool), np.zeros(len(emo), bool)]
    return Dataset(make_docs(texts), labels, groups, mask, [
        f"smp2020_ewect_virus_weibo: {len(smp)} Weibo posts, 6 emotions (happy→happiness, neural→neutral, ...)",
        f"weibo_covid19_emotion7: {len(emo)} posts (optimism and gratitude → happiness; rows also in another "
        "Weibo set dropped); training only, not scored"])


def polarity_data(data_dir: Path, limit: int | None = None) -> Dataset:
    hotel = _read(data_dir, "chnsenticorp_htl_all/data.csv")
    weibo = _read(data_dir, "weibo_senti_100k_subset/data.csv")
    weibo = weibo[~weibo["label_conflict"].astype(str).str.lower().eq("true")]
    if limit:
        hotel, weibo = hotel.sample(min(limit, len(hotel)), random_state=0), weibo.head(limit // 4)
    # weibo_senti_100k is emoticon-labelled: strip [..] emoticons so the model learns the words, not the labels.
    wtexts = [_WEIBO_EMOTICON.sub("", t) for t in weibo["text"].astype(str)]
    texts = list(hotel["review"].astype(str)) + wtexts
    labels = np.array(["positive" if int(x) == 1 else "negative" for x in list(hotel["label"]) + list(weibo["label"])],
                      dtype=object)
    groups = np.concatenate([hotel["near_dup_group"].to_numpy(), weibo["near_dup_group"].to_numpy() + 10_000_000])
    mask = np.r_[np.ones(len(hotel), bool), np.zeros(len(weibo), bool)]
    return Dataset(make_docs(texts), labels, groups, mask, [
        f"chnsenticorp_htl_all: {len(hotel)} hotel reviews, positive/negative",
        f"weibo_senti_100k_subset: {len(weibo)} Weibo posts with emoticons stripped (emoticon-labelled source); "
        "training only, not scored"])


# ---------------------------------------------------------------- fitting and CV

def make_pipeline(spec: FeatureSpec, C: float) -> Pipeline:
    return Pipeline([
        ("features", vectorizer(spec)),
        ("tfidf", TfidfTransformer(sublinear_tf=True)),
        ("clf", LinearSVC(C=C, class_weight="balanced")),
    ])


def fit(ds: Dataset, spec: FeatureSpec, C: float, rows: np.ndarray | None = None) -> Pipeline:
    rows = np.arange(len(ds.docs)) if rows is None else rows
    pipe = make_pipeline(spec, C)
    pipe.fit([ds.docs[i] for i in rows], ds.labels[rows])
    return pipe


def cross_validate(ds: Dataset, spec: FeatureSpec, C: float, folds: int = 5,
                   on_fold: Callable[[Pipeline, np.ndarray], None] | None = None) -> np.ndarray:
    """Out-of-fold class probabilities for the scored rows (GroupKFold on near-duplicate groups)."""
    n_groups = len(set(ds.groups[ds.eval_mask]))
    folds = max(2, min(folds, n_groups))
    proba: np.ndarray | None = None
    classes = np.array(sorted(set(ds.labels)), dtype=object)
    scored = np.flatnonzero(ds.eval_mask)
    extra = np.flatnonzero(~ds.eval_mask)
    for tr, te in GroupKFold(folds).split(scored, groups=ds.groups[scored]):
        pipe = fit(ds, spec, C, np.concatenate([scored[tr], extra]))
        p = artifacts.margins_to_proba(pipe.decision_function([ds.docs[i] for i in scored[te]]))
        if proba is None:
            proba = np.zeros((len(ds.docs), len(classes)))
        cols = [list(classes).index(c) for c in pipe.named_steps["clf"].classes_]
        proba[np.ix_(scored[te], cols)] = p
        if on_fold is not None:
            on_fold(pipe, scored[te])
    assert proba is not None
    return proba


def report(y_true: np.ndarray, y_pred: np.ndarray, protocol: str) -> dict[str, Any]:
    labels = sorted(set(y_true))
    _, _, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "protocol": protocol, "n": int(len(y_true)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "accuracy": float(np.mean(y_true == y_pred)),
        "per_class": {lab: {"f1": round(float(f), 4), "support": int(s)} for lab, f, s in zip(labels, f1, support, strict=True)},
    }


def _card(ds: Dataset, description: str, evaluation: dict[str, Any], caveats: list[str]) -> dict[str, Any]:
    return {"description": description, "data": ds.description, "evaluation": evaluation, "caveats": caveats,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"), "sklearn_version": sklearn.__version__}


def train_topic(data_dir: Path, *, topic_csv: Path | None = None, limit: int | None = None, C: float = 1.0,
                folds: int = 5) -> tuple[artifacts.LinearArtifact, dict[str, Any]]:
    ds = topic_csv_data(topic_csv) if topic_csv else topic_data(data_dir, limit)
    seeds = taxonomy_words(data_dir, set(ds.labels)) if not topic_csv else ()
    spec = FeatureSpec(**TOPIC_SPEC, boost_words=seeds)
    classes = np.array(sorted(set(ds.labels)), dtype=object)
    proba = cross_validate(ds, spec, C, folds)
    ev = report(ds.labels, classes[proba.argmax(1)],
                f"{folds}-fold GroupKFold on near_dup_group; out-of-fold predictions over all rows")
    pipe = fit(ds, spec, C)
    card = _card(ds, "Topic (first-level category) of a citizen message; words + title words (x2 extra) + taxonomy seed "
                 "words, TF-IDF, linear SVM (margins → softmax).", {"topic": ev},
                 ["Trained on 15 % of 附件2 (1,111 rows); categories beyond these 7 are not predicted.",
                  "Label noise between 城乡建设 and 劳动和社会保障 is known in the source."])
    return artifacts.from_pipeline("topic", pipe, card), ev


def train_emotion(data_dir: Path, *, limit: int | None = None, C: float = 0.2,
                  folds: int = 5) -> tuple[artifacts.LinearArtifact, dict[str, Any]]:
    ds = emotion_data(data_dir, limit)
    spec = FeatureSpec(**EMOTION_SPEC)
    classes = np.array(sorted(set(ds.labels)), dtype=object)
    proba = cross_validate(ds, spec, C, folds)
    rows = np.flatnonzero(ds.eval_mask)
    pred = classes[proba[rows].argmax(1)]
    pred = np.where(pred == "disgust", "anger", pred)  # SMP2020 has no disgust; its 'angry' covers it
    ev = report(ds.labels[rows], pred, f"SMP2020-EWECT 6 classes, {folds}-fold GroupKFold on near_dup_group; "
                "weibo_covid19_emotion7 rows always in training; predicted disgust counted as anger")
    pipe = fit(ds, spec, C)
    card = _card(ds, "Emotion of a post (anger, fear, sadness, disgust, happiness, surprise, neutral); words, word "
                 "bigrams, character bigrams and Weibo emoticons, TF-IDF, linear SVM (margins → softmax).",
                 {"smp2020_6class": ev},
                 ["Weibo COVID-19 period posts; government-letter language differs.",
                  "disgust is learned only from weibo_covid19_emotion7."])
    return artifacts.from_pipeline("emotion", pipe, card), ev


def train_polarity(data_dir: Path, emotion: artifacts.LinearArtifact, *, limit: int | None = None, C: float = 0.5,
                   folds: int = 5) -> tuple[artifacts.LinearArtifact, dict[str, Any]]:
    ds = polarity_data(data_dir, limit)
    spec = FeatureSpec(**POLARITY_SPEC)
    proba = cross_validate(ds, spec, C, folds)
    rows = np.flatnonzero(ds.eval_mask)
    classes = sorted(set(ds.labels))
    p_pos = proba[rows, classes.index("positive")]
    emo = emotion.scores([ds.docs[i] for i in rows])
    score = combine_polarity(p_pos, emo, emotion.classes)
    y = ds.labels[rows]
    ev = report(y, np.where(score >= 0, "positive", "negative"),
                f"ChnSentiCorp hotel reviews, {folds}-fold GroupKFold on near_dup_group; sign of polarity_score "
                "(polarity model blended with the emotion model)")
    ev_model = report(y, np.where(p_pos >= 0.5, "positive", "negative"), "same folds, polarity model alone")
    pipe = fit(ds, spec, C)
    card = _card(ds, "Polarity (negative/positive) probability; polarity_score in [-1, 1] blends it with the emotion "
                 "model (happiness vs " + ", ".join(NEGATIVE_EMOTIONS) + "); |score| below the neutral band → neutral.",
                 {"chnsenticorp_sign": ev, "chnsenticorp_model_only": ev_model},
                 ["Hotel reviews are not government affairs; use as a generic sentiment check."])
    return artifacts.from_pipeline("polarity", pipe, card), ev


def train_all(data_dir: Path, models_dir: Path, *, topic_csv: Path | None = None, limit: int | None = None,
              folds: int = 5, tasks: tuple[str, ...] = artifacts.TASKS) -> dict[str, dict[str, Any]]:
    """Train, cross-validate and write the artifacts; returns the evaluation of each task."""
    results: dict[str, dict[str, Any]] = {}
    models_dir = Path(models_dir)
    if "topic" in tasks:
        art, ev = train_topic(data_dir, topic_csv=topic_csv, limit=limit, folds=folds)
        artifacts.save(art, models_dir)
        results["topic"] = ev
    emotion = None
    if "emotion" in tasks:
        emotion, ev = train_emotion(data_dir, limit=limit, folds=folds)
        artifacts.save(emotion, models_dir)
        results["emotion"] = ev
    if "polarity" in tasks:
        emotion = emotion or artifacts.load(models_dir, "emotion")
        art, ev = train_polarity(data_dir, emotion, limit=limit, folds=folds)
        artifacts.save(art, models_dir)
        results["polarity"] = ev
    return results
