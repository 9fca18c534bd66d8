"""The stage order is one list, `flow.ingest.STAGES`: provided stages fall into place by name, and a wiring that does
not match the list fails at start with the stage named."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Config, parse_config
from flow.ingest import STAGES, Ingestor, StageOrderError, check_provided
from flow.stages import Batch
from nlp.tokenize import segment
from storage.sqlite import SqliteStore


class Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, batch: Batch) -> None:
        return None


def config(tmp_path: Path, **analysis: object) -> Config:
    return parse_config({"storage": {"sqlite_path": str(tmp_path / "o.db")}, "sources": {"b": {"channel": "board"}},
                         **({"analysis": analysis} if analysis else {})})


def test_provided_stages_run_in_the_order_of_the_list_whatever_the_order_given(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db", segment=segment)
    given = {name: Named(name) for name in ("alert_rules", "risk", "pii_mask", "segment")}
    ingestor = Ingestor(config(tmp_path), store, given)
    assert [s.name for s in ingestor.chain.stages] == ["normalise", "pii_mask", "dedup", "segment", "risk", "store",
                                                       "alert_rules"]
    store.close()


def test_a_stage_the_list_does_not_hold_or_holds_for_another_package_is_refused(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db", segment=segment)
    with pytest.raises(StageOrderError, match="'mystery'"):
        Ingestor(config(tmp_path), store, {"mystery": Named("mystery")})
    with pytest.raises(StageOrderError, match="listed for package 'enrich', not 'alerts'"):
        check_provided("alerts", ["risk"])
    with pytest.raises(StageOrderError, match="calls itself"):
        Ingestor(config(tmp_path), store, {"risk": Named("events")})
    store.close()


def test_a_listed_stage_an_enabled_package_does_not_provide_fails_the_start(tmp_path: Path, monkeypatch) -> None:
    import yuqing.service

    real = yuqing.service.enrich_stages

    def without_events(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        stages = real(*args, **kwargs)
        del stages["events"]
        return stages

    monkeypatch.setattr(yuqing.service, "enrich_stages", without_events)
    with pytest.raises(StageOrderError, match="events"):
        yuqing.service.build_service(config(tmp_path), extensions=False)


def test_a_stage_switched_off_in_the_config_is_provided_as_none(tmp_path: Path) -> None:
    from yuqing.service import build_service

    service = build_service(config(tmp_path, events={"enabled": False}, pii={"enabled": False}), extensions=False)
    try:
        names = [s.name for s in service.ingestor.chain.stages]
        assert "events" not in names and "pii_mask" not in names
        assert names == [name for name, _ in STAGES if name in names]
    finally:
        service.close()
