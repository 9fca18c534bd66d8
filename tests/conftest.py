"""Shared fixtures: a temporary store and config, and the shared data folder (skip locally, fail in CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.paths import data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder; tests that need it skip when it is missing, except under CI=true where they fail."""
    path = data_dir()
    if not path.is_dir():
        message = f"shared data folder not found at {path}; set YUQING_DATA_DIR or place shared/data beside the repo"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def elasticsearch_url() -> str:
    """A real OpenSearch-API server (osmem-server) for the session: skip loudly when missing, fail under CI=true."""
    from tests.helpers.elastic import shared_server

    return shared_server()


@pytest.fixture
def signed_in():  # noqa: ANN201 - returns the factory below
    """`signed_in(app, role="admin", sources=())` → a TestClient (enter it with `with`) that sends a fresh API token of
    that role: every route but /health and /login needs one."""
    from fastapi.testclient import TestClient

    def make(app, role: str = "admin", sources: tuple[str, ...] = (), regions: tuple[str, ...] = ()) -> TestClient:  # noqa: ANN001
        _id, token = app.state.access.create_token(f"test-{role}", role, sources=sources, regions=regions, by="tests")
        return TestClient(app, base_url="http://127.0.0.1", headers={"Authorization": f"Bearer {token}"})

    return make


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole run: Playwright's sync API allows one instance per thread at a time."""
    from tests.helpers.browser import chromium

    with chromium() as launched:
        yield launched
