"""Compile a parsed boolean query into SQLite FTS5 syntax over jieba-segmented text.

Each user term is segmented the same way the index was, then quoted as an FTS5 phrase, so user input can never
inject FTS5 syntax: only the operators our own parser accepted reach SQLite.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from core.errors import QuerySyntaxError
from core.query import And, Near, Node, Not, Or, Term, parse_query

Segmenter = Callable[[str], list[str]]

# The full-text index's rowid is the item's publication second followed by its id (second · 2³¹ + id), so walking
# the index by rowid, newest first, meets matches in feed order and a search stops after the page it needs. Ties
# within one second are put in (published_ts, id) order by the caller. Ids stay below 2³¹ (two billion items) and
# seconds below 2³² (the year 2106); times before 1970 share second 0.
FTS_ID_BITS = 31
FTS_ID_MASK = (1 << FTS_ID_BITS) - 1
# The same key in SQL, over the items table (CAST truncates, which is floor for the non-negative seconds used).
FTS_KEY_SQL = f"(max(0, CAST(published_ts AS INTEGER)) * {1 << FTS_ID_BITS} + id)"


def fts_second(published_ts: float) -> int:
    """The publication second a full-text rowid starts with."""
    return max(0, math.floor(published_ts))


def fts_key(published_ts: float, item_id: int) -> int:
    """The full-text rowid of an item."""
    if not 0 < item_id <= FTS_ID_MASK:
        raise ValueError(f"item id {item_id} does not fit the full-text key")
    return (fts_second(published_ts) << FTS_ID_BITS) | item_id


def _tokens(term: Term, segment: Segmenter) -> list[str]:
    tokens = [t.lower().replace('"', '""') for t in segment(term.text)]
    if not tokens:
        raise QuerySyntaxError(f"{term.text!r} has no searchable characters")
    return tokens


def _phrase(term: Term, segment: Segmenter) -> str:
    """One word → an FTS5 string; several → those words close together.

    The index holds search-mode segmentation (sub-words added), so exact adjacency of query words is not
    guaranteed; NEAR with a small window keeps the meaning of a phrase without depending on it.
    """
    tokens = _tokens(term, segment)
    if len(tokens) == 1:
        return f'"{tokens[0]}"'
    return "NEAR(" + " ".join(f'"{t}"' for t in tokens) + f", {2 * len(tokens)})"


def _compile(node: Node, segment: Segmenter) -> str:
    if isinstance(node, Term):
        return _phrase(node, segment)
    if isinstance(node, Near):
        tokens = _tokens(node.left, segment) + _tokens(node.right, segment)
        return "NEAR(" + " ".join(f'"{t}"' for t in tokens) + f", {node.distance + len(tokens)})"
    if isinstance(node, Or):
        if any(isinstance(c, Not) for c in node.children):
            raise QuerySyntaxError("NOT cannot be an alternative of OR; write 'a OR b NOT c' as '(a OR b) NOT c'")
        return "(" + " OR ".join(_compile(c, segment) for c in node.children) + ")"
    if isinstance(node, And):
        positive = [c for c in node.children if not isinstance(c, Not)]
        negative = [c.child for c in node.children if isinstance(c, Not)]
        if not positive:
            raise QuerySyntaxError("a query needs at least one word to look for, not only exclusions")
        expr = "(" + " AND ".join(_compile(c, segment) for c in positive) + ")"
        for neg in negative:
            expr = f"{expr} NOT {_compile(neg, segment)}"
        return f"({expr})"
    raise QuerySyntaxError("a query needs at least one word to look for, not only exclusions")


def compile_fts(text: str, segment: Segmenter) -> str:
    """User query → FTS5 MATCH expression; raises QuerySyntaxError with a clear message."""
    return _compile(parse_query(text), segment)
