"""The quarantine keeps records as received (to re-process them) and shows them masked, in the API and the CLI."""

from __future__ import annotations

import json

from api.main import create_app
from core.config import parse_config
from core.models import RawRecord
from yuqing.service import build_service

ID_CARD = "11010519491231002X"
CARD = "6222021234567890128"
SECRETS = ("13812345678", ID_CARD, CARD, "张三", "0731-88888888", "501室", "lisi@example.com")


def _rejected_records() -> list[RawRecord]:
    """Inputs the normaliser rejects (no time, a bad count), full of personal data, as a 12345 platform pushes them."""
    return [
        RawRecord(source="board_a", payload={"source_id": "q1", "title": "我叫张三，电话13812345678",
                                             "content": f"身份证{ID_CARD}，工资卡{CARD}被冻结，家住XX小区3栋2单元501室",
                                             "author": "张三", "contact_phone": "13812345678"}),
        RawRecord(source="board_a", payload={"source_id": "q2", "title": "停水", "content": "联系人：张三 0731-88888888",
                                             "published_at": "2026-01-05 10:00", "likes": "13812345678个",
                                             "extra": {"email": "lisi@example.com", "id_card": ID_CARD}}),
    ]


def _service(tmp_path):  # noqa: ANN202 - yuqing.service.Service
    config = parse_config({"sources": {"board_a": {"channel": "board"}},
                           "storage": {"sqlite_path": str(tmp_path / "q.db")}})
    return config, build_service(config, enrich=False, extensions=False)


def test_quarantine_is_stored_as_received_and_shown_masked_by_api_and_cli(tmp_path, monkeypatch, signed_in) -> None:
    config, service = _service(tmp_path)
    assert service.ingestor.ingest(_rejected_records()).quarantined == 2
    stored = json.dumps([r.model_dump(mode="json") for r in service.store.list_quarantine().data], ensure_ascii=False)
    assert all(secret in stored for secret in ("13812345678", ID_CARD, CARD, "张三"))  # kept to be re-processed
    with signed_in(create_app(service, start_workers=False)) as client:
        shown = client.get("/api/quarantine").text
    shown = json.loads(shown)
    assert shown["count"] == 2
    text = json.dumps(shown, ensure_ascii=False)
    for secret in SECRETS:
        assert secret not in text, secret
    assert "138****5678" in text and "published_at is missing" in text  # still useful: reasons and masked hints
    service.close()

    from typer.testing import CliRunner

    from yuqing.cli import app

    config_file = tmp_path / "yuqing.yaml"
    config_file.write_text(f"sources: {{board_a: {{channel: board}}}}\nstorage: {{sqlite_path: '{tmp_path / 'q.db'}'}}\n"
                           "analysis: {}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["quarantine", "-c", str(config_file)])
    assert result.exit_code == 0, result.output
    for secret in SECRETS:
        assert secret not in result.output, secret
    assert "2 quarantined record(s)" in result.output
