"""Chinese segmentation. jieba is the reference implementation; everything that tokenises goes through here.

Both backends load the government user dictionary (`nlp/resources/gov_dict.txt`, explicit frequencies) into a
private tokenizer instance, so the process-wide `jieba` dictionary other code may use is left untouched.
`rjieba` (the Rust port) is used as the fast backend only because `tests/nlp/test_tokenize.py` proves it cuts real
texts exactly as jieba does with the same dictionary; `backend="jieba"` forces the reference.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parent / "resources"
GOV_DICT = RESOURCES / "gov_dict.txt"
STOPWORDS_FILE = RESOURCES / "stopwords.txt"
BACKENDS = ("auto", "jieba", "rjieba")

_lock = threading.Lock()
_cutters: dict[str, Callable[..., list[str]]] = {}
_default_backend = os.environ.get("YUQING_SEGMENTER", "auto")
_WORDLIKE = re.compile(r"[^\W_]", re.UNICODE)


class _WordLikeTokens(dict[str, bool]):
    """token → whether it holds a word character (`_WORDLIKE`), remembered: the few tokens str.isalnum() does not
    settle are mostly the same punctuation (，。# and spaces), and a dict hit costs a tenth of a regex search."""

    def __missing__(self, token: str) -> bool:
        if len(self) >= 50_000:  # mixed tokens ("3.5", "COVID-19") are open-ended
            self.clear()
        found = self[token] = _WORDLIKE.search(token) is not None
        return found


_wordlike = _WordLikeTokens()
# jieba and jieba-rs disagree on how to join ASCII runs with inner punctuation ("0731-0000", "baidu.com", "1.3km");
# both backends therefore get the text pre-split at such punctuation, with decimal numbers kept whole.
# Long runs of one character (啊啊啊啊啊啊) make the two HMM decoders break ties differently; runs of more than two
# identical non-ASCII characters are shortened to two before cutting (digit runs are left alone).
_REPEATS = re.compile(r"([^\x00-\x7f])\1{2,}")
# `\d+(?:\.\d+)+|[.\-_+#&%/:@]+`, written to begin with one character set (either branch's first character) and
# pick the branch by a look-behind at that character: a pattern that starts with a set lets the regex engine skip
# to the next candidate in its C scan loop, instead of entering the matcher at every position (most of a Chinese
# text); half the time of a leading look-ahead, the same splits (checked on every real post and on random strings).
# A number is tried only from the first digit of its run, with no backtracking into the run (`(?<!\d\d)`, `\d*+`):
# a later start in the run sees the same end of the run, so it matches only where the first start would have, and
# a phone number no longer costs a match attempt per digit, each walking the rest of the run and back.
_PRESPLIT = re.compile(r"([\d.\-_+#&%/:@](?:(?<=\d)(?<!\d\d)\d*+(?:\.\d+)+|(?<=[.\-_+#&%/:@])[.\-_+#&%/:@]*))")
# Every _PRESPLIT match holds one of these characters and each of them alone is a match, so one class search says
# whether a text splits at all (0.4 µs on a 140-character text; a generator over the characters plus a full
# _PRESPLIT.search cost 2 µs when, as in 61 % of real posts, there is something to split).
_PRESPLIT_CHAR = re.compile(r"[.\-_+#&%/:@]")


def read_user_dict(path: Path = GOV_DICT) -> list[tuple[str, int, str | None]]:
    """Entries `(word, freq, tag)` of a user dictionary file (`word freq [tag]`, `#` comments)."""
    entries = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        word = parts[0]
        freq = int(parts[1]) if len(parts) > 1 else 1000
        tag = parts[2] if len(parts) > 2 else None
        entries.append((word, freq, tag))
    return entries


@cache
def stopwords() -> frozenset[str]:
    """The shipped, self-written stopword list (negations and degree words deliberately kept out)."""
    words = (w.strip() for w in STOPWORDS_FILE.read_text(encoding="utf-8").splitlines())
    return frozenset(w for w in words if w and not w.startswith("#"))


_PRESPLIT_CODES = [ord(char) for char in ".-_+#&%/:@"]  # the code points of _PRESPLIT_CHAR (all ASCII)

Span = tuple[int, int] | None  # first and last index of a _PRESPLIT_CHAR in a text, (-1, -1) for none


def _scan_batch(texts: list[str]) -> tuple[list[bool], list[Span], list[bool]]:
    """Per text, whether it has a run of 3+ identical non-ASCII characters, where its first and last
    _PRESPLIT_CHAR are, and whether `str.isalnum` alone tells its words (`_plain`), from one code-point array of the
    batch (vectorised: a regex scan per text cost as much as the rest of the segment stage's Python). The span is
    None where it is not known (a text with a run, shortened before cutting, or a batch numpy cannot read as code
    points): `_presplit` then searches itself."""
    import numpy as np

    batch = _codepoints(texts)
    if batch is None:
        return [bool(_REPEATS.search(t)) for t in texts], [None] * len(texts), [False] * len(texts)
    cp, ends, lengths = batch
    flags = _run_flags(cp, ends, len(texts))
    marks = np.flatnonzero(np.isin(cp, _PRESPLIT_CODES, kind="table"))  # a table over their range, no gather per character
    owner = np.searchsorted(ends, marks, side="right")
    texts_at = np.arange(len(texts))
    lo = np.searchsorted(owner, texts_at, side="left")
    hi = np.searchsorted(owner, texts_at, side="right") - 1
    offsets = ends - lengths
    has = lo <= hi
    first_mark = np.where(has, marks[np.minimum(lo, len(marks) - 1)] - offsets, -1) if len(marks) else np.full(len(texts), -1)
    last_mark = np.where(has, marks[np.maximum(hi, 0)] - offsets, -1) if len(marks) else np.full(len(texts), -1)
    repeats = flags.tolist()
    spans: list[Span] = [None if r else (f, last) for r, f, last in
                         zip(repeats, first_mark.tolist(), last_mark.tolist(), strict=True)]
    return repeats, spans, _plain(cp, ends, len(texts))


def _plain(cp: np.ndarray, ends: np.ndarray, count: int) -> list[bool]:
    """Per text (code points `cp` of `count` texts concatenated, text i ending at `ends[i]`), whether a token of its
    cut that is not `str.isalnum` can hold no word character either, so that `isalnum` alone keeps its words.

    Why it holds: both backends cut a word only inside a run of their "han" class (CJK ideographs, ASCII letters
    and digits, `+#&._%-`) and give every other character as a token of its own (a space, or CR LF, at most two).
    A token mixing word and non-word characters therefore needs a non-word character of that class: `+#&._%-` are
    split off beforehand (`_PRESPLIT`, its matches are kept or dropped whole), and the texts holding one of the few
    others (unassigned or symbol code points among the ideograph blocks, anything past the supplementary ideographic
    plane's start; `tests/nlp/test_tokenize.py` checks every other character is cut alone) take the exact test."""
    import numpy as np

    odd = ~word_char_table().take(np.minimum(cp, 0x10000)) & (((cp >= 0x3400) & (cp < 0xA000))
                                                                | ((cp >= 0xF900) & (cp < 0xFB00)) | (cp >= 0x20000))
    plain = np.ones(count, dtype=bool)
    plain[np.searchsorted(ends, np.flatnonzero(odd), side="right")] = False
    return plain.tolist()


@cache
def word_char_table() -> np.ndarray:
    """Basic-plane code points that are letters or digits (str.isalnum, what `[^\\W_]` matches); one more entry,
    False, stands for every code point past the basic plane (looked up as index 0x10000)."""
    import numpy as np

    # C-level iterators into bytes, not a comprehension into np.array (built in the first batch: np.array alone
    # converted each of the 65,537 bools at ~300 instructions)
    return np.frombuffer(bytes([*map(str.isalnum, map(chr, range(0x10000))), False]), dtype=bool)


def _codepoints(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The texts' code points concatenated, each text's end (exclusive) and length; None where numpy cannot read them
    one per character (lone surrogates) or there are fewer than 3 (no run fits)."""
    import numpy as np

    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    cp = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if len(cp) != int(lengths.sum()) or len(cp) < 3:
        return None
    return cp, np.cumsum(lengths), lengths


def _run_flags(cp: np.ndarray, ends: np.ndarray, count: int) -> np.ndarray:
    """Per text, whether it has a run of 3+ identical non-ASCII characters (`_REPEATS`), from the code points `cp` of
    the `count` texts concatenated, text i ending (exclusive) at `ends[i]`: a run must lie within one text."""
    import numpy as np

    run = (cp[:-2] > 0x7F) & (cp[:-2] == cp[1:-1]) & (cp[1:-1] == cp[2:])
    starts = np.flatnonzero(run)
    flags = np.zeros(count, dtype=bool)
    if starts.size:
        first = np.searchsorted(ends, starts, side="right")
        flags[first[np.searchsorted(ends, starts + 2, side="right") == first]] = True
    return flags


def repeat_runs(texts: list[str]) -> list[bool]:
    """`has_repeat_run` of every text, from one code-point array (a regex search per text cost ~150 instructions a
    character: the group and back-reference are tried at every non-ASCII character)."""
    batch = _codepoints(texts)
    if batch is None:
        return [has_repeat_run(t) for t in texts]
    cp, ends, _ = batch
    return _run_flags(cp, ends, len(texts)).tolist()


def _presplit(text: str, cut: Callable[[str], list[str]], repeats: bool = True, span: Span = None,
              words: bool = False) -> list[str]:
    """Cut `text` piece by piece around ASCII punctuation runs; the runs and decimal numbers are tokens themselves.
    `repeats=False` says the caller knows the text has no run to shorten; `span`, the first and last index of a
    _PRESPLIT_CHAR in it when the caller knows them (`_scan_batch`). `words=True` keeps only the words, for a text
    whose words `str.isalnum` tells (`_plain`): a run is no word, a number is one.

    Every _PRESPLIT match holds such a character, and reaches beyond them only over decimal digits (a number's
    integer part before its first dot, its last digits after the last one): the regex therefore splits only the
    stretch from the digits before the first mark to the digits after the last, and the text around it is joined
    to the first and last pieces, as a split of the whole text would leave it (its look-behinds read only the
    match's own first character)."""
    if repeats:
        text = _REPEATS.sub(r"\1\1", text)
        span = None
    if span is None:
        if _PRESPLIT_CHAR.search(text) is None:
            return list(filter(str.isalnum, cut(text))) if words else cut(text)
        split = _PRESPLIT.split(text)
    else:
        start, end = span
        if start < 0:
            return list(filter(str.isalnum, cut(text))) if words else cut(text)
        while start and text[start - 1].isdecimal():  # \d of a str pattern: the decimal digits
            start -= 1
        end += 1
        size = len(text)
        while end < size and text[end].isdecimal():
            end += 1
        split = _PRESPLIT.split(text[start:end]) if start or end < size else _PRESPLIT.split(text)
        if start:
            split[0] = text[:start] + split[0]
        if end < size:
            split[-1] += text[end:]
    out: list[str] = []
    if words:
        isalnum, wordlike = str.isalnum, _wordlike
        for i, piece in enumerate(split):
            if not piece:
                continue
            if i % 2:
                if wordlike[piece]:
                    out.append(piece)
            else:
                out.extend(filter(isalnum, cut(piece)))
        return out
    for i, piece in enumerate(split):
        if not piece:
            continue
        if i % 2:
            out.append(piece)
        else:
            out.extend(cut(piece))
    return out


def _jieba_cutter() -> Callable[[str], list[str]]:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tok = jieba.Tokenizer()
    tok.initialize()
    for word, freq, tag in read_user_dict():
        tok.add_word(word, freq, tag)
    return partial(tok.lcut, HMM=True)


def _rjieba_cutter() -> Callable[[str], list[str]]:
    """rjieba's default segmenter, which its import builds (≈ 0.12 s of CPU), with the user dictionary added: not a
    second `rjieba.Jieba()` built beside it. Nothing else in the process cuts with rjieba."""
    import rjieba

    for word, freq, tag in read_user_dict():
        rjieba.add_word(word, freq, tag)
    return rjieba.cut  # its `hmm` defaults to True, as jieba's lcut(HMM=True); called bare, no Python frame per piece


def resolve_backend(backend: str | None = None) -> str:
    """`auto` means rjieba when it is installed, else jieba."""
    backend = backend or _default_backend
    if backend not in BACKENDS:
        raise ValueError(f"unknown segmenter backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "auto":
        # found, not imported: importing rjieba costs ≈ 0.14 s of CPU, which a process that never cuts (the writer
        # of a pooled import, whose workers segment) need not pay; the first cut imports it
        return "rjieba" if _installed("rjieba") else "jieba"
    return backend


@cache
def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def cutter(backend: str | None = None) -> Callable[[str], list[str]]:
    """The raw cut function of a backend (all tokens, punctuation included; no pre-split, see `_presplit`); built
    once, under a lock."""
    name = resolve_backend(backend)
    fn = _cutters.get(name)
    if fn is None:
        with _lock:
            fn = _cutters.get(name)
            if fn is None:
                fn = _jieba_cutter() if name == "jieba" else _rjieba_cutter()
                _cutters[name] = fn
    return fn


def set_default_backend(backend: str) -> None:
    """Choose the backend `segment` uses when none is given (from `nlp.segmenter` in the config)."""
    global _default_backend
    resolve_backend(backend)
    _default_backend = backend


def segment(text: str, backend: str | None = None) -> list[str]:
    """Words of `text` in order, without whitespace and punctuation tokens."""
    if not text:
        return []
    search = _WORDLIKE.search
    return [tok for tok in _presplit(text, cutter(backend)) if tok.isalnum() or search(tok)]


def segment_many(texts: Iterable[str], backend: str | None = None) -> list[list[str]]:
    """`segment` over many texts, resolving the backend once.

    The words of most texts are their tokens that are `str.isalnum` (`_plain`), kept by a C-level filter: a Python
    test per token (isalnum, else a look-up) was half the Python cost of segmenting. The other texts keep the
    test: str.isalnum() settles almost every token in C; the others (punctuation, mixed tokens such as "3.5") are
    looked up, each distinct one searched once."""
    cut = cutter(backend)
    wordlike, isalnum = _wordlike, str.isalnum
    texts = list(texts)
    repeats, spans, plain = _scan_batch(texts)
    out: list[list[str]] = []
    for t, r, span, p in zip(texts, repeats, spans, plain, strict=True):
        if not t:
            out.append([])
        elif not p:
            out.append([tok for tok in _presplit(t, cut, r, span) if tok.isalnum() or wordlike[tok]])
        elif span is not None and span[0] < 0:  # no run to shorten, nothing to split
            out.append(list(filter(isalnum, cut(t))))
        else:
            out.append(_presplit(t, cut, r, span, words=True))
    return out


def has_repeat_run(text: str) -> bool:
    """A run of 3+ identical non-ASCII characters, which segmentation shortens before cutting."""
    return _REPEATS.search(text) is not None


def leading_words(words: list[str], text: str, length: int) -> list[str]:
    """Of `words` (the segmentation of `text`), those that lie within its first `length` characters.

    Why: an item's text is its title, a newline and its content; segmentation never joins across the newline, so the
    title's own words are these (checked equal on 25,825 real texts cut at 40 characters, mid-word included), unless
    the title has a repeated-character run (`has_repeat_run`): positions then differ and the title is cut on its own."""
    pos = count = 0
    find = text.find
    for word in words:
        at = find(word, pos)
        if at < 0 or at >= length:
            break
        pos = at + len(word)
        count += 1
    return words[:count]


def content_words(tokens: Iterable[str]) -> list[str]:
    """Tokens minus stopwords, lower-cased: what keyword and topic features look at."""
    stop = stopwords()
    return [t for t in (tok.lower() for tok in tokens) if t not in stop]
