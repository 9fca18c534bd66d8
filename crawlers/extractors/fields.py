"""Config-driven field extraction: a selector (CSS, or XPath with `xpath:`), an optional regex, a join."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from parsel import Selector, SelectorList

from core.config_crawl import FieldRule
from core.errors import ExtractionError


class ConfigProblem(ExtractionError):
    """A selector, XPath or regex of the source's configuration cannot run: the source is misconfigured (failing),
    which is not the same as a page that lacks a field (config load normally catches these first)."""


def as_rule(rule: str | dict[str, Any] | FieldRule) -> FieldRule:
    if isinstance(rule, FieldRule):
        return rule
    if isinstance(rule, str):  # checked when it runs (select), so a bad one is a ConfigProblem, not a crash
        return FieldRule.model_construct(select=rule, regex=None, join="\n", attr=None)
    return FieldRule.model_validate(rule)


def select(node: Selector, expression: str) -> SelectorList:
    """Run a CSS or `xpath:` selector; a bad selector is a configuration problem, reported as such."""
    try:
        if expression.startswith("xpath:"):
            return node.xpath(expression[6:])
        return node.css(expression)
    except Exception as exc:  # noqa: BLE001 - parsel raises several types for bad expressions
        raise ConfigProblem(f"bad selector {expression!r}: {exc}") from exc


# Elements that start a new line of text; everything else (span, a, em, b, font, label...) runs on within its line.
BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset", "figcaption", "figure",
    "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre",
    "section", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
})
SKIPPED_TAGS = frozenset({"script", "style", "noscript", "template"})


def element_text(element: Any) -> str:
    """An element's text as a reader sees it: block elements (p, div, li, tr, td, br...) start a new line, inline
    ones (span, a, em, label...) run on, so `<p><span>来信日期：</span>2024-01-04</p>` is one line
    `来信日期：2024-01-04`; each line is trimmed and empty lines dropped."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        tag = node.tag if isinstance(node.tag, str) else ""  # comments and processing instructions have no str tag
        tag = tag.rsplit("}", 1)[-1].lower()
        if tag in SKIPPED_TAGS or not tag:
            return
        block = tag in BLOCK_TAGS
        if block:
            parts.append("\n")
        if node.text:
            parts.append(node.text)
        for child in node:
            walk(child)
            if child.tail:
                parts.append(child.tail)
        if block:
            parts.append("\n")

    walk(element)
    lines = ("".join(parts)).split("\n")
    return "\n".join(" ".join(line.split()) for line in lines if line.strip())


def _text_of(found: SelectorList, expression: str, attr: str | None) -> list[str]:
    if attr:
        return [v for v in (s.attrib.get(attr) for s in found) if v]
    out = []
    for node in found:
        if isinstance(node.root, str):  # ::text, ::attr(), text() or @attr results are values already
            out.append(node.root)
        else:  # an element means "its text", nested elements included, line by line (see element_text)
            out.append(element_text(node.root))
    return out


def extract_field(node: Selector, rule: str | FieldRule) -> str | None:
    """The value one rule picks from a node, whitespace-trimmed; None when nothing matched.

    Several matched elements are joined with `join` ("\\n") before the regex (searched with DOTALL) sees them."""
    rule = as_rule(rule)
    parts = [p.strip() for p in _text_of(select(node, rule.select), rule.select, rule.attr)]
    value = rule.join.join(p for p in parts if p)
    if rule.regex:
        try:
            m = re.search(rule.regex, value, re.S)
        except re.error as exc:
            raise ConfigProblem(f"bad regex {rule.regex!r}: {exc}") from exc
        if not m:
            return None
        value = (m.group(1) if m.groups() else m.group(0)).strip()
    return value or None


def extract_first(node: Selector, expression: str) -> str | None:
    """The first value a selector picks (a link: nested markup on broken pages must not merge several)."""
    values = [v.strip() for v in _text_of(select(node, expression), expression, None) if v and v.strip()]
    return values[0] if values else None


def extract_fields(node: Selector, rules: dict[str, str | FieldRule]) -> dict[str, str]:
    out = {}
    for name, rule in rules.items():
        value = extract_field(node, rule)
        if value is not None:
            out[name] = value
    return out


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Turn dotted keys (`reply.text`) into nested objects, as item payloads expect."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def apply_date_format(values: dict[str, Any], date_format: str | None) -> dict[str, Any]:
    """Parse time fields with the site's strptime format into ISO text (the normaliser adds the zone)."""
    if not date_format:
        return values
    for key in ("published_at", "reply.replied_at"):
        if values.get(key):
            try:
                values[key] = datetime.strptime(values[key], date_format).isoformat()
            except ValueError as exc:
                raise ExtractionError(f"{key} {values[key]!r} does not match date_format {date_format!r}") from exc
    return values
