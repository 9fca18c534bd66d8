"""Full-text search over jieba-segmented Chinese, boolean queries, filters and cursor paging."""

from __future__ import annotations

import pytest

from core.errors import InputError, QuerySyntaxError
from core.models import RawRecord
from storage.base import ItemQuery
from yuqing.service import Service

TEXTS = [
    ("1", "小区油烟扰民", "楼下烧烤店油烟扰民严重，晚上无法休息", "2026-11-20 10:00"),
    ("2", "工地夜间施工噪音", "工地夜间施工噪音扰民，持续一周", "2026-11-21 10:00"),
    ("3", "公交线路调整", "公交线路调整后出行不便，老人孩子很困难", "2026-11-22 10:00"),
    ("4", "拖欠农民工工资", "包工头拖欠工资两万元，请人社局帮助", "2026-11-23 10:00"),
    ("5", "烧烤摊占道经营", "夜市烧烤摊占道经营，油烟很大", "2026-11-24 10:00"),
]


@pytest.fixture
def loaded(service: Service) -> Service:
    service.ingestor.ingest([
        RawRecord(source="board_a", payload={"source_id": sid, "title": t, "content": c, "published_at": at})
        for sid, t, c, at in TEXTS
    ])
    return service


def ids(page) -> list[str]:
    return [i.source_id for i in page.data]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("油烟扰民", ["1"]),
        ("油烟", ["5", "1"]),
        ("扰民", ["2", "1"]),
        ("烧烤 油烟", ["5", "1"]),
        ("烧烤 -扰民", ["5"]),
        ("烧烤 NOT 扰民", ["5"]),
        ("工资 OR 公交", ["4", "3"]),
        ("(油烟 | 噪音) 扰民", ["2", "1"]),
        ('"油烟扰民"', ["1"]),
        ("烧烤 NEAR/3 油烟", ["5", "1"]),
        ("拖欠房租", []),
    ],
)
def test_chinese_full_text(loaded: Service, q: str, expected: list[str]) -> None:
    assert ids(loaded.store.search(ItemQuery(q=q))) == expected


@pytest.mark.parametrize("q", ["AND OR (", "(油烟", '"油烟', "NOT 油烟", "油烟 NEAR/2 (a b)", "。。。"])
def test_bad_queries_are_clear_errors(loaded: Service, q: str) -> None:
    with pytest.raises(QuerySyntaxError):
        loaded.store.search(ItemQuery(q=q))


def test_cursor_paging_walks_everything_once(loaded: Service) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        page = loaded.store.search(ItemQuery(limit=2, cursor=cursor))
        assert page.count == 5
        seen.extend(ids(page))
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ["5", "4", "3", "2", "1"]


def test_cursor_errors(loaded: Service) -> None:
    with pytest.raises(InputError, match="invalid cursor"):
        loaded.store.search(ItemQuery(cursor="garbage!!"))
    page = loaded.store.search(ItemQuery(limit=1))
    with pytest.raises(InputError, match="sort"):
        loaded.store.search(ItemQuery(limit=1, cursor=page.next_cursor, sort="risk"))


def test_filters_combine(loaded: Service) -> None:
    from nlp.normalise import parse_time

    page = loaded.store.search(ItemQuery(q="油烟", since=parse_time("2026-11-22"), channel="board"))
    assert ids(page) == ["5"]
    assert loaded.store.search(ItemQuery(source="weibo_a")).count == 0


def test_updated_item_is_reindexed(loaded: Service) -> None:
    loaded.ingestor.ingest([RawRecord(source="board_a", payload={
        "source_id": "3", "title": "公交线路调整", "content": "公交线路已经恢复，感谢", "published_at": "2026-11-22 10:00"})])
    assert ids(loaded.store.search(ItemQuery(q="恢复"))) == ["3"]
    assert ids(loaded.store.search(ItemQuery(q="困难"))) == []
