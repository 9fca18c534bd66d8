"""Versioned model artifacts in a safe format: JSON metadata + a NumPy .npz of arrays (no pickle anywhere).

An artifact is a folder `models/<name>/` with
  - `model.json`: format version, task, classes, feature spec (column blocks, lexicon), per-class decision offsets,
    scikit-learn version, training date and the model card;
  - `weights.npz`: for the hashed columns training kept, their weight (idf or another column weighting) and the
    coefficients of every class row;
  - `card.md`: the model card for humans (data, date, cross-validated per-class and macro F1).

The model is linear over the shared hashed features of `nlp.features`: for a document with feature counts x,
  z = x·w (column weights), decision_k = (z · coef_k) / sqrt(x · w²) + intercept_k + offset_k.
Duplicate entries in x simply add up, so serving needs no sorting or de-duplication. `load` refuses, with
`ModelError`, any artifact whose format version, shapes or classes do not match what this code expects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelError
from nlp.features import Doc, FeatureBatch, FeatureSpec, Featurizer

FORMAT = "yuqing-linear"
FORMAT_VERSION = 2
TASKS = ("topic", "emotion", "polarity")
MARGIN_SCALE = 3.0  # margins are about ±1; ×3 before the softmax gives usable confidence values


@dataclass
class LinearArtifact:
    """A trained linear text model over the shared hashed features: kept columns, their weights, coefficients."""

    name: str
    spec: FeatureSpec
    classes: list[str]
    used: np.ndarray           # (n_used,) int: hashed columns the model reads
    col_weight: np.ndarray     # (n_used,) float: idf-like weight of each kept column
    coef: np.ndarray           # (n_rows, n_used) float; n_rows 1 for two classes (positive = classes[1])
    intercept: np.ndarray      # (n_rows,)
    offsets: np.ndarray | None = None  # (n_classes,) added to decisions (tuned on inner CV); zeros if None
    card: dict[str, Any] = field(default_factory=dict)
    scale: float = MARGIN_SCALE

    def __post_init__(self) -> None:
        self.used = np.asarray(self.used, dtype=np.int64)
        n_cls = len(self.classes)
        if self.offsets is None:
            self.offsets = np.zeros(n_cls)
        self.offsets = np.asarray(self.offsets, dtype=float)

    @property
    def n_rows(self) -> int:
        return int(self.coef.shape[0])

    def weight_columns(self) -> np.ndarray:
        """(n_used, n_rows + 1): w·coef for every row, then w² (the norm column)."""
        w = self.col_weight.astype(np.float64)
        return np.column_stack([(self.coef.astype(np.float64) * w).T, w * w])

    def decisions_from(self, products: np.ndarray) -> np.ndarray:
        """Class decisions (n_docs × n_classes, offsets included) from `x @ weight_columns()`."""
        norm = np.sqrt(np.maximum(products[:, -1], 1e-12))
        raw = products[:, :-1] / norm[:, None] + self.intercept
        if raw.shape[1] == 1:
            raw = np.column_stack([-raw[:, 0], raw[:, 0]]) / 2.0
        return raw + self.offsets

    def decisions(self, docs: list[Doc]) -> np.ndarray:
        """Decisions for docs, featurising them on their own (tests, training); serving shares one FeatureBatch."""
        fb = Featurizer(self.spec)(docs)
        return self.decisions_from(compact_dot(fb, self.used, self.weight_columns()))

    def scores(self, docs: list[Doc]) -> np.ndarray:
        """Class scores in [0, 1] (rows sum to 1), columns in `classes` order."""
        return margins_to_proba(self.decisions(docs), self.scale)


def compact_dot(fb: FeatureBatch, used: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """fb @ W where W has rows only for the `used` columns (others weigh 0): remap columns, then one product per part."""
    remap = column_remap(used, fb.shape[1])
    padded = np.vstack([weights, np.zeros((1, weights.shape[1]), dtype=weights.dtype)])
    return fb.dot(padded, remap)


def column_remap(used: np.ndarray, n_features: int) -> np.ndarray:
    """hashed column → row of a compact weight matrix; unused columns → the last (all-zero) row."""
    remap = np.full(n_features, len(used), dtype=np.int32)
    remap[used] = np.arange(len(used), dtype=np.int32)
    return remap


def margins_to_proba(margins: np.ndarray, scale: float = MARGIN_SCALE) -> np.ndarray:
    """Decisions to scores: a softmax of scaled margins (argmax unchanged; two classes → a sigmoid of the margin)."""
    margins = np.asarray(margins, dtype=float) * scale
    if margins.ndim == 1:
        margins = np.column_stack([-margins / 2.0, margins / 2.0])
    margins = margins - margins.max(axis=1, keepdims=True)
    e = np.exp(margins)
    return e / e.sum(axis=1, keepdims=True)


def save(art: LinearArtifact, models_dir: Path) -> Path:
    """Write `models_dir/<name>/` (coefficients as float32, the card as JSON and Markdown)."""
    import sklearn  # here, not at the top: every process loads artifacts, and importing scikit-learn (with the part
    # of scipy it pulls in) cost 1.7 s of each start-up; only training, which saves, uses it

    folder = Path(models_dir) / art.name
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        folder / "weights.npz", used=art.used.astype(np.int32), col_weight=art.col_weight.astype(np.float32),
        coef=art.coef.astype(np.float32), intercept=art.intercept.astype(np.float64),
    )
    assert art.offsets is not None
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": art.name, "classes": art.classes,
        "n_features": art.spec.n_features, "n_rows": art.n_rows, "n_used": int(len(art.used)),
        "spec": art.spec.to_json(), "offsets": [float(x) for x in art.offsets], "scale": art.scale,
        "sklearn_version": sklearn.__version__,
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
            used, col_weight, coef, intercept = z["used"], z["col_weight"], z["coef"], z["intercept"]
        classes = [str(c) for c in meta["classes"]]
        spec = FeatureSpec.from_json(meta["spec"])
        offsets = np.asarray(meta.get("offsets") or np.zeros(len(classes)), dtype=float)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"{weights_path}: damaged or incompatible artifact: {exc}") from exc
    n_rows = 1 if len(classes) == 2 else len(classes)
    if len(classes) < 2 or coef.ndim != 2 or coef.shape[0] != n_rows or intercept.shape != (n_rows,):
        raise ModelError(f"{folder}: coefficient rows ({coef.shape}) do not match {len(classes)} classes")
    if coef.shape[1] != len(used) or col_weight.shape != used.shape or offsets.shape != (len(classes),):
        raise ModelError(f"{weights_path}: arrays disagree in length (used {used.shape}, weights {col_weight.shape}, "
                         f"coef {coef.shape}, offsets {offsets.shape})")
    if used.size and (used.min() < 0 or used.max() >= spec.n_features):
        raise ModelError(f"{weights_path}: feature index out of range for n_features={spec.n_features}")
    return LinearArtifact(name=meta["name"], spec=spec, classes=classes, used=used, col_weight=col_weight,
                          coef=coef, intercept=intercept, offsets=offsets, card=meta.get("card", {}),
                          scale=float(meta.get("scale", MARGIN_SCALE)))


def render_card(name: str, meta: dict[str, Any]) -> str:
    card = meta.get("card", {})
    lines = [f"# Model card: {name}", "",
             f"- format: {meta['format']} v{meta['format_version']} (JSON + npz, no pickle)",
             f"- created: {meta['created_at']}", f"- scikit-learn: {meta['sklearn_version']}",
             f"- classes: {', '.join(meta['classes'])}", f"- columns kept: {meta.get('n_used', '?')}", ""]
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
    cal = card.get("calibration")
    if cal:
        lines += ["## Calibration (held out)", "", f"{cal['method']}; scale {cal['scale']}.", "",
                  f"ECE **{cal['ece']:.4f}** (uncalibrated softmax of the margins: {cal['ece_before']:.4f}); below a "
                  f"confidence of {cal['threshold']:g} the model abstains: **{cal['abstention_rate']:.1%}** of items, "
                  f"accuracy on the rest {cal['accuracy_when_confident']}."]
        lines += [f"macro-F1 with abstentions as {k.rsplit('_', 1)[1]}: **{v:.4f}**" for k, v in cal.items()
                  if k.startswith("macro_f1_abstentions_as_")]
        if cal.get("abstention_sweep"):
            lines += ["", "macro-F1 by abstention threshold (the best is served): " + ", ".join(
                f"{t}: {f:.4f}" for t, f in cal["abstention_sweep"].items())]
        lines += ["", "| confidence bin | n | mean confidence | accuracy |", "|---|---|---|---|"]
        lines += [f"| {r['bin']} | {r['n']} | {r['confidence']:.3f} | {r['accuracy']:.3f} |" for r in cal["reliability"]]
        lines.append("")
    if card.get("caveats"):
        lines += ["## Caveats", ""] + [f"- {c}" for c in card["caveats"]] + [""]
    tried = card.get("tried")  # measured and not adopted: kept so nobody re-measures blind
    if isinstance(tried, dict):  # titled sections of prose
        for title, text in tried.items():
            lines += [f"## Tried, not adopted: {title}", "", text, ""]
    elif tried:  # a list of findings
        lines += ["## Tried", ""] + [f"- {t}" for t in tried] + [""]
    return "\n".join(lines)
