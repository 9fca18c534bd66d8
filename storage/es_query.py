"""Feed filters and the boolean query language (core/query.py) compiled to the Elasticsearch query DSL.

The text fields hold the same words the SQLite full-text index holds (nlp.search_tokens, then split as FTS5's
unicode61 tokenizer splits them), analysed by whitespace only, so a query means the same on both backends:
a word is a term, a phrase is its words close together (span_near, as FTS5's NEAR), `a NEAR/n b` is span_near with
the same window, AND/OR/NOT are bool clauses. Only the operators our own parser accepted reach the cluster.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from core.errors import QuerySyntaxError
from core.query import And, Near, Node, Not, Or, Term, parse_query
from storage import schema
from storage.base import ItemQuery

Segmenter = Callable[[str], list[str]]

TEXT_FIELDS = ("title_tok", "content_tok")  # FTS5's two columns: a NEAR group matches within one of them
_WORD = re.compile(r"[^\W_]+")  # what FTS5's unicode61 tokenizer keeps of a token: letters and digits


def words(tokens: list[str]) -> list[str]:
    """Segmented tokens as the full-text index sees them: lower case, split at punctuation and spaces."""
    return [w for token in tokens for w in _WORD.findall(token.lower())]


def _term_words(term: Term, segment: Segmenter) -> list[str]:
    found = words(segment(term.text))
    if not found:
        raise QuerySyntaxError(f"{term.text!r} has no searchable characters")
    return found


def _span(field: str, tokens: list[str], slop: int) -> dict:
    return {"span_near": {"clauses": [{"span_term": {field: t}} for t in tokens], "slop": max(0, slop),
                          "in_order": False}}


def _near(tokens: list[str], window: int) -> dict:
    """The tokens within `window` as FTS5 counts it (tokens between the first and the last phrase, the middle ones
    included), in either column. Lucene's slop does not count the matched middle tokens, hence the difference."""
    if len(tokens) == 1:
        return {"bool": {"should": [{"term": {f: tokens[0]}} for f in TEXT_FIELDS], "minimum_should_match": 1}}
    slop = window - (len(tokens) - 2)
    return {"bool": {"should": [_span(f, tokens, slop) for f in TEXT_FIELDS], "minimum_should_match": 1}}


def _compile(node: Node, segment: Segmenter) -> dict:
    if isinstance(node, Term):
        tokens = _term_words(node, segment)
        return _near(tokens, 2 * len(tokens))
    if isinstance(node, Near):
        tokens = _term_words(node.left, segment) + _term_words(node.right, segment)
        return _near(tokens, node.distance + len(tokens))
    if isinstance(node, Or):
        if any(isinstance(c, Not) for c in node.children):
            raise QuerySyntaxError("NOT cannot be an alternative of OR; write 'a OR b NOT c' as '(a OR b) NOT c'")
        return {"bool": {"should": [_compile(c, segment) for c in node.children], "minimum_should_match": 1}}
    if isinstance(node, And):
        positive = [c for c in node.children if not isinstance(c, Not)]
        negative = [c.child for c in node.children if isinstance(c, Not)]
        if not positive:
            raise QuerySyntaxError("a query needs at least one word to look for, not only exclusions")
        out: dict = {"must": [_compile(c, segment) for c in positive]}
        if negative:
            out["must_not"] = [_compile(c, segment) for c in negative]
        return {"bool": out}
    raise QuerySyntaxError("a query needs at least one word to look for, not only exclusions")


def compile_text(text: str, segment: Segmenter) -> dict:
    """User query → a query DSL clause; raises QuerySyntaxError with a clear message."""
    return _compile(parse_query(text), segment)


def _contains(value: str) -> dict:
    """`value` anywhere in the region, its characters taken literally (as SQL LIKE with autoescape)."""
    escaped = re.sub(r"([\\*?])", r"\\\1", value)
    return {"wildcard": {"region": {"value": f"*{escaped}*"}}}


def filters(query: ItemQuery) -> list[dict]:
    """Every feed filter but the full-text one, as filter clauses (no scoring)."""
    out: list[dict] = []
    for field, value in (("source", query.source), ("channel", query.channel and str(query.channel)),
                         ("topic", query.topic), ("emotion", query.emotion), ("risk_level", query.risk_level),
                         ("event_id", query.event_id), ("region", query.region), ("schemes", query.scheme)):
        if value:
            out.append({"term": {field: value}})
    window = {}
    if query.since:
        window["gte"] = query.since.timestamp()
    if query.until:
        window["lt"] = query.until.timestamp()
    if window:
        out.append({"range": {"published_ts": window}})
    if query.min_risk is not None:
        out.append({"range": {"risk_rank": {"gte": query.min_risk}}})
        if query.min_risk <= schema.UNSCORED_RISK:
            out.append({"exists": {"field": "risk_score"}})  # no score never passes
    if query.within_regions:  # a caller's 属地 scope: the item's region names one of them
        out.append({"bool": {"should": [_contains(r) for r in query.within_regions], "minimum_should_match": 1}})
    return out
