"""Liveness and a quick view of what the store holds."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Request

from access.guard import authenticate, require
from api.deps import StoreDep
from api.schemas import HealthPublic
from core.errors import NotAuthenticated

router = APIRouter(tags=["health"], dependencies=[require(None)])  # open: liveness, counts only when signed in


def _version() -> str:
    try:
        return version("yuqing")
    except PackageNotFoundError:
        return "dev"


@router.get("/health", response_model=HealthPublic)
def health(store: StoreDep, request: Request) -> HealthPublic:
    """Open for liveness probes; what the store holds only for a signed-in caller."""
    try:
        principal = authenticate(request)
    except NotAuthenticated:
        principal = None
    if principal is None:
        return HealthPublic(ok=True, status="ok", version=_version())
    stats = store.stats()
    return HealthPublic(ok=True, status="ok", version=_version(), items=stats.items, quarantined=stats.quarantined,
                        inbox_pending=store.pending(), schema_versions=store.versions)
