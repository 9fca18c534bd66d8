"""The HTTP API: list/filter/search/paging, item detail, quarantine, push intake, one error shape."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from core.models import RawRecord
from yuqing.service import Service


def seed(service: Service, n: int = 5) -> None:
    service.ingestor.ingest([
        RawRecord(source="board_a", payload={"source_id": str(i), "title": f"第{i}条 小区油烟扰民",
                                             "content": f"烧烤店油烟扰民第{i}次反映", "published_at": f"2026-11-2{i} 10:00"})
        for i in range(n)
    ])


def assert_error_shape(body: dict, status: int) -> None:
    assert set(body) == {"ok", "status", "error", "errors"}
    assert body["ok"] is False and body["status"] == status and body["error"]


def test_health(client: TestClient, service: Service) -> None:
    seed(service, 2)
    body = client.get("/health").json()
    assert body["ok"] is True and body["items"] == 2 and body["schema_versions"]["core"] >= 2


def test_list_search_and_page(client: TestClient, service: Service) -> None:
    seed(service)
    first = client.get("/api/items", params={"limit": 2, "q": "油烟扰民"}).json()
    assert set(first) == {"data", "count", "count_exact", "next_cursor", "sorted_among"}
    assert first["count"] == 5 and first["count_exact"] is True and len(first["data"]) == 2
    assert first["data"][0]["source_id"] == "4"
    second = client.get("/api/items", params={"limit": 2, "q": "油烟扰民", "cursor": first["next_cursor"]}).json()
    assert [d["source_id"] for d in second["data"]] == ["2", "1"]
    assert client.get("/api/items", params={"since": "2026-11-23 00:00"}).json()["count"] == 2


def test_a_capped_count_says_it_is_a_lower_bound(client: TestClient, service: Service,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import storage.sqlite

    monkeypatch.setattr(storage.sqlite, "COUNT_CAP", 3)
    seed(service)
    capped = client.get("/api/items", params={"limit": 2}).json()
    assert (capped["count"], capped["count_exact"]) == (3, False)
    narrow = client.get("/api/items", params={"since": "2026-11-23 00:00"}).json()
    assert (narrow["count"], narrow["count_exact"]) == (2, True)


def test_item_detail_and_not_found(client: TestClient, service: Service) -> None:
    seed(service, 1)
    item_id = client.get("/api/items").json()["data"][0]["id"]
    detail = client.get(f"/api/items/{item_id}").json()
    assert detail["id"] == item_id and detail["duplicates"] == []
    missing = client.get("/api/items/999999")
    assert missing.status_code == 404
    assert_error_shape(missing.json(), 404)


def test_errors_have_one_shape(client: TestClient) -> None:
    cases = [
        ({"q": "AND OR ("}, 400),
        ({"q": '"unclosed'}, 400),
        ({"limit": 0}, 422),
        ({"limit": "many"}, 422),
        ({"channel": "tv"}, 422),
        ({"cursor": "%%%"}, 400),
        ({"since": "next tuesday"}, 400),
        ({"sort": "random"}, 422),
        ({"q": "x" * 600}, 422),
    ]
    for params, status in cases:
        response = client.get("/api/items", params=params)
        assert response.status_code == status, (params, response.text)
        assert_error_shape(response.json(), status)
    assert_error_shape(client.get("/api/nothing-here").json(), 404)
    bad_id = client.get("/api/items/abc")
    assert bad_id.status_code == 422
    assert_error_shape(bad_id.json(), 422)


def test_push_intake_stores_and_quarantines(client: TestClient) -> None:
    body = {"records": [
        {"source_id": "wo-1", "title": "路灯不亮", "content": "人民路路灯坏了一个月", "published_at": "昨天 20:00"},
        {"source_id": "wo-2", "title": "坏时间", "content": "内容", "published_at": "明年某天"},
        {"source_id": "wo-3", "content": "<b>超长</b>" + "字" * 250_000, "published_at": "2026-11-01"},
    ]}
    response = client.post("/api/ingest/board_a?wait=true", json=body)
    assert response.status_code == 200
    report = response.json()["report"]
    assert (report["stored"], report["quarantined"]) == (1, 2)
    quarantined = client.get("/api/quarantine").json()
    assert quarantined["count"] == 2
    assert {r["source"] for r in quarantined["data"]} == {"board_a"}
    unknown = client.post("/api/ingest/nope", json=body)
    assert unknown.status_code == 400
    assert_error_shape(unknown.json(), unknown.status_code)
    malformed = client.post("/api/ingest/board_a", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 422
    assert_error_shape(malformed.json(), 422)


def test_push_is_accepted_into_the_inbox_then_ingested_by_the_writer(client: TestClient, service: Service) -> None:
    body = {"records": [{"source_id": f"wo-{i}", "content": f"第{i}条：人民路路灯坏了", "published_at": "2026-11-01"}
                        for i in range(3)]}
    response = client.post("/api/ingest/board_a", json=body)
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "queued" and len(accepted["inbox_ids"]) == 3
    assert service.writer.drain().stored == 0  # queued behind the push, which ingested its own records
    assert service.store.stats().items == 3 and service.store.pending() == 0


def test_a_push_left_in_the_inbox_by_a_dead_process_is_ingested_at_start(config, tmp_path) -> None:
    from api.main import create_app
    from yuqing.service import build_service

    first = build_service(config, enrich=False, extensions=False)
    first.store.put([RawRecord(source="board_a", payload={"source_id": "left", "content": "收件箱里的留言",
                                                          "published_at": "2026-11-01"}, origin="api")])
    first.store.close()  # as if the process died after accepting the push, before its ingest
    second = build_service(config, enrich=False, extensions=False)
    try:
        with TestClient(create_app(second)):  # the lifespan starts the service, which drains the inbox
            deadline = time.monotonic() + 30
            while second.store.pending() and time.monotonic() < deadline:
                time.sleep(0.05)
        assert second.store.stats().items == 1 and second.store.pending() == 0
    finally:
        second.close()


def test_links_in_messages_resolve(client: TestClient, service: Service) -> None:
    seed(service, 1)
    item_id = client.get("/api/items").json()["data"][0]["id"]
    page = client.get(f"/items/{item_id}", headers={"Accept": "text/html"})  # the item page, which reads the item
    assert page.status_code == 200 and "/static/pages/item.js" in page.text
    assert client.get("/items/999999").status_code == 404
    assert "不存在" in client.get("/items/999999", headers={"Accept": "text/html"}).text
    assert client.get("/").headers["content-type"].startswith("text/html")
