"""What one stage of a batch learns for the stages after it: publication timestamps computed once (events, risk, the
store), and the items exact dedup found the store without, which the analysis stages then need not ask about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from core.models import Item
from flow.intake import DedupStage
from flow.stages import Batch
from nlp.tokenize import segment
from storage.sqlite import SqliteStore

EAST_8 = timezone(timedelta(hours=8))


def item(source_id: str, content: str, hour: int = 8) -> Item:
    return Item(source="board_a", channel="board", source_id=source_id, title="", content=content,
                published_at=datetime(2026, 11, 1, hour, 30, 15, 123456, tzinfo=EAST_8),
                fetched_at=datetime(2026, 11, 2, tzinfo=UTC))


def test_published_timestamps_are_each_items_and_computed_once() -> None:
    items = [item("a", "一", 8), item("b", "二", 9)]
    batch = Batch(items=items)
    first = batch.published_timestamps()
    assert first == [it.published_at.timestamp() for it in items]
    assert batch.published_timestamps() == first
    assert batch.published == {id(it): ts for it, ts in zip(items, first, strict=True)}
    assert batch.timed == items  # held: no other object can take their ids
    # a sub-batch shares them; an item that is another object than the one timed gets its own
    other = item("b", "二", 10)
    assert batch.sub([items[0], other]).published_timestamps() == [first[0], other.published_at.timestamp()]


def test_dedup_marks_the_items_the_store_lacks(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db", segment=segment)
    try:
        stored = item("a", "道路积水")
        store.upsert([stored])
        changed, new, again = item("a", "道路积水严重"), item("b", "公交线路调整"), item("b", "公交线路调整意见")
        batch = Batch(items=[changed, new, again])
        DedupStage(store).run(batch)
        assert batch.items == [changed, again]
        assert batch.unstored.get(id(again)) is again
        assert id(changed) not in batch.unstored
    finally:
        store.close()


def test_analysis_asks_the_store_only_about_items_dedup_did_not_find_new(tmp_path: Path) -> None:
    from analysis.stages import AnalysisState, Prepared
    from core.config import parse_config

    store = SqliteStore(tmp_path / "s.db", segment=segment)
    try:
        store.upsert([item("a", "道路积水")])
        changed, new = item("a", "道路积水严重"), item("b", "公交线路调整")
        batch = Batch(items=[changed, new])
        DedupStage(store).run(batch)
        state = AnalysisState(parse_config({}).analysis, store)
        asked: list[list[tuple[str, str]]] = []
        known_items = store.known_items
        store.known_items = lambda keys: asked.append(list(keys)) or known_items(keys)  # type: ignore[method-assign]
        prepared = [Prepared(it, None, 0, [], [], [], [], None) for it in batch.items]  # type: ignore[arg-type]
        state.fill_known(batch.items, prepared, batch.unstored)
        assert asked == [[("board_a", "a")]]
        assert prepared[0].known is not None and prepared[0].known[0] == store.lookup([changed])[0][("board_a", "a")][0]
        assert prepared[1].known is None
    finally:
        store.close()
