"""Words for the full-text index: each word plus its 2- and 3-character parts.

Segmentation keeps compounds such as 油烟扰民 or 烧烤店 whole, so a search for 油烟 or 烧烤 would miss them. Like
jieba's search mode, the index also stores the parts of long words; unlike it, the parts do not depend on the
dictionary, so index and query agree whichever segmentation backend is in use.
"""

from __future__ import annotations

from collections.abc import Sequence

from nlp.tokenize import has_repeat_run, leading_words, segment

_MAX_EXPAND = 8  # longer tokens are names or noise; their parts add size, not recall


def _parts(word: str) -> list[str]:
    if len(word) < 3 or len(word) > _MAX_EXPAND or word.isascii():
        return []
    parts = [word[i : i + 2] for i in range(len(word) - 1)]
    if len(word) > 3:
        parts.extend(word[i : i + 3] for i in range(len(word) - 2))
    return parts


def index_tokens(text: str) -> list[str]:
    """Lower-cased words in text order, each preceded by its parts."""
    return expand_words(segment(text))


class _Expansions(dict[str, tuple[str, ...]]):
    """word → its index tokens (its parts, then the word lower-cased), computed on first sight. Words repeat across
    texts, so expanding a text becomes one look-up per word; the table is emptied when it reaches _MAX_CACHED."""

    def __missing__(self, word: str) -> tuple[str, ...]:
        low = word.lower()
        tokens = (*_parts(low), low)
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
    """word → its index tokens joined by spaces (`_Expansions`), for the index's text: a text's index text is then one
    C-level join over its words instead of a list extended word by word and joined again (a third of the cost)."""

    def __missing__(self, word: str) -> str:
        joined = " ".join(_expansions[word])
        if len(self) >= _MAX_CACHED:
            self.clear()
        self[word] = joined
        return joined


_joined = _JoinedExpansions()


def expand_text(words: Sequence[str]) -> str:
    """`" ".join(expand_words(words))`: every word has at least one index token, so no empty piece is joined."""
    return " ".join(map(_joined.__getitem__, words))


def _split_words(title: str, content: str, words: Sequence[str]) -> tuple[Sequence[str], Sequence[str]] | None:
    """The title's words and the content's, from the words of the whole text; None when the title must be cut on its
    own (a repeated-character run: positions differ there)."""
    if not title:
        return [], words
    if has_repeat_run(title):
        return None
    head = leading_words(list(words), f"{title}\n{content}", len(title))
    return head, words[len(head):]


def index_text_from_words(title: str, content: str, words: Sequence[str]) -> tuple[str, str]:
    """`index_tokens_from_words`, each side joined by spaces: the text the full-text index stores."""
    split = _split_words(title, content, words)
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
