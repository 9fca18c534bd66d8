"""At 100,000 items every query kind of the feed is served by an index, checked by EXPLAIN QUERY PLAN (not timings):
no full scan of `items`, no temporary B-tree for the sort, each filter read through the index pairing it with the
page's sort. The statements checked are the ones `SqliteStore.search` actually runs, captured as they execute."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from core.models import SHANGHAI
from nlp.search_tokens import index_tokens
from nlp.tokenize import segment
from storage.base import ItemQuery
from storage.fts import FTS_KEY_SQL
from storage.sqlite import COUNT_CAP, FEW_TO_SORT, SqliteStore
from tests.helpers.query_plans import plans_during

ITEMS = 100_000
START_TS = 1_760_000_000.0
SPAN = 90 * 86_400  # 90 days


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteStore]:
    """100,000 synthetic rows written in two statements (the plans, not the texts, are under test); times do not
    follow ids, one item in ten has no risk score."""
    store = SqliteStore(Path(tmp_path_factory.mktemp("plans")) / "big.db", segment=segment, index_segment=index_tokens)
    moment = datetime(2026, 1, 1, tzinfo=SHANGHAI).isoformat()
    with store.write() as conn:
        conn.exec_driver_sql("PRAGMA cache_size = -262144")  # 256 MB for this build: 17 indexes fill in random order
        conn.exec_driver_sql(f"""
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ITEMS})
            INSERT INTO items (id, published_ts, risk_rank, risk_score, risk_level, source, channel, topic, emotion,
                               region, event_id, source_id, content_hash, signature, published_at, fetched_at,
                               created_at, updated_at, title, content, doc, likes, reposts,
                               comments, has_reply)
            SELECT i, {START_TS} + (i * 7919 % {ITEMS}) * {SPAN / ITEMS},
                   CASE WHEN i % 10 = 0 THEN -1 ELSE i % 97 END, CASE WHEN i % 10 = 0 THEN NULL ELSE i % 97 END,
                   CASE WHEN i % 97 >= 80 THEN 'I' WHEN i % 97 >= 60 THEN 'II' ELSE 'III' END,
                   'source' || (i % 12), CASE i % 5 WHEN 0 THEN 'weibo' WHEN 1 THEN 'wechat' WHEN 2 THEN 'hotline'
                   WHEN 3 THEN 'mailbox' ELSE 'board' END, 'topic' || (i % 7), 'emotion' || (i % 6),
                   'region' || (i % 30), 'ev' || (i % 5000), 'sid' || i, 'hash' || i, 'sig' || i,
                   strftime('%Y-%m-%dT%H:%M:%S+00:00', {START_TS} + (i * 7919 % {ITEMS}) * {SPAN / ITEMS}, 'unixepoch'), :moment,
                   :moment, :moment, '小区停水', '小区停水三天', '{{}}', 0, 0, 0, 0
            FROM n""", {"moment": moment})
        conn.exec_driver_sql(f"""
            INSERT INTO items_fts (rowid, title, content)
            SELECT {FTS_KEY_SQL}, CASE WHEN id % 3 = 0 THEN '小区 停水' ELSE '路灯 维修' END,
                   (CASE WHEN id % 5 < 2 THEN '小区 ' ELSE '' END) || (CASE WHEN id % 4 = 1 THEN '噪音 扰民 ' ELSE '' END)
                   || (CASE WHEN id % 7 = 2 THEN '物业 停水 ' ELSE '' END) || '投诉 问题'
            FROM items""")
        conn.exec_driver_sql("INSERT INTO item_schemes (item_id, scheme) SELECT id, 'common' FROM items WHERE id % 4 = 0 "
                             "UNION ALL SELECT id, 'rare' FROM items WHERE id % 1000 = 0")
        conn.exec_driver_sql("PRAGMA cache_size = -2000")  # the pooled connection goes back with SQLite's default
    yield store
    store.close()


def plans_of(store: SqliteStore, query: ItemQuery) -> tuple[list[tuple[str, list[str]]], object]:
    """Each statement `search` ran, with its query plan, and the page it answered."""
    return plans_during(store, lambda: store.search(query))


def assert_indexed(plans: list[tuple[str, list[str]]], index_prefix: str | None) -> None:
    """No full scan of items, no sort after the fact; the page query reads through `index_prefix`."""
    for statement, plan in plans:
        for step in plan:
            assert not re.fullmatch(r"SCAN items( .*)?", step) or "USING" in step, (step, statement)
            assert "USE TEMP B-TREE" not in step, (step, statement)
    if index_prefix:
        page = next(p for p in plans if not p[0].lstrip().startswith("SELECT count"))  # the page, not its count
        assert any(index_prefix in step for step in page[1]), page


FILTERS = {"channel": "weibo", "source": "source3", "topic": "topic2", "risk_level": "I", "emotion": "emotion1",
           "region": "region7", "event_id": "ev42"}


@pytest.mark.parametrize("sort", ["time", "risk"])
@pytest.mark.parametrize("column", sorted(FILTERS))
def test_each_filter_reads_its_index_for_either_sort(big_store: SqliteStore, column: str, sort: str) -> None:
    first, page = plans_of(big_store, ItemQuery(**{column: FILTERS[column]}, sort=sort, limit=10))
    assert len(page.data) == 10 and page.next_cursor
    assert_indexed(first, f"ix_items_{column}_{sort}")
    following, _ = plans_of(big_store, ItemQuery(**{column: FILTERS[column]}, sort=sort, limit=10, cursor=page.next_cursor))
    assert_indexed(following, f"ix_items_{column}_{sort}")


@pytest.mark.parametrize(("query", "index"), [
    (ItemQuery(), "ix_items_time"),
    (ItemQuery(sort="risk"), "ix_items_risk_rank"),
    (ItemQuery(channel="weibo", topic="topic2"), None),  # two filters: either's index, still no scan or sort
    (ItemQuery(since=None, min_risk=90, sort="risk"), "ix_items_risk_rank"),
])
def test_feed_and_risk_sort_walk_an_index(big_store: SqliteStore, query: ItemQuery, index: str | None) -> None:
    plans, page = plans_of(big_store, query)
    assert page.data
    assert_indexed(plans, index)
    if page.next_cursor:
        query.cursor = page.next_cursor
        assert_indexed(plans_of(big_store, query)[0], index)


def test_the_indexes_a_bulk_load_built_again_serve_the_feed_as_before(big_store: SqliteStore) -> None:
    """A load that at least doubles the store goes without the feed indexes and builds them at its end
    (`SqliteStore.bulk_load`): every filter and sort reads through its index again. Checked on connections of their
    own: SQLite re-plans a statement whose schema changed when it runs, but a cached EXPLAIN keeps its old plan."""
    def fresh_plans(query: ItemQuery) -> tuple[list[tuple[str, list[str]]], object]:
        reader = SqliteStore.read_only(big_store.path, segment=segment)
        try:
            return plans_of(reader, query)
        finally:
            reader.close()

    with big_store.bulk_load(2 * ITEMS) as load:
        assert len(load.deferred) == 16
        plans, _ = fresh_plans(ItemQuery(channel="weibo", limit=10))
        assert any(re.fullmatch(r"SCAN items( .*)?", step) for _, plan in plans for step in plan)  # meanwhile
    assert load.rebuild_seconds > 0
    for column, value in FILTERS.items():
        for sort in ("time", "risk"):
            plans, page = fresh_plans(ItemQuery(**{column: value}, sort=sort, limit=10))
            assert len(page.data) == 10
            assert_indexed(plans, f"ix_items_{column}_{sort}")
    assert_indexed(fresh_plans(ItemQuery())[0], "ix_items_time")
    assert_indexed(fresh_plans(ItemQuery(sort="risk"))[0], "ix_items_risk_rank")


@pytest.mark.parametrize("q", ["小区", '"小区停水"', "噪音 AND 扰民 NOT 物业", "(停水 OR 噪音) 小区", "物业 NEAR/3 停水"])
def test_full_text_walks_the_time_keyed_index(big_store: SqliteStore, q: str) -> None:
    plans, page = plans_of(big_store, ItemQuery(q=q, limit=20))
    assert len(page.data) == 20 and page.next_cursor
    assert_indexed(plans, "items_fts VIRTUAL TABLE")
    timestamps = [item.published_at for item in page.data]  # (docs are one template: the order is checked below)
    assert len(timestamps) == 20
    following, _ = plans_of(big_store, ItemQuery(q=q, limit=20, cursor=page.next_cursor, channel="weibo"))
    assert_indexed(following, "items_fts VIRTUAL TABLE")


def test_counts_stop_at_the_cap_and_say_so(big_store: SqliteStore) -> None:
    everything = big_store.search(ItemQuery(limit=1))
    assert (everything.count, everything.count_exact) == (COUNT_CAP, False)
    one_event = big_store.search(ItemQuery(event_id="ev42", limit=1))
    assert (one_event.count, one_event.count_exact) == (ITEMS // 5000, True)
    common_word = big_store.search(ItemQuery(q="小区", limit=1))
    assert (common_word.count, common_word.count_exact) == (COUNT_CAP, False)


def test_full_text_pages_follow_the_feed_order(big_store: SqliteStore) -> None:
    """Walking a word's pages gives its matches newest first without gaps, as a sort of all of them would."""
    with big_store.read() as conn:
        expected = [row[0] for row in conn.exec_driver_sql(
            "SELECT items.id FROM items_fts JOIN items ON items.id = (items_fts.rowid & 2147483647) "
            "WHERE items_fts MATCH '物业 AND 噪音' ORDER BY items.published_ts DESC, items.id DESC").all()]
    walked, cursor = [], None
    while True:
        page = big_store.search(ItemQuery(q="物业 噪音", limit=97, cursor=cursor))
        walked.extend(item.id for item in page.data)
        if not (cursor := page.next_cursor):
            break
    assert len(expected) > 1000 and walked == expected


def _moment(offset_seconds: float) -> datetime:
    return datetime.fromtimestamp(START_TS + offset_seconds, tz=SHANGHAI)


# Filters that narrow by something other than the sort key: many matching rows are walked in the sort's index (no
# sort of all of them); a few (FEW_TO_SORT or less) may be read through the narrowing index and sorted.
@pytest.mark.parametrize(("query", "walked"), [
    (ItemQuery(since=_moment(0), until=_moment(SPAN / 2), sort="risk"), "ix_items_risk_rank"),
    (ItemQuery(since=_moment(SPAN / 3), sort="risk", channel="weibo"), "ix_items_channel_risk"),
    (ItemQuery(min_risk=50), "ix_items_time"),
    (ItemQuery(min_risk=50, topic="topic2"), "ix_items_topic_time"),
    (ItemQuery(scheme="common"), "ix_items_time"),
    (ItemQuery(scheme="common", sort="risk"), "ix_items_risk_rank"),
])
def test_a_narrowing_filter_with_many_rows_walks_the_sort_index(big_store: SqliteStore, query: ItemQuery,
                                                                 walked: str) -> None:
    plans, page = plans_of(big_store, replace(query, limit=10))
    assert len(page.data) == 10 and page.count > FEW_TO_SORT
    assert_indexed(plans, walked)
    following, more = plans_of(big_store, replace(query, limit=10, cursor=page.next_cursor))
    assert_indexed(following, walked)
    keys = [(i.enrichment.risk_score or -1, i.id) if query.sort == "risk" else (i.published_at, i.id)
            for i in page.data + more.data]
    assert keys == sorted(keys, reverse=True)


@pytest.mark.parametrize("query", [
    ItemQuery(since=_moment(1000), until=_moment(1000 + 3600), sort="risk"),  # one hour: ~50 rows
    ItemQuery(min_risk=95.5),  # one score in 97
    ItemQuery(scheme="rare"),
    ItemQuery(scheme="rare", sort="risk"),
])
def test_a_narrowing_filter_with_few_rows_reads_them_through_its_index(big_store: SqliteStore, query: ItemQuery) -> None:
    plans, page = plans_of(big_store, query)
    assert page.data and page.count <= FEW_TO_SORT
    for statement, plan in plans:
        assert not any(re.fullmatch(r"SCAN items( .*)?", step) for step in plan), (plan, statement)


def _risk_order(store: SqliteStore, match: str, newest: int | None = None) -> list[int]:
    """Ids of the matches riskiest first (among the `newest` by publication, when given), sorted by SQLite in full."""
    among = f"ORDER BY items_fts.rowid DESC LIMIT {newest}" if newest else ""
    with store.read() as conn:
        return [row[0] for row in conn.exec_driver_sql(
            "SELECT id FROM (SELECT items.id, items.risk_rank FROM items_fts JOIN items "
            f"ON items.id = (items_fts.rowid & 2147483647) WHERE items_fts MATCH '{match}' {among}) "
            "ORDER BY risk_rank DESC, id DESC").all()]


def _walk(store: SqliteStore, query: ItemQuery, pages: int | None = None) -> tuple[list[int], list]:
    walked, cursor, seen = [], None, []
    while pages is None or len(seen) < pages:
        page = store.search(replace(query, cursor=cursor))
        walked.extend(item.id for item in page.data)
        seen.append(page)
        if not (cursor := page.next_cursor):
            break
    return walked, seen


def test_full_text_by_risk_sorts_every_match_when_they_are_fewer_than_the_cap(big_store: SqliteStore) -> None:
    expected = _risk_order(big_store, "物业 AND 噪音")
    walked, pages = _walk(big_store, ItemQuery(q="物业 噪音", sort="risk", limit=97))
    assert 1000 < len(expected) <= COUNT_CAP and walked == expected
    assert all(page.sorted_among is None and page.count_exact for page in pages)


def test_full_text_by_risk_of_a_common_word_sorts_the_newest_matches_up_to_the_cap(big_store: SqliteStore) -> None:
    """小区 matches 40,000 items: the page is the riskiest among the newest COUNT_CAP matches, and says so; reading it
    walks the time-keyed index (stopping at the cap) and sorts only those candidates, never every match."""
    plans, page = plans_of(big_store, ItemQuery(q="小区", sort="risk", limit=50))
    assert page.sorted_among == COUNT_CAP and not page.count_exact
    for statement, plan in plans:
        assert not any(re.fullmatch(r"SCAN items( .*)?", step) and "USING" not in step for step in plan), (plan, statement)
    walked, pages = _walk(big_store, ItemQuery(q="小区", sort="risk", limit=50), pages=3)
    assert walked == _risk_order(big_store, "小区", COUNT_CAP)[:150]
    scores = [item.enrichment.risk_score for p in pages for item in p.data]
    assert scores == sorted(scores, reverse=True)


def test_an_events_facts_are_read_through_its_indexes_not_by_reading_the_event(big_store: SqliteStore) -> None:
    """Asked for every batch that adds to an event: three lookups that stop at one index entry each, with the same
    answer as aggregating over the whole event."""
    plans, facts = plans_during(big_store, lambda: big_store.subject_facts(event_id="ev42"))
    assert len(plans) == 3
    for statement, plan in plans:
        assert all(step.startswith("SEARCH items USING") for step in plan), (plan, statement)
        assert not any("TEMP B-TREE" in step for step in plan), (plan, statement)
    with big_store.read() as conn:
        first, stored, grade = conn.exec_driver_sql(
            "SELECT min(published_ts), min(created_at), min(risk_level) FROM items WHERE event_id = 'ev42'").one()
    assert (facts.first_published_ts, facts.first_stored_at, facts.top_grade) == (first, stored, grade)
