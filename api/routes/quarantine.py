"""Rejected input, with reasons, so nothing is lost silently. Kept as received (so it can be re-processed), shown
masked like items (analysis.pii.mask_quarantine)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from access.guard import require
from access.roles import ADMINS
from analysis.pii import mask_quarantine
from api.deps import StoreDep
from api.schemas import QuarantinePublic

# Quarantined records are input as received: only admins, and masked (personal data) on the way out.
router = APIRouter(prefix="/api/quarantine", tags=["quarantine"], dependencies=[require(ADMINS)])


@router.get("", response_model=QuarantinePublic)
def list_quarantine(
    store: StoreDep,
    source: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> QuarantinePublic:
    page = store.list_quarantine(source=source, limit=limit, cursor=cursor)
    return QuarantinePublic(data=[mask_quarantine(r) for r in page.data], count=page.count, next_cursor=page.next_cursor)
