"""`GET /api/sources`: every crawled source with its schedule and health, so nobody mistakes silence for calm."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter

from access.guard import require
from access.roles import ADMINS, FEED
from api.deps import ServiceDep
from core.errors import NotFound
from crawlers.health import recent_runs

router = APIRouter(prefix="/api/sources", tags=["sources"], dependencies=[require(FEED)])


def _crawl(service: Any) -> Any:
    if service.crawl is None:
        raise NotFound("collection is not attached to this service")
    return service.crawl


@router.get("")
def list_sources(service: ServiceDep) -> dict[str, Any]:
    data = _crawl(service).sources()
    return {"data": data, "count": len(data)}


@router.get("/{source}")
def get_source(source: str, service: ServiceDep) -> dict[str, Any]:
    for entry in _crawl(service).sources():
        if entry["source"] == source:
            return {**entry, "runs": recent_runs(service.store, source)}
    raise NotFound(f"no crawled source {source!r}")


@router.post("/{source}/crawl", status_code=202, dependencies=[require(ADMINS)])
def crawl_now(source: str, service: ServiceDep) -> dict[str, Any]:
    """Start a run now in the background (skipped if one is already running)."""
    crawl = _crawl(service)
    if source not in crawl.crawl_sources():
        raise NotFound(f"no crawled source {source!r}")
    threading.Thread(target=crawl.run_source, args=[source], name=f"crawl-{source}", daemon=True).start()
    return {"ok": True, "source": source, "status": "started"}
