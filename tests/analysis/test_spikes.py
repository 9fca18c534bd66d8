"""Spikes: a burst in one region and scheme is found against its own baseline, explained; steady volume is not."""

from __future__ import annotations

from datetime import datetime, timedelta

from analysis.spikes import detect_spikes
from core.config import parse_config
from core.models import SHANGHAI, Enrichment, Item
from nlp.tokenize import segment
from storage.sqlite import SqliteStore

NOW = datetime(2026, 2, 1, 12, tzinfo=SHANGHAI)


def _item(i: int, minutes_ago: float, text: str, region: str, topic: str, schemes: list[str], keywords: list[str],
          source: str = "weibo_a") -> Item:
    return Item(source=source, channel="weibo", source_id=str(i), content=text, region=region,
                published_at=NOW - timedelta(minutes=minutes_ago), fetched_at=NOW,
                enrichment=Enrichment(topic=topic, schemes=schemes, keywords=keywords))


def test_burst_is_detected_and_explained(tmp_path) -> None:
    store = SqliteStore(tmp_path / "s.db", segment=segment)
    items = []
    # Steady background: one item an hour about traffic in 江城区 over the last 13 hours.
    for h in range(13):
        items.append(_item(len(items), h * 60 + 30, f"江城区早高峰道路拥堵{h}", "江城区", "交通运输", [], ["拥堵", "早高峰"]))
    # Baseline of the burst group: three items in 12 hours (the least history a group needs to spike).
    for m in (300, 500, 640):
        items.append(_item(len(items), m, f"化工厂附近有异味{m}", "雨花区", "环境保护", ["节能减排与绿色制造"], ["异味", "化工厂"]))
    # The burst: 12 items in the last hour about a leak at the same plant.
    for k in range(12):
        items.append(_item(len(items), k * 4 + 1, f"雨花区化工厂气体泄漏，刺鼻气味{k}", "雨花区", "环境保护",
                           ["节能减排与绿色制造"], ["泄漏", "化工厂", "刺鼻"], source="weibo_b" if k % 3 else "weibo_a"))
    store.upsert(items)
    config = parse_config({}).analysis.spikes
    spikes = detect_spikes(store, config, NOW)
    found = {(s["dimension"], s["value"]) for s in spikes}
    assert ("region", "雨花区") in found and ("scheme", "节能减排与绿色制造") in found and ("topic", "环境保护") in found
    assert ("region", "江城区") not in found
    region = next(s for s in spikes if s["dimension"] == "region")
    assert region["recent"] == 12 and region["baseline"] == 3 and region["p_value"] < 0.001
    terms = [t["term"] for t in region["explanation"]["terms"]]
    assert terms[0] in ("泄漏", "刺鼻")
    assert {s["source"] for s in region["explanation"]["sources"]} == {"weibo_a", "weibo_b"}
    assert len(region["item_ids"]) == 12


def test_no_spike_in_an_empty_or_quiet_store(tmp_path) -> None:
    store = SqliteStore(tmp_path / "q.db", segment=segment)
    assert detect_spikes(store, parse_config({}).analysis.spikes, NOW) == []


def test_a_group_without_history_waits_for_its_baseline(tmp_path) -> None:
    """Right after start-up every group is new: 20 items in the last hour and nothing before must not read as a 240×
    burst; the group is listed as waiting, with the reason."""
    store = SqliteStore(tmp_path / "w.db", segment=segment)
    store.upsert([_item(k, k * 2 + 1, f"新来源的第{k}条消息", "江城区", "交通运输", [], ["消息"], source="fresh_source")
                  for k in range(20)])
    waiting: list[dict] = []
    assert detect_spikes(store, parse_config({}).analysis.spikes, NOW, waiting=waiting) == []
    source = next(w for w in waiting if w["dimension"] == "source")
    assert source["value"] == "fresh_source" and source["recent"] == 20 and source["baseline"] == 0
    assert source["status"] == "no_baseline" and "基线不足" in source["reason"]


def _backfill(item: Item) -> Item:
    item.extra["backfill"] = True  # what `yuqing import` marks its records
    return item


def test_imported_history_neither_fills_a_baseline_nor_spikes(tmp_path) -> None:
    """An import of yesterday's export is history, not volume: backfill items in the baseline window must not hide a
    real burst, and backfill items in the recent window must not read as one."""
    store = SqliteStore(tmp_path / "b.db", segment=segment)
    items = [_item(1000 + m, m, f"化工厂附近有异味{m}", "雨花区", "环境保护", [], ["异味"]) for m in (300, 500, 640)]
    items += [_item(100 + k, k * 4 + 1, f"雨花区化工厂气体泄漏{k}", "雨花区", "环境保护", [], ["泄漏"]) for k in range(12)]
    # 60 imported letters about the same district over the baseline hours: a live baseline this big hides the burst
    items += [_backfill(_item(200 + k, 90 + k * 10, f"雨花区旧信件{k}", "雨花区", "城乡建设", [], ["旧信件"],
                              source="board_tipdm")) for k in range(60)]
    # 30 imported letters in the last hour about a district with a steady live history
    items += [_item(300 + h, h * 60 + 70, f"江城区道路拥堵{h}", "江城区", "交通运输", [], ["拥堵"]) for h in range(12)]
    items += [_backfill(_item(400 + k, k * 2 + 1, f"江城区旧信件{k}", "江城区", "城乡建设", [], ["旧信件"],
                              source="board_tipdm")) for k in range(30)]
    store.upsert(items)
    waiting: list[dict] = []
    spikes = detect_spikes(store, parse_config({}).analysis.spikes, NOW, waiting=waiting)
    found = {(s["dimension"], s["value"]): s for s in spikes}
    assert ("region", "雨花区") in found, spikes
    assert found[("region", "雨花区")]["recent"] == 12 and found[("region", "雨花区")]["baseline"] == 3
    assert ("region", "江城区") not in found and ("source", "board_tipdm") not in found
    assert ("topic", "城乡建设") not in found
    assert not any(w["value"] in ("board_tipdm", "城乡建设") for w in waiting)
