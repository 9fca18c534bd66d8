"""Text → one hashed sparse count matrix per batch, shared by the topic, emotion and polarity models.

A document is a `Doc(text, tokens, title_tokens)`: the raw text, its segmentation (`nlp.tokenize.segment`, filled
once per item by the segment stage) and the words of the title alone. `featurize(docs)` turns a whole batch into a
CSR matrix of feature counts in numpy, without a Python loop over n-grams: the batch's characters become one
code-point array, and every feature family is hashed arithmetically into its own block of columns:

  word unigrams, word bigrams, title words, character 1-, 2- and 3-grams (inside runs of letters/digits/CJK),
  Weibo emoticons (`[怒]`, `[哈哈]`), lexicon categories (a word-hash → category table, negation-aware) and
  punctuation (`！！！`, `？！`, `…`, how the text ends, and marks of form such as `【`, `#`, `@`, `//`, `http`):
  segmentation and the character n-grams drop every non-word character, so without this family a model cannot see
  how something is said (emotion: SMP macro-F1 +0.007 over three fold assignments).

Because families have separate column blocks, a model that should not read a family simply has idf 0 there.
Nothing is learned here: an artifact stores the spec (block sizes, lexicon) and its own idf and coefficients.
Hashes are fixed 64-bit polynomial hashes (not Python's salted `hash`), so training and serving agree across runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from itertools import chain, islice
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from nlp.tokenize import word_char_table

if TYPE_CHECKING:  # imported where a matrix is built: scipy.sparse costs ≈ 0.18 s of CPU at the start of a process
    from scipy import sparse  # that never classifies (a pooled import's writer)

MAX_CHARS = 2000  # models read the first 2,000 characters; longer texts add cost, not signal
MAX_TOKENS = 1200

_PAD = re.compile(r"\s+")
_EMOTICON = re.compile(r"\[([^\[\]\s]{1,8})\]")
# Punctuation classes (code point → class; 0 = none): runs of them are read as one token, folded to one spelling.
_PUNCT_CLASSES = {"！": 1, "!": 1, "？": 2, "?": 2, "～": 3, "~": 3, "…": 4, "。": 5, ".": 5}
_PUNCT_SPELLING = {1: "！", 2: "？", 3: "～", 4: "…", 5: "…"}  # a run of stops (。。, ...) reads as an ellipsis
_STOP = 5  # one stop alone (a sentence end, a decimal point) is no token
# Marks of form, once per text: news headline 【, topic #, mention @, title 《, quote “, colon, 「, bracket; and the
# two-character marks // (repost chain) and http (link), found by substring search.
_MARK_CLASSES = {"【": 1, "#": 2, "@": 3, "《": 4, "“": 5, "：": 6, ":": 6, "「": 7, "（": 8, "(": 8}
_MARK_NAMES = {1: "【", 2: "#", 3: "@", 4: "《", 5: "“", 6: "：", 7: "「", 8: "（", 9: "//", 10: "http"}
_MARK_SUBSTRINGS = {"//": 9, "http": 10}
NEGATIONS = ("不", "没", "没有", "无", "未", "别", "非", "莫", "勿", "不是", "不会", "不能", "不要", "不用", "并非", "毫无",
             "从未", "从不", "决不", "绝不", "难以", "不太", "不够")

# Feature families in column-block order; sizes are log2 of the block width.
FAMILIES = ("word", "word2", "title", "char1", "char2", "char3", "emoticon", "lexicon", "punct")
DEFAULT_BITS = {"word": 18, "word2": 18, "title": 16, "char1": 14, "char2": 18, "char3": 18, "emoticon": 12,
                "lexicon": 8, "punct": 12}

_LEX_SLOT_BITS = 18
_M = np.uint64(0xFFFFFFFFFFFFFFFF)
_P = 0x100000001B3            # polynomial base (odd, so it has an inverse mod 2**64)
_P_INV = pow(_P, -1, 2**64)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SALT = {name: np.uint64((i + 1) * 0x632BE59BD9B4E019 & 0xFFFFFFFFFFFFFFFF) for i, name in enumerate(FAMILIES)}


class Doc(NamedTuple):
    """What the models read: the text, its words and the title's words."""

    text: str
    tokens: list[str]
    title_tokens: list[str] = []


class WordIds(NamedTuple):
    """A batch's tokens as ids of a word table (`analysis.lexicon.Lexicon`): what the featuriser needs to skip hashing
    them and to look word facts up once per distinct word instead of once per token."""

    ids: np.ndarray  # the id of every token of every doc, in order (not cut at MAX_TOKENS)
    hashes: np.ndarray  # by id: `hash_strings` of the word (filled below n_words)
    n_words: int
    generation: int  # changes whenever the table gives its ids out anew (a per-id cache is then rebuilt)


@dataclass(frozen=True)
class FeatureSpec:
    """Column blocks of the shared matrix and the lexicon; stored in every artifact so training and serving agree."""

    bits: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_BITS))
    lexicon: dict[str, str] = field(default_factory=dict)   # word → category; emits a category (negated variant too)

    def __hash__(self) -> int:
        return hash((tuple(sorted(self.bits.items())), len(self.lexicon)))

    @property
    def offsets(self) -> dict[str, int]:
        out, at = {}, 0
        for name in FAMILIES:
            out[name] = at
            at += 1 << self.bits[name]
        return out

    @property
    def n_features(self) -> int:
        return sum(1 << self.bits[name] for name in FAMILIES)

    def block(self, name: str) -> slice:
        start = self.offsets[name]
        return slice(start, start + (1 << self.bits[name]))

    def lexicon_categories(self) -> list[str]:
        return sorted(set(self.lexicon.values()))

    def to_json(self) -> dict[str, Any]:
        return {"bits": dict(self.bits), "lexicon": dict(self.lexicon)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureSpec:
        bits = {k: int(v) for k, v in data["bits"].items()}
        if set(bits) != set(FAMILIES) or not all(4 <= b <= 22 for b in bits.values()):
            raise ValueError(f"feature blocks must be {FAMILIES} with 4..22 bits, got {bits}")
        return cls(bits=bits, lexicon={str(k): str(v) for k, v in data.get("lexicon", {}).items()})


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """`np.unique(values)` of a 1-d array by one sort and a mask. Why: numpy 2.4's np.unique goes through a hash
    table first and costs 4-40x more (0.26 s of every process start for the classifier's 370,000 columns)."""
    ordered = np.sort(values)
    if ordered.size < 2:
        return ordered
    keep = np.empty(ordered.size, dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _powers(n: int, base: int) -> np.ndarray:
    """base**0 .. base**(n-1) modulo 2**64 (numpy integer arithmetic wraps)."""
    out = np.full(n, base, dtype=np.uint64)
    out[0] = 1
    return np.cumprod(out, dtype=np.uint64)


@cache
def _power_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    return _powers(n, _P), _powers(n, _P_INV)


def _power_table(n: int) -> tuple[np.ndarray, np.ndarray]:
    size = 1 << max(16, int(n - 1).bit_length())
    return _power_tables(size)


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)


def hash_strings(strings: list[str]) -> np.ndarray:
    """A 64-bit hash of each string (lower-cased), vectorised: positional polynomial sums over one code-point array."""
    if not strings:
        return np.zeros(0, dtype=np.uint64)
    joined = "\x00".join(strings).lower()
    cp = _codepoints(joined)
    seps = np.flatnonzero(cp == 0)
    if len(seps) != len(strings) - 1:  # a NUL inside a string, or lower() changed a length: measure one by one
        strings = [s.replace("\x00", " ").lower() for s in strings]
        cp = _codepoints("\x00".join(strings))
        seps = np.flatnonzero(cp == 0)
    ends = np.empty(len(strings), dtype=np.int64)
    ends[:-1] = seps
    ends[-1] = len(cp)
    starts = np.empty(len(strings), dtype=np.int64)
    starts[0] = 0
    starts[1:] = seps + 1
    pw, inv = _power_table(len(cp) + 1)
    cs = np.empty(len(cp) + 1, dtype=np.uint64)
    cs[0] = 0
    np.cumsum(cp * pw[: len(cp)], dtype=np.uint64, out=cs[1:])
    lengths = (ends - starts).astype(np.uint64)
    return (cs[ends] - cs[starts]) * inv[starts] + lengths * _GOLDEN


def _lex_slot(h: np.ndarray) -> np.ndarray:
    """A lexicon bucket of each hash: its top bits after mixing (short words' raw hashes share their top bits)."""
    return ((h * _GOLDEN) >> np.uint64(64 - _LEX_SLOT_BITS)).astype(np.intp)


def _bucket(h: np.ndarray, family: str, spec_bits: dict[str, int], offsets: dict[str, int]) -> np.ndarray:
    """Mix a hash with the family salt and keep the top bits: a column inside the family's block."""
    mixed = (h ^ _SALT[family]) * _GOLDEN
    return (mixed >> np.uint64(64 - spec_bits[family])).astype(np.int32) + np.int32(offsets[family])


def _lexicon_tables(spec: FeatureSpec) -> dict[str, np.ndarray]:
    """The lexicon's word hashes, sorted, with their category index; and the same bucketed by their mixed top bits,
    so that most words are looked up with one probe (a bucket of zero or one lexicon hash) instead of a binary search
    over all of them (crowded buckets still search)."""
    cats = spec.lexicon_categories()
    words = list(spec.lexicon)
    hashes = hash_strings(words)
    order = np.argsort(hashes)
    hashes = hashes[order]
    categories = np.array([cats.index(spec.lexicon[w]) for w in words], dtype=np.int64)[order]
    slots = _lex_slot(hashes)
    by_slot = np.argsort(slots, kind="stable")
    return {"lex_hashes": hashes, "lex_cats": categories, "slot_hashes": hashes[by_slot],
            "slot_cats": categories[by_slot],
            "slot_start": np.searchsorted(slots[by_slot], np.arange((1 << _LEX_SLOT_BITS) + 1)).astype(np.int32)}


class Featurizer:
    """Docs → FeatureBatch (n_docs × spec.n_features counts); one call per batch, no per-n-gram Python work."""

    def __init__(self, spec: FeatureSpec, tables: dict[str, np.ndarray] | None = None) -> None:
        """`tables`: `lexicon_tables()` of a featuriser of the same spec, kept by an earlier process (`nlp.derived`)."""
        self.spec = spec
        self.offsets = spec.offsets
        self.n_features = spec.n_features
        self._id_cache: tuple[int, int, np.ndarray, np.ndarray, np.ndarray] | None = None
        # Per-id word rows and per-character char1 rows of one remap (the serving classifier's): see `_remapped`.
        self._row_cache: tuple[np.ndarray, int, int, np.ndarray, np.ndarray] | None = None
        self._neg_hashes = hash_strings(list(NEGATIONS))
        self._punctuation = PunctuationFamily(spec.bits, self.offsets)
        if spec.lexicon:
            lexicon = tables if tables is not None else _lexicon_tables(spec)
            self._lex_hashes, self._lex_cats = lexicon["lex_hashes"], lexicon["lex_cats"]
            self._slot_hashes, self._slot_cats = lexicon["slot_hashes"], lexicon["slot_cats"]
            self._slot_start = lexicon["slot_start"]

    def lexicon_tables(self) -> dict[str, np.ndarray]:
        """The lexicon's lookup arrays (none without a lexicon), as `__init__` takes them back."""
        if not self.spec.lexicon:
            return {}
        return {"lex_hashes": self._lex_hashes, "lex_cats": self._lex_cats, "slot_hashes": self._slot_hashes,
                "slot_cats": self._slot_cats, "slot_start": self._slot_start}

    def __call__(self, docs: list[Doc]) -> FeatureBatch:
        return self.transform(docs)

    def transform(self, docs: list[Doc]) -> FeatureBatch:
        n = len(docs)
        return FeatureBatch([_part(r, c, n, self.n_features) for r, c in self.entries(docs)], n, self.n_features)

    def products(self, docs: list[Doc], weights: np.ndarray, remap: np.ndarray,
                 words: np.ndarray | WordIds | None = None) -> np.ndarray:
        """`transform(docs).dot(weights, remap)` with the same float32 sums, bit for bit, at less cost (serving).

        Why it is equal: `dot` sums each family's entries of a row in order (one CSR product per family), then adds
        the families in order. Here every (family, document) pair is one row of a single CSR (family-major, so the
        rows come out sorted by concatenating the families), one product gives the same per-family sums, and the
        families are added in the same order.
        `words`: see `entries`."""
        n = len(docs)
        out = np.zeros((n, weights.shape[1]), dtype=np.result_type(weights.dtype, np.float32))
        entries = self.entries(docs, words, remap)
        if not entries or not n:
            return out
        n_rows = len(entries) * n
        starts = np.arange(n)
        indptr = np.empty(n_rows + 1, dtype=np.int64)
        at = 0
        for f, (r, _) in enumerate(entries):  # a family's rows are non-decreasing: its row starts by binary search
            indptr[f * n:(f + 1) * n] = np.searchsorted(r, starts) + at
            at += len(r)
        indptr[-1] = at
        cols = np.concatenate([c for _, c in entries])
        from scipy import sparse

        matrix = sparse.csr_matrix((np.ones(len(cols), dtype=np.float32), cols, indptr), shape=(n_rows, weights.shape[0]))
        sums = matrix @ weights
        for f in range(len(entries)):
            out += sums[f * n:(f + 1) * n]
        return out

    def entries(self, docs: list[Doc], words: np.ndarray | WordIds | None = None, remap: np.ndarray | None = None
                ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(document row, column) entries of each non-empty family, in a fixed family order, rows non-decreasing.
        `words`, when given: `hash_strings` over all tokens of all docs (not cut at MAX_TOKENS), or their `WordIds`
        (word columns, lexicon categories and negations then come from a per-id cache).
        `remap`, when given: every column comes out as `remap[column]` (a row of a compact weight matrix, int32); word
        and single-character columns are then read off tables that hold the remapped row per word id / character,
        which spares a random access into the large remap array for most entries."""
        n = len(docs)
        bits, off = self.spec.bits, self.offsets
        char_rows, word_rows = (None, None) if remap is None else \
            self._remapped(remap, words if isinstance(words, WordIds) else None)

        def mapped(columns: np.ndarray) -> np.ndarray:
            return columns if remap is None else remap[columns]

        def bucketed(scratch: np.ndarray, family: str) -> np.ndarray:
            """Columns (or rows, with `remap`) of hashes in a temporary array the caller no longer needs."""
            return _bucket(scratch, family, bits, off) if remap is None else self._block_rows(scratch, family, remap)

        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []

        # words and word bigrams (from the segmentation)
        per_token: list[np.ndarray] | None = None  # word column, lexicon code, negation of each token (WordIds)
        if words is None:
            token_lists = [d.tokens[:MAX_TOKENS] if len(d.tokens) > MAX_TOKENS else d.tokens for d in docs]
            counts = np.fromiter(map(len, token_lists), dtype=np.int64, count=n)
            word_hashes = wh = hash_strings(list(chain.from_iterable(token_lists)))
            word_starts = None
        else:
            if isinstance(words, WordIds):
                word_hashes = words.hashes.take(words.ids)  # take: ~10 % fewer instructions than [ids]
                per_id = self._per_id(words)
                per_token = [(per_id[0] if word_rows is None else word_rows).take(words.ids), per_id[1].take(words.ids),
                             per_id[2].take(words.ids)]
            else:
                word_hashes = words
            full = np.fromiter(map(len, (d.tokens for d in docs)), dtype=np.int64, count=n)
            if len(word_hashes) != int(full.sum()):
                raise ValueError(f"{len(word_hashes)} word hashes for {int(full.sum())} tokens")
            word_starts = np.zeros(n, dtype=np.int64)
            np.cumsum(full[:-1], out=word_starts[1:])
            counts = np.minimum(full, MAX_TOKENS)
            if (full > MAX_TOKENS).any():
                position = np.arange(len(word_hashes)) - np.repeat(word_starts, full)
                kept = position < MAX_TOKENS
                wh = word_hashes[kept]
                per_token = [values[kept] for values in per_token] if per_token is not None else None
            else:
                wh = word_hashes
        wdoc = np.repeat(np.arange(n), counts)
        rows.append(wdoc)
        cols.append(mapped(_bucket(wh, "word", bits, off)) if per_token is None else per_token[0])
        if len(wh) > 1:
            same = wdoc[1:] == wdoc[:-1]
            with np.errstate(over="ignore"):
                bh = wh[:-1][same] * np.uint64(_P) + wh[1:][same]
            rows.append(wdoc[1:][same])
            cols.append(bucketed(bh, "word2"))
        if self.spec.lexicon and len(wh):
            if per_token is None:
                hit, cats = self._lexicon_lookup(wh)
                negation = None
            else:
                cats, negation = per_token[1], per_token[2]
                hit = cats >= 0
            if self._lexicon(wh, wdoc, hit, cats, negation, rows, cols) and remap is not None:
                cols[-1] = remap[cols[-1]]

        # title words, a block of their own (a word in the title says more about the topic)
        titles = [d.title_tokens for d in docs]
        tcounts = np.fromiter(map(len, titles), dtype=np.int64, count=n)
        if tcounts.any():
            rows.append(np.repeat(np.arange(n), tcounts))
            cols.append(bucketed(self._title_hashes(docs, titles, None if words is None else word_hashes, word_starts),
                                 "title"))

        # character 1-3-grams inside runs of word characters, never across documents
        texts = [d.text[:MAX_CHARS] if len(d.text) > MAX_CHARS else d.text for d in docs]
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=n)
        joined = "".join(texts).lower()
        cp = _codepoints(joined)
        if len(cp) != int(lengths.sum()):  # lower() lengthened a character: lower-case each text on its own
            texts = [t.lower() for t in texts]
            lengths = np.fromiter(map(len, texts), dtype=np.int64, count=n)
            joined = "".join(texts)
            cp = _codepoints(joined)
        cdoc = np.repeat(np.arange(n), lengths)
        capped = np.minimum(cp, 0x10000).astype(np.intp)  # past the basic plane: index 0x10000 of the tables
        word = word_char_table().take(capped)  # a letter or digit (0x10000: False)
        pos = np.flatnonzero(word)
        rows.append(cdoc.take(pos))
        cols.append(_bucket(cp[pos], "char1", bits, off) if char_rows is None else char_rows.take(capped.take(pos)))
        # A character links to the next when both are word characters of the same text; a 2-gram starts at each
        # link, a 3-gram at two links in a row (its hash extends the 2-gram's: the same polynomial as hashing it).
        link = word[:-1] & word[1:]
        ends = np.cumsum(lengths)
        inner_ends = ends[(ends > 0) & (ends < len(cp))]
        link[inner_ends - 1] = False
        pos2 = np.flatnonzero(link)
        pos3 = np.flatnonzero(link[:-1] & link[1:])
        with np.errstate(over="ignore"):
            h2 = cp[:-1] * np.uint64(_P)
            h2 += cp[1:]
            h3 = h2.take(pos3) * np.uint64(_P)
            h3 += cp.take(pos3 + 2)
        for family, pos, h in (("char2", pos2, h2.take(pos2)), ("char3", pos3, h3)):
            rows.append(cdoc.take(pos))
            cols.append(bucketed(h, family))

        # Weibo emoticons: [怒] [泪] [哈哈]
        if "[" in joined:
            spans = [(m.start(), m.end() - 1, m.group(1)) for m in _EMOTICON.finditer(joined)]
            if spans:
                first = np.searchsorted(ends, np.array([x[0] for x in spans], dtype=np.int64), side="right")
                last = np.searchsorted(ends, np.array([x[1] for x in spans], dtype=np.int64), side="right")
                keep = first == last  # never a match that runs from one document into the next
                rows.append(first[keep])
                cols.append(bucketed(hash_strings([x[2] for x, k in zip(spans, keep, strict=True) if k]), "emoticon"))

        # punctuation: runs, the text's last mark, marks of form (on the code points already at hand)
        punct_rows, punct_cols = self._punctuation.entries(joined, capped, cdoc, lengths, ends)
        if len(punct_rows):
            rows.append(punct_rows)
            cols.append(mapped(punct_cols))

        return [(r, c) for r, c in zip(rows, cols, strict=True) if len(r)]

    def _block_rows(self, h: np.ndarray, family: str, remap: np.ndarray) -> np.ndarray:
        """`remap[_bucket(h, family)]`, bucketing `h` in place (the caller's temporary) and indexing the family's
        slice of `remap` with the bucket itself: no int32 copy, no offset added."""
        h ^= _SALT[family]
        h *= _GOLDEN
        h >>= np.uint64(64 - self.spec.bits[family])
        start = self.offsets[family]
        return remap[start:start + (1 << self.spec.bits[family])].take(h.view(np.int64))

    @staticmethod
    def _title_hashes(docs: list[Doc], titles: list[list[str]], word_hashes: np.ndarray | None,
                      word_starts: np.ndarray | None) -> np.ndarray:
        """Hashes of the title words; a title that is the start of its doc's tokens (what the classify stage makes
        of a title) reuses the word hashes instead of hashing the words again."""
        if word_hashes is None or word_starts is None:
            return hash_strings(list(chain.from_iterable(titles)))
        parts: list[np.ndarray] = []
        starts = word_starts.tolist()
        for d, title, start in zip(docs, titles, starts, strict=True):
            if not title:
                continue
            if d.tokens[:len(title)] == title:
                parts.append(word_hashes[start:start + len(title)])
            else:
                parts.append(hash_strings(title))
        return np.concatenate(parts)

    def _remapped(self, remap: np.ndarray, words: WordIds | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Char1 rows by basic-plane code point (index 0x10000, past the plane, is never read: no word character) and,
        given `words`, word rows by id, both already through `remap`; kept for the last remap seen (a classifier
        passes the same one every batch) and grown with the word table like `_per_id`: (char1 rows, word rows)."""
        cache = self._row_cache
        if cache is None or cache[0] is not remap:
            chars = _bucket(np.arange(0x10001, dtype=np.uint64), "char1", self.spec.bits, self.offsets)
            cache = (remap, -1, 0, np.zeros(0, dtype=np.int32), remap[chars])
        if words is not None:
            if cache[1] != words.generation:
                cache = (remap, words.generation, 0, np.zeros(0, dtype=np.int32), cache[4])
            _, generation, filled, word_rows, char_rows = cache
            if words.n_words > filled:
                word_cols = self._per_id(words)[0]
                if words.n_words > len(word_rows):
                    word_rows = np.resize(word_rows, max(words.n_words, 2 * len(word_rows), 1024))
                word_rows[filled:words.n_words] = remap[word_cols[filled:words.n_words]]
                cache = (remap, generation, words.n_words, word_rows, char_rows)
        self._row_cache = cache  # one assignment, as in `_per_id`
        return cache[4], (cache[3] if words is not None else None)

    def _per_id(self, words: WordIds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Word column, lexicon code (category, -1 for none) and negation flag by word id, computed once per distinct
        word: a cache that grows with the word table and starts over when its generation changes."""
        cache = self._id_cache
        if cache is None or cache[0] != words.generation:
            cache = (words.generation, 0, np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool))
        generation, filled, word_cols, codes, negation = cache
        if words.n_words > filled:
            h = words.hashes[filled:words.n_words]
            if words.n_words > len(word_cols):  # grow by doubling: one copy per doubling, not per batch
                size = max(words.n_words, 2 * len(word_cols), 1024)
                word_cols, codes, negation = (np.resize(a, size) for a in (word_cols, codes, negation))
            word_cols[filled:words.n_words] = _bucket(h, "word", self.spec.bits, self.offsets)
            if self.spec.lexicon:
                hit, cats = self._lexicon_lookup(h)
                codes[filled:words.n_words] = np.where(hit, cats, -1)
            else:
                codes[filled:words.n_words] = -1
            negation[filled:words.n_words] = np.isin(h, self._neg_hashes)
            cache = (generation, words.n_words, word_cols, codes, negation)
        self._id_cache = cache  # one assignment: a thread reading the previous tuple still sees consistent arrays
        return cache[2], cache[3], cache[4]

    def _lexicon_lookup(self, wh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(is a lexicon word, its category index) of each hash."""
        slot = _lex_slot(wh)
        at = self._slot_start[slot]
        size = self._slot_start[slot + 1] - at
        at = at.astype(np.intp)
        at[at >= len(self._slot_hashes)] = 0
        hit = (size > 0) & (self._slot_hashes[at] == wh)
        cats = self._slot_cats[at]
        crowded = np.flatnonzero(size > 1)  # buckets holding several hashes: a binary search, as before
        if len(crowded):
            lex = self._lex_hashes
            found = np.searchsorted(lex, wh[crowded])
            found[found >= len(lex)] = 0
            hit[crowded] = lex[found] == wh[crowded]
            cats[crowded] = self._lex_cats[found]
        return hit, cats

    def _lexicon(self, wh: np.ndarray, wdoc: np.ndarray, hit: np.ndarray, cats: np.ndarray, negation: np.ndarray | None,
                 rows: list[np.ndarray], cols: list[np.ndarray]) -> bool:
        """Lexicon category per matched word; 'negated' variant when one of the two words before is a negation.
        Negations are looked up only at the two words before each match (not over the whole batch), or read off
        `negation` (each token's flag) when the caller has it."""
        idx = np.flatnonzero(hit)
        if not len(idx):
            return False
        before = np.zeros(len(idx), dtype=bool)
        for back in (1, 2):
            prev = idx - back
            ok = prev >= 0
            prev = np.where(ok, prev, 0)
            is_negation = np.isin(wh[prev], self._neg_hashes) if negation is None else negation[prev]
            before |= ok & (wdoc[prev] == wdoc[idx]) & is_negation
        cat = cats[idx] * 2 + before
        rows.append(wdoc[idx])
        cols.append(cat % (1 << self.spec.bits["lexicon"]) + self.offsets["lexicon"])
        return True


_REPEAT_RUN = re.compile(r"(.)\1{2,}")


def _class_table(classes: dict[str, int]) -> np.ndarray:
    """Basic-plane code point → class (uint8), one more entry (0) for everything past the basic plane."""
    table = np.zeros(0x10001, dtype=np.uint8)
    for ch, code in classes.items():
        table[ord(ch)] = code
    return table


def fold_punctuation_run(run: str) -> str:
    """One spelling per run: full-width marks, stops as an ellipsis, one ellipsis, at most three of a mark, four marks."""
    folded = "".join(_PUNCT_SPELLING[_PUNCT_CLASSES[ch]] for ch in run)
    folded = re.sub("…+", "…", folded)
    return _REPEAT_RUN.sub(r"\1\1\1", folded)[:4]


class PunctuationFamily:
    """The `punct` family: `P<run>` and `C<mark>` for each run of expressive punctuation (！！！, ？！, ……), `E<mark>`
    (or `Ew`, a word) for how each text ends, `M<mark>` once per text for each mark of form.

    Why on code points: the character n-gram pass already holds the batch as one code-point array, so finding the
    marks is a table lookup; only the runs found (about one per text) are spelled out in Python, through a memo."""

    def __init__(self, bits: dict[str, int], offsets: dict[str, int]) -> None:
        self._bits, self._offsets = bits, offsets
        # one table for both: the punctuation class in the low three bits, the mark of form above them
        self._table = _class_table(_PUNCT_CLASSES) | (_class_table(_MARK_CLASSES) << 3)
        ends = ["Ew"] + [f"E{_PUNCT_SPELLING[c]}" if c != _STOP else "E。" for c in range(1, 6)]
        self._end_columns = self._columns(ends)  # by class of the last character (0: a word or anything else)
        self._mark_columns = self._columns(["M"] + [f"M{_MARK_NAMES[c]}" for c in range(1, 11)])
        self._runs: dict[str, tuple[int, ...]] = {}

    def _columns(self, tokens: list[str]) -> np.ndarray:
        return _bucket(hash_strings(tokens), "punct", self._bits, self._offsets).astype(np.int64)

    def _run_columns(self, runs: list[str]) -> list[tuple[int, ...]]:
        """The columns of each run (`P<run>`, then `C<mark>` per mark), remembered per spelling; the runs not seen
        before are spelled and hashed together (one `hash_strings` call a batch, not one per new run: a dozen new
        runs a batch of real posts cost 2 M instructions one by one)."""
        known = self._runs
        found = list(map(known.get, runs))
        if None not in found:
            return found
        new = [run for run in dict.fromkeys(runs) if run not in known]
        if len(known) + len(new) > 50_000:  # runs are few and repeat; a stream of odd ones must not grow memory
            known.clear()
            new = list(dict.fromkeys(runs))
        tokens: list[list[str]] = []
        for run in new:
            folded = fold_punctuation_run(run)
            tokens.append(["P" + folded] + ["C" + ch for ch in sorted(set(folded))])
        columns = iter(self._columns(list(chain.from_iterable(tokens))).tolist())
        known.update(zip(new, (tuple(islice(columns, len(t))) for t in tokens), strict=True))
        return list(map(known.__getitem__, runs))

    def entries(self, joined: str, capped: np.ndarray, cdoc: np.ndarray, lengths: np.ndarray,
                ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(document row, column) of the batch's punctuation tokens, rows non-decreasing. `joined` is the batch's
        texts concatenated, `capped` its code points (past the basic plane: 0x10000), `cdoc` the document of each,
        `lengths` the texts' lengths and `ends` their cumulative sum."""
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        value = self._table.take(capped)
        marked = np.flatnonzero(value)
        found_value = value[marked]
        punct = found_value & 7
        pos = marked[punct > 0]
        cls = punct[punct > 0]
        if pos.size:
            first = np.ones(len(pos), dtype=bool)
            first[1:] = (pos[1:] != pos[:-1] + 1) | (cdoc[pos[1:]] != cdoc[pos[:-1]])
            starts = pos[first]
            run_of = np.cumsum(first) - 1
            run_len = np.bincount(run_of)
            all_stops = np.bincount(run_of, weights=cls == _STOP) == run_len
            keep = ~(all_stops & (run_len < 2))
            starts, run_len = starts[keep], run_len[keep]
            per_run = self._run_columns(list(map(joined.__getitem__, map(slice, starts.tolist(),
                                                                          (starts + run_len).tolist()))))
            rows.append(np.repeat(cdoc[starts], np.fromiter(map(len, per_run), dtype=np.int64, count=len(per_run))))
            cols.append(np.fromiter(chain.from_iterable(per_run), dtype=np.int64))
        # how each non-empty text ends (texts are stripped of surrounding space by normalisation; one that is not
        # simply ends with "a word")
        filled = np.flatnonzero(lengths > 0)
        if filled.size:
            rows.append(filled)
            cols.append(self._end_columns[value[ends[filled] - 1] & 7])
        # marks of form, once per text
        is_mark = found_value >= 8
        pairs = [cdoc[marked[is_mark]] * 16 + (found_value[is_mark] >> 3)]
        for needle, code in _MARK_SUBSTRINGS.items():
            at = joined.find(needle)
            found: list[int] = []
            while at >= 0:
                found.append(at)
                at = joined.find(needle, at + len(needle))
            if found:
                where = np.array(found, dtype=np.int64)
                inside = cdoc[where] == cdoc[where + len(needle) - 1]  # never across two texts
                pairs.append(cdoc[where[inside]] * 16 + code)
        unique = sorted_unique(np.concatenate(pairs))
        if unique.size:
            rows.append(unique // 16)
            cols.append(self._mark_columns[unique % 16])
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        all_rows = np.concatenate(rows)
        order = np.argsort(all_rows, kind="stable")
        return all_rows[order], np.concatenate(cols)[order].astype(np.int32)


class FeatureBatch:
    """The hashed features of a batch, kept as one CSR part per family (each built without sorting, since a family's
    entries come out in document order). Duplicates (a word seen twice) are separate entries of value 1."""

    def __init__(self, parts: list[sparse.csr_matrix], n_rows: int, n_cols: int) -> None:
        self.parts, self.shape = parts, (n_rows, n_cols)

    def dot(self, weights: np.ndarray, remap: np.ndarray | None = None) -> np.ndarray:
        """features @ weights, adding duplicate entries: the whole serving cost of the models. With `remap`
        (hashed column → row of `weights`), `weights` is compact: one row per column a model uses, plus a zero row."""
        from scipy import sparse

        out = np.zeros((self.shape[0], weights.shape[1]), dtype=np.result_type(weights.dtype, np.float32))
        for part in self.parts:
            if remap is not None:
                part = sparse.csr_matrix((part.data, remap[part.indices], part.indptr),
                                         shape=(self.shape[0], weights.shape[0]))
            out += part @ weights
        return out

    def matrix(self) -> sparse.csr_matrix:
        """Counts as one canonical CSR matrix (training)."""
        from scipy import sparse

        total = sparse.csr_matrix(self.shape, dtype=np.float32)
        for part in self.parts:
            total = total + part
        total.sum_duplicates()
        return total


def _part(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> sparse.csr_matrix:
    """CSR from (row, col) entries whose rows are already in non-decreasing order."""
    from scipy import sparse

    indptr = np.searchsorted(rows, np.arange(n_rows + 1), side="left")
    return sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), cols, indptr), shape=(n_rows, n_cols))


def clean_padding(text: str) -> str:
    """Collapse the scraped whitespace padding message-board exports carry."""
    return _PAD.sub(" ", text).strip()
