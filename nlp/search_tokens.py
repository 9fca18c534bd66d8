"""Words for the full-text index: each word plus its 2- and 3-character parts.

Segmentation keeps compounds such as 油烟扰民 or 烧烤店 whole, so a search for 油烟 or 烧烤 would miss them. Like
jieba's search mode, the index also stores the parts of long words; unlike it, the parts do not depend on the
dictionary, so index and query agree whichever segmentation backend is in use.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate, islice

from nlp.tokenize import has_repeat_run, leading_words, segment

_MAX_EXPAND = 8  # longer tokens are names or noise; their parts add size, not recall


def _slices(length: int) -> tuple[slice, ...]:
    bigrams = [slice(i, i + 2) for i in range(length - 1)]
    trigrams = [slice(i, i + 3) for i in range(length - 2)] if length > 3 else []
    return (*bigrams, *trigrams, slice(None))


# A word's index tokens by its length: its 2- and 3-character parts, then itself, as slices a C `map` takes (the
# parts cut one by one in Python cost ~9,000 instructions a new word).
_TOKEN_SLICES = {length: _slices(length) for length in range(3, _MAX_EXPAND + 1)}
_WHOLE = (slice(None),)


def _template(length: int) -> str:
    """The word's index tokens joined by spaces, as a `str.format` template over its characters."""
    fields = [f"{{{i}}}" for i in range(length)]
    return " ".join("".join(fields[s]) for s in _TOKEN_SLICES[length])


# The same tokens joined, made by one `format` call over the word's characters.
_JOINED_TEMPLATES = {length: _template(length) for length in _TOKEN_SLICES}


def _token_slices(low: str) -> tuple[slice, ...]:
    """The slices of a lower-cased word that are its index tokens."""
    return _WHOLE if low.isascii() else _TOKEN_SLICES.get(len(low), _WHOLE)


def index_tokens(text: str) -> list[str]:
    """Lower-cased words in text order, each preceded by its parts."""
    return expand_words(segment(text))


class _Expansions(dict[str, tuple[str, ...]]):
    """word → its index tokens (its parts, then the word lower-cased), computed on first sight. Words repeat across
    texts, so expanding a text becomes one look-up per word; the table is emptied when it reaches _MAX_CACHED."""

    def __missing__(self, word: str) -> tuple[str, ...]:
        low = word.lower()
        tokens = tuple(map(low.__getitem__, _token_slices(low)))
        if len(self) >= _MAX_CACHED:
            self.clear()
        self[word] = tokens
        return tokens


_MAX_CACHED = 50_000
_expansions = _Expansions()


def expand_words(words: Sequence[str]) -> list[str]:
    """`index_tokens` of a text from its words as `segment` cut them."""
    out: list[str] = []
    extend = out.extend
    for tokens in map(_expansions.__getitem__, words):
        extend(tokens)
    return out


class _JoinedExpansions(dict[str, str]):
    """word → its index tokens joined by spaces (as `_Expansions` has them, not kept there), for the index's text: a
    text's index text is then one C-level join over its words instead of a list extended word by word and joined
    again (a third of the cost)."""

    def __missing__(self, word: str) -> str:
        low = word.lower()
        template = None if low.isascii() else _JOINED_TEMPLATES.get(len(low))
        joined = low if template is None else template.format(*low)
        if len(self) >= _MAX_CACHED:
            self.clear()
        self[word] = joined
        return joined


_joined = _JoinedExpansions()


def expand_text(words: Sequence[str]) -> str:
    """`" ".join(expand_words(words))`: every word has at least one index token, so no empty piece is joined."""
    return " ".join(map(_joined.__getitem__, words))


def _split_words(title: str, content: str, words: Sequence[str], repeat_run: bool | None = None
                 ) -> tuple[Sequence[str], Sequence[str]] | None:
    """The title's words and the content's, from the words of the whole text; None when the title must be cut on its
    own (a repeated-character run: positions differ there). `repeat_run`: `has_repeat_run(title)` when the caller
    knows it (`repeat_runs` of a batch's titles: the regex cost ~350 instructions a character)."""
    if not title:
        return [], words
    if has_repeat_run(title) if repeat_run is None else repeat_run:
        return None
    head = _title_words(title, content, words)
    return head, words[len(head):]


def _title_words(title: str, content: str, words: Sequence[str]) -> Sequence[str]:
    """`leading_words` of the title, by C calls when the title is its leading words end to end (no space or mark
    dropped from it): as many leading words as fit in its length, joined, are the title. Then `leading_words` would
    find each at the end of the one before and the next word past the title: the same words."""
    fitting = bisect_right(list(accumulate(map(len, islice(words, len(title))))), len(title))
    if "".join(words[:fitting]) == title:
        return words[:fitting]
    return leading_words(list(words), f"{title}\n{content}", len(title))


def index_text_from_words(title: str, content: str, words: Sequence[str], repeat_run: bool | None = None
                          ) -> tuple[str, str]:
    """`index_tokens_from_words`, each side joined by spaces: the text the full-text index stores. `repeat_run` as
    `_split_words` takes it."""
    split = _split_words(title, content, words, repeat_run)
    if split is None:
        return " ".join(index_tokens(title)), " ".join(index_tokens(content))
    return expand_text(split[0]), expand_text(split[1])


def index_tokens_from_words(title: str, content: str, words: Sequence[str]) -> tuple[list[str], list[str]]:
    """(index_tokens(title), index_tokens(content)) from the words `segment` gave for the item's text (the title, a
    newline, the content), without segmenting again: the enrichment already cut that text, and cutting it a second
    time for the index was a third of the store's ingest time. The title's words are the text's leading words
    (`leading_words`: segmentation never joins across the newline); a title with a repeated-character run is cut on
    its own, as there positions differ (tests/nlp/test_search_tokens.py checks both ways agree on real texts)."""
    split = _split_words(title, content, words)
    if split is None:
        return index_tokens(title), index_tokens(content)
    return expand_words(split[0]), expand_words(split[1])
