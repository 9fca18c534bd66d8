"""Public API models: lists are {data, count, next_cursor}."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from core.models import IngestReport, Item, QuarantineRecord


class ItemsPublic(BaseModel):
    data: list[Item]
    count: int
    next_cursor: str | None = None
    count_exact: bool = True  # False: at least `count` items match (counting stops at a cap on large data)
    sorted_among: int | None = None  # q with sort=risk: riskiest first among the newest this many matches (None: all)


class QuarantinePublic(BaseModel):
    data: list[QuarantineRecord]
    count: int
    next_cursor: str | None = None


class ItemDetail(Item):
    duplicates: list[dict] = []


class IngestCreate(BaseModel):
    """Records pushed by a collector (e.g. a 12345 platform); each is an item-shaped object."""

    records: list[dict]


class IngestPublic(BaseModel):
    ok: bool = True
    report: IngestReport


class IngestAccepted(BaseModel):
    """Records kept in the inbox and queued for the ingest writer (202)."""

    ok: bool = True
    status: str = "queued"
    inbox_ids: list[int]
    quarantined: int = 0  # records refused before the inbox (e.g. text that is not valid Unicode), with their reason


class HealthPublic(BaseModel):
    ok: bool
    status: str
    version: str
    # Counts only for a signed-in caller (anonymous probes learn liveness, nothing about the data).
    items: int | None = None
    quarantined: int | None = None
    inbox_pending: int | None = None
    schema_versions: dict[str, int] | None = None


class ErrorPublic(BaseModel):
    """The project's one error shape (api/errors.py), for routers' documented error responses."""

    ok: bool = False
    status: int
    error: str
    errors: list[dict[str, Any]] = []
