"""Alerts get their providers (typed collaborators) from the composition root, not by importing other packages."""

from __future__ import annotations

from analysis.cluster import heat_index
from analysis.event_store import get_event
from core.config import parse_config
from flow.ingest import STAGES
from tests.helpers.events import CONFIG, GRIEVANCE, raw_records
from yuqing.service import build_service


def test_event_heat_comes_from_analysis(tmp_path) -> None:
    config = parse_config({**CONFIG.model_dump(mode="json", by_alias=True, exclude_none=True),
                           "storage": {"sqlite_path": str(tmp_path / "wiring.db")}})
    service = build_service(config)
    try:
        heat = service.alerts.event_heat
        assert heat is not None
        ids = service.writer.ingest(raw_records(GRIEVANCE)).item_ids
        event_id = service.store.get(ids[0]).enrichment.event_id
        event = get_event(service.store, event_id)
        # One definition: what alert rules read is what the events API shows, computed by heat_index.
        assert heat(event_id) == event["heat"] == heat_index(event["volume"], event["engagement"],
                                                            len(event["channels"]), len(event["sources"]))
        assert heat("ev-missing") is None
        names = [s.name for s in service.ingestor.chain.stages]
        assert names == [name for name, _ in STAGES if name in names]
        assert names[-3:] == ["analysis_persist", "alert_rules", "plan_triggers"]
    finally:
        service.close()


def test_without_enrichment_alerts_run_without_event_heat(tmp_path) -> None:
    config = parse_config({**CONFIG.model_dump(mode="json", by_alias=True, exclude_none=True),
                           "storage": {"sqlite_path": str(tmp_path / "bare.db")}})
    service = build_service(config, enrich=False)
    try:
        assert service.analysis is None and service.alerts.event_heat is None
        assert [s.name for s in service.ingestor.chain.stages] == ["normalise", "dedup", "store", "alert_rules",
                                                                 "plan_triggers"]
    finally:
        service.close()


def test_min_event_heat_holds_only_on_the_heat_analysis_defines(make_harness) -> None:
    from alerts.rules import RuleEvaluator

    h = make_harness({"rules": [{"name": "hot", "kind": "event", "min_event_heat": 2, "severity": "critical"}],
                      "route": {"receiver": "duty"}, "receivers": [{"name": "duty", "inapp": {"audience": "duty"}}]})
    ids = h.ingest(*[h.item(event_id="ev-1") for _ in range(3)])
    items = [h.service.store.get(i) for i in ids]

    def drafts(heat):  # noqa: ANN001, ANN202 - an EventHeat or None → drafts
        evaluator = RuleEvaluator(h.engine.config.rules, public_url="http://x", store=h.service.store, event_heat=heat)
        return evaluator.evaluate(items, h.clock.now())

    # No heat without analysis: a minimum heat cannot be shown to hold (no second, linear heat of 3 items to fall back on)
    assert drafts(None) == []
    assert drafts(lambda event_id: 1.9) == []
    [draft] = drafts(lambda event_id: 25.0 if event_id == "ev-1" else None)
    assert draft.labels["event_heat"] == "25" and draft.annotations["reasons"][0]["weight"] == 25.0
