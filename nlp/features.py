"""Text → feature strings for the linear models (topic, emotion, polarity).

A document is a `Doc(text, tokens, title_tokens)`: the raw text, its segmentation (`nlp.tokenize.segment`, filled
once per item by the segment stage) and the words of the title alone. `Analyzer` turns a Doc into feature strings
according to a `FeatureSpec`; scikit-learn's `HashingVectorizer` takes it as its analyzer (a module-level class, not
a lambda), so no vocabulary is stored: an artifact keeps only the spec, idf values and coefficients.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from sklearn.feature_extraction.text import HashingVectorizer

from nlp.tokenize import stopwords

N_FEATURES = 2**18
MAX_CHARS = 2000  # models read the first 2,000 characters; longer texts add cost, not signal
MAX_TOKENS = 1200

_NON_TEXT = re.compile(r"[^\w]+", re.UNICODE)
_EMOTICON = re.compile(r"\[([^\[\]\s]{1,8})\]")
_PAD = re.compile(r"\s+")
NEGATIONS = frozenset(
    ("不", "没", "没有", "无", "未", "别", "非", "莫", "勿", "不是", "不会", "不能", "不要", "不用", "并非", "毫无",
     "从未", "从不", "决不", "绝不", "难以")
)


class Doc(NamedTuple):
    """What the models read: the text, its words and the title's words."""

    text: str
    tokens: list[str]
    title_tokens: list[str] = []


@dataclass(frozen=True)
class FeatureSpec:
    """Which feature families a model uses; stored in the artifact so training and serving agree."""

    title_weight: int = 0          # title words added this many extra times
    drop_stopwords: bool = False
    word_bigrams: bool = True
    char_bigrams: bool = True
    emoticons: bool = True
    boost_words: tuple[str, ...] = ()   # words (e.g. taxonomy seeds) that also emit a marked copy
    lexicon: dict[str, str] = field(default_factory=dict)  # word → category; emits lex:<cat> (neg: when negated)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["boost_words"] = list(self.boost_words)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureSpec:
        data = dict(data)
        data["boost_words"] = tuple(data.get("boost_words", ()))
        return cls(**data)


class Analyzer:
    """Callable Doc → list of feature strings, configured by a FeatureSpec (params stored, nothing learned)."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._stop = stopwords() if spec.drop_stopwords else frozenset()
        self._boost = frozenset(spec.boost_words)

    def __call__(self, doc: Doc) -> list[str]:
        spec = self.spec
        text, tokens, title_tokens = doc
        text = text[:MAX_CHARS]
        stop = self._stop
        words = [w for w in (t.lower() for t in tokens[:MAX_TOKENS]) if w not in stop]
        feats = list(words)
        if spec.title_weight and title_tokens:
            title = [w for w in (t.lower() for t in title_tokens) if w not in stop]
            feats.extend(title * spec.title_weight)
        if self._boost:
            boost = self._boost
            feats.extend([f"+{w}" for w in feats if w in boost])
        if spec.word_bigrams:
            feats.extend([f"{a} {b}" for a, b in zip(words, words[1:], strict=False)])
        if spec.char_bigrams:
            for chunk in _NON_TEXT.sub(" ", text).lower().split():
                if len(chunk) > 1:
                    feats.extend([f"#{chunk[i:i + 2]}" for i in range(len(chunk) - 1)])
        if spec.emoticons and "[" in text:
            feats.extend([f"[{m}]" for m in _EMOTICON.findall(text)])
        if spec.lexicon:
            lex = spec.lexicon
            prev: list[str] = ["", ""]
            for w in words:
                cat = lex.get(w)
                if cat is not None:
                    negated = prev[0] in NEGATIONS or prev[1] in NEGATIONS
                    feats.append(f"lex:{'neg:' if negated else ''}{cat}")
                prev = [prev[1], w]
        return feats


def vectorizer(spec: FeatureSpec, n_features: int = N_FEATURES) -> HashingVectorizer:
    """The stateless hashing step for one model (raw counts; idf and norm are learned by the next steps)."""
    return HashingVectorizer(analyzer=Analyzer(spec), n_features=n_features, alternate_sign=False, norm=None,
                             dtype="float32")


def clean_padding(text: str) -> str:
    """Collapse the scraped whitespace padding message-board exports carry."""
    return _PAD.sub(" ", text).strip()
