"""An item as one `items` row, each fact stored once: the columns carry what is filtered, sorted or shown in a list;
the `doc` column carries only the rest (reply, extra, the other engagement counts and enrichment fields), without
the fields at their defaults.

Before schema core v7 the document repeated the text and every column (about a third of the database at a million
items). `item_from_row` reads either shape: columns win over what an old document still repeats.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Column

from core.models import Item
from storage import schema

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


def item_doc(item: Item) -> str:
    """The part of an item no column holds, as JSON (fields at their defaults omitted: rebuilding restores them)."""
    return item.model_dump_json(exclude=DOC_EXCLUDE, exclude_defaults=True)


def item_fact_values(item: Item) -> dict[str, Any]:
    """The fact columns of an item's row (FACT_COLUMNS, `doc` included)."""
    e = item.enrichment
    return {
        "source": item.source, "channel": item.channel.value, "source_id": item.source_id, "url": item.url,
        "title": item.title, "content": item.content, "author": item.author,
        "published_at": item.published_at.isoformat(), "fetched_at": item.fetched_at.isoformat(), "region": item.region,
        "likes": item.engagement.likes, "reposts": item.engagement.reposts, "comments": item.engagement.comments,
        "topic": e.topic, "emotion": e.emotion, "polarity": e.polarity, "risk_score": e.risk_score,
        "risk_level": e.risk_level, "event_id": e.event_id, "doc": item_doc(item),
    }


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
