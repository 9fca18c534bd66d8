"""Fixtures for the spine: a fresh config, store, service and API client per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.config import Config, parse_config
from yuqing.service import Service, build_service

BASE_CONFIG = {
    "sources": {
        "board_a": {"channel": "board", "region": "江城市"},
        "weibo_a": {"channel": "weibo"},
        "board_tipdm": {
            "channel": "board",
            "import": {"columns": {"message_id": "source_id", "user_id": "author", "title": "title",
                                   "created_at": "published_at", "body": "content", "likes": "likes",
                                   "dislikes": "dislikes"}},
        },
    },
}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    data = {**BASE_CONFIG, "storage": {"sqlite_path": str(tmp_path / "test.db")}}
    return parse_config(data)


@pytest.fixture
def service(config: Config) -> Service:
    # Enrichment and extensions are other packages' business; the spine tests the bare flow.
    svc = build_service(config, enrich=False, extensions=False)
    yield svc
    svc.close()


@pytest.fixture
def client(service: Service, signed_in) -> TestClient:  # noqa: ANN001
    with signed_in(create_app(service, start_workers=False)) as c:
        yield c
