"""A small boolean query language shared by full-text search and monitoring schemes.

Grammar (case-insensitive operators; full-width punctuation accepted):
    expr   := orexp
    orexp  := andexp (("OR" | "|") andexp)*
    andexp := unary (("AND" | "&" | "+")? unary)*      -- adjacency means AND
    unary  := ("NOT" | "!" | "-") unary | near
    near   := primary ("NEAR/" N primary)?             -- both sides terms, within N words
    primary:= "(" expr ")" | '"phrase"' | word
Parsed once into an immutable tree; storage compiles it to FTS5, schemes match it against token positions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import QuerySyntaxError

_FULLWIDTH = str.maketrans({"（": "(", "）": ")", "“": '"', "”": '"', "＂": '"', "｜": "|", "＆": "&", "！": "!"})


@dataclass(frozen=True)
class Term:
    text: str


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class Near:
    left: Term
    right: Term
    distance: int


Node = Term | And | Or | Not | Near

_TOKEN = re.compile(
    r'\s*(?:(?P<lp>\()|(?P<rp>\))|"(?P<phrase>[^"]*)(?P<close>"?)|(?P<near>NEAR/(?P<n>\d+))'
    r'|(?P<op>&&|\|\||[&|+!])|(?P<word>[^\s()"&|+!]+))',
    re.IGNORECASE,
)


@dataclass
class _Tok:
    kind: str
    value: str
    pos: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise QuerySyntaxError(f"unexpected character {text[pos]!r} at position {pos}", position=pos)
        start = m.start() + (len(m.group(0)) - len(m.group(0).lstrip()))
        if m.group("lp"):
            out.append(_Tok("(", "(", start))
        elif m.group("rp"):
            out.append(_Tok(")", ")", start))
        elif m.group("phrase") is not None:
            if not m.group("close"):
                raise QuerySyntaxError(f"unclosed quote at position {start}", position=start)
            out.append(_Tok("term", m.group("phrase"), start))
        elif m.group("near"):
            out.append(_Tok("near", m.group("n"), start))
        elif m.group("op"):
            op = m.group("op")
            kind = {"&": "and", "&&": "and", "+": "and", "|": "or", "||": "or", "!": "not"}[op]
            out.append(_Tok(kind, op, start))
        else:
            word = m.group("word")
            upper = word.upper()
            if upper in ("AND", "OR", "NOT"):
                out.append(_Tok(upper.lower(), word, start))
            elif word.startswith("-") and len(word) > 1:
                out.append(_Tok("not", "-", start))
                out.append(_Tok("term", word[1:], start + 1))
            else:
                out.append(_Tok("term", word, start))
        pos = m.end()
    return out


# Deepest nesting of parentheses and NOTs a query may have: the parser and every walk over the tree recurse, and a
# hostile `q` of thousands of "(" must be a 400 with a position, not a RecursionError.
MAX_DEPTH = 32


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0

    def nest(self, tok: _Tok) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QuerySyntaxError(f"query nested deeper than {MAX_DEPTH} levels at position {tok.pos}", position=tok.pos)

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def fail(self, what: str) -> QuerySyntaxError:
        tok = self.peek()
        if tok is None:
            return QuerySyntaxError(f"{what} at end of query", position=len(self.text))
        return QuerySyntaxError(f"{what}, found {tok.value!r} at position {tok.pos}", position=tok.pos)

    def parse(self) -> Node:
        if not self.toks:
            raise QuerySyntaxError("empty query", position=0)
        node = self.orexp()
        if self.peek() is not None:
            raise self.fail("unexpected token")
        return node

    def orexp(self) -> Node:
        parts = [self.andexp()]
        while (tok := self.peek()) and tok.kind == "or":
            self.take()
            parts.append(self.andexp())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def andexp(self) -> Node:
        parts = [self.unary()]
        while (tok := self.peek()) and tok.kind in ("and", "not", "term", "("):
            if tok.kind == "and":
                self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def unary(self) -> Node:
        tok = self.peek()
        if tok and tok.kind == "not":
            self.nest(self.take())
            node = Not(self.unary())
            self.depth -= 1
            return node
        return self.near()

    def near(self) -> Node:
        left = self.primary()
        tok = self.peek()
        if tok and tok.kind == "near":
            self.take()
            right = self.primary()
            if not isinstance(left, Term) or not isinstance(right, Term):
                raise QuerySyntaxError(f"NEAR/{tok.value} joins two words or phrases", position=tok.pos)
            return Near(left, right, int(tok.value))
        return left

    def primary(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise self.fail("expected a word, phrase or '('")
        if tok.kind == "(":
            self.nest(self.take())
            node = self.orexp()
            if not (close := self.peek()) or close.kind != ")":
                raise self.fail("expected ')'")
            self.take()
            self.depth -= 1
            return node
        if tok.kind == "term":
            self.take()
            if not tok.value.strip():
                raise QuerySyntaxError(f"empty phrase at position {tok.pos}", position=tok.pos)
            return Term(tok.value.strip())
        raise self.fail("expected a word, phrase or '('")


def parse_query(text: str) -> Node:
    """Parse a boolean query; raises QuerySyntaxError with the position of the problem."""
    return _Parser(text.translate(_FULLWIDTH)).parse()


def positive_terms(node: Node) -> list[Term]:
    """Terms that must or may appear (not under NOT), e.g. for highlighting."""
    if isinstance(node, Term):
        return [node]
    if isinstance(node, Near):
        return [node.left, node.right]
    if isinstance(node, And | Or):
        return [t for c in node.children for t in positive_terms(c)]
    return []


def has_positive(node: Node) -> bool:
    """True when the query can match something on its own (not only exclusions)."""
    if isinstance(node, Term | Near):
        return True
    if isinstance(node, Not):
        return False
    if isinstance(node, And):
        return any(has_positive(c) for c in node.children)
    return all(has_positive(c) for c in node.children)
