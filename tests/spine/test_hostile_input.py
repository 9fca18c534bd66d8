"""Inputs that used to answer 500: each is a client error with the one error shape, or a quarantined record."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.main import create_app
from api.routes.ingest import MAX_BODY_BYTES
from yuqing.service import Service


def assert_error_shape(body: dict, status: int) -> None:
    assert set(body) == {"ok", "status", "error", "errors"}
    assert body["ok"] is False and body["status"] == status and body["error"]


def test_deeply_nested_query_is_a_400_with_a_position(client: TestClient) -> None:
    for q in ("(" * 200 + "路灯" + ")" * 200, "NOT " * 120 + "路灯", "(" * 499):
        answer = client.get("/api/items", params={"q": q})
        assert answer.status_code == 400, answer.text
        assert_error_shape(answer.json(), 400)
        assert "nested deeper" in answer.json()["error"]
    assert client.get("/api/items", params={"q": "(" * 10 + "路灯" + ")" * 10}).status_code == 200


def test_an_item_id_beyond_64_bits_is_a_client_error(client: TestClient) -> None:
    for path in ("/api/items/99999999999999999999999", "/api/items/99999999999999999999999/original",
                 "/api/items/0"):
        answer = client.get(path)
        assert answer.status_code == 422, answer.text
        assert_error_shape(answer.json(), 422)
    assert client.get(f"/api/items/{2**63 - 1}").status_code == 404


def test_a_lone_surrogate_is_quarantined_with_its_reason_and_the_rest_stored(client: TestClient,
                                                                              service: Service) -> None:
    body = ('{"records": [{"source_id": "bad", "title": "\\ud800 路灯", "content": "坏了", '
            '"published_at": "2026-12-01 09:00"}, {"source_id": "good", "title": "路灯不亮", "content": "小区路灯坏了", '
            '"published_at": "2026-12-01 09:00"}]}')
    answer = client.post("/api/ingest/board_a?wait=true", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["report"]["stored"] == 1
    rejected = client.get("/api/quarantine").json()["data"]
    assert len(rejected) == 1 and "lone surrogate" in rejected[0]["reason"] and rejected[0]["stage"] == "intake"
    assert "\\ud800" in str(rejected[0]["payload"])


def test_an_oversized_push_is_refused_before_it_is_parsed(service: Service, signed_in) -> None:  # noqa: ANN001
    app = create_app(service, start_workers=False)
    with signed_in(app, role="ingest", sources=("board_a",)) as client:
        declared = client.post("/api/ingest/board_a", content=b"{", headers={
            "Content-Type": "application/json", "Content-Length": str(MAX_BODY_BYTES + 1)})
        assert declared.status_code == 413
        assert_error_shape(declared.json(), 413)

        def chunks():  # no Content-Length: the limit counts the bytes as they stream in
            yield b'{"records": ['
            for _ in range(MAX_BODY_BYTES // (1 << 20) + 1):
                yield b" " * (1 << 20)

        streamed = client.post("/api/ingest/board_a", content=chunks(), headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413
        assert client.post("/api/ingest/board_a", json={"records": []}).status_code == 202


def test_a_jsonl_import_with_a_lone_surrogate_quarantines_that_row(service: Service, tmp_path) -> None:  # noqa: ANN001
    from flow.importer import FileImporter

    path = tmp_path / "rows.jsonl"
    path.write_text('{"source_id": "1", "title": "\\ud800", "content": "坏", "published_at": "2026-12-01 09:00"}\n'
                    '{"source_id": "2", "title": "路灯", "content": "坏了", "published_at": "2026-12-01 09:00"}\n')
    report = service.writer.ingest(FileImporter(path, "board_a").records())
    assert (report.stored, report.quarantined) == (1, 1)
    rejected = service.store.list_quarantine().data
    assert "lone surrogate" in rejected[0].reason and rejected[0].payload["title"] == "\\ud800"


def test_quarantined_lines_that_are_json_but_no_object_are_listed_as_their_text(client: TestClient,
                                                                                service: Service, tmp_path) -> None:  # noqa: ANN001
    """A JSON-lines row such as `[1, 2]` or `7` is kept as the text it was; listing the quarantine read that text
    back as JSON and failed on the list (500 from /api/quarantine) once one such line had been rejected."""
    from flow.importer import FileImporter

    lines = ['[1, 2]', '7', '"引号"', 'null', '{"source_id": "1", "title": "路灯", "content": "坏了", '
             '"published_at": "2026-12-01 09:00"}']
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = service.writer.ingest(FileImporter(path, "board_a").records())
    assert (report.stored, report.quarantined) == (1, 4)
    listed = client.get("/api/quarantine").json()["data"]
    assert sorted(r["payload"].rstrip("\n") for r in listed) == sorted(lines[:4])  # each line as it was read
