"""The demo's incident tops the risk feed after history is imported (2012–2016 letters once scored 100/I above it)."""

from __future__ import annotations

from core.config import parse_config
from core.models import RawRecord
from storage.base import ItemQuery

OLD_LETTERS = [
    "某建筑公司拖欠农民工工资半年，工人们准备集体上访，有人扬言要跳楼讨说法，政府不作为！",
    "小区旁化工厂偷排废水，河里的鱼全死了，村民准备集体去市政府上访，愤怒！",
    "强拆我家房子，打伤老人，派出所不管，我们要进京上访！",
]


def test_demo_incident_ranks_first_after_an_import_of_history(tmp_path) -> None:
    from yuqing.service import DEMO_SOURCES, build_service, ingest_demo

    sources = {name: {"channel": channel} for channel, name in DEMO_SOURCES.items()}
    config = parse_config({"sources": {**sources, "board_tipdm": {"channel": "board"}},
                           "storage": {"sqlite_path": str(tmp_path / "d.db")}})
    service = build_service(config)
    try:
        ingest_demo(service, count=60, seed=2026)
        history = [RawRecord(source="board_tipdm", payload={
            "source_id": f"old{year}{k}", "title": text[:20], "content": text, "published_at": f"{year}-05-0{k + 1} 10:00",
            "likes": 500, "backfill": True}) for year in (2012, 2014, 2016) for k, text in enumerate(OLD_LETTERS)]
        service.writer.ingest(history)
        top = service.store.search(ItemQuery(sort="risk", limit=5)).data
    finally:
        service.close()
    assert all("化工厂" in item.text and item.source != "board_tipdm" for item in top), [
        (i.enrichment.risk_score, i.text[:30]) for i in top]
