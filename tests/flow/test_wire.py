"""A pool worker's `Enriched` pickled as columns (flow/wire.py) comes back equal, field for field, with the same
fields set; what the columns cannot carry exactly is pickled plainly."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

from core.models import Item, Reply
from flow.pool import Enriched


def item(n: int, content: str = "小区附近搅拌站噪音扰民", reply: bool = False) -> Item:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    made = Item(source="s", channel="board", source_id=f"id-{n}", title=f"标题{n}", content=content,
                published_at=now, fetched_at=now, engagement={"likes": n},
                reply=Reply(text="已转交处理", department="住建局") if reply else None)
    made.enrichment.topic = "环境保护"
    return made


def same(a: Item, b: Item) -> None:
    for x, y in ((a, b), (a.engagement, b.engagement), (a.enrichment, b.enrichment)):
        assert type(x) is type(y)
        assert list(x.__dict__.items()) == list(y.__dict__.items())
        assert x.__pydantic_fields_set__ == y.__pydantic_fields_set__
        assert type(y.__pydantic_fields_set__) is set and y.__pydantic_fields_set__ is not x.__pydantic_fields_set__
        assert (y.__pydantic_extra__, y.__pydantic_private__) == (None, None)
    assert a.reply == b.reply and a.model_dump() == b.model_dump()


def enriched(items: list[Item]) -> Enriched:
    return Enriched(positions=list(range(len(items))), items=items,
                    index_texts=[(i.title, i.content) if n % 2 else None for n, i in enumerate(items)],
                    originals=[None] * len(items), prepared=[None] * len(items),
                    hashes=[(f"sig{n}", f"hash{n}") for n in range(len(items))], received=len(items))


def test_items_come_back_equal_with_their_fields_set() -> None:
    sent = enriched([item(n, reply=n % 3 == 0) for n in range(7)])
    assert sent.__reduce__()[0] is not Enriched  # as columns
    got = pickle.loads(pickle.dumps(sent))
    for a, b in zip(sent.items, got.items, strict=True):
        same(a, b)
    assert (got.positions, got.index_texts, got.hashes, got.prepared) == (sent.positions, sent.index_texts,
                                                                          sent.hashes, sent.prepared)


def test_a_text_strict_utf16_cannot_carry_goes_plainly() -> None:
    sent = enriched([item(0), item(1, content="半个代理对\ud800")])
    assert sent.__reduce__()[0] is Enriched
    got = pickle.loads(pickle.dumps(sent))
    for a, b in zip(sent.items, got.items, strict=True):
        same(a, b)


def test_an_empty_batch() -> None:
    got = pickle.loads(pickle.dumps(Enriched(received=3)))
    assert got == Enriched(received=3)
