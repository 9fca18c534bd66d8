"""Unmasked originals are shown only to the roles in access.pii_roles, and every view or refusal is audited."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.main import create_app
from core.config import Config
from core.models import RawRecord
from yuqing.service import build_service

PERSONAL = "我叫张三，电话13812345678，家住雨花区XX小区3栋2单元501室，小区停水三天"


def test_original_is_for_pii_roles_only_and_each_view_is_audited(tmp_path):
    config = Config.model_validate({"storage": {"sqlite_path": str(tmp_path / "y.db")},
                                    "sources": {"mailbox": {"channel": "mailbox"}},
                                    "analysis": {"pii": {"enabled": True, "keep_raw": True}}})
    service = build_service(config, enrich=False, extensions=False)
    from analysis.stages import pre_stages

    service.ingestor.provide("enrich", pre_stages(config))
    try:
        report = service.writer.ingest([RawRecord(source="mailbox", payload={
            "source_id": "1", "title": "停水", "content": PERSONAL, "published_at": "2026-12-01 10:00"})])
        item_id = report.item_ids[0]
        app = create_app(service, start_workers=False)
        access = app.state.access

        def client(role: str) -> TestClient:
            token = access.create_token(f"t-{role}", role, by="tests")[1]
            return TestClient(app, base_url="http://127.0.0.1", headers={"Authorization": f"Bearer {token}"})

        press, admin = client("press_office"), client("admin")
        served = press.get(f"/api/items/{item_id}").json()
        assert "13812345678" not in str(served) and "张三" not in str(served)  # masked for everyone
        refused = press.get(f"/api/items/{item_id}/original")
        assert refused.status_code == 403
        shown = admin.get(f"/api/items/{item_id}/original")
        assert shown.status_code == 200 and shown.json()["original"]["content"] == PERSONAL
        views = access.list_audit(action="pii_view")[0]
        assert [(v["actor"].split(":")[-1], v["outcome"], v["target"]) for v in views] == [
            ("t-admin", "ok", f"item:{item_id}"), ("t-press_office", "denied", f"item:{item_id}")]
    finally:
        service.close()
