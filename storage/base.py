"""Storage interfaces. Callers see domain models and these types, never sqlite3 or Elasticsearch objects."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Generic, Literal, Protocol, TypeVar

from core.errors import InputError
from core.models import Channel, Enrichment, Item, QuarantineRecord, RawRecord

T = TypeVar("T")


class UpsertOutcome(StrEnum):
    """What the store did with one item."""

    inserted = "inserted"
    updated = "updated"
    unchanged = "unchanged"
    duplicate = "duplicate"


@dataclass(frozen=True)
class UpsertResult:
    item_id: int
    outcome: UpsertOutcome


@dataclass
class ItemQuery:
    """Filters for listing items; every field narrows the result."""

    source: str | None = None
    channel: Channel | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None
    topic: str | None = None
    emotion: str | None = None
    risk_level: str | None = None
    min_risk: float | None = None
    scheme: str | None = None
    event_id: str | None = None
    region: str | None = None
    within_regions: tuple[str, ...] = ()  # access scope: only items whose region contains one of these
    sort: Literal["time", "risk"] = "time"
    limit: int = 50
    cursor: str | None = None


@dataclass
class Page(Generic[T]):  # noqa: UP046 - Python 3.11 has no PEP 695 syntax
    data: list[T]
    count: int
    next_cursor: str | None = None


@dataclass
class Cursor:
    """Position after the last row of a page: the sort key and id, opaque to clients."""

    sort: str
    key: float
    item_id: int

    def encode(self) -> str:
        raw = json.dumps([self.sort, self.key, self.item_id]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, sort: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            kind, key, item_id = json.loads(raw)
            cursor = cls(str(kind), float(key), int(item_id))
        except (ValueError, TypeError) as exc:
            raise InputError("invalid cursor: pass back the next_cursor of a previous page") from exc
        if cursor.sort != sort:
            raise InputError(f"cursor was made for sort={cursor.sort!r}, not sort={sort!r}")
        return cursor


@dataclass
class StoreStats:
    items: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0


class ItemStore(Protocol):
    """Where normalised items live and are searched."""

    def upsert(self, items: list[Item]) -> list[UpsertResult]: ...

    def get(self, item_id: int) -> Item: ...

    def search(self, query: ItemQuery) -> Page[Item]: ...

    def update_enrichment(self, item_id: int, enrichment: Enrichment) -> None: ...

    def stats(self) -> StoreStats: ...


class QuarantineStore(Protocol):
    """Rejected inputs with their reasons."""

    def quarantine(self, records: list[QuarantineRecord]) -> None: ...

    def list_quarantine(self, source: str | None, limit: int, cursor: str | None) -> Page[QuarantineRecord]: ...


class Inbox(Protocol):
    """Raw records waiting for the ingest flow, so collectors stay cheap and input can be replayed."""

    def put(self, records: list[RawRecord]) -> int: ...

    def take(self, limit: int) -> list[tuple[int, RawRecord]]: ...

    def done(self, ids: list[int]) -> None: ...
