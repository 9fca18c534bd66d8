"""Compile a parsed boolean query into SQLite FTS5 syntax over jieba-segmented text.

Each user term is segmented the same way the index was, then quoted as an FTS5 phrase, so user input can never
inject FTS5 syntax: only the operators our own parser accepted reach SQLite.
"""

from __future__ import annotations

from collections.abc import Callable

from core.errors import QuerySyntaxError
from core.query import And, Near, Node, Not, Or, Term, parse_query

Segmenter = Callable[[str], list[str]]


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
