"""Alerts get their providers from the packages attached before them (composition root), not by importing them."""

from __future__ import annotations

from core.config import parse_config
from tests.helpers.events import CONFIG, GRIEVANCE, raw_records
from yuqing.service import build_service


def test_event_heat_comes_from_nlp(tmp_path) -> None:
    config = parse_config({**CONFIG.model_dump(mode="json", by_alias=True, exclude_none=True),
                           "storage": {"sqlite_path": str(tmp_path / "wiring.db")}})
    service = build_service(config)
    try:
        heat = service.components["event_heat"]
        assert service.components["alerts"].event_heat is heat
        ids = service.ingestor.ingest(raw_records(GRIEVANCE)).item_ids
        event_id = service.store.get(ids[0]).enrichment.event_id
        assert event_id and heat(event_id) > 0
        assert heat("ev-missing") is None
    finally:
        service.close()


def test_without_enrichment_alerts_run_without_event_heat(tmp_path) -> None:
    config = parse_config({**CONFIG.model_dump(mode="json", by_alias=True, exclude_none=True),
                           "storage": {"sqlite_path": str(tmp_path / "bare.db")}})
    service = build_service(config, enrich=False)
    try:
        assert "event_heat" not in service.components and service.components["alerts"].event_heat is None
    finally:
        service.close()
