"""The feed writes each item's JSON straight from its row (`item_json_from_row`); it must be the model's JSON byte
for byte, for ordinary rows through the fast path and for odd ones through the model."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from core.models import SHANGHAI, Engagement, Enrichment, Item, Reply, RiskReason
from storage.item_rows import (
    DOC_EXCLUDE,
    _fast_item,
    _Unsure,
    item_doc,
    item_fact_values,
    item_from_row,
    item_json_from_row,
)

ODD_TEXT = "".join(chr(c) for c in range(0x20)) + '"\\/\x7f\u2028\u2029中文😀 '


def _row(item: Item, item_id: int = 7, **changes: Any) -> dict[str, Any]:
    return {**item_fact_values(item), "id": item_id, **changes}


def _items() -> list[Item]:
    at = datetime(2026, 9, 1, 12, 30, 5, 123456, tzinfo=SHANGHAI)
    return [
        Item(source="s", channel="board", source_id="1", published_at=at, fetched_at=at),
        Item(source="s" * 100, channel="weibo", source_id="x" * 300, url="https://e.x/1?a=1&b=<2>", title=ODD_TEXT,
             content=ODD_TEXT * 3, author=ODD_TEXT, published_at=at.replace(microsecond=0),
             fetched_at=at.astimezone(timezone(timedelta(hours=-5, minutes=-30))), region="江城市雨花区",
             engagement=Engagement(likes=3, dislikes=2**40, reposts=0, comments=9, reads=12),
             reply=Reply(text=ODD_TEXT, department="住建局", replied_at=at.astimezone(UTC)),
             extra={"n": [1, 2.5, 1e-05, 1e16, 1e300, -0.0, float("nan"), float("inf"), 2**70, None, True],
                    "nested": {"k": ODD_TEXT, "": []}},
             enrichment=Enrichment(topic="城乡建设", topic_score=0.91, emotion="angry", emotion_score=1e-05,
                                   polarity="negative", polarity_score=-0.0, risk_score=80.0, risk_level="I",
                                   risk_reasons=[RiskReason(feature="kw", weight=12.5, detail=ODD_TEXT, evidence="停水",
                                                            span=(3, 5)), RiskReason(feature="e", weight=3)],
                                   keywords=["停水", ODD_TEXT], entities={"place": ["A市"], "org": []},
                                   schemes=["供水"], event_id="ev1", near_duplicate_of=12)),
        Item(source="s", channel="hotline", source_id="2", published_at=at.astimezone(UTC),  # +00:00: the model says Z
             fetched_at=at, enrichment=Enrichment(risk_score=1e-05)),
    ]


@pytest.mark.parametrize("index", range(3))
def test_rows_are_written_as_the_model_writes_them(index: int) -> None:
    row = _row(_items()[index])
    assert item_json_from_row(row) == item_from_row(row).model_dump_json().encode()


def test_ordinary_and_rich_rows_take_the_fast_path() -> None:
    ordinary, rich, utc = (_row(item) for item in _items())
    for row in (ordinary, rich):
        assert _fast_item(row) == item_from_row(row).model_dump_json().encode()
    with pytest.raises(_Unsure):  # +00:00 is written as Z by the model: left to it
        _fast_item(utc)


ODD_ROWS: list[dict[str, Any]] = [
    {"risk_score": 80},  # an int where the model has a float: written 80.0
    {"likes": True},
    {"channel": "fax"},  # the model refuses these; so must the feed
    {"source": ""},
    {"published_at": "2026-09-01 12:00:00"},
    {"doc": json.dumps({"engagement": {"reads": 1.0}})},
    {"doc": json.dumps({"enrichment": {"risk_reasons": [{"feature": "a", "weight": "3"}]}})},
    {"doc": json.dumps({"enrichment": {"unknown": 1}})},  # dropped by the model
    {"doc": json.dumps({"reply": {"text": "t", "replied_at": "2026-09-01T04:00:00+00:00"}})},
    {"doc": "not json"},
]


@pytest.mark.parametrize("changes", ODD_ROWS)
def test_odd_rows_go_through_the_model(changes: dict[str, Any]) -> None:
    row = _row(_items()[0], **changes)
    try:
        expected: bytes | type[Exception] = item_from_row(row).model_dump_json().encode()
    except ValueError as exc:  # pydantic's ValidationError, json's JSONDecodeError
        expected = type(exc)
    if isinstance(expected, bytes):
        assert item_json_from_row(row) == expected
    else:
        with pytest.raises(expected):
            item_json_from_row(row)


def _doc_cases() -> list[Item]:
    at = datetime(2026, 9, 1, 12, 30, 5, tzinfo=SHANGHAI)
    base = {"source": "s", "channel": "board", "source_id": "1", "published_at": at, "fetched_at": at}
    return [*_items(),
            Item(**base, engagement=Engagement()),  # every count 0, given: still the default
            Item(**base, engagement=Engagement(likes=1)),  # only a column's count: an empty engagement part
            Item(**base, engagement=Engagement(reads=5)),
            Item(**base, reply=Reply(text="")),  # a reply at its defaults but for its text
            Item(**base, extra={"when": at, "backfill": True, "t": (1, "二")}),
            Item(**base, enrichment=Enrichment(topic="交通", risk_score=3.0, event_id="e")),  # only columns
            Item(**base, enrichment=Enrichment(keywords=[], entities={}, near_duplicate_of=0)),
            Item(**base, enrichment=Enrichment(risk_reasons=[RiskReason(feature="f", weight=0.0, detail="")])),
            Item(**base, engagement=Engagement(likes=2, dislikes=1, reads=7),
                 reply=Reply(text="已办", department="住建局", replied_at=at),
                 enrichment=Enrichment(topic_score=0.5, polarity_score=-1e-7, schemes=["s"], entities={"places": ["A区"]},
                                       risk_reasons=[RiskReason(feature="term", weight=2.5, detail="d", evidence="e\"",
                                                                span=(3, 5))])),
            _assigned(Item(**base, enrichment=Enrichment(risk_reasons=[RiskReason(feature="f", weight=1.0)])),
                      lambda item: setattr(item.enrichment.risk_reasons[0], "weight", 3)),  # an int, unvalidated
            _assigned(Item(**base, enrichment=Enrichment(topic_score=0.5)),
                      lambda item: setattr(item.enrichment, "topic_score", 1))]


def _assigned(item: Item, change: Any) -> Item:
    """The item after an assignment that pydantic does not validate (a value of another type than declared)."""
    change(item)
    return item


@pytest.mark.parametrize("index", range(len(_doc_cases())))
def test_doc_is_what_the_model_writes_with_the_columns_and_defaults_left_out(index: int) -> None:
    item = _doc_cases()[index]
    assert item_doc(item) == item.model_dump_json(exclude=DOC_EXCLUDE, exclude_defaults=True)


@pytest.mark.parametrize("index", range(len(_doc_cases())))
def test_intake_signature_is_the_sha1_of_the_models_own_dump(index: int) -> None:
    """Stored signatures are compared with the next crawl's: the signature written from the field dicts must stay the
    SHA-1 of `model_dump_json(include=…)` byte for byte, or every re-crawled item would count as changed."""
    import hashlib

    item = _doc_cases()[index]
    seen = item.model_dump_json(include={"url", "title", "content", "author", "published_at", "region", "engagement",
                                         "reply", "extra", "channel"})
    assert item.intake_signature() == hashlib.sha1(seen.encode("utf-8")).hexdigest()
