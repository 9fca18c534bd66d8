"""The storage contract: what every backend behind `storage.base.Store` must do, asserted with exact results.

Written against the Protocol only: the `store` fixture is parametrised over backends; a new backend adds an opener to
BACKENDS and must pass this file unchanged. "sqlite+postgresql" keeps the items in SQLite and every state behaviour
(inbox, quarantine, events, crawl health, locks) in a PostgreSQL schema of the test's own (`storage.state_url`), so
each state behaviour runs on both databases with the same expected results. "elasticsearch" keeps the items on a real
OpenSearch-API server (osmem-server, an index prefix of the test's own) and the state in the SQLite file, as
`storage.backend: elasticsearch` does without `storage.state_url`; "elasticsearch+postgresql" with the state in
PostgreSQL, the layout of several instances.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from analysis import event_store
from analysis.cluster import EventClusterer, EventState
from analysis.dedup import NUM_PERM, NearDuplicateIndex
from api.readers import feed_json
from core.config_analysis import EventsConfig
from core.config_crawl import HealthSpec
from core.config_storage import ElasticsearchConfig
from core.errors import InputError, NotFound, QuerySyntaxError
from core.models import SHANGHAI, Engagement, Enrichment, Item, QuarantineRecord, RawRecord, Reply
from crawlers.health import RunResult, health_changes, recent_runs, record_run, source_health
from nlp.search_tokens import index_tokens
from nlp.tokenize import segment
from storage.base import (
    EventTotals,
    ItemFacets,
    ItemQuery,
    ItemText,
    KnownItem,
    Store,
    StoreStats,
    UpsertOutcome,
    UpsertResult,
)
from storage.held import hold
from storage.opening import open_store
from storage.sqlite import SqliteStore
from tests.helpers.elastic import drop_indices, new_prefix, shared_server
from tests.helpers.feed import models_page_json
from tests.helpers.services import pg_schema

NOW = datetime(2026, 11, 25, 12, tzinfo=SHANGHAI)
EPOCH = datetime(2026, 1, 1, tzinfo=SHANGHAI)  # before every test item
END = NOW + timedelta(days=1)  # after every test item


def _open_sqlite(folder: Path, _request: pytest.FixtureRequest) -> Store:
    return SqliteStore(folder / "contract.db", segment=segment, index_segment=index_tokens)


_PG_STATE: dict[Path, tuple[str, ExitStack]] = {}  # a test's folder → its PostgreSQL schema (dropped after the test)


def _open_sqlite_with_postgres_state(folder: Path, _request: pytest.FixtureRequest) -> Store:
    if folder not in _PG_STATE:
        resources = ExitStack()
        _PG_STATE[folder] = (resources.enter_context(pg_schema()), resources)
    return open_store(folder / "items.db", _PG_STATE[folder][0], segment=segment, index_segment=index_tokens)


_ES_PREFIX: dict[Path, str] = {}  # a test's folder → its index prefix on osmem-server (its indices dropped after the test)


def _open_elasticsearch(folder: Path, _request: pytest.FixtureRequest, state_url: str | None = None) -> Store:
    """Items on osmem-server under an index prefix of this test's own, the state in a SQLite file of the test's
    folder (or at `state_url`). Reopening finds the same indices and state."""
    prefix = _ES_PREFIX.setdefault(folder, new_prefix())
    config = ElasticsearchConfig(url=shared_server(), index_prefix=prefix, compatible_with=False, replicas=0,
                                 retries=1, retry_backoff_s=0.05)
    return open_store(folder / "state.db", state_url, segment=segment, index_segment=index_tokens,
                      elasticsearch=config)


def _open_elasticsearch_with_postgres_state(folder: Path, request: pytest.FixtureRequest) -> Store:
    """The layout of several instances: items on the cluster, their identity and the state in PostgreSQL."""
    if folder not in _PG_STATE:
        resources = ExitStack()
        _PG_STATE[folder] = (resources.enter_context(pg_schema()), resources)
    return _open_elasticsearch(folder, request, _PG_STATE[folder][0])


# Backend name → how to open (or reopen) its store in a test's own folder.
BACKENDS: dict[str, Callable[[Path, pytest.FixtureRequest], Store]] = {
    "sqlite": _open_sqlite, "sqlite+postgresql": _open_sqlite_with_postgres_state, "elasticsearch": _open_elasticsearch,
    "elasticsearch+postgresql": _open_elasticsearch_with_postgres_state}


@pytest.fixture(params=sorted(BACKENDS))
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens the backend's store at the same place each time it is called (to test what survives a restart)."""
    opened: list[Store] = []

    def open_store() -> Store:
        store = BACKENDS[request.param](tmp_path, request)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()
    if tmp_path in _PG_STATE:
        _PG_STATE.pop(tmp_path)[1].close()
    if tmp_path in _ES_PREFIX:
        drop_indices(shared_server(), _ES_PREFIX.pop(tmp_path))


@pytest.fixture
def store(reopen: Callable[[], Store]) -> Store:
    return reopen()


def make(source_id: str, title: str, content: str, hours_ago: float, *, source: str = "board_a", channel: str = "board",
         region: str | None = None, topic: str | None = None, emotion: str | None = None, risk: float | None = None,
         level: str | None = None, schemes: tuple[str, ...] = (), event: str | None = None,
         keywords: tuple[str, ...] = (), likes: int = 0, reposts: int = 0, comments: int = 0, dislikes: int = 0) -> Item:
    return Item(source=source, channel=channel, source_id=source_id, title=title, content=content,
                published_at=NOW - timedelta(hours=hours_ago), fetched_at=NOW, region=region,
                engagement=Engagement(likes=likes, reposts=reposts, comments=comments, dislikes=dislikes),
                enrichment=Enrichment(topic=topic, emotion=emotion, risk_score=risk, risk_level=level,
                                      schemes=list(schemes), event_id=event, keywords=list(keywords)))


def corpus() -> list[Item]:
    """Five items, oldest first, each filter value held by a known subset."""
    return [
        make("1", "小区油烟扰民", "楼下烧烤店油烟扰民严重，晚上无法休息", 96, region="江城区", topic="环境保护",
             emotion="angry", risk=80, level="I", schemes=("油烟",), event="ev1", keywords=("油烟", "烧烤店"),
             likes=3, reposts=2, comments=1, dislikes=7),
        make("2", "工地夜间施工噪音", "工地夜间施工噪音扰民，持续一周", 72, region="雨花区", topic="城乡建设",
             emotion="angry", risk=55, level="II", schemes=("噪音", "夜间施工"), event="ev2", keywords=("噪音",)),
        make("3", "公交线路调整", "公交线路调整后出行不便，老人孩子很困难", 48, source="weibo_a", channel="weibo",
             region="江城区", topic="交通运输", emotion="sad", risk=30, level="III"),
        make("4", "拖欠农民工工资", "包工头拖欠工资两万元，请人社局帮助", 24, source="hotline_a", channel="hotline",
             region="雨花区", topic="劳动和社会保障", emotion="fear", risk=80, level="I", schemes=("欠薪",)),
        make("5", "烧烤摊占道经营", "夜市烧烤摊占道经营，油烟很大", 12, source="weibo_a", channel="weibo",
             topic="环境保护", emotion="neutral", schemes=("油烟",), event="ev1", keywords=("烧烤",), likes=10),
    ]


@pytest.fixture
def loaded(store: Store) -> Store:
    results = store.upsert(corpus())
    assert [r.outcome for r in results] == [UpsertOutcome.inserted] * 5
    return store


def sids(items: list[Item]) -> list[str]:
    return [item.source_id for item in items]


def id_of(store: Store, source_id: str) -> int:
    """The stored id of a corpus item (ids are the backend's to choose)."""
    return next(i.id for i in store.search(ItemQuery(limit=500)).data if i.source_id == source_id)


def test_backend_implements_every_method_of_the_protocol(store: Store) -> None:
    assert isinstance(store, Store)
    assert {"core"} <= set(store.versions)


# ---- upsert and get --------------------------------------------------------------------------------------------------


def test_upsert_outcomes(store: Store) -> None:
    first, second = make("a", "", "小区停水三天", 5), make("b", "", "路灯不亮", 4)
    inserted = store.upsert([first, second])
    assert [r.outcome for r in inserted] == [UpsertOutcome.inserted, UpsertOutcome.inserted]
    a_id, b_id = (r.item_id for r in inserted)
    assert a_id != b_id
    assert store.upsert([first]) == [UpsertResult(a_id, UpsertOutcome.unchanged)]
    edited = first.model_copy(update={"content": "小区停水三天，至今无人处理"})
    assert store.upsert([edited]) == [UpsertResult(a_id, UpsertOutcome.updated)]
    assert store.get(a_id).content == "小区停水三天，至今无人处理"
    # The same words from another source (or under another id of the site's own) are another item (Item.content_hash).
    elsewhere = store.upsert([make("c", "", "路灯不亮", 3, source="weibo_a", channel="weibo")])
    assert elsewhere[0].outcome == UpsertOutcome.inserted and elsewhere[0].item_id != b_id
    # Without ids of the site's own (`h:` ids made from the text), the same words from one source are one item.
    twins = store.upsert([make("h:d", "", "垃圾无人清运", 2), make("h:e", "", "垃圾无人清运", 1)])
    assert twins[0].outcome == UpsertOutcome.inserted
    assert twins[1] == UpsertResult(twins[0].item_id, UpsertOutcome.duplicate)
    assert store.upsert([]) == []
    assert store.stats().items == 4
    assert store.duplicates_of(b_id) == []
    assert [(d["source"], d["source_id"]) for d in store.duplicates_of(twins[0].item_id)] == [("board_a", "h:e")]


def test_get_returns_the_stored_item_and_not_found_otherwise(loaded: Store) -> None:
    item_id = id_of(loaded, "1")
    item = loaded.get(item_id)
    expected = corpus()[0]
    expected.id = item_id
    assert item == expected
    with pytest.raises(NotFound):
        loaded.get(item_id + 1000)


def test_lookup_and_recorded_duplicates(loaded: Store) -> None:
    items = corpus()
    by_key, by_hash = loaded.lookup([items[0], make("9", "", "从未见过", 1)])
    one = id_of(loaded, "1")
    assert by_key == {("board_a", "1"): (one, items[0].signature)}
    assert by_hash == {items[0].content_hash: one}
    copy = make("x", "", "同一内容的转发", 1, source="weibo_b", channel="weibo")
    loaded.record_duplicates([(one, copy)])
    replied = copy.model_copy(update={"reply": Reply(text="已转交城管部门")})
    loaded.record_duplicates([(one, replied)])  # seen again with a reply: one entry, the newer document
    copies = loaded.duplicates_of(one)
    assert [(d["source"], d["source_id"]) for d in copies] == [("weibo_b", "x")]
    assert copies[0]["reply"]["text"] == "已转交城管部门"


def test_originals_held_beside_an_item_are_read_back_only_through_original(store: Store) -> None:
    masked, plain = make("m", "", "我的电话是[电话]", 2), make("p", "", "路灯不亮", 1)
    hold(masked, {"content": "我的电话是13812345678"})
    masked_id, plain_id = (r.item_id for r in store.upsert([masked, plain]))
    assert store.original(masked_id) == {"content": "我的电话是13812345678"}
    assert store.original(plain_id) is None
    assert "13812345678" not in store.get(masked_id).model_dump_json()
    with pytest.raises(NotFound):
        store.original(max(masked_id, plain_id) + 1000)


def test_update_enrichment_changes_what_filters_see(loaded: Store) -> None:
    item_id = id_of(loaded, "3")
    loaded.update_enrichment(item_id, Enrichment(topic="城乡建设", schemes=["公交"], risk_score=90, risk_level="I"))
    assert sids(loaded.search(ItemQuery(scheme="公交")).data) == ["3"]
    assert sids(loaded.search(ItemQuery(topic="交通运输")).data) == []
    assert loaded.get(item_id).enrichment.risk_score == 90


# ---- search ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (ItemQuery(), ["5", "4", "3", "2", "1"]),
        (ItemQuery(source="board_a"), ["2", "1"]),
        (ItemQuery(channel="weibo"), ["5", "3"]),
        (ItemQuery(since=NOW - timedelta(hours=48)), ["5", "4", "3"]),  # since is inclusive
        (ItemQuery(until=NOW - timedelta(hours=48)), ["2", "1"]),  # until is exclusive
        (ItemQuery(topic="环境保护"), ["5", "1"]),
        (ItemQuery(emotion="angry"), ["2", "1"]),
        (ItemQuery(risk_level="I"), ["4", "1"]),
        (ItemQuery(min_risk=55), ["4", "2", "1"]),  # inclusive; no score never passes
        (ItemQuery(scheme="油烟"), ["5", "1"]),
        (ItemQuery(scheme="夜间施工"), ["2"]),
        (ItemQuery(event_id="ev1"), ["5", "1"]),
        (ItemQuery(region="雨花区"), ["4", "2"]),
        (ItemQuery(within_regions=("花区",)), ["4", "2"]),  # an access scope: the region contains the name
        (ItemQuery(within_regions=("江城", "雨花")), ["4", "3", "2", "1"]),  # no region: outside every scope
        (ItemQuery(within_regions=("%",)), []),  # LIKE wildcards in a scope are plain characters
        (ItemQuery(topic="环境保护", channel="board"), ["1"]),
        (ItemQuery(source="nobody"), []),
    ],
)
def test_every_filter_narrows_exactly(loaded: Store, query: ItemQuery, expected: list[str]) -> None:
    page = loaded.search(query)
    assert sids(page.data) == expected
    assert page.count == len(expected)
    assert page.next_cursor is None


def test_sort_by_risk_puts_unscored_last_and_breaks_ties_by_newest_id(loaded: Store) -> None:
    assert sids(loaded.search(ItemQuery(sort="risk")).data) == ["4", "1", "2", "3", "5"]


@pytest.mark.parametrize("sort", ["time", "risk"])
@pytest.mark.parametrize("limit", [1, 2, 3])
def test_cursor_paging_has_no_gaps_or_repeats(store: Store, sort: str, limit: int) -> None:
    # Ties on both keys: three items share a time, three share a risk score.
    items = [make(str(n), "", f"第{n}条留言内容", 10 if n < 3 else n, risk=[50, 50, 50, 70, None, 20, 20][n])
             for n in range(7)]
    store.upsert(items)
    everything = sids(store.search(ItemQuery(sort=sort, limit=500)).data)
    assert sorted(everything) == [str(n) for n in range(7)]
    walked: list[str] = []
    cursor = None
    while True:
        page = store.search(ItemQuery(sort=sort, limit=limit, cursor=cursor))
        assert page.count == 7
        walked.extend(sids(page.data))
        cursor = page.next_cursor
        if cursor is None:
            break
    assert walked == everything
    if sort == "risk":
        assert everything[0] == "3" and everything[-1] == "4"  # 70 first, the unscored last


def test_paging_errors(loaded: Store) -> None:
    with pytest.raises(InputError, match="invalid cursor"):
        loaded.search(ItemQuery(cursor="garbage!!"))
    page = loaded.search(ItemQuery(limit=1))
    with pytest.raises(InputError, match="sort"):
        loaded.search(ItemQuery(limit=1, cursor=page.next_cursor, sort="risk"))
    for limit in (0, 501):
        with pytest.raises(InputError, match="limit"):
            loaded.search(ItemQuery(limit=limit))


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("油烟扰民", ["1"]),
        ("油烟", ["5", "1"]),
        ("烧烤 油烟", ["5", "1"]),  # adjacency is AND
        ("烧烤 AND 扰民", ["1"]),
        ("烧烤 & 扰民", ["1"]),
        ("烧烤 -扰民", ["5"]),
        ("烧烤 NOT 扰民", ["5"]),
        ("工资 OR 公交", ["4", "3"]),
        ("工资 | 公交", ["4", "3"]),
        ("(油烟 | 噪音) 扰民", ["2", "1"]),
        ("（油烟 ｜ 噪音） 扰民", ["2", "1"]),  # full-width punctuation
        ('"油烟扰民"', ["1"]),
        ("烧烤 NEAR/3 油烟", ["5", "1"]),
        ("拖欠房租", []),
    ],
)
def test_full_text_query_language(loaded: Store, q: str, expected: list[str]) -> None:
    assert sids(loaded.search(ItemQuery(q=q)).data) == expected


def test_full_text_combines_with_filters(loaded: Store) -> None:
    assert sids(loaded.search(ItemQuery(q="油烟", channel="weibo")).data) == ["5"]


@pytest.mark.parametrize("q", ["AND OR (", "(油烟", '"油烟', "NOT 油烟", "油烟 NEAR/2 (a b)", "。。。"])
def test_unparseable_queries_are_syntax_errors(loaded: Store, q: str) -> None:
    with pytest.raises(QuerySyntaxError):
        loaded.search(ItemQuery(q=q))


@pytest.mark.parametrize("query", [ItemQuery(), ItemQuery(topic="环境保护", channel="board"),
                                   ItemQuery(q="油烟", sort="risk"), ItemQuery(limit=2)],
                         ids=["default", "filters", "full-text", "cursor-pages"])
def test_item_json_pages_are_what_the_feed_sends_for_search(loaded: Store, query: ItemQuery) -> None:
    """`search_item_json` carries the feed (api/readers.py): its items must decode to exactly what pydantic writes for
    `search`'s models, page by page along the cursors, and the feed's bytes must be the models' bytes."""
    loaded.upsert([make("6", "油烟又来了", "回复后仍有油烟", 6, dislikes=2, risk=12.5).model_copy(
        update={"reply": Reply(text="已转交城管部门", department="城管局", replied_at=NOW), "extra": {"n": [1.5, None]}})])
    pages = 0
    while True:
        models, encoded = loaded.search(query), loaded.search_item_json(query)
        expected = models_page_json(models)
        assert encoded.data  # every query here matches
        assert [json.loads(item) for item in encoded.data] == json.loads(expected)["data"]
        assert (encoded.count, encoded.next_cursor, encoded.count_exact, encoded.sorted_among) == (
            models.count, models.next_cursor, models.count_exact, models.sorted_among)
        assert feed_json(loaded, query) == expected
        pages += 1
        if models.next_cursor is None:
            break
        query = replace(query, cursor=models.next_cursor)
    assert pages == (3 if query.limit == 2 else 1)


def test_stats_count_items_by_channel_and_source_and_quarantine(loaded: Store) -> None:
    loaded.quarantine([QuarantineRecord(source="board_a", reason="no content", stage="normalise", payload={"id": 1},
                                        created_at=NOW)])
    assert loaded.stats() == StoreStats(items=5, by_channel={"board": 2, "weibo": 2, "hotline": 1},
                                        by_source={"board_a": 2, "weibo_a": 2, "hotline_a": 1}, quarantined=1)


# ---- quarantine and inbox --------------------------------------------------------------------------------------------


def test_quarantine_round_trip_counts_repeats_and_pages(store: Store) -> None:
    bad_json = QuarantineRecord(source="s1", reason="missing published_at", stage="normalise",
                                payload={"title": "无时间", "n": 1}, origin="file.csv:2", created_at=NOW)
    bad_text = QuarantineRecord(source="s1", reason="unreadable", stage="parse", payload="<html>broken",
                                created_at=NOW + timedelta(minutes=1))
    other = QuarantineRecord(source="s2", reason="too long", stage="validate", payload={"x": "y"}, created_at=NOW)
    store.quarantine([bad_json, bad_text, other])
    store.quarantine([bad_json])  # the same payload rejected again is counted, not kept twice
    store.quarantine([])
    page = store.list_quarantine(None, 50, None)
    assert page.count == 3 and page.next_cursor is None
    assert [(r.source, r.stage, r.reason, r.payload, r.origin, r.created_at, r.times_seen) for r in page.data] == [
        ("s2", "validate", "too long", {"x": "y"}, "", NOW, 1),
        ("s1", "parse", "unreadable", "<html>broken", "", NOW + timedelta(minutes=1), 1),
        ("s1", "normalise", "missing published_at", {"title": "无时间", "n": 1}, "file.csv:2", NOW, 2),
    ]
    assert [r.reason for r in store.list_quarantine("s1", 50, None).data] == ["unreadable", "missing published_at"]
    walked, cursor = [], None
    while True:
        page = store.list_quarantine(None, 1, cursor)
        walked.extend(r.id for r in page.data)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert walked == [r.id for r in store.list_quarantine(None, 50, None).data]


def test_inbox_put_take_done_and_records_survive_reopen(reopen: Callable[[], Store]) -> None:
    store = reopen()
    records = [RawRecord(source="board_a", payload={"source_id": str(n), "content": f"留言{n}"}, origin="crawl")
               for n in range(3)]
    ids = store.put(records)
    assert len(ids) == 3 and ids == sorted(set(ids))  # inbox ids, in the order given
    assert store.put([]) == []
    assert store.pending() == 3
    taken = store.take(2)
    assert [r for _, r in taken] == records[:2] and [i for i, _ in taken] == ids[:2]
    assert [i for i, _ in store.take(5, after_id=ids[0])] == ids[1:]
    assert store.take(2) == taken  # taking does not remove: only `done` does, so a crash replays the batch
    store.done([taken[0][0]])
    assert store.pending() == 2
    store.close()
    again = reopen()
    remaining = again.take(10)
    assert remaining[0] == taken[1]  # same id and record after the restart
    assert [r for _, r in remaining] == records[1:]
    again.done([i for i, _ in remaining])
    assert again.pending() == 0 and again.take(10) == []


# ---- reads for analysis and alerting ---------------------------------------------------------------------------------


def test_known_items_give_id_event_and_engagement(loaded: Store) -> None:
    known = loaded.known_items([("board_a", "1"), ("weibo_a", "5"), ("board_a", "404"), ("nowhere", "1")])
    assert known == {("board_a", "1"): KnownItem(id_of(loaded, "1"), "ev1", 6),  # likes + reposts + comments
                     ("weibo_a", "5"): KnownItem(id_of(loaded, "5"), "ev1", 10)}
    assert loaded.known_items([]) == {}


def test_known_items_across_more_keys_than_one_query_holds(store: Store) -> None:
    store.upsert([make(str(n), "", f"编号{n}的工单内容", 1, source="hotline_a", channel="hotline", likes=n % 3)
                  for n in range(1203)])
    known = store.known_items([("hotline_a", str(n)) for n in range(1210)])
    assert len(known) == 1203
    assert {k.engagement for k in known.values()} == {0, 1, 2}
    assert known[("hotline_a", "1202")].engagement == 1202 % 3


def test_event_totals_sum_the_events_items(loaded: Store) -> None:
    assert loaded.event_totals("ev1") == EventTotals("ev1", items=2, channels=2, engagement=16, max_risk=80.0)
    assert loaded.event_totals("ev2") == EventTotals("ev2", items=1, channels=1, engagement=0, max_risk=55.0)
    assert loaded.event_totals("nothing") is None


def test_subject_facts_give_first_publication_and_top_grade(loaded: Store) -> None:
    facts = loaded.subject_facts(event_id="ev1")  # items 1 (96 h ago, grade I) and 5 (12 h ago, no grade)
    assert facts is not None and facts.first_published_ts == (NOW - timedelta(hours=96)).timestamp()
    assert facts.top_grade == "I" and facts.first_stored_at
    item_id = loaded.lookup([make("2", "", "", 0)])[0][("board_a", "2")][0]
    assert loaded.subject_facts(item_id=item_id).top_grade == "II"
    assert loaded.subject_facts(event_id="nothing") is None and loaded.subject_facts() is None


def test_event_opinions_of_a_time_window(loaded: Store) -> None:
    since, until = (NOW - timedelta(hours=100)).timestamp(), (NOW - timedelta(hours=50)).timestamp()
    assert [(o.emotion, o.risk_score) for o in loaded.event_opinions("ev1", since, until)] == [("angry", 80.0)]
    assert sorted(o.emotion or "" for o in loaded.event_opinions("ev1", since, NOW.timestamp())) == ["angry", "neutral"]
    assert loaded.event_opinions("ev1", until, until) == []


def test_reassign_events_moves_items_and_their_documents(loaded: Store) -> None:
    assert loaded.reassign_events({"ev2": "ev1"}) == 1
    assert loaded.get(id_of(loaded, "2")).enrichment.event_id == "ev1"
    assert sids(loaded.search(ItemQuery(event_id="ev1")).data) == ["5", "2", "1"]
    assert loaded.event_totals("ev2") is None
    assert loaded.reassign_events({"ev2": "ev1"}) == 0
    assert loaded.reassign_events({}) == 0


def test_a_write_inside_a_write_joins_its_transaction(loaded: Store) -> None:
    with pytest.raises(RuntimeError), loaded.item_write():
        loaded.reassign_events({"ev1": "ev9"})
        raise RuntimeError("the outer transaction fails after the inner write")
    assert loaded.event_totals("ev9") is None
    assert loaded.event_totals("ev1").items == 2


def test_a_state_write_covers_items_only_when_they_share_its_database(loaded: Store) -> None:
    """Documented in storage/split.py: apart, the items' write commits on its own inside a failing state write."""
    with pytest.raises(RuntimeError), loaded.write():
        loaded.reassign_events({"ev1": "ev9"})
        raise RuntimeError("the outer transaction fails after the inner write")
    if loaded.items_with_state:
        assert (loaded.event_totals("ev9"), loaded.event_totals("ev1").items) == (None, 2)
    else:
        assert (loaded.event_totals("ev9").items, loaded.event_totals("ev1")) == (2, None)


def test_item_facets_of_a_window_oldest_first(loaded: Store) -> None:
    facets = loaded.item_facets(NOW - timedelta(hours=72), NOW - timedelta(hours=12))
    assert facets == [
        ItemFacets(id_of(loaded, "2"), (NOW - timedelta(hours=72)).timestamp(), "城乡建设", "雨花区", "board_a",
                   sorted(["噪音", "夜间施工"]), ["噪音"]),
        ItemFacets(id_of(loaded, "3"), (NOW - timedelta(hours=48)).timestamp(), "交通运输", "江城区", "weibo_a", [], []),
        ItemFacets(id_of(loaded, "4"), (NOW - timedelta(hours=24)).timestamp(), "劳动和社会保障", "雨花区", "hotline_a",
                   ["欠薪"], []),
    ]
    assert loaded.item_facets(END, END + timedelta(days=1)) == []


def test_item_facets_say_which_items_are_imported_history(store: Store) -> None:
    imported = make("old", "旧信件", "2012 年的信件", 2)
    imported.extra["backfill"] = True
    store.upsert([imported, make("new", "新留言", "今天的留言", 1)])
    facets = store.item_facets(NOW - timedelta(hours=3), NOW)
    assert [(f.item_id, f.backfill) for f in facets] == [(id_of(store, "old"), True), (id_of(store, "new"), False)]


def test_scan_texts_newest_first_in_batches(loaded: Store) -> None:
    batches = list(loaded.scan_texts(EPOCH, END, batch_size=2))
    assert [[t.item_id for t in b] for b in batches] == [[id_of(loaded, s) for s in pair] for pair in (("5", "4"), ("3", "2"), ("1",))]
    assert batches[0][0] == ItemText(id_of(loaded, "5"), "烧烤摊占道经营", "夜市烧烤摊占道经营，油烟很大")
    window = list(loaded.scan_texts(NOW - timedelta(hours=48), NOW - timedelta(hours=12)))
    assert [[t.item_id for t in b] for b in window] == [[id_of(loaded, "4"), id_of(loaded, "3")]]


def test_scan_texts_keeps_items_of_the_same_time_across_batches(store: Store) -> None:
    ids = [r.item_id for r in store.upsert([make(str(n), "", f"同一时刻第{n}条", 5) for n in range(5)])]
    batches = list(store.scan_texts(EPOCH, END, batch_size=2))
    assert [t.item_id for b in batches for t in b] == sorted(ids, reverse=True)
    assert [len(b) for b in batches] == [2, 2, 1]


def test_scan_items_oldest_id_first_in_batches(loaded: Store) -> None:
    batches = list(loaded.scan_items(EPOCH, END, batch_size=2))
    assert [sids(b) for b in batches] == [["1", "2"], ["3", "4"], ["5"]]
    assert batches[0][0] == loaded.get(id_of(loaded, "1"))
    assert [sids(b) for b in loaded.scan_items(NOW - timedelta(hours=48), NOW)] == [["3", "4", "5"]]
    assert list(loaded.scan_items(END, END + timedelta(days=1))) == []


# ---- relational state through the store's connections ----------------------------------------------------------------


def _event(event_id: str, volume: int, last_seen: datetime) -> EventState:
    return EventState(id=event_id, title=f"事件{event_id}", first_seen=(last_seen - timedelta(hours=1)).timestamp(),
                      last_seen=last_seen.timestamp(), centroid={"油烟": 0.8, "扰民": 0.6}, volume=volume, engagement=3,
                      sources=Counter({"board_a": volume}), channels=Counter({"board": volume}),
                      regions=Counter({"江城区": volume}))


def test_event_state_saves_merges_and_loads(loaded: Store) -> None:
    event_store.ensure_schema(loaded)
    signature = np.arange(NUM_PERM, dtype=np.uint32)
    one, two = id_of(loaded, "1"), id_of(loaded, "2")
    event_store.save(loaded, [_event("ev1", 2, NOW), _event("ev2", 1, NOW - timedelta(hours=1))],
                     [(one, one, signature), (two, one, signature + 1)])
    ranked, count = event_store.list_events(loaded)
    assert count == 2 and [e["id"] for e in ranked] == ["ev1", "ev2"]
    event_store.save(loaded, [_event("ev1", 3, NOW)], [(two, two, signature)], merged={"ev2": "ev1"})
    assert event_store.get_event(loaded, "ev1")["volume"] == 3
    with pytest.raises(NotFound):
        event_store.get_event(loaded, "ev2")
    assert loaded.get(two).enrichment.event_id == "ev1"  # items follow the merge in the same transaction
    clusterer = EventClusterer(EventsConfig())
    index = NearDuplicateIndex()
    event_store.load(loaded, clusterer, index)
    assert set(clusterer.events) == {"ev1"} and clusterer.events["ev1"].volume == 3
    assert two in index and index.root(two) == one  # the first signature stored for an item is kept


def test_source_health_reads(store: Store) -> None:
    import crawlers.state  # noqa: F401 - registers the `crawl` migrations, as the crawlers package does on attach

    assert store.migrate()["crawl"] >= 2
    assert source_health(store) == {}
    ok = RunResult(source="s", started_at="2026-11-25T01:00:00+00:00", finished_at="2026-11-25T01:01:00+00:00",
                   finish_reason="finished", pages=3, pages_ok=3, entries=20, items=5)
    failed = RunResult(source="s", started_at="2026-11-25T02:00:00+00:00", finished_at="2026-11-25T02:00:05+00:00",
                       finish_reason="finished", pages=1, pages_ok=0, errors={"connection": 2}, message="refused")
    record_run(store, ok, HealthSpec())
    health = record_run(store, failed, HealthSpec())
    assert (health.state, health.reason, health.last_success_at) == ("degraded", "run failed: refused",
                                                                     "2026-11-25T01:01:00+00:00")
    assert source_health(store) == {"s": health}
    assert [(c["from_state"], c["to_state"]) for c in health_changes(store)] == [("unknown", "ok"), ("ok", "degraded")]
    assert health_changes(store, after_id=health_changes(store)[0]["id"])[0]["to_state"] == "degraded"
    runs = recent_runs(store, "s")
    assert [(r["outcome"], r["items"], r["errors"]) for r in runs] == [("failed", 0, {"connection": 2}), ("ok", 5, {})]


def test_volume_histogram_per_shanghai_day_and_hour(store: Store) -> None:
    # 23:30 and 00:30 Shanghai time fall on two local days (one UTC day): buckets are local.
    late = datetime(2026, 11, 20, 23, 30, tzinfo=SHANGHAI)
    store.upsert([
        Item(source="board_a", channel="board", source_id="a", title="", content="深夜一条", published_at=late,
             fetched_at=NOW, region="江城区", enrichment=Enrichment(topic="环境保护", risk_score=40)),
        Item(source="board_a", channel="board", source_id="b", title="", content="凌晨一条",
             published_at=late + timedelta(hours=1), fetched_at=NOW, enrichment=Enrichment(topic="环境保护", risk_score=60)),
        Item(source="weibo_a", channel="weibo", source_id="c", title="", content="凌晨又一条",
             published_at=late + timedelta(hours=1, minutes=10), fetched_at=NOW, region="江城区",
             enrichment=Enrichment(topic="交通运输")),
    ])
    since, until = late - timedelta(days=1), late + timedelta(days=1)
    assert store.volume_histogram(since, until) == {"all": [("2026-11-20T00:00:00", 1), ("2026-11-21T00:00:00", 2)]}
    assert store.volume_histogram(since, until, "hour") == {
        "all": [("2026-11-20T23:00:00", 1), ("2026-11-21T00:00:00", 2)]}
    assert store.volume_histogram(since, until, group="channel") == {
        "board": [("2026-11-20T00:00:00", 1), ("2026-11-21T00:00:00", 1)], "weibo": [("2026-11-21T00:00:00", 1)]}
    assert store.volume_histogram(since, until, group="region") == {  # no region: left out
        "江城区": [("2026-11-20T00:00:00", 1), ("2026-11-21T00:00:00", 1)]}
    assert store.volume_histogram(until, until + timedelta(days=1)) == {}
    assert store.average_risk("topic", since, until) == {"环境保护": 50.0}  # 交通运输 has no score: left out
    assert store.average_risk("channel", since, late + timedelta(minutes=1)) == {"board": 40.0}
    with pytest.raises(InputError, match="cannot group by"):
        store.volume_histogram(since, until, group="doc")
    with pytest.raises(InputError, match="interval"):
        store.volume_histogram(since, until, interval="week")


# ---- several instances on one state database ---------------------------------------------------------------------


def test_inbox_leaves_records_another_instance_holds_to_it(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import storage.state

    pushed = store.put([RawRecord(source="s", payload={"n": 1}, origin="api")], holder="instance-a")
    crawled = store.put([RawRecord(source="s", payload={"n": 2}, origin="crawl")])
    assert [i for i, _ in store.take(10, holder="instance-b")] == crawled  # a's push is a's to ingest
    assert [i for i, _ in store.take(10, holder="instance-a")] == pushed + crawled
    assert [i for i, _ in store.take(10)] == pushed + crawled  # no holder given: everything (a single process)
    monkeypatch.setattr(storage.state, "HELD_GRACE", timedelta(seconds=-1))  # a held past its grace: a died
    assert [i for i, _ in store.take(10, holder="instance-b")] == pushed + crawled


def test_cluster_locks_exclude_other_instances_and_tell_who_is_alive(store: Store) -> None:
    from storage.cluster import ClusterLocks

    store.migrate()
    a, b = ClusterLocks(store.engine, "instance-a"), ClusterLocks(store.engine, "instance-b")
    with a.hold("ingest") as held:
        assert held
        with b.hold("ingest", wait=False) as other:
            assert not other
    with b.hold("ingest", wait=False) as other:
        assert other
    a.announce()
    assert b.alive("instance-a") and a.alive("instance-a")
    a.close()
    assert not b.alive("instance-a") and not b.alive("never-started")
    ran: list[str] = []
    assert a.run_once(store, "job", 60, lambda: ran.append("a"))
    assert not b.run_once(store, "job", 60, lambda: ran.append("b"))  # started less than a period ago elsewhere
    assert b.run_once(store, "job", 0, lambda: ran.append("b"))
    assert ran == ["a", "b"]
    with store.write() as conn:
        a.write_mark(conn, "m", "1")
        a.write_mark(conn, "m", "2")
    with store.read() as conn:
        assert (b.read_mark(conn, "m"), b.read_mark(conn, "none")) == ("2", None)
    b.close()


def _outbox_rows(store: Store, count: int) -> None:
    from alerts.store import alert_outbox

    with store.write() as conn:
        conn.execute(alert_outbox.insert(), [
            {"dedup_key": f"k{n}", "kind": "notification", "receiver": "duty", "integration": "webhook",
             "payload": "{}", "status": "pending", "attempts": 0, "parts_done": 0, "next_attempt_ts": 0.0,
             "created_ts": 0.0} for n in range(count)])


def test_outbox_claims_never_overlap_and_only_a_dead_instances_claims_resume(store: Store) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import alerts.store  # noqa: F401 - registers the alert tables, as the alerts package does on attach
    from alerts.dispatch import Dispatcher
    from alerts.store import alert_outbox
    from storage.cluster import ClusterLocks

    store.migrate()
    _outbox_rows(store, 200)
    dispatcher = Dispatcher(store, None, lambda: None)  # claims and resumes need only the store

    def claim_all(claimer: str) -> list[int]:
        mine: list[int] = []
        while batches := dispatcher.claim_batches(NOW, limit=7, workers=1, batch_size=7, claimer=claimer):
            mine.extend(i for batch in batches for i in batch)
        return mine

    with ThreadPoolExecutor(4) as pool:
        claimed = list(pool.map(claim_all, ["a", "b", "c", "d"]))
    every = [i for ids in claimed for i in ids]
    assert len(every) == 200 and len(set(every)) == 200  # each row claimed once, by one claimer
    a, b = ClusterLocks(store.engine, "a"), ClusterLocks(store.engine, "b")
    a.announce()
    b.announce()
    assert dispatcher.resume_interrupted(NOW, alive=b.alive) == len(claimed[2]) + len(claimed[3])  # c, d: gone
    a.close()
    assert dispatcher.resume_interrupted(NOW, alive=b.alive) == len(claimed[0])  # a stopped: its rows go back
    with store.read() as conn:
        sending = conn.execute(alert_outbox.select().where(alert_outbox.c.status == "sending")).all()
    assert {r.claimed_by for r in sending} == {"b"} and len(sending) == len(claimed[1])
    assert dispatcher.resume_interrupted(NOW) == len(claimed[1])  # one process restarting: everything it left
    b.close()


# ---- state of the other packages through the same store ----------------------------------------------------------


def test_accounts_sessions_lockout_and_tokens(store: Store) -> None:
    from access.app import open_access
    from core.config import parse_config
    from core.errors import NotAuthenticated

    access = open_access(store, parse_config({}))
    access.create_user("liwei", "press_office", "correct horse battery", regions=())
    session_id, principal = access.login("liwei", "correct horse battery")
    assert principal.name == "liwei" and access.session(session_id).name == "liwei"
    for _ in range(5):
        with pytest.raises(NotAuthenticated):
            access.login("liwei", "wrong")
    with pytest.raises(NotAuthenticated):  # locked now, even with the right password
        access.login("liwei", "correct horse battery")
    token_id, token = access.create_token("hotline", "ingest", sources=["board_a"], by="admin")
    assert access.token(token).sources == ("board_a",)
    access.revoke_token(token_id, by="admin")
    assert access.token(token) is None
    actions = [a["action"] for a in access.list_audit(limit=100)[0]]
    assert {"login", "login_failed", "token_create", "token_revoke"} <= set(actions)


def test_alerts_raise_once_per_item_group_into_the_outbox_and_obey_silences(loaded: Store) -> None:
    import alerts.store  # noqa: F401 - registers the alert tables, as the alerts package does on attach
    from alerts.engine import AlertEngine
    from alerts.store import alert_outbox
    from core.config_alerts import AlertsConfig

    loaded.migrate()
    config = AlertsConfig.model_validate({
        "rules": [{"name": "risky", "min_risk_score": 50, "max_age": "3650d"}],
        "route": {"receiver": "duty", "group_by": ["source"], "group_wait": "0s"},
        "receivers": [{"name": "duty", "inapp": {}}]})
    engine = AlertEngine(config, loaded)
    items = loaded.search(ItemQuery(limit=500)).data
    engine.create_silence(matchers=['source="hotline_a"'], reason="值班已知", owner="admin",
                          ends_at=datetime.now(SHANGHAI) + timedelta(hours=1))
    raised = engine.evaluate(items)
    assert len(raised) == 3  # items 1, 2 (board_a) and 4 (hotline_a) score 50 or more
    engine.evaluate(items)  # the same items again: the same alerts, refreshed
    listed = engine.reader.list(limit=50)[0]
    assert sorted((a["item_id"], a["state"]) for a in listed) == sorted(
        [(id_of(loaded, "1"), "firing"), (id_of(loaded, "2"), "firing"), (id_of(loaded, "4"), "silenced")])
    engine.tick(deliver=False)
    with loaded.read() as conn:
        rows = conn.execute(alert_outbox.select()).all()
    assert [(r.receiver, r.integration, r.status) for r in rows] == [("duty", "inapp", "pending")]  # one group
    assert sorted(a["item_id"] for a in json.loads(rows[0].payload)["alerts"]) == sorted(
        [id_of(loaded, "1"), id_of(loaded, "2")])


def test_resolved_alerts_move_to_the_archive_and_stay_readable(loaded: Store) -> None:
    import alerts.store  # noqa: F401 - registers the alert tables, as the alerts package does on attach
    from alerts.clock import ManualClock
    from alerts.engine import AlertEngine, AlertStateError
    from alerts.store import alert_labels, alert_members, alerts_archive
    from alerts.store import alerts as alert_table
    from core.config_alerts import AlertsConfig

    loaded.migrate()
    config = AlertsConfig.model_validate({
        "rules": [{"name": "risky", "min_risk_score": 50, "max_age": "3650d"}],
        "route": {"receiver": "duty", "group_by": ["source"], "group_wait": "0s"},
        "receivers": [{"name": "duty", "inapp": {}}], "archive": {"after": "1d", "batch": 1}})
    clock = ManualClock(datetime.now(SHANGHAI))
    engine = AlertEngine(config, loaded, clock=clock)
    items = loaded.search(ItemQuery(limit=500)).data
    raised = sorted(engine.evaluate(items))
    assert len(raised) == 3
    first, second, kept = raised
    engine.resolve(first, "duty")
    engine.resolve(second, "duty")
    engine.acknowledge(kept, "duty")
    assert engine.tick(deliver=False)["archived"] == 0  # resolved, but not a day ago
    clock.advance(timedelta(days=1, minutes=1))
    # One alert per pass (batch 1); a full batch makes the next tick look again at once, an empty one waits a minute.
    assert [engine.tick(deliver=False)["archived"] for _ in range(4)] == [1, 1, 0, 0]

    def hot(column: Any) -> list[Any]:
        with loaded.read() as conn:
            return sorted(set(conn.execute(select(column)).scalars()))

    assert hot(alert_table.c.id) == [kept]
    assert hot(alert_labels.c.alert_id) == [kept] and hot(alert_members.c.alert_id) == [kept]
    assert hot(alerts_archive.c.id) == [first, second]

    archived = engine.reader.get(first)
    assert archived["state"] == "resolved" and archived["resolved_by"] == "duty" and archived["archived_at"]
    assert engine.reader.get(kept)["archived_at"] is None
    assert [a["id"] for a in engine.reader.list()[0]] == [kept, second, first]
    assert engine.reader.list(state="resolved") == (engine.reader.list()[0][1:], 2)
    assert [a["id"] for a in engine.reader.list(state="acknowledged")[0]] == [kept]
    board = engine.reader.list(labels={"source": "board_a"})
    assert board[1] == 2 and {a["id"] for a in board[0]} <= {first, second, kept}
    paged, before = [], None  # paging by id crosses from the hot table into the archive without gaps or repeats
    while True:
        page, count = engine.reader.list(limit=1, before_id=before)
        assert count == 3
        if not page:
            break
        paged.append(page[0]["id"])
        before = page[0]["id"]
    assert paged == [kept, second, first]
    period = engine.reader.period(0, clock.now().timestamp() + 1)  # reports count archived alerts as the others
    assert [len(period[k]) for k in ("raised", "acknowledged", "resolved")] == [3, 1, 2]
    assert engine.evaluate(items) == []  # an archived alert is resolved: its item does not raise it again
    with pytest.raises(AlertStateError):
        engine.acknowledge(first, "duty")
    with pytest.raises(NotFound):
        engine.reader.get(max(raised) + 1000)
