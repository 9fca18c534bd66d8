"""Liveness and a quick view of what the store holds."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter

from api.deps import StoreDep
from api.schemas import HealthPublic

router = APIRouter(tags=["health"])


def _version() -> str:
    try:
        return version("yuqing")
    except PackageNotFoundError:
        return "dev"


@router.get("/health", response_model=HealthPublic)
def health(store: StoreDep) -> HealthPublic:
    stats = store.stats()
    return HealthPublic(ok=True, status="ok", version=_version(), items=stats.items, quarantined=stats.quarantined,
                        inbox_pending=store.pending(), schema_versions=store.versions)
