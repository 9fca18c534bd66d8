"""12345 work-order API records → item payloads, using the source's field map."""

from __future__ import annotations

import json
from typing import Any

from core.config_crawl import HotlineSpec
from core.errors import ExtractionError
from crawlers.extractors.fields import nest

REQUEST_TYPES = {"咨询": "consult", "求助": "help", "建议": "suggest", "投诉": "complain", "举报": "report"}


def dig(data: Any, path: str) -> Any:
    """`a.b.c` into nested dicts; None when a step is missing."""
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def parse_page(body: bytes | str, spec: HotlineSpec) -> list[dict[str, Any]]:
    """The records of one API page; malformed JSON or a missing record list is an ExtractionError."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ExtractionError(f"work-order API returned malformed JSON: {exc}") from exc
    records = dig(data, spec.records_path)
    if not isinstance(records, list):
        raise ExtractionError(f"work-order API response has no list at {spec.records_path!r}")
    return records


def work_order_payload(record: dict[str, Any], spec: HotlineSpec) -> dict[str, Any]:
    """One work order as an item payload: mapped fields, 诉求类型 as the English request type, the rest in extra."""
    flat = {field: dig(record, key) for field, key in spec.fields.items()}
    flat = {k: v for k, v in flat.items() if v not in (None, "")}
    if kind := flat.get("request_type"):
        flat["request_type"] = REQUEST_TYPES.get(str(kind).strip(), str(kind).strip())
    if "reply.text" not in flat:
        flat = {k: v for k, v in flat.items() if not k.startswith("reply.")}
    return nest(flat)
