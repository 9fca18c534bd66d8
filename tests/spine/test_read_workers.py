"""`server.read_workers`: feed pages are searched and encoded in reader processes that open the SQLite file
read-only, and answer exactly what the service process would; the single writer stays the service's."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from api.main import create_app
from core.config import parse_config
from core.errors import StorageError
from core.models import RawRecord
from nlp.tokenize import segment
from storage.base import ItemQuery
from storage.sqlite import SqliteStore
from tests.helpers.feed import models_page_json
from yuqing.service import build_service

TEXTS = [(str(n), f"小区{'油烟' if n % 2 else '噪音'}投诉{n}", f"第{n}号楼下烧烤店油烟扰民，晚上无法休息",
          f"2026-11-{10 + n % 15:02d} {n % 24:02d}:00") for n in range(1, 41)]
QUERIES = [{}, {"q": "油烟"}, {"q": "小区", "sort": "risk"}, {"source": "board_a", "limit": "7"}, {"sort": "risk"}]


@pytest.fixture
def workers_service(tmp_path):  # noqa: ANN201
    config = parse_config({"sources": {"board_a": {"channel": "board"}}, "storage": {"sqlite_path": str(tmp_path / "test.db")},
                           "server": {"read_workers": 2}})
    service = build_service(config, enrich=False, extensions=False)
    service.ingestor.ingest([RawRecord(source="board_a", payload={"source_id": sid, "title": t, "content": c,
                                                                  "published_at": at}) for sid, t, c, at in TEXTS])
    yield service
    service.close()


def test_reader_processes_answer_the_feed_as_the_service_would(workers_service, signed_in) -> None:  # noqa: ANN001
    with signed_in(create_app(workers_service)) as client:
        workers_service.readers.wait_ready()
        assert workers_service.readers.ready()  # from here on, every page below is searched in a reader process
        pids = workers_service.readers.pids()
        assert len(pids) == 2 and os.getpid() not in pids
        for params in QUERIES:
            query = ItemQuery(q=params.get("q"), source=params.get("source"), sort=params.get("sort", "time"),
                              limit=int(params.get("limit", 50)))
            response = client.get("/api/items", params=params)
            assert response.status_code == 200, response.text
            assert response.content == models_page_json(workers_service.store.search(query))  # byte for byte
        pages, cursor = [], None  # cursors made in one process page on in another
        while True:
            body = client.get("/api/items", params={"limit": 9, **({"cursor": cursor} if cursor else {})}).json()
            pages.extend(item["source_id"] for item in body["data"])
            if not (cursor := body["next_cursor"]):
                break
        assert sorted(pages, key=int) == [sid for sid, *_ in TEXTS]
        bad = client.get("/api/items", params={"cursor": "not-a-cursor"})  # an error raised there is the usual one
        assert bad.status_code == 400 and bad.json()["ok"] is False
        assert client.get("/api/items", params={"q": "NOT 油烟"}).status_code == 400


def test_a_reader_store_refuses_writes(workers_service) -> None:  # noqa: ANN001
    reader = SqliteStore.read_only(workers_service.config.storage.sqlite_path, segment=segment)
    try:
        assert reader.search(ItemQuery(limit=100)).count == len(TEXTS)
        with pytest.raises(StorageError), reader.write() as conn:
            conn.execute(text("DELETE FROM items"))
    finally:
        reader.close()
    assert workers_service.store.search(ItemQuery(limit=1)).count == len(TEXTS)
