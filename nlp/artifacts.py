"""Versioned model artifacts in a safe format: JSON metadata + a NumPy .npz of arrays (no pickle anywhere).

An artifact is a folder `models/<name>/` with
  - `model.json`: format version, task, classes, feature spec, sklearn version, training date, the model card;
  - `weights.npz`: idf values and coefficients, stored sparse (only hashed columns that training saw);
  - `card.md`: the model card for humans (data, date, cross-validated per-class and macro F1).
Loading rebuilds a scikit-learn Pipeline (`features` → `tfidf` → `clf`) and refuses, with `ModelError`, any
artifact whose format version, shapes or classes do not match what this code expects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from scipy import sparse
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from core.errors import ModelError
from nlp.features import FeatureSpec, vectorizer

FORMAT = "yuqing-linear"
FORMAT_VERSION = 1
TASKS = ("topic", "emotion", "polarity")
MARGIN_SCALE = 3.0  # SVM margins are about ±1; ×3 before the softmax gives usable confidence values


@dataclass
class LinearArtifact:
    """A trained linear text model: feature spec, idf, coefficients, classes and its card."""

    name: str
    spec: FeatureSpec
    classes: list[str]
    idf: np.ndarray            # (n_features,) float
    coef: np.ndarray           # (n_rows, n_features) float; n_rows 1 for binary
    intercept: np.ndarray      # (n_rows,)
    n_features: int
    card: dict[str, Any] = field(default_factory=dict)
    sublinear_tf: bool = True
    scale: float = MARGIN_SCALE
    _pipeline: Pipeline | None = field(default=None, repr=False)

    @property
    def pipeline(self) -> Pipeline:
        """The serving Pipeline with named steps, rebuilt from the stored arrays."""
        if self._pipeline is None:
            self._pipeline = build_pipeline(self)
        return self._pipeline

    def transform_counts(self, counts: sparse.csr_matrix) -> sparse.csr_matrix:
        return self.pipeline.named_steps["tfidf"].transform(counts)

    def scores(self, docs: list) -> np.ndarray:
        """Class scores in [0, 1] (rows sum to 1), columns in `classes` order: softmax of scaled SVM margins."""
        return margins_to_proba(self.pipeline.decision_function(docs), self.scale)


def margins_to_proba(margins: np.ndarray, scale: float = MARGIN_SCALE) -> np.ndarray:
    """Linear-SVM margins to scores: a sigmoid for two classes, a softmax otherwise (argmax unchanged)."""
    margins = np.asarray(margins, dtype=float) * scale
    if margins.ndim == 1:
        pos = 1.0 / (1.0 + np.exp(-margins))
        return np.column_stack([1.0 - pos, pos])
    margins = margins - margins.max(axis=1, keepdims=True)
    e = np.exp(margins)
    return e / e.sum(axis=1, keepdims=True)


def build_pipeline(art: LinearArtifact) -> Pipeline:
    tfidf = TfidfTransformer(sublinear_tf=art.sublinear_tf)
    tfidf.idf_ = art.idf.astype(np.float64)
    clf = LinearSVC()
    clf.classes_ = np.array(art.classes, dtype=object)
    clf.coef_ = art.coef.astype(np.float64)
    clf.intercept_ = art.intercept.astype(np.float64)
    clf.n_features_in_ = art.n_features
    return Pipeline([("features", vectorizer(art.spec, art.n_features)), ("tfidf", tfidf), ("clf", clf)])


def from_pipeline(name: str, pipe: Pipeline, card: dict[str, Any]) -> LinearArtifact:
    """Take the learned state out of a fitted Pipeline(features, tfidf, clf=LinearSVC)."""
    feats, tfidf, clf = (pipe.named_steps[k] for k in ("features", "tfidf", "clf"))
    return LinearArtifact(
        name=name, spec=feats.analyzer.spec, classes=[str(c) for c in clf.classes_], idf=np.asarray(tfidf.idf_),
        coef=np.asarray(clf.coef_), intercept=np.asarray(clf.intercept_), n_features=feats.n_features, card=card,
        sublinear_tf=tfidf.sublinear_tf, _pipeline=pipe,
    )


def save(art: LinearArtifact, models_dir: Path, prune: float = 1e-4) -> Path:
    """Write `models_dir/<name>/`; coefficients with |w| < prune are dropped (they change no decision)."""
    folder = Path(models_dir) / art.name
    folder.mkdir(parents=True, exist_ok=True)
    coef = np.where(np.abs(art.coef) >= prune, art.coef, 0.0).astype(np.float32)
    used = np.flatnonzero(np.abs(coef).sum(axis=0))
    sp = sparse.csr_matrix(coef[:, used])
    np.savez_compressed(
        folder / "weights.npz", used=used.astype(np.int32), idf=art.idf[used].astype(np.float32),
        coef_data=sp.data, coef_indices=sp.indices.astype(np.int32), coef_indptr=sp.indptr.astype(np.int32),
        intercept=art.intercept.astype(np.float64),
    )
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": art.name, "classes": art.classes,
        "n_features": art.n_features, "n_rows": int(coef.shape[0]), "sublinear_tf": art.sublinear_tf,
        "spec": art.spec.to_json(), "scale": art.scale, "sklearn_version": sklearn.__version__,
        "created_at": art.card.get("created_at") or datetime.now(UTC).isoformat(timespec="seconds"),
        "card": art.card,
    }
    (folder / "model.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8")
    (folder / "card.md").write_text(render_card(art.name, meta), encoding="utf-8")
    return folder


def load(models_dir: Path, name: str) -> LinearArtifact:
    """Read and check one artifact; every problem is a ModelError naming the file and the reason."""
    folder = Path(models_dir) / name
    meta_path, weights_path = folder / "model.json", folder / "weights.npz"
    if not meta_path.is_file() or not weights_path.is_file():
        raise ModelError(f"model {name!r} not found in {folder} (expected model.json and weights.npz); "
                         f"train it with `yuqing nlp train`")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{meta_path}: unreadable model metadata: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise ModelError(f"{meta_path}: not a {FORMAT} artifact (format={meta.get('format')!r})")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(f"{meta_path}: artifact format version {version} is not supported by this code "
                         f"(expects {FORMAT_VERSION}); retrain with `yuqing nlp train`")
    try:
        with np.load(weights_path, allow_pickle=False) as z:
            used, idf_used = z["used"], z["idf"]
            coef_used = sparse.csr_matrix((z["coef_data"], z["coef_indices"], z["coef_indptr"]),
                                          shape=(int(meta["n_rows"]), len(used)))
            intercept = z["intercept"]
        n_features = int(meta["n_features"])
        classes = [str(c) for c in meta["classes"]]
        spec = FeatureSpec.from_json(meta["spec"])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"{weights_path}: damaged or incompatible artifact: {exc}") from exc
    n_rows = 1 if len(classes) == 2 else len(classes)
    if len(classes) < 2 or int(meta["n_rows"]) != n_rows or intercept.shape != (n_rows,):
        raise ModelError(f"{folder}: coefficient rows ({meta['n_rows']}) do not match {len(classes)} classes")
    if used.size and (used.min() < 0 or used.max() >= n_features):
        raise ModelError(f"{weights_path}: feature index out of range for n_features={n_features}")
    # Columns never seen in training keep idf 1 and weight 0: they cannot move a decision.
    idf = np.ones(n_features, dtype=np.float64)
    idf[used] = idf_used
    coef = np.zeros((n_rows, n_features), dtype=np.float64)
    coef[:, used] = coef_used.toarray()
    return LinearArtifact(name=meta["name"], spec=spec, classes=classes, idf=idf, coef=coef, intercept=intercept,
                          n_features=n_features, card=meta.get("card", {}), sublinear_tf=bool(meta["sublinear_tf"]),
                          scale=float(meta.get("scale", MARGIN_SCALE)))


def render_card(name: str, meta: dict[str, Any]) -> str:
    card = meta.get("card", {})
    lines = [f"# Model card: {name}", "",
             f"- format: {meta['format']} v{meta['format_version']} (JSON + npz, no pickle)",
             f"- created: {meta['created_at']}", f"- scikit-learn: {meta['sklearn_version']}",
             f"- classes: {', '.join(meta['classes'])}", ""]
    if card.get("description"):
        lines += [card["description"], ""]
    if card.get("data"):
        lines += ["## Training data", ""] + [f"- {d}" for d in card["data"]] + [""]
    for key, ev in card.get("evaluation", {}).items():
        lines += [f"## Cross-validated evaluation: {key}", "", ev.get("protocol", ""), "",
                  f"macro-F1 **{ev['macro_f1']:.4f}** (n={ev.get('n', '?')})", "", "| class | F1 | support |", "|---|---|---|"]
        for cls, row in ev.get("per_class", {}).items():
            lines.append(f"| {cls} | {row['f1']:.4f} | {row['support']} |")
        lines.append("")
    if card.get("caveats"):
        lines += ["## Caveats", ""] + [f"- {c}" for c in card["caveats"]] + [""]
    return "\n".join(lines)
