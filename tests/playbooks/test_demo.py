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


def test_demo_site_incident_starts_major_incident_within_minutes(tmp_path: Path) -> None:
    """On `make run` the incident comes through the demo site: its posts, crawled each minute, must raise the grade
    that starts `major_incident` within minutes of start-up (it once took an hour), and top the risk feed then."""
    from datetime import datetime, timedelta

    from core.models import SHANGHAI, RawRecord
    from demo.feed import FEEDS, SiteFeed
    from storage.base import ItemQuery

    config = load_config(ROOT / "yuqing.example.yaml")
    site = config.crawling.demo_site
    minutes = 9  # after start-up, crawling each minute (the demo sources' schedule)
    start = datetime.now(SHANGHAI) - timedelta(minutes=minutes)
    feed = SiteFeed(seed=site.seed, history=10, new_item_seconds=10**7, start=start,
                    incident_after_minutes=site.incident_after_minutes, incident_minutes=site.incident_minutes)
    sources = {"board2": "demo_board2", "liuyan": "demo_liuyan", "zhaocuo": "demo_board"}
    service = build_service(config, db_path=tmp_path / "site.db")
    seen: set[tuple[str, str]] = set()
    try:
        for minute in range(minutes + 1):  # what each minute's crawl finds new
            records = []
            for name, channel in FEEDS.items():
                for item in feed.visible(name, start + timedelta(minutes=minute)):
                    if (name, item.key) not in seen:
                        seen.add((name, item.key))
                        records.append(RawRecord(source=sources.get(name, f"demo_{channel}"), origin="demo",
                                                 payload={**item.payload, "source_id": f"{name}-{item.key}"}))
            service.writer.ingest(records)
        [top] = service.store.search(ItemQuery(sort="risk", limit=1)).data
        incident = {i.enrichment.event_id for i in service.store.search(ItemQuery(limit=500)).data if "化工厂" in i.text}
        runs, _ = service.playbooks.runs.list(limit=500)
    finally:
        service.close()
    assert "化工厂" in top.text and top.enrichment.risk_level in ("I", "II"), (top.enrichment.risk_score, top.text)
    major = [r for r in runs if r["playbook_id"] == "major_incident" and r["event_id"] in incident]
    assert major and major[0]["labels"]["grade"] in ("I", "II")
