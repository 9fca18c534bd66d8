"""The ingest flow: exact dedup, updates, quarantine of bad input, nothing else lost."""

from __future__ import annotations

from core.models import RawRecord
from storage.base import ItemQuery
from yuqing.service import Service


def rec(source: str = "board_a", **payload) -> RawRecord:
    base = {"source_id": "1", "title": "小区油烟扰民", "content": "楼下烧烤店油烟扰民严重，请环保部门处理。",
            "published_at": "2026-11-20 10:00:00"}
    return RawRecord(source=source, payload={**base, **payload})


def test_item_is_normalised_and_stored(service: Service) -> None:
    report = service.ingestor.ingest([rec(content="<p>楼下烧烤店&nbsp;油烟扰民</p>", likes="12", reply={
        "text": "已责成执法队处理", "department": "东湖区城管局", "replied_at": "2026-11-21 09:00"})])
    assert (report.received, report.stored, report.quarantined) == (1, 1, 0)
    item = service.store.get(report.item_ids[0])
    assert item.content == "楼下烧烤店 油烟扰民"
    assert item.channel == "board"
    assert item.region == "江城市"  # from the source's config
    assert item.engagement.likes == 12
    assert item.reply and item.reply.department == "东湖区城管局"
    assert item.published_at.utcoffset().total_seconds() == 8 * 3600


def test_exact_dedup_is_by_source_id_and_words(service: Service) -> None:
    first = service.ingestor.ingest([rec()])
    assert first.stored == 1
    again = service.ingestor.ingest([rec()])
    assert (again.stored, again.unchanged) == (0, 1)
    # The same words from another source, or under another id of the same site, are other citizens' messages.
    other_source = service.ingestor.ingest([rec(source="weibo_a", source_id="w9")])
    other_ids = service.ingestor.ingest([rec(source_id="2", content="写错了"), rec(source_id="3", content="写错了")])
    assert (other_source.stored, other_source.duplicates) == (1, 0)
    assert (other_ids.stored, other_ids.duplicates) == (2, 0)
    assert service.store.stats().items == 4


def test_same_short_text_keeps_each_citizens_reply(service: Service) -> None:
    """Defect 5 of issue 18: "写错了" from two sites merged into one item and the second reply was lost."""
    report = service.ingestor.ingest([
        rec(source="board_a", source_id="7", title="", content="写错了",
            reply={"text": "已更正网站错误", "department": "市财政局", "replied_at": "2026-11-21 09:00"}),
        rec(source="weibo_a", source_id="7", title="", content="写错了",
            reply={"text": "感谢指正", "department": "市教育局", "replied_at": "2026-11-22 09:00"})])
    assert report.stored == 2
    replies = {service.store.get(i).source: service.store.get(i).reply.department for i in report.item_ids}
    assert replies == {"board_a": "市财政局", "weibo_a": "市教育局"}


def test_identical_reimport_is_unchanged_even_after_enrichment_filled_fields(service: Service) -> None:
    """Defect 6: the stored item (region filled by enrichment) was compared with the raw incoming one: "updated"."""
    from flow.stages import Batch, Chain

    class FillRegion:  # what the places stage does after dedup: a region read from the text
        name = "places_like"

        def run(self, batch: Batch) -> None:
            for item in batch.items:
                item.region = "江城市雨花区"

    stages = list(service.ingestor.chain.stages)
    at = next(i for i, s in enumerate(stages) if s.name == "store")
    enriching = Chain(stages[:at] + [FillRegion()] + stages[at:])
    first = enriching.run(Batch(raw=[rec(source="weibo_a")]))
    assert first.report.stored == 1 and service.store.get(first.report.item_ids[0]).region == "江城市雨花区"
    again = enriching.run(Batch(raw=[rec(source="weibo_a")]))
    assert (again.report.updated, again.report.unchanged) == (0, 1)


def test_an_empty_field_never_replaces_a_stored_one_silently(service: Service) -> None:
    """Defect 1: a broken optional selector sent letters without their reply; the stored replies were wiped."""
    replied = {"text": "已责成执法队处理", "department": "东湖区城管局", "replied_at": "2026-11-21 09:00"}
    service.ingestor.ingest([rec(reply=replied)])
    report = service.ingestor.ingest([rec()])  # the same letter, its reply not found this time
    assert report.unchanged == 1
    assert service.store.search(ItemQuery()).data[0].reply.text == replied["text"]
    kept = [q for q in service.store.list_quarantine(limit=10).data if q.stage == "dedup:kept_stored"]
    assert len(kept) == 1 and "reply" in kept[0].reason


def test_a_copy_of_an_item_that_fails_is_quarantined_not_dropped(service: Service) -> None:
    from flow.stages import Batch, Chain

    class FailFirst:
        name = "enrich_fault"

        def run(self, batch: Batch) -> None:
            if any(item.source_id == "x1" for item in batch.items):
                raise RuntimeError("model crashed on this text")

    chain = service.ingestor.chain
    stages = list(chain.stages)
    at = next(i for i, s in enumerate(stages) if s.name == "store")
    faulty = Chain(stages[:at] + [FailFirst()] + stages[at:])
    batch = faulty.run(Batch(raw=[rec(source_id="x1", content="同样的文字"), rec(source_id="x2", content="同样的文字"),
                                  rec(source_id="x3", content="别的文字")]))
    # x2 has its own id, so it is an item of its own (issue 18), not a copy that shares x1's fate.
    assert {q.payload["source_id"] for q in batch.quarantined} == {"x1"}
    assert sorted(i.source_id for i in batch.stored) == ["x2", "x3"]


def test_changed_item_is_updated_not_duplicated(service: Service) -> None:
    service.ingestor.ingest([rec()])
    report = service.ingestor.ingest([rec(likes=40)])
    assert (report.stored, report.updated) == (0, 1)
    page = service.store.search(ItemQuery())
    assert page.count == 1 and page.data[0].engagement.likes == 40


def test_bad_records_are_quarantined_and_the_rest_is_kept(service: Service) -> None:
    records = [
        rec(source_id="ok1", content="第一条正常内容"),
        rec(source_id="bad-time", published_at="下周三"),
        rec(source_id="no-time", published_at=None),
        rec(source_id="empty", title="", content="  "),
        rec(source_id="huge", content="长" * 2_000_001),
        rec(source_id="neg", likes=-3),
        rec(source_id="nan", likes="很多"),
        rec(source_id="future", published_at="2099-01-01 00:00"),
        RawRecord(source="nowhere", payload={"title": "未知来源", "published_at": "2026-01-01"}),
        rec(source_id="ok2", content="第二条正常内容"),
    ]
    report = service.ingestor.ingest(records)
    assert report.received == 10
    assert report.stored == 2
    assert report.quarantined == 8
    reasons = {r.payload.get("source_id", r.source): r.reason for r in service.store.list_quarantine(limit=50).data}
    assert "unrecognised time format" in reasons["bad-time"]
    assert "published_at is missing" in reasons["no-time"]
    assert "no text" in reasons["empty"]
    assert "content too large" in reasons["huge"]
    assert "negative" in reasons["neg"]
    assert "not a number" in reasons["nan"]
    assert "future" in reasons["future"]
    assert "unknown source" in reasons["nowhere"]


def test_requarantining_the_same_input_counts_it_once(service: Service) -> None:
    bad = rec(source_id="bad", published_at="???")
    service.ingestor.ingest([bad])
    service.ingestor.ingest([bad])
    page = service.store.list_quarantine()
    assert page.count == 1 and page.data[0].times_seen == 2


def test_a_stage_that_crashes_on_one_item_quarantines_only_that_item(config) -> None:
    from yuqing.service import build_service

    class Fragile:
        name = "fragile"

        def run(self, batch) -> None:
            for item in batch.items:
                if "炸" in item.content:
                    raise RuntimeError("model exploded")

    svc = build_service(config, enrich=False, extensions=False)
    svc.ingestor.chain.stages.insert(2, Fragile())
    report = svc.ingestor.ingest([rec(source_id="a", content="正常"), rec(source_id="b", content="炸了"),
                                  rec(source_id="c", content="也正常")])
    assert (report.stored, report.quarantined) == (2, 1)
    assert "model exploded" in svc.store.list_quarantine().data[0].reason
    svc.close()


def test_inbox_drain_ingests_and_empties(service: Service) -> None:
    service.store.put([rec(source_id=str(i), content=f"收件箱内容{i}") for i in range(7)])
    assert service.store.pending() == 7
    report = service.writer.drain()
    assert report.stored == 7
    assert service.store.pending() == 0


def test_a_database_from_before_copies_were_kept_is_upgraded(tmp_path) -> None:
    from sqlalchemy import create_engine, inspect, text

    from storage.migrations import migrate

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        migrate(conn)
        conn.execute(text("ALTER TABLE item_duplicates DROP COLUMN doc"))  # as core v2 left it
        conn.execute(text("UPDATE schema_version SET version = 2 WHERE component = 'core'"))
    with engine.begin() as conn:
        assert migrate(conn)["core"] >= 3
    assert "doc" in {c["name"] for c in inspect(engine).get_columns("item_duplicates")}
