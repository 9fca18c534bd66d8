"""Monitoring schemes (监测方案): 地域词 AND 主体词 AND 事件词 NOT 排除词, or a full boolean expression.

Expressions are parsed by `core.query` (the same language as search). All terms of all schemes go into one
Aho-Corasick automaton, so an item costs one pass over its lower-cased text; each scheme's tree is then evaluated on
the set of terms found, and only schemes with at least one term present are evaluated at all. NEAR/n counts words
(segmentation tokens), computed only when a NEAR needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

import core.config  # noqa: F401 - loaded first: it imports core.config_analysis at its end
from analysis.termscan import TermScanner
from core import yamlfile
from core.config_analysis import SchemeSpec
from core.errors import ConfigError, InputError, QuerySyntaxError
from core.query import And, Near, Node, Not, Or, Term, has_positive, parse_query, positive_terms
from flow.stages import Batch
from storage.base import ItemReads

EXAMPLES_FILE = Path(__file__).resolve().parent / "resources" / "schemes.yaml"
_MAX_SCAN = 20_000  # characters of an item matched against schemes; a 100,000-character post is cut, not choked on


class SchemeError(InputError):
    """A scheme is invalid; `errors` name the field (and the position inside an expression)."""


Check = Callable[[dict[str, list[int]], Callable[[], list[int]]], bool]


@dataclass(frozen=True)
class CompiledScheme:
    name: str
    tree: Node
    terms: frozenset[str]
    check: Check  # the tree as nested closures: (terms found → start offsets, token starts) → matches


def compile_tree(node: Node) -> Check:
    """The boolean tree as closures, so that matching an item does no isinstance dispatch; an OR of plain words
    (the list form's 地域词/主体词/事件词) is one set test."""
    if isinstance(node, Term):
        text = node.text.lower()
        return lambda found, _starts: text in found
    if isinstance(node, Or) and all(isinstance(c, Term) for c in node.children):
        words = frozenset(c.text.lower() for c in node.children)
        return lambda found, _starts: not words.isdisjoint(found)
    if isinstance(node, Or):
        parts = [compile_tree(c) for c in node.children]
        return lambda found, starts: any(p(found, starts) for p in parts)
    if isinstance(node, And):
        parts = [compile_tree(c) for c in node.children]
        if len(parts) == 2:  # the list form's region AND subject (AND event): no generator per item
            a, b = parts
            return lambda found, starts: a(found, starts) and b(found, starts)
        if len(parts) == 3:
            a, b, c = parts
            return lambda found, starts: a(found, starts) and b(found, starts) and c(found, starts)
        return lambda found, starts: all(p(found, starts) for p in parts)
    if isinstance(node, Not):
        inner = compile_tree(node.child)
        return lambda found, starts: not inner(found, starts)
    return lambda found, starts: _evaluate(node, found, starts)


def _terms_node(words: Sequence[str], loc: list[Any]) -> Node | None:
    terms = []
    for j, word in enumerate(words):
        word = (word or "").strip()
        if not word:
            raise SchemeError(f"{'.'.join(map(str, loc))}[{j}]: empty word", errors=[{"loc": [*loc, j], "msg": "empty word"}])
        terms.append(Term(word))
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else Or(tuple(terms))


def _all_terms(node: Node) -> set[str]:
    if isinstance(node, Term):
        return {node.text.lower()}
    if isinstance(node, Near):
        return {node.left.text.lower(), node.right.text.lower()}
    if isinstance(node, Not):
        return _all_terms(node.child)
    return set().union(*(_all_terms(c) for c in node.children))


def compile_scheme(spec: SchemeSpec, loc: list[Any] | None = None) -> CompiledScheme:
    """Validate and build one scheme's tree; errors name the field and, for expressions, the position."""
    loc = loc or ["schemes", spec.name]
    parts: list[Node] = []
    for field in ("region", "subject", "event"):
        node = _terms_node(getattr(spec, field), [*loc, field])
        if node is not None:
            parts.append(node)
    if spec.expression:
        try:
            parts.append(parse_query(spec.expression))
        except QuerySyntaxError as exc:
            where = ".".join(map(str, [*loc, "expression"]))
            raise SchemeError(f"{where}: {exc.message}",
                              errors=[{"loc": [*loc, "expression"], "msg": exc.message, "position": exc.position}]) from exc
    exclude = _terms_node(spec.exclude, [*loc, "exclude"])
    if not parts:
        raise SchemeError(f"{'.'.join(map(str, loc))}: a scheme needs region, subject or event words, or an expression",
                          errors=[{"loc": loc, "msg": "no positive condition"}])
    if exclude is not None:
        parts.append(Not(exclude))
    tree = parts[0] if len(parts) == 1 else And(tuple(parts))
    if not has_positive(tree) or not positive_terms(tree):
        raise SchemeError(f"{'.'.join(map(str, loc))}: the scheme only excludes; it can never match",
                          errors=[{"loc": loc, "msg": "only exclusions"}])
    return CompiledScheme(spec.name, tree, frozenset(_all_terms(tree)), compile_tree(tree))


def load_specs(path: Path) -> list[SchemeSpec]:
    """Scheme specs from a YAML list; a bad entry is a ConfigError naming the file, entry and field."""
    try:
        data = yamlfile.safe_load(path.read_text(encoding="utf-8")) or []
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read schemes: {exc}") from exc
    if not isinstance(data, list):
        raise ConfigError(f"{path}: schemes must be a list")
    specs = []
    for i, entry in enumerate(data):
        try:
            specs.append(SchemeSpec.model_validate(entry))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{path}: scheme {i}: {field}: {first['msg']}") from exc
    return specs


def _token_starts(text: str, tokens: Sequence[str]) -> list[int]:
    starts, pos = [], 0
    for tok in tokens:
        found = text.find(tok.lower(), pos)
        if found < 0:
            starts.append(pos)
            continue
        starts.append(found)
        pos = found + len(tok)
    return starts


class SchemeMatcher:
    """All schemes compiled into one automaton; `match(text, tokens)` returns the names of matching schemes."""

    def __init__(self, specs: Iterable[SchemeSpec]) -> None:
        self.schemes: list[CompiledScheme] = []
        seen: set[str] = set()
        for i, spec in enumerate(specs):
            if spec.name in seen:
                raise SchemeError(f"schemes[{i}].name: duplicate scheme name {spec.name!r}",
                                  errors=[{"loc": ["schemes", i, "name"], "msg": "duplicate name"}])
            seen.add(spec.name)
            self.schemes.append(compile_scheme(spec, ["schemes", i]))
        self._by_term: dict[str, list[int]] = {}
        for index, scheme in enumerate(self.schemes):
            for term in scheme.terms:
                self._by_term.setdefault(term, []).append(index)
        # Only for a text matched without the stage's shared scan (`analysis.termscan`), with the same matcher.
        self._scanner: TermScanner | None = None

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.schemes]

    def hits(self, text: str) -> dict[str, list[int]]:
        """Start offsets of every scheme term in the lower-cased text."""
        if not self._by_term or not text:
            return {}
        if self._scanner is None:
            self._scanner = TermScanner(scheme_terms=self._by_term)
        return self._scanner.scan(text).scheme

    @property
    def terms(self) -> list[str]:
        """Every lower-cased term of every scheme (for a shared automaton, see `analysis.termscan`)."""
        return list(self._by_term)

    def match(self, text: str, tokens: Sequence[str] | Callable[[], Sequence[str]] = ()) -> list[str]:
        return self.match_found(self.hits(text), text, tokens)

    def match_found(self, found: dict[str, list[int]], text: str | Callable[[], str],
                    tokens: Sequence[str] | Callable[[], Sequence[str]] = ()) -> list[str]:
        """Schemes matching, given the start offsets of scheme terms already found in the lower-cased text. `text`
        may be a callable (the stage's: an item's text is built from its title and content), called only when a
        proximity operator needs word positions."""
        if not found:
            return []
        by_term = self._by_term
        candidates = {i for term in found for i in by_term.get(term, ())}
        if not candidates:
            return []
        cache: dict[str, list[int]] = {}

        def token_starts() -> list[int]:
            if "s" not in cache:
                toks = tokens() if callable(tokens) else tokens
                cache["s"] = _token_starts((text() if callable(text) else text)[:_MAX_SCAN].lower(), toks)
            return cache["s"]

        schemes = self.schemes
        return [schemes[i].name for i in sorted(candidates) if schemes[i].check(found, token_starts)]


def _word_index(starts: list[int], offset: int) -> int:
    from bisect import bisect_right

    return max(0, bisect_right(starts, offset) - 1)


def _evaluate(node: Node, found: dict[str, list[int]], token_starts: Callable[[], list[int]]) -> bool:
    if isinstance(node, Term):
        return node.text.lower() in found
    if isinstance(node, And):
        return all(_evaluate(c, found, token_starts) for c in node.children)
    if isinstance(node, Or):
        return any(_evaluate(c, found, token_starts) for c in node.children)
    if isinstance(node, Not):
        return not _evaluate(node.child, found, token_starts)
    left, right = found.get(node.left.text.lower()), found.get(node.right.text.lower())
    if not left or not right:
        return False
    starts = token_starts()
    lw = [_word_index(starts, o) for o in left]
    rw = [_word_index(starts, o) for o in right]
    return any(abs(a - b) <= node.distance for a in lw for b in rw)


class SchemeStage:
    """Fills enrichment.schemes with the names of matching schemes (the store indexes them for `scheme=`).

    With `hits_of` (the shared automaton's scheme hits of an item, or None) no text is scanned here."""

    name = "schemes"

    def __init__(self, matcher: SchemeMatcher, tokens_of: Callable[[Batch, Any], list[str]],
                 hits_of: Callable[[Batch], list[dict[str, list[int]] | None]] | None = None) -> None:
        self.matcher = matcher
        self.tokens_of = tokens_of
        self.hits_of = hits_of

    def run(self, batch: Batch) -> None:
        matcher = self.matcher
        found_all = self.hits_of(batch) if self.hits_of is not None else [None] * len(batch.items)
        for item, found in zip(batch.items, found_all, strict=True):
            if found is None:
                schemes = matcher.match(item.text, lambda it=item: self.tokens_of(batch, it))
            elif found:  # the text only when a proximity operator needs it
                schemes = matcher.match_found(found, lambda it=item: it.text, lambda it=item: self.tokens_of(batch, it))
            else:
                schemes = []
            # one plain field, read off the model's dict (no __getattr__ hook) and set as pydantic's own __setattr__
            # sets it (no validate_assignment)
            e = item.__dict__["enrichment"]
            e.__dict__["schemes"] = schemes
            e.__pydantic_fields_set__.add("schemes")


def dry_run(store: ItemReads, spec: SchemeSpec, since: datetime, until: datetime, examples: int = 10) -> dict[str, Any]:
    """How many stored items published in [since, until) the scheme would have matched, with a few example ids."""
    from nlp.tokenize import segment

    if until <= since:
        raise InputError("until must be after since", errors=[{"loc": ["until"], "msg": "until must be after since"}])
    matcher = SchemeMatcher([spec])
    scanned = matched = 0
    example_ids: list[int] = []
    for batch in store.scan_texts(since, until):
        for row in batch:
            scanned += 1
            text = f"{row.title}\n{row.content}" if row.title else row.content
            if matcher.match(text, lambda t=text: segment(t)):
                matched += 1
                if len(example_ids) < examples:
                    example_ids.append(row.item_id)
    return {"scheme": spec.name, "matched": matched, "scanned": scanned, "since": since.isoformat(),
            "until": until.isoformat(), "example_ids": example_ids}
