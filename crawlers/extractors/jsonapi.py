"""JSON API responses → item payloads, by the JMESPath expressions of a `json_api` source."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from core.errors import ExtractionError


@lru_cache(maxsize=512)
def compiled(expression: str) -> ParsedResult:
    """JMESPath compiled once per process (the config load already proved it compiles)."""
    return jmespath.compile(expression)


def search(expression: str, data: Any) -> Any:
    """The value at `expression`; a runtime type error (e.g. `length` of a number) is an ExtractionError."""
    try:
        return compiled(expression).search(data)
    except JMESPathError as exc:
        raise ExtractionError(f"JMESPath {expression!r} failed on this response: {exc}") from exc


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ExtractionError(f"{what} is not valid JSON: {exc}") from exc


def scalar(value: Any) -> Any:
    """A field value as the item payload wants it: text trimmed, a list of texts joined by lines, empty as None.

    Numbers stay numbers (likes, Unix times); an object is kept as it is (it lands in `extra`)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, list):
        parts = [str(v).strip() for v in value if v not in (None, "") and not isinstance(v, dict | list)]
        return "\n".join(p for p in parts if p) or None
    return value


def read_fields(fields: dict[str, str], *records: Any) -> dict[str, Any]:
    """Each field from the first record (detail, then list entry) where its expression finds a value."""
    out: dict[str, Any] = {}
    for name, expression in fields.items():
        for record in records:
            if record is None:
                continue
            value = scalar(search(expression, record))
            if value is not None:
                out[name] = value
                break
    return out
