"""/metrics (Prometheus text, managers and admins only) and `yuqing status` report the same levels; no personal data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from api.main import create_app
from core.config import load_config
from core.models import RawRecord
from tests.helpers.clock import recent
from yuqing.service import build_service

REPO = Path(__file__).resolve().parents[2]


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_and_status_report_ingest_quarantine_outboxes_and_latency(tmp_path, signed_in) -> None:  # noqa: ANN001
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({
        "storage": {"sqlite_path": str(tmp_path / "m.db")}, "crawling": {"scheduler": False},
        "sources": {"board_a": {"channel": "board", "region": "江城市"}},
        "alerts": {"rules": [{"name": "every_item"}], "route": {"receiver": "duty", "group_wait": 0},
                   "receivers": [{"name": "duty", "inapp": {}}]}}, allow_unicode=True))
    service = build_service(load_config(path), enrich=False)
    try:
        records = [RawRecord(source="board_a", payload={"source_id": str(n), "title": f"张三反映路灯{n}",
                                                        "content": "电话13812345678", "published_at": recent()})
                   for n in range(3)]
        records.append(RawRecord(source="board_a", payload={"title": "no time"}))
        service.writer.ingest(records)
        service.alerts.tick()  # flush and deliver in-app
        app = create_app(service, start_workers=False)
        with signed_in(app, role="press_office") as press:
            assert press.get("/metrics").status_code == 403
        with signed_in(app, role="manager") as manager:
            answer = manager.get("/metrics")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
        text = answer.text
        got = samples(text)
        assert got[("yuqing_items_stored", (("source", "board_a"),))] == 3
        assert got[("yuqing_records_collected_total", (("source", "board_a"),))] >= 4
        assert got[("yuqing_records_quarantined_total", (("source", "board_a"), ("stage", "normalise")))] >= 1
        assert got[("yuqing_outbox_depth", (("outbox", "after_store"), ("status", "pending")))] == 0
        assert got[("yuqing_outbox_depth", (("outbox", "alerts"), ("status", "sent")))] == 1
        assert ("yuqing_queue_length", (("queue", "inbox"),)) in got
        assert any(name == "yuqing_ingest_stage_seconds_count" for name, _ in got)
        assert any(name == "yuqing_alert_latency_seconds_count" for name, _ in got)
        assert "13812345678" not in text and "张三" not in text and "路灯" not in text
    finally:
        service.close()
    run = subprocess.run([sys.executable, "-c", "from yuqing.cli import main; main()", "status", "--json", "-c", str(path)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    status = json.loads(run.stdout.strip().splitlines()[-1])
    assert status["items_by_source"] == {"board_a": 3} and status["quarantined"] == 1
    assert status["after_store_pending"] == 0 and status["outbox_by_status"] == {"sent": 1}
