"""Events: incremental clustering across channels and batches, persistence across restarts, and the two hot issues
the 泰迪杯 2020C problem statement names (ids 360100-360114 of 附件3)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pandas as pd
import pytest

from analysis.cluster import item_vector
from analysis.event_store import get_event, list_events
from analysis.stages import AnalysisState, EventStage, KeywordStage, PersistStage, analysis_stages, analysis_state
from core.config import parse_config
from core.models import RawRecord
from flow.ingest import Ingestor
from flow.intake import NormaliseStage
from flow.stages import Batch
from nlp.tokenize import segment, segment_many
from storage.sqlite import SqliteStore
from tests.helpers.events import CONFIG, GRIEVANCE, OTHER, raw_records


def _ingestor(store: SqliteStore) -> Ingestor:
    return Ingestor(CONFIG, store, analysis_stages(CONFIG, analysis_state(CONFIG, store)))


def test_one_grievance_across_channels_is_one_event_built_incrementally(tmp_path) -> None:
    store = SqliteStore(tmp_path / "e.db", segment=segment)
    ingest = _ingestor(store)
    ids = []
    for i, pair in enumerate(GRIEVANCE + OTHER):  # one item per batch: clustering happens as items arrive
        ids.extend(ingest.ingest(raw_records([pair], start=i)).item_ids)
    events = [store.get(i).enrichment.event_id for i in ids]
    assert len(set(events[:3])) == 1
    assert len(set(events)) == 3
    event = get_event(store, events[0])
    assert event["volume"] == 3 and set(event["channels"]) == {"hotline", "mailbox", "weibo"}
    assert "烧烤店" in event["keywords"] or "油烟" in event["keywords"]
    ranked, count = list_events(store)
    assert count == 3 and ranked[0]["id"] == events[0]
    store.close()
    # After a restart the event is rebuilt from the store and keeps growing instead of splitting.
    reopened = SqliteStore(tmp_path / "e.db", segment=segment)
    more = _ingestor(reopened).ingest(raw_records([("b", "幸福里小区烧烤店油烟噪音扰民问题仍未解决，居民再次投诉，希望彻底整治。")],
                                               start=100))
    assert reopened.get(more.item_ids[0]).enrichment.event_id == events[0]
    assert get_event(reopened, events[0])["volume"] == 4


def test_recrawl_does_not_double_count(tmp_path) -> None:
    store = SqliteStore(tmp_path / "r.db", segment=segment)
    ingest = _ingestor(store)
    first = ingest.ingest(raw_records(GRIEVANCE[:1])).item_ids[0]
    changed = raw_records(GRIEVANCE[:1])
    changed[0].payload["likes"] = 50
    ingest.ingest(changed)
    event = get_event(store, store.get(first).enrichment.event_id)
    assert event["volume"] == 1 and event["engagement"] == 50


HOT_ISSUES = (  # (planted ids, the place or body, words of the matter)
    (range(360100, 360110), "魅力之城", ("油烟", "噪音", "烧烤", "夜宵", "扰民", "排烟")),
    (range(360110, 360115), "经济学院", ("实习", "打工", "工厂", "实训")),
)


@pytest.mark.data
def test_problem_statement_hot_issues_come_out_as_clean_issues(shared_data) -> None:
    """All of 附件3, batch after batch as a drain would: each planted hot issue is one issue holding all its posts
    (the 经济学院 posts span 2017-2019: several events, each bounded in time, of one issue), the two apart, no issue
    over 200 posts, and everything else in that issue is about the same matter at the same place or body."""
    frame = pd.read_csv(shared_data / "tipdm2020c_hot_issue_messages" / "messages.csv")
    state = AnalysisState(CONFIG.analysis)
    items = []
    for start in range(0, len(frame), 500):
        chunk = frame.iloc[start:start + 500]
        batch = Batch(raw=[RawRecord(source="b", payload={"source_id": str(r.message_id), "title": r.title,
                                                          "content": r.body, "published_at": r.created_at,
                                                          "likes": r.likes}) for r in chunk.itertuples()])
        NormaliseStage(CONFIG).run(batch)
        for item, words in zip(batch.items, segment_many([i.text for i in batch.items]), strict=True):
            batch.tokens[id(item)] = words
        KeywordStage(state).run(batch)
        EventStage(state).run(batch)
        PersistStage(state).run(batch)  # end of batch: events of one matter found apart are merged
        items.extend(batch.items)
    clusterer = state.events
    event_of = {int(i.source_id): clusterer.events[clusterer.resolve(i.enrichment.event_id)].issue_id for i in items}
    members: dict[str, list] = {}
    for item in items:
        members.setdefault(event_of[int(item.source_id)], []).append(item)
    for ids, marker, matter in HOT_ISSUES:
        events = {event_of[i] for i in ids}
        assert len(events) == 1, (marker, Counter(event_of[i] for i in ids))
        event = events.pop()
        for m in members[event]:
            assert marker in m.text and any(w in m.text for w in matter), (marker, m.source_id, m.title)
    assert event_of[360100] != event_of[360110]
    assert max(Counter(event_of.values()).values()) <= 200
    for item in items:  # an event is bounded: no gap of 14 days or more between its consecutive items
        days = sorted(i.published_at.timestamp() / 86400 for i in items
                      if i.enrichment.event_id == item.enrichment.event_id) if int(item.source_id) >= 360100 else []
        assert all(b - a < 14 for a, b in zip(days, days[1:], strict=False)), item.source_id
    # A different matter at the same place stays apart (楼板开裂 at 魅力之城小区).
    cracks = [i for i in items if "魅力之城" in i.title and "开裂" in i.title]
    assert cracks and all(event_of[int(i.source_id)] != event_of[360100] for i in cracks)


def test_events_merge_when_one_matter_was_reported_apart(tmp_path) -> None:
    """Two reports of one matter at one named site, worded so differently that the second starts its own event,
    are merged at the end of the batch once a third report ties them; the store follows (rows and items)."""
    store = SqliteStore(tmp_path / "m.db", segment=segment)
    ingest = _ingestor(store)
    texts = [("hotline_a", "市民来电：幸福里小区楼下烧烤店油烟直排，窗户不敢开。"),
             ("mailbox_a", "幸福里小区一楼商铺营业到凌晨，吆喝声、噪音吵得老人睡不着。"),
             ("weibo_a", "幸福里小区楼下烧烤店油烟和噪音扰民，营业到凌晨，吆喝声不断，油烟直排。")]
    ids = []
    for i, pair in enumerate(texts):
        ids.extend(ingest.ingest(raw_records([pair], start=i)).item_ids)
        if i == 1:
            assert len({store.get(j).enrichment.event_id for j in ids}) == 2  # apart so far
    stored = [store.get(i).enrichment.event_id for i in ids]
    assert len(set(stored)) == 1, stored
    ranked, count = list_events(store)
    assert count == 1 and ranked[0]["volume"] == 3


def test_events_schemes_and_spikes_api(tmp_path, signed_in) -> None:

    from api.main import create_app
    from yuqing.service import build_service

    config = parse_config({**CONFIG.model_dump(mode="json", by_alias=True, exclude_none=True),
                           "storage": {"sqlite_path": str(tmp_path / "api.db")}})
    config.analysis.spikes.min_count = 3  # five items in all: a group of three may count as a spike
    service = build_service(config)  # the real flow: PII → segment → classify → analysis → store → persist
    names = [s.name for s in service.ingestor.chain.stages]
    assert names.index("pii_mask") < names.index("dedup") < names.index("events") < names.index("store")
    assert names.count("analysis_persist") == 1 and isinstance(service.analysis, AnalysisState)
    assert all(getattr(s, "state", service.analysis) is service.analysis for s in service.ingestor.chain.stages)
    from analysis import api as event_routes

    assert sum(r is event_routes.router for r in service.routers) == 1
    service.ingestor.ingest(raw_records(GRIEVANCE + OTHER))
    with signed_in(create_app(service, start_workers=False)) as client:
        ranked = client.get("/api/events").json()
        assert ranked["count"] == 3 and ranked["data"][0]["volume"] == 3
        hot = client.get("/api/events/hot").json()
        assert hot["count"] == 1 and hot["data"][0]["rank"] == 1
        detail = client.get(f"/api/events/{hot['data'][0]['id']}").json()
        assert len(detail["items"]) == 3
        assert client.get("/api/events/ev-missing").status_code == 404
        assert client.get("/api/schemes").json()["count"] == 15
        bad = client.post("/api/schemes/dry-run", json={"scheme": {"name": "x", "expression": "烧烤 AND ("}})
        assert bad.status_code == 400 and bad.json()["errors"][0]["position"] == 8
        run = client.post("/api/schemes/dry-run", json={"scheme": {"name": "x", "subject": ["烧烤店"], "event": ["油烟"]},
                                                        "since": "2026-01-01", "until": "2026-01-10"})
        assert run.json()["matched"] == 3
        # The grievance's three posts (环境保护) within the hour, none in the 12 hours before: no history, so no
        # spike but a group waiting for its baseline, that day only.
        spikes = client.get("/api/trends/spikes", params={"at": "2026-01-05 10:30"}).json()
        assert spikes["data"] == [] and [(s["dimension"], s["value"], s["recent"], s["baseline"])
                                         for s in spikes["waiting_for_baseline"]] == [("topic", "环境保护", 3, 0)]
        assert client.get("/api/trends/spikes", params={"at": "2026-01-06 10:30"}).json() == {
            "data": [], "count": 0, "waiting_for_baseline": []}
        assert client.get("/api/trends/spikes", params={"dimension": "colour"}).status_code == 400
        risky = client.get("/api/items", params={"risk_level": "IV"}).json()
        assert risky["count"] >= 1
        item = client.get("/api/items").json()["data"][0]
        assert item["enrichment"]["topic"] and item["enrichment"]["keywords"] and item["enrichment"]["event_id"]
    service.close()


def _rows(texts: list[str], start: float = 1.7e9) -> list[tuple]:
    """Join rows for `EventClusterer.join_batch` made the way the event stage makes them (keywords from tf-idf)."""
    from analysis.cluster import item_vector

    state = AnalysisState(CONFIG.analysis)
    batch = Batch(raw=raw_records([("b", t) for t in texts]))
    NormaliseStage(CONFIG).run(batch)
    prepared = state.prepare(batch)
    return [(item_vector(p.terms, p.places[:5], p.names, p.hits.matters), start + i * 60, t[:20], "b", "board", None, 0, p.names)
            for i, (t, p) in enumerate(zip(texts, prepared, strict=True))]


def test_join_batch_is_the_same_as_joining_one_item_at_a_time() -> None:
    """Items earlier in a batch count: a batch gives the events that joining its items one by one gives."""
    from analysis.cluster import EventClusterer

    texts = [t for _, t in GRIEVANCE + OTHER] + [GRIEVANCE[0][1] + "再次反映。", OTHER[0][1]]
    rows = _rows(texts)
    batch, single = EventClusterer(CONFIG.analysis.events), EventClusterer(CONFIG.analysis.events)
    by_batch = batch.join_batch(rows)
    one_by_one = [single.join(*row) for row in rows]
    assert len(set(by_batch[:3])) == 1 and by_batch[-2] == by_batch[0] and by_batch[-1] == by_batch[3]
    assert [by_batch.index(e) for e in by_batch] == [one_by_one.index(e) for e in one_by_one]
    assert len(batch.events) == len(single.events) == 3
    assert {e.volume for e in batch.events.values()} == {4, 2, 1}


def test_join_batch_forgets_the_oldest_events_past_max_active() -> None:
    """Past `max_active` live events the least recently active are dropped, index included, mid-batch too."""
    from analysis.cluster import EventClusterer
    from core.config_analysis import EventsConfig

    clusterer = EventClusterer(EventsConfig(max_active=100))
    rows = [({f"词{i}": 0.8, f"语{i}": 0.6}, 1.7e9 + i, f"标题{i}", "b", "board", None, 0, ()) for i in range(150)]
    ids = clusterer.join_batch(rows)
    assert len(set(ids)) == 150 and len(clusterer.events) <= 100
    assert ids[-1] in clusterer.events and ids[0] not in clusterer.events
    live = set(clusterer.events)
    assert all(e in live for posting in clusterer._index.values() for e in posting)
    assert clusterer.join_batch([({"词149": 0.8, "语149": 0.6}, 1.7e9 + 200, "又一", "b", "board", None, 0, ())]) == [ids[-1]]


def test_the_issue_index_follows_links_merges_and_forgetting() -> None:
    """Linking two issues renames one issue's events through the clusterer's issue index, not a walk over every live
    event: after each step the index must hold exactly the live events grouped by issue."""
    from collections import Counter

    from analysis.cluster import EventClusterer, EventState

    days = 86400.0
    clusterer = EventClusterer(CONFIG.analysis.events.model_copy(update={"max_active": 6}))

    def grouped() -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for event in clusterer.events.values():
            out.setdefault(event.issue_id, set()).add(event.id)
        return out

    def event(event_id: str, day: float, issue: str, volume: int = 3) -> EventState:
        return EventState(event_id, "幸福里小区噪音", 1.7e9 + day * days, 1.7e9 + day * days + 3600,
                          {"噪音": 0.8, "扰民": 0.6}, volume=volume, names=Counter({"幸福里小区": volume}), issue_id=issue)

    # Issue "a" (two events, months apart) and issue "c": the same grievance at the same site, never linked yet.
    for state in (event("a", 0, "a"), event("b", 90, "a"), event("c", 180, "c", volume=5)):
        clusterer.load(state)
    assert clusterer._issues == grouped() == {"a": {"a", "b"}, "c": {"c"}}
    clusterer.touched_names = {"幸福里小区"}
    clusterer.consolidate()  # c is the largest: it links to a and b; the older issue "a" keeps its id
    assert clusterer._issues == grouped() == {"a": {"a", "b", "c"}}
    assert clusterer.dirty == {"c"}  # only the renamed event is written again
    clusterer.load(event("d", 180.5, "d"))  # within c's time: absorbed by c, and gone from issue "d"
    clusterer.touched_names = {"幸福里小区"}
    clusterer.consolidate()
    assert "d" not in clusterer.events and clusterer._issues == grouped() == {"a": {"a", "b", "c"}}
    rows = [({f"词{i}": 0.8}, 1.7e9 + (200 + i) * days, f"标题{i}", "b", "board", None, 0, ()) for i in range(8)]
    clusterer.join_batch(rows)  # past max_active: the least recently active are forgotten, the index follows
    assert len(clusterer.events) <= 6 and clusterer._issues == grouped()


def test_merged_ids_resolve_through_chains_to_the_survivor() -> None:
    """An absorb records one hop; an id absorbed by an event that was absorbed in turn still resolves to the survivor,
    and resolving points the whole chain at it (no walk over every alias per merge)."""
    from collections import Counter

    from analysis.cluster import EventClusterer, EventState

    clusterer = EventClusterer(CONFIG.analysis.events)
    states = {name: EventState(name, "噪音", 1.7e9, 1.7e9 + 60, {"噪音": 1.0}, volume=volume,
                               names=Counter({"幸福里小区": 1})) for name, volume in (("a", 1), ("b", 2), ("c", 5))}
    clusterer.load(states["a"])
    clusterer.load(states["b"])
    clusterer.touched_names = {"幸福里小区"}
    assert clusterer.consolidate() == {"a": "b"}
    clusterer.load(states["c"])
    clusterer.touched_names = {"幸福里小区"}
    assert clusterer.consolidate() == {"b": "c"}
    assert clusterer.aliases == {"a": "b", "b": "c"}
    assert clusterer.resolve("a") == clusterer.resolve("b") == clusterer.resolve("c") == "c"
    assert clusterer.aliases == {"a": "c", "b": "c"} and list(clusterer.events) == ["c"]
    assert clusterer.events["c"].volume == 8


def test_join_batch_posts_what_posting_each_event_one_by_one_posts() -> None:
    """join_batch posts terms and names inline (a fresh event's all at once, a joined event's new ones): the index must
    hold what `EventClusterer.load` (one `_post` per centroid term and name) builds from the same events."""
    from analysis.cluster import EventClusterer

    texts = [t for _, t in GRIEVANCE + OTHER] + ["幸福里小区一楼商铺营业到凌晨，吆喝声、噪音吵得老人睡不着。",
                                                "市民来电：幸福里小区楼下烧烤店油烟直排，窗户不敢开。",
                                                "江城区光明路菜市场门口占道经营，早上堵得公交车过不去。"]
    rows = _rows(texts)
    assert any(row[7] for row in rows)  # some items name a site, so name postings are covered too
    joined = EventClusterer(CONFIG.analysis.events)
    joined.join_batch(rows)
    assert any(e.volume > 1 for e in joined.events.values()) and any(e.names for e in joined.events.values())
    reference = EventClusterer(CONFIG.analysis.events)
    for event in joined.events.values():
        reference.load(event)
    as_multisets = {key: sorted(posting) for key, posting in joined._index.items()}
    assert as_multisets == {key: sorted(posting) for key, posting in reference._index.items()}


def test_a_long_event_stays_posted_only_under_its_centroid_terms() -> None:
    """Each report of a month-long event brings its own words (numbers, names): the centroid keeps its heaviest terms,
    and the index must follow it (as `load` would build it after a restart) instead of growing with the items."""
    from analysis.cluster import _CENTROID_TERMS, _TRIM_AT, EventClusterer

    clusterer = EventClusterer(CONFIG.analysis.events)
    rows = [({"路灯": 0.6, "小区": 0.5, "维修": 0.4, f"{i}号楼": 0.3, f"工单{i}": 0.3}, 1.7e9 + i, f"第{i}号工单",
             "push", "hotline", None, 0, ()) for i in range(3000)]
    ids = clusterer.join_batch(rows)
    assert len(set(ids)) == 1 and clusterer.events[ids[0]].volume == 3000
    assert len(clusterer.events[ids[0]].centroid) < _TRIM_AT
    assert _CENTROID_TERMS <= len(clusterer._index) < _TRIM_AT  # 6,003 distinct terms were seen
    reference = EventClusterer(CONFIG.analysis.events)
    for event in clusterer.events.values():
        reference.load(event)
    assert {k: sorted(p) for k, p in clusterer._index.items()} == {k: sorted(p) for k, p in reference._index.items()}


def test_batch_item_vectors_equal_item_vector_item_by_item() -> None:
    """The event stage's batch vectors (numpy boost, re-rank and division over the batch's flat term arrays) are
    exactly item_vector's, float for float and in the same key order, for items with and without named sites, places
    among their words (boosted, re-ranked), kinds of matter, and no words at all."""
    texts = [t for _, t in GRIEVANCE + OTHER] + [
        "长沙市雨花区劳动东路工地夜间施工噪音扰民，长沙市住建局和雨花区城管至今没有处理，长沙居民很无奈。",
        "湖南长沙岳麓区一化工厂排放废气，气味刺鼻，附近居民头疼恶心，请湖南省生态环境厅立即查处长沙这家工厂。",
        "A市A5区某学校食堂饭菜质量差，孩子吃了拉肚子，A市教育局请彻查。",
        "好", "", "12345", "WiFi信号太差 wifi 信号 WIFI，北京 北京 北京",
    ]
    state = AnalysisState(CONFIG.analysis)
    batch = Batch(raw=raw_records([("b", t) for t in texts]))
    NormaliseStage(CONFIG).run(batch)
    prepared = state.prepare(batch)
    expected = [item_vector(p.terms, p.places[:5], p.names, p.hits.matters) for p in prepared]
    got = state.item_vectors(prepared)
    assert [list(v.items()) for v in got] == [list(v.items()) for v in expected]
    assert len({id(v) for v in got}) == len(got)  # a dict of its own for each item, empty ones too
    # Every branch was taken: a named site, a boosted place, a kind of matter, an item without words.
    assert any(p.names for p in prepared) and any(not v for v in got)
    assert any(p.hits.matters and not p.names for p in prepared)
    boosted = [p for p in prepared if not p.names and {n.lower() for n in p.places[:5]} & {w for w, _ in p.terms}]
    assert boosted
    # Items prepared in two batches (different term arrays) go item by item and still agree.
    mixed = [*prepared[:3], *AnalysisState(CONFIG.analysis).prepare(Batch(items=batch.items))[3:]]
    assert [list(v.items()) for v in state.item_vectors(mixed)] == [list(v.items()) for v in expected]


def _dated(pairs: list[tuple[str, str, str]], start: int = 0) -> list[RawRecord]:
    return [RawRecord(source=src, payload={"source_id": str(start + i), "content": text, "published_at": when})
            for i, (src, text, when) in enumerate(pairs)]


def test_a_grievance_raised_again_later_is_a_new_event_of_the_same_issue(tmp_path, signed_in) -> None:
    """One matter reported in January and again in March (a month without reports closes the January event): two
    incidents, one issue (热点问题), listed by GET /api/issues; an unrelated item is its own issue."""
    from api.main import create_app
    from yuqing.service import build_service

    config = parse_config({**CONFIG.model_dump(mode="json", by_alias=True, exclude_none=True),
                           "storage": {"sqlite_path": str(tmp_path / "i.db")}})
    service = build_service(config)
    january = [(s, t, "2026-01-05 10:00") for s, t in GRIEVANCE[:2]]
    march = [("weibo_a", "幸福里小区楼下烧烤店又营业到凌晨，油烟和噪音扰民，居民再次投诉，要求彻底整治。", "2026-03-10 22:00")]
    other = [("hotline_a", OTHER[1][1], "2026-03-10 09:00")]
    ids = service.ingestor.ingest(_dated(january)).item_ids
    ids += service.ingestor.ingest(_dated(march + other, start=10)).item_ids
    enrichment = [service.store.get(i).enrichment for i in ids]
    assert enrichment[0].event_id == enrichment[1].event_id != enrichment[2].event_id
    with signed_in(create_app(service, start_workers=False)) as client:
        issues = client.get("/api/issues").json()
        assert issues["count"] == 2
        top = issues["data"][0]
        assert top["events"] == 2 and top["volume"] == 3 and set(top["event_ids"]) == {enrichment[0].event_id,
                                                                                         enrichment[2].event_id}
        assert top["first_seen"].startswith("2026-01-05") and top["last_seen"].startswith("2026-03-10")
        assert client.get("/api/issues", params={"min_events": 2}).json()["count"] == 1
        detail = client.get(f"/api/events/{enrichment[2].event_id}").json()
        assert detail["issue_id"] == top["id"]


def test_a_place_alone_never_joins_two_items(tmp_path) -> None:
    """Two different matters in one district on one day share only the place: two events, two issues."""
    store = SqliteStore(tmp_path / "p.db", segment=segment)
    ingest = _ingestor(store)
    pairs = [("hotline_a", "雨花区劳动东路路灯坏了一个月，晚上漆黑一片。", "2026-01-05 10:00"),
             ("weibo_a", "雨花区劳动东路新开的幼儿园收费太高，家长负担重。", "2026-01-05 11:00")]
    ids = ingest.ingest(_dated(pairs)).item_ids
    first, second = (store.get(i).enrichment.event_id for i in ids)
    assert first != second
    assert get_event(store, first)["issue_id"] != get_event(store, second)["issue_id"]


def test_the_analysis_state_reads_events_and_signatures_only_when_a_batch_needs_them(tmp_path) -> None:
    """A service that only answers reads (no batch yet) never loads the ingest state: its start-up and memory do not
    grow with the events and near-duplicate signatures stored. The first batch loads them and joins stored events."""
    from sqlalchemy import event as sa_event

    store = SqliteStore(tmp_path / "e.db", segment=segment)
    first = _ingestor(store).ingest(raw_records(GRIEVANCE[:1]))
    store.close()
    reopened = SqliteStore(tmp_path / "e.db", segment=segment)
    statements: list[str] = []
    sa_event.listen(reopened.engine, "before_cursor_execute",
                    lambda _c, _cur, statement, *_rest: statements.append(statement))
    ingest = _ingestor(reopened)
    assert not [s for s in statements if "FROM events" in s or "FROM dedup_signatures" in s]
    more = ingest.ingest(raw_records(GRIEVANCE[1:2], start=1))
    assert [s for s in statements if "FROM events" in s] and [s for s in statements if "FROM dedup_signatures" in s]
    event_id = reopened.get(first.item_ids[0]).enrichment.event_id
    assert event_id and reopened.get(more.item_ids[0]).enrichment.event_id == event_id
    reopened.close()


def test_an_event_spans_at_most_max_days_and_reports_past_it_continue_its_issue(tmp_path) -> None:
    """The same grievance reported every five days for ten weeks never closes (close_days is 14), yet no event spans
    more than events.max_days (30): later reports start new events of the same issue, so no event grows without
    bound."""
    store = SqliteStore(tmp_path / "m.db", segment=segment)
    ingest = _ingestor(store)
    texts = [GRIEVANCE[i % 3] for i in range(15)]
    ids = []
    for n, (source, text) in enumerate(texts):
        when = (datetime(2026, 1, 1, 10) + timedelta(days=5 * n)).strftime("%Y-%m-%d %H:%M")
        ids += ingest.ingest(_dated([(source, text, when)], start=n)).item_ids
    items = [store.get(i) for i in ids]
    by_event: dict[str, list] = {}
    for item in items:
        by_event.setdefault(item.enrichment.event_id, []).append(item.published_at)
    assert len(by_event) >= 3
    assert all(max(times) - min(times) <= timedelta(days=CONFIG.analysis.events.max_days) for times in by_event.values())
    assert len({get_event(store, event_id)["issue_id"] for event_id in by_event}) == 1
    store.close()


def test_engagement_total_from_the_field_dict_equals_the_property() -> None:
    """The event stage sums an item's engagement from the model's field dict (`_engagement_total`), without the
    `Engagement.total` property: the two must agree, whichever counts are set."""
    import random

    from analysis.stages import _engagement_total
    from core.models import Engagement

    rng = random.Random(7)
    for _ in range(500):
        counts = {k: rng.choice([0, 1, rng.randint(0, 10**6)]) for k in ("likes", "dislikes", "reposts", "comments",
                                                                         "reads") if rng.random() < 0.7}
        engagement = Engagement(**counts)
        assert _engagement_total(engagement.__dict__) == engagement.total


def test_fresh_event_equals_the_dataclass_constructor() -> None:
    """join_batch's `_fresh_event` makes what EventState(...) makes: every slot equal, its own empty counters."""
    from dataclasses import fields

    from analysis.cluster import EventState, _fresh_event

    for issue in ("ev-0", ""):
        made = _fresh_event("ev-1", "标题", 12.5, {"噪音": 1.0}, issue)
        expected = EventState("ev-1", "标题", 12.5, 12.5, {"噪音": 1.0}, issue_id=issue)
        assert [getattr(made, f.name) for f in fields(EventState)] == [getattr(expected, f.name) for f in fields(EventState)]
        assert made == expected and repr(made) == repr(expected)
        assert len({id(made.sources), id(made.channels), id(made.regions), id(made.names)}) == 4
        assert type(made.sources) is type(expected.sources)

