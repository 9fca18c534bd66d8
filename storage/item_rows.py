"""An item as one `items` row, each fact stored once: the columns carry what is filtered, sorted or shown in a list;
the `doc` column carries only the rest (reply, extra, the other engagement counts and enrichment fields), without
the fields at their defaults.

Before schema core v7 the document repeated the text and every column (about a third of the database at a million
items). `item_from_row` reads either shape: columns win over what an old document still repeats.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic_core import to_json
from sqlalchemy import Column

from core.models import Channel, Engagement, Enrichment, Item, Reply, RiskReason
from storage import schema
from storage.base import item_json

T = schema.items.c
ITEM_COLUMNS = ("source", "channel", "source_id", "url", "title", "content", "author", "published_at", "fetched_at",
                "region")
ENGAGEMENT_COLUMNS = ("likes", "reposts", "comments")
ENRICHMENT_COLUMNS = ("topic", "emotion", "polarity", "risk_score", "risk_level", "event_id")
# Every column an item is rebuilt from, and the ones compared to tell an unchanged re-import (the derived sort keys,
# hashes and bookkeeping times are left out).
FACT_COLUMNS = (*ITEM_COLUMNS, *ENGAGEMENT_COLUMNS, *ENRICHMENT_COLUMNS, "doc")
READ_COLUMNS: tuple[Column, ...] = (T.id, *(getattr(T, name) for name in FACT_COLUMNS))
# What `doc` leaves out, as a pydantic exclude specification.
DOC_EXCLUDE: dict[str, Any] = {**{name: True for name in ("id", *ITEM_COLUMNS)},
                               "engagement": set(ENGAGEMENT_COLUMNS), "enrichment": set(ENRICHMENT_COLUMNS)}


_DOC_ENGAGEMENT_EXCLUDE = frozenset(ENGAGEMENT_COLUMNS)
_DOC_ENRICHMENT_EXCLUDE = frozenset(ENRICHMENT_COLUMNS)
_DOC_ENGAGEMENT = tuple(name for name in Engagement.model_fields if name not in _DOC_ENGAGEMENT_EXCLUDE)  # no column
_DEFAULT_ENRICHMENT = Enrichment().__dict__


def item_doc(item: Item) -> str:
    """The part of an item no column holds, as JSON (fields at their defaults omitted: rebuilding restores them).

    What `item.model_dump_json(exclude=DOC_EXCLUDE, exclude_defaults=True)` writes, byte for byte (a test compares
    the two on odd items), at about a third of its cost: the parts that differ from their defaults are gathered as
    plain values (dicts, lists, strings, floats) and written by one call of pydantic-core's JSON writer, which writes
    them as the models' serializers do. Values of a type other than the one declared (a float field given an int by
    assignment, a model subclass) go through the models' serializers (`_doc_by_models`)."""
    fields = item.__dict__
    doc: dict[str, Any] = {}
    counts = fields["engagement"].__dict__
    if any(counts.values()):  # every count defaults to 0
        part = {name: counts[name] for name in _DOC_ENGAGEMENT if counts[name]}
        if any(type(count) is not int for count in part.values()):
            return _doc_by_models(item)
        doc["engagement"] = part
    reply = fields["reply"]
    if reply is not None:
        if type(reply) is not Reply:
            return _doc_by_models(item)
        values = reply.__dict__
        part = {"text": values["text"]}
        if values["department"] is not None:
            part["department"] = values["department"]
        if values["replied_at"] is not None:
            if type(values["replied_at"]) is not datetime:
                return _doc_by_models(item)
            part["replied_at"] = values["replied_at"]
        doc["reply"] = part
    if fields["extra"]:
        doc["extra"] = fields["extra"]
    enrichment = fields["enrichment"]
    values = enrichment.__dict__
    if values != _DEFAULT_ENRICHMENT:
        if type(enrichment) is not Enrichment:
            return _doc_by_models(item)
        part = {}
        for name in _SCORES:
            score = values[name]
            if score is not None:
                if type(score) is not float:
                    return _doc_by_models(item)
                part[name] = score
        reasons = values["risk_reasons"]
        if reasons:
            written = []
            for reason in reasons:
                # A reason the scorer shares among items (analysis.risk: never mutated once made) is written once:
                # its dict is kept beside it, found by identity (the entry holds the reason, so its id is not reused).
                # Most of an item's reasons are shared (emotion, polarity, channel, reply): 2,500 docs 208.7 → 180.0 M
                # instructions (callgrind).
                known = _REASON_DOCS.get(id(reason))
                if known is not None and known[0] is reason:
                    written.append(known[1])
                    continue
                if type(reason) is not RiskReason:
                    return _doc_by_models(item)
                r = reason.__dict__
                if type(r["weight"]) is not float:
                    return _doc_by_models(item)
                one = {"feature": r["feature"], "weight": r["weight"]}
                if r["detail"] != "":
                    one["detail"] = r["detail"]
                if r["evidence"] is not None:
                    one["evidence"] = r["evidence"]
                if r["span"] is not None:
                    one["span"] = r["span"]
                elif r["evidence"] is None:  # no span, no evidence: a shared kind (a term's reason is its item's own)
                    if len(_REASON_DOCS) >= _REASON_DOCS_MAX:
                        _REASON_DOCS.clear()
                    _REASON_DOCS[id(reason)] = (reason, one)
                written.append(one)
            part["risk_reasons"] = written
        for name in _COLLECTIONS:
            if values[name]:
                part[name] = values[name]
        near = values["near_duplicate_of"]
        if near is not None:
            if type(near) is not int:
                return _doc_by_models(item)
            part["near_duplicate_of"] = near
        doc["enrichment"] = part
    return to_json(doc, inf_nan_mode="null").decode() if doc else "{}"


_SCORES = ("topic_score", "emotion_score", "polarity_score")
# id(reason) → (reason, its part of the doc) for reasons without evidence, the kinds the risk scorer shares
_REASON_DOCS: dict[int, tuple[RiskReason, dict[str, Any]]] = {}
_REASON_DOCS_MAX = 8192
_COLLECTIONS = ("keywords", "entities", "schemes")


def _doc_by_models(item: Item) -> str:
    """`item_doc` with each part written by its own model's serializer (for values of undeclared types)."""
    fields = item.__dict__
    parts = []
    engagement = fields["engagement"]
    counts = engagement.__dict__
    if any(counts.values()):  # every count defaults to 0
        parts.append(b'"engagement":' + engagement.__pydantic_serializer__.to_json(
            engagement, exclude=_DOC_ENGAGEMENT_EXCLUDE, exclude_defaults=True))
    reply = fields["reply"]
    if reply is not None:
        parts.append(b'"reply":' + reply.__pydantic_serializer__.to_json(reply, exclude_defaults=True))
    if fields["extra"]:
        parts.append(b'"extra":' + to_json(fields["extra"], inf_nan_mode="null"))  # as the model writes them
    enrichment = fields["enrichment"]
    if enrichment.__dict__ != _DEFAULT_ENRICHMENT:
        parts.append(b'"enrichment":' + enrichment.__pydantic_serializer__.to_json(
            enrichment, exclude=_DOC_ENRICHMENT_EXCLUDE, exclude_defaults=True))
    return (b"{" + b",".join(parts) + b"}").decode()


def item_fact_values(item: Item) -> dict[str, Any]:
    """The fact columns of an item's row (FACT_COLUMNS, `doc` included), as a new dict (callers add to it)."""
    values = item_row_values(item, "")
    return {name: values[i] for name, i in FACT_POSITIONS}


_CHANNEL_VALUES: dict[Channel, str] = {channel: channel.value for channel in Channel}

# Every column of `items` but the id, in the table's order: the values `item_row_values` gives, in that order.
ROW_COLUMNS = ("published_ts", "risk_rank", "source", "channel", "topic", "risk_level", "emotion", "region", "event_id",
               "risk_score", "polarity", "likes", "reposts", "comments", "has_reply", "source_id", "content_hash",
               "signature", "published_at", "fetched_at", "created_at", "updated_at", "author", "url", "title", "content",
               "doc")
if tuple(c.name for c in schema.items.columns if c.name != "id") != ROW_COLUMNS:  # a new column must be added here
    raise RuntimeError("storage.item_rows.ROW_COLUMNS is not the items table's columns in order")
# (fact column, its position in a row of ROW_COLUMNS) for comparing a stored row with a new one
FACT_POSITIONS = tuple((name, ROW_COLUMNS.index(name)) for name in FACT_COLUMNS)
HASH_POSITION = ROW_COLUMNS.index("content_hash")
TS_POSITION = ROW_COLUMNS.index("published_ts")


def item_row_values(item: Item, now: str, published_ts: float | None = None) -> tuple[Any, ...]:
    """An item's `items` row but its id, as values in ROW_COLUMNS order, `now` its created and updated time: what
    `item_fact_values` gives, and the derived sort keys, hashes and times, built as the tuple the driver takes.

    Why: every stored item had its row built as a dict of 26 keys, completed key by key, that the insert then read
    back in column order (`storage.dialect.insert_many`); the tuple is what the driver takes (`storage.dialect.insert_values`).
    With `item_doc`'s shared reasons written once: `SqliteStore.upsert` of 2,500 pool-enriched items (callgrind,
    bench_import's writer batches replayed) 955.8 → 908.9 M instructions, −19k an item. `published_ts`: the item's
    `published_at.timestamp()` when the caller has it (`Batch.published_timestamps`)."""
    fields = item.__dict__
    counts = fields["engagement"].__dict__
    e = fields["enrichment"].__dict__
    channel = fields["channel"]
    risk_score = e["risk_score"]
    published_at = fields["published_at"]
    if published_ts is None:
        published_ts = published_at.timestamp()
    return (
        published_ts, schema.UNSCORED_RISK if risk_score is None else risk_score, fields["source"],
        channel._value_ if type(channel) is Channel else _CHANNEL_VALUES.get(channel) or channel.value,
        e["topic"], e["risk_level"], e["emotion"],
        fields["region"], e["event_id"], risk_score, e["polarity"], counts["likes"], counts["reposts"],
        counts["comments"], int(fields["reply"] is not None), fields["source_id"], item.content_hash, item.signature,
        published_at.isoformat(), fields["fetched_at"].isoformat(), now, now, fields["author"], fields["url"],
        fields["title"], fields["content"], item_doc(item),
    )


def item_from_row(row: Mapping[str, Any] | Any) -> Item:
    """The item a row (with READ_COLUMNS) stores; `row` is a SQLAlchemy Row or a mapping."""
    values = row._mapping if hasattr(row, "_mapping") else row
    data: dict[str, Any] = json.loads(values["doc"]) if values["doc"] else {}
    for name in ITEM_COLUMNS:
        data[name] = values[name]
    engagement = data.setdefault("engagement", {})
    for name in ENGAGEMENT_COLUMNS:
        engagement[name] = values[name]
    enrichment = data.setdefault("enrichment", {})
    for name in ENRICHMENT_COLUMNS:
        enrichment[name] = values[name]
    data["id"] = values["id"]
    return Item.model_validate(data)


# ---- an item's JSON straight from its row ---------------------------------------------------------------------------
# `item_json_from_row` writes what `item_from_row(row).model_dump_json()` writes, byte for byte, without validating
# the model: the values are put in the models' field order with their defaults and written by pydantic-core's own
# JSON writer (its string escapes and float forms, NaN as null). It vouches only for what it checks — strings where
# the models have strings, ints for counts, numbers for scores (written as floats), times in ISO form with seconds
# and an offset other than +00:00 (the model writes that one as Z), a channel it knows, no key the models lack — and
# anything else goes through the model (tests/storage/test_item_json.py compares both on odd values).
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?(?:[+-](?!00:00)\d\d:\d\d|Z)\Z")
_CHANNELS = frozenset(c.value for c in Channel)
_REPLY_KEYS = frozenset(("text", "department", "replied_at"))
_REASON_KEYS = frozenset(("feature", "weight", "detail", "evidence", "span"))
_DOC_KEYS = frozenset(("engagement", "enrichment", "reply", "extra"))
_DOC_ENGAGEMENT_KEYS = frozenset(_DOC_ENGAGEMENT)
_DOC_ENRICHMENT = frozenset(("topic_score", "emotion_score", "polarity_score", "risk_reasons", "keywords", "entities",
                             "schemes", "near_duplicate_of"))
_TEXTS = ("source", "source_id", "title", "content")
_OPTIONAL_TEXTS = ("url", "author", "region", "topic", "emotion", "polarity", "risk_level", "event_id")


class _Unsure(Exception):
    """A value this encoder does not vouch for: the item goes through the model."""


def _check(ok: bool) -> None:
    if not ok:
        raise _Unsure


def _float(value: Any) -> float | None:
    if value is None:
        return None
    _check(type(value) in (float, int))
    return float(value)


def _count(value: Any) -> int:
    _check(type(value) is int and 0 <= value < 2**63)
    return value


def _time(value: Any) -> bool:
    return isinstance(value, str) and _TIME.match(value) is not None


def _strings(value: Any) -> list[str]:
    _check(type(value) is list and all(type(v) is str for v in value))
    return value


def _reason(value: Any) -> dict[str, Any]:
    _check(type(value) is dict and value.keys() <= _REASON_KEYS and "feature" in value and "weight" in value)
    detail, evidence, span = value.get("detail", ""), value.get("evidence"), value.get("span")
    _check(type(value["feature"]) is str and type(detail) is str and (evidence is None or type(evidence) is str))
    _check(span is None or (type(span) is list and len(span) == 2 and all(type(v) is int for v in span)))
    return {"feature": value["feature"], "weight": _float(value["weight"]), "detail": detail, "evidence": evidence,
            "span": span}


def _reply(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    _check(type(value) is dict and value.keys() <= _REPLY_KEYS and type(value.get("text")) is str)
    department, replied_at = value.get("department"), value.get("replied_at")
    _check((department is None or type(department) is str) and (replied_at is None or _time(replied_at)))
    return {"text": value["text"], "department": department, "replied_at": replied_at}


def _fast_item(values: Mapping[str, Any]) -> bytes:
    doc: Any = json.loads(values["doc"]) if values["doc"] else {}
    _check(type(doc) is dict and doc.keys() <= _DOC_KEYS)
    engagement, enrichment, extra = doc.get("engagement", {}), doc.get("enrichment", {}), doc.get("extra", {})
    _check(type(engagement) is dict and engagement.keys() <= _DOC_ENGAGEMENT_KEYS and type(extra) is dict
           and type(enrichment) is dict and enrichment.keys() <= _DOC_ENRICHMENT)
    _check(all(type(values[name]) is str for name in _TEXTS) and 0 < len(values["source"]) <= 100
           and 0 < len(values["source_id"]) <= 300 and values["channel"] in _CHANNELS)
    _check(all(values[name] is None or type(values[name]) is str for name in _OPTIONAL_TEXTS))
    _check(_time(values["published_at"]) and _time(values["fetched_at"]) and type(values["id"]) is int)
    entities, near = enrichment.get("entities", {}), enrichment.get("near_duplicate_of")
    _check(type(entities) is dict and (near is None or type(near) is int))
    reasons = enrichment.get("risk_reasons", [])
    _check(type(reasons) is list)
    item = {
        "id": values["id"], "source": values["source"], "channel": values["channel"], "source_id": values["source_id"],
        "url": values["url"], "title": values["title"], "content": values["content"], "author": values["author"],
        "published_at": values["published_at"], "fetched_at": values["fetched_at"], "region": values["region"],
        "engagement": {"likes": _count(values["likes"]), "dislikes": _count(engagement.get("dislikes", 0)),
                       "reposts": _count(values["reposts"]), "comments": _count(values["comments"]),
                       "reads": _count(engagement.get("reads", 0))},
        "reply": _reply(doc.get("reply")),
        "extra": extra,
        "enrichment": {
            "topic": values["topic"], "topic_score": _float(enrichment.get("topic_score")),
            "emotion": values["emotion"], "emotion_score": _float(enrichment.get("emotion_score")),
            "polarity": values["polarity"], "polarity_score": _float(enrichment.get("polarity_score")),
            "risk_score": _float(values["risk_score"]), "risk_level": values["risk_level"],
            "risk_reasons": [_reason(r) for r in reasons], "keywords": _strings(enrichment.get("keywords", [])),
            "entities": {k: _strings(v) for k, v in entities.items()},
            "schemes": _strings(enrichment.get("schemes", [])), "event_id": values["event_id"],
            "near_duplicate_of": near,
        },
    }
    return to_json(item, inf_nan_mode="null")


def item_json_from_row(row: Mapping[str, Any] | Any) -> bytes:
    """`item_json(item_from_row(row))`, written from the row where that gives the same bytes (the 50 items of a page
    are then not validated one by one), else through the model."""
    values = row._mapping if hasattr(row, "_mapping") else row
    try:
        return _fast_item(values)
    except (_Unsure, ValueError, KeyError):  # ValueError: a document that is not JSON
        return item_json(item_from_row(row))
