"""Config-driven field extraction: a selector (CSS, or XPath with `xpath:`), an optional regex, a join."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from parsel import Selector, SelectorList

from core.config_crawl import FieldRule
from core.errors import ExtractionError


def as_rule(rule: str | FieldRule) -> FieldRule:
    return FieldRule(select=rule) if isinstance(rule, str) else rule


def select(node: Selector, expression: str) -> SelectorList:
    """Run a CSS or `xpath:` selector; a bad selector is a configuration problem, reported as such."""
    try:
        if expression.startswith("xpath:"):
            return node.xpath(expression[6:])
        return node.css(expression)
    except Exception as exc:  # noqa: BLE001 - parsel raises several types for bad expressions
        raise ExtractionError(f"bad selector {expression!r}: {exc}") from exc


def _text_of(found: SelectorList, expression: str, attr: str | None) -> list[str]:
    if attr:
        return [v for v in (s.attrib.get(attr) for s in found) if v]
    out = []
    for node in found:
        if isinstance(node.root, str):  # ::text, ::attr(), text() or @attr results are values already
            out.append(node.root)
        else:  # an element means "its text", nested elements included, paragraph by paragraph
            out.append("\n".join(t.strip() for t in node.xpath(".//text()").getall() if t.strip()))
    return out


def extract_field(node: Selector, rule: str | FieldRule) -> str | None:
    """The value one rule picks from a node, whitespace-trimmed; None when nothing matched."""
    rule = as_rule(rule)
    parts = [p.strip() for p in _text_of(select(node, rule.select), rule.select, rule.attr)]
    value = rule.join.join(p for p in parts if p)
    if rule.regex:
        m = re.search(rule.regex, value, re.S)
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
