"""Storage interfaces. Callers see domain models and these types, never sqlite3 or Elasticsearch objects.

`Store` is what every caller is typed with: items (written and read only through these methods, so a backend such
as Elasticsearch can hold them), quarantine, the inbox, and connection contexts for the relational state of other
components (SQLAlchemy Core tables; dialect differences live in storage/dialect.py).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Generic, Literal, NamedTuple, Protocol, TypeVar, runtime_checkable

from core.errors import InputError
from core.models import Channel, Enrichment, Item, QuarantineRecord, RawRecord

if TYPE_CHECKING:  # annotations only: the stages that read this module's types run where SQLAlchemy is not loaded
    from sqlalchemy import Connection  # (an import's pool workers)

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
    """One page of a list. `count` is exact when `count_exact`; otherwise at least that many match (a backend may
    stop counting at a cap, as Elasticsearch's track_total_hits does, so a count never costs a scan of everything)."""

    data: list[T]
    count: int
    next_cursor: str | None = None
    count_exact: bool = True
    # Full text sorted by risk: the order is the riskiest first among the newest `sorted_among` matches when more than
    # that many match (a backend may bound the sort so); None when all matches were sorted.
    sorted_among: int | None = None


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
class BulkLoad:
    """What `ItemStore.bulk_load` did: the indexes it went without while the load wrote, and the seconds that
    building them again took at its end (0 when none were deferred)."""

    deferred: tuple[str, ...] = ()
    rebuild_seconds: float = 0.0


@dataclass
class StoreStats:
    items: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0


class KnownItem(NamedTuple):
    """A stored item as a re-crawl of it needs it: its id, its event and its engagement (likes + reposts + comments).

    A tuple, so it stands where the analysis state's in-memory (id, event, engagement) tuples do."""

    item_id: int
    event_id: str | None
    engagement: int


@dataclass(frozen=True)
class EventTotals:
    """The stored items of one event, summed: how many, on how many channels, their engagement and highest risk."""

    event_id: str
    items: int
    channels: int
    engagement: int
    max_risk: float


@dataclass(frozen=True)
class SubjectFacts:
    """When an event (or one item) was first published and first stored, and its most severe risk grade: the
    anchors of a response plan's clocks."""

    first_published_ts: float
    first_stored_at: str  # ISO time the first of its items was stored (detection)
    top_grade: str  # "I" (most severe) … "IV"; "" when no item has a grade


@dataclass(frozen=True)
class ItemOpinion:
    """The opinion signals of one item: for before/after comparisons of an event around a response."""

    polarity: str | None
    emotion: str | None
    risk_score: float | None


@dataclass(frozen=True)
class ItemFacets:
    """What volume statistics (spikes) group an item by, without its text."""

    item_id: int
    published_ts: float
    topic: str | None
    region: str | None
    source: str
    schemes: list[str]
    keywords: list[str]
    backfill: bool = False  # imported history (`yuqing import`): no volume of today, so no part of a spike baseline


@dataclass(frozen=True)
class ItemText:
    """An item's id and text, for scanning a window of stored items (scheme dry runs)."""

    item_id: int
    title: str
    content: str


def item_json(item: Item) -> bytes:
    """An item as the feed sends it: pydantic's JSON of the model, as `ItemsPublic` (api/schemas.py) writes each of
    its items. `ItemStore.search_item_json` promises these bytes, however a backend makes them."""
    return item.model_dump_json().encode()


class ItemStore(Protocol):
    """Where normalised items live and are searched."""

    def upsert(self, items: list[Item], words: Sequence[Sequence[str] | None] | None = None,
               published_ts: Sequence[float] | None = None) -> list[UpsertResult]:
        """`words[i]`, when given: the words segmentation cut from `items[i].text`, for a backend whose index can
        reuse them (SQLite's FTS); a backend may ignore them. `published_ts[i]`, when given:
        `items[i].published_at.timestamp()`, computed once by the stages before (`Batch.published_timestamps`)."""
        ...

    def get(self, item_id: int) -> Item: ...

    def search(self, query: ItemQuery) -> Page[Item]: ...

    def search_item_json(self, query: ItemQuery) -> Page[bytes]:
        """`search`, each item as the feed sends it (`item_json`): the feed's pages are these (api/readers.py). A
        backend that can write the JSON from its rows without validating a model per item does (SQLite: validating
        was most of a page's CPU); another encodes the items `search` returns."""
        ...

    def update_enrichment(self, item_id: int, enrichment: Enrichment) -> None: ...

    def stats(self) -> StoreStats: ...

    def lookup(self, items: list[Item]) -> tuple[dict[tuple[str, str], tuple[int, str]], dict[str, int]]:
        """For a batch: stored (id, signature) by (source, source_id), and stored item id by content hash."""
        ...

    def record_duplicates(self, pairs: list[tuple[int, Item]]) -> None:
        """Remember that each `item` repeats the stored item `item_id`, so its reach still counts."""
        ...

    def duplicates_of(self, item_id: int) -> list[dict]:
        """The exact copies of an item, in the order they were seen."""
        ...

    def original(self, item_id: int) -> dict | None:
        """The unmasked values PII masking replaced in the item (field → value), kept only with
        `analysis.pii.keep_raw`; None when nothing was kept; NotFound for an unknown item. Callers check the caller's
        role and audit first (GET /api/items/{id}/original)."""
        ...

    def reassign_events(self, merged: Mapping[str, str]) -> int:
        """Point the items of each absorbed event (key) at the event that absorbed it (value); returns items moved."""
        ...

    def bulk_load(self, expected_items: int) -> AbstractContextManager[BulkLoad]:
        """Around the writes of a load of about `expected_items` items (a file import): a backend may go without the
        indexes only reads need while they run and build them once at the end, as bulk loaders do (pg_restore), when
        that costs less than keeping them up to date row by row; they are built at the end whatever happens inside.
        Meanwhile reads stay correct, only slower. This default does nothing (Elasticsearch)."""
        return nullcontext(BulkLoad())


HISTOGRAM_GROUPS = ("channel", "source", "topic", "risk_level", "emotion", "region", "event_id")


def check_group(group: str | None) -> None:
    if group is not None and group not in HISTOGRAM_GROUPS:
        raise InputError(f"cannot group by {group!r}; one of: {', '.join(HISTOGRAM_GROUPS)}")


class ItemReads(Protocol):
    """The reads analysis and alerting make over stored items, so none of them needs to know how items are kept."""

    def known_items(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], KnownItem]:
        """The stored items among (source, source_id) keys: a re-crawl keeps its id and event."""
        ...

    def event_totals(self, event_id: str) -> EventTotals | None:
        """The totals of the event's stored items; None when no stored item belongs to it."""
        ...

    def item_facets(self, since: datetime, until: datetime) -> list[ItemFacets]:
        """Facets of every item published in [since, until), in no particular order."""
        ...

    def subject_facts(self, *, event_id: str | None = None, item_id: int | None = None) -> SubjectFacts | None:
        """First publication, first storage and top grade of the event's items (or of one item); None if none."""
        ...

    def event_opinions(self, event_id: str, since_ts: float, until_ts: float) -> list[ItemOpinion]:
        """Polarity, emotion and risk of the event's items published in [since_ts, until_ts)."""
        ...

    def scan_texts(self, since: datetime, until: datetime, batch_size: int = 1000) -> Iterator[list[ItemText]]:
        """Texts of the items published in [since, until), newest first, `batch_size` at a time."""
        ...

    def scan_items(self, since: datetime, until: datetime, batch_size: int = 1000) -> Iterator[list[Item]]:
        """Items published in [since, until), oldest id first, `batch_size` at a time."""
        ...

    def volume_histogram(self, since: datetime, until: datetime, interval: Literal["day", "hour"] = "day",
                         group: str | None = None) -> dict[str, list[tuple[str, int]]]:
        """Items published in [since, until) per calendar day or hour in Asia/Shanghai (bucket start as
        'YYYY-MM-DDTHH:MM:SS' local time, empty buckets left out), overall under "all" or per value of a feed filter
        column (`group`: one of HISTOGRAM_GROUPS; items without a value left out). Trend charts over any number of
        items without reading them (a date_histogram on Elasticsearch)."""
        ...

    def average_risk(self, group: str, since: datetime, until: datetime) -> dict[str, float]:
        """The mean risk score of the scored items published in [since, until) per value of `group` (one of
        HISTOGRAM_GROUPS); values whose items have no score are left out. For reviews comparing groups."""
        ...


class QuarantineStore(Protocol):
    """Rejected inputs with their reasons."""

    def quarantine(self, records: list[QuarantineRecord]) -> None: ...

    def list_quarantine(self, source: str | None, limit: int, cursor: str | None) -> Page[QuarantineRecord]: ...


class Inbox(Protocol):
    """Raw records waiting for the ingest flow, so collectors stay cheap and input can be replayed."""

    def put(self, records: list[RawRecord]) -> list[int]: ...

    def take(self, limit: int, after_id: int = 0) -> list[tuple[int, RawRecord]]: ...

    def done(self, ids: list[int]) -> None: ...

    def pending(self) -> int: ...


class StateStore(Protocol):
    """Connections for the relational state of other components (crawl state, alerts, outbox, silences, events).

    They write SQLAlchemy Core only; anything dialect-specific goes through storage/dialect.py. storage/state.py's
    SqlState implements this on any engine (SqliteStore is one).
    """

    versions: dict[str, int]  # schema version per migration component

    def read(self) -> AbstractContextManager[Connection]: ...

    def write(self) -> AbstractContextManager[Connection]:
        """One write transaction; a write opened inside another on the same thread joins it."""
        ...

    def bulk(self) -> AbstractContextManager[None]:
        """The writes of this thread inside the block as one transaction, each a savepoint of it (a file import
        groups batches so that index pages are written once per group); a backend that cannot group runs each on its
        own."""
        ...

    def migrate(self) -> dict[str, int]:
        """Apply the migrations of components registered since the store opened; returns (and keeps) the versions."""
        ...

    def item_write(self) -> AbstractContextManager[Connection]:
        """A write transaction on the database that holds the items (and the after-store outbox beside them): the same
        as `write()`, and joining it, when `items_with_state`; another database's otherwise (storage/split.py)."""
        ...

    def item_read(self) -> AbstractContextManager[Connection]: ...


@runtime_checkable
class Store(ItemStore, ItemReads, QuarantineStore, Inbox, StateStore, Protocol):
    """Everything the service keeps: what callers are typed with, whatever the backend."""

    items_with_state: bool  # one database and one transaction hold both items and state

    def close(self) -> None: ...
