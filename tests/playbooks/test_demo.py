"""The demo data (as `make run` loads it) starts the major-incident plan for the demo incident, work-order plans for
the hotline items and petition plans for the letters."""

from __future__ import annotations

from pathlib import Path

from core.config import load_config
from yuqing.service import build_service, ingest_demo

ROOT = Path(__file__).resolve().parents[2]


def test_demo_incident_starts_major_incident(tmp_path: Path) -> None:
    config = load_config(ROOT / "yuqing.example.yaml")
    service = build_service(config, db_path=tmp_path / "demo.db")
    try:
        ingest_demo(service, count=150, seed=2026)
        plans = service.playbooks
        runs, _ = plans.runs.list(limit=500)
        by_playbook = {r["playbook_id"] for r in runs}
        assert {"major_incident", "hotline_12345", "petition_letter"} <= by_playbook
        [major] = [r for r in runs if r["playbook_id"] == "major_incident"]
        assert major["event_id"] and major["labels"]["grade"] in ("I", "II")
        statement = next(s for s in major["steps"] if s["step_id"] == "statement")
        assert statement["due_spec"] == "5h" and statement["time_left"] is not None
        assert plans.tick()["warning"] >= 1  # the 1-hour assessment is inside its warning window at once
    finally:
        service.close()
