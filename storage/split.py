"""Items in one store, relational state in another database (`storage.state_url`): the Store several instances share.

What changes when the two are apart: a transaction no longer covers both. Where the code wrote items and state
together it now commits them in an order that loses nothing (see docs/scale-out.md):
- the after-store outbox (flow/after_store.py) stays with the items, written in the items' transaction; the
  after-store stages commit their alerts in the state database first and clear the outbox after, so a crash in
  between re-drives them, and alert fingerprints, outbox dedup keys and the one-run-per-subject constraint make the
  re-drive raise and send nothing twice (at least once, idempotent);
- the inbox is state: a record leaves it (`done`) only after the items' transaction that stored it committed;
- an event merge moves the items first and commits the events after; a failure in between leaves items pointing at
  the absorbing event, which is where the next save puts them anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime

from sqlalchemy import Connection

from core.models import Enrichment, Item, QuarantineRecord, RawRecord
from storage.base import (
    BulkLoad,
    EventTotals,
    ItemFacets,
    ItemOpinion,
    ItemQuery,
    ItemText,
    KnownItem,
    Page,
    StoreStats,
    SubjectFacts,
    UpsertResult,
)
from storage.sqlite import SqliteStore
from storage.state import SqlState


class SplitStore:
    """The Store Protocol over an items store (its own database) and a state database."""

    items_with_state = False

    def __init__(self, items: SqliteStore, state: SqlState) -> None:
        self.items = items
        self.state = state

    @property
    def versions(self) -> dict[str, int]:
        return self.state.versions

    @versions.setter
    def versions(self, value: dict[str, int]) -> None:
        self.state.versions = value

    @property
    def engine(self):  # noqa: ANN201 - the state database's engine (cluster locks, metrics)
        return self.state.engine

    def migrate(self) -> dict[str, int]:
        """Both databases get every component's migrations (so the after-store outbox exists beside the items); a
        table unused on one side stays empty there."""
        self.items.migrate()
        return self.state.migrate()

    def close(self) -> None:
        self.items.close()
        self.state.close()

    # ---- state ---------------------------------------------------------------------------------------------

    def write(self) -> AbstractContextManager[Connection]:
        return self.state.write()

    def read(self) -> AbstractContextManager[Connection]:
        return self.state.read()

    def item_write(self) -> AbstractContextManager[Connection]:
        return self.items.write()

    def bulk(self) -> AbstractContextManager[None]:
        """Nothing grouped: items and state commit in their own databases, items first (flow/after_store.py), and one
        transaction cannot span both."""
        return nullcontext()

    def item_read(self) -> AbstractContextManager[Connection]:
        return self.items.read()

    def bulk_load(self, expected_items: int) -> AbstractContextManager[BulkLoad]:
        return self.items.bulk_load(expected_items)

    def quarantine(self, records: list[QuarantineRecord]) -> None:
        self.state.quarantine(records)

    def list_quarantine(self, source: str | None = None, limit: int = 50, cursor: str | None = None) -> Page[QuarantineRecord]:
        return self.state.list_quarantine(source, limit, cursor)

    def put(self, records: list[RawRecord], *, holder: str | None = None) -> list[int]:
        return self.state.put(records, holder=holder)

    def take(self, limit: int, after_id: int = 0, *, holder: str | None = None) -> list[tuple[int, RawRecord]]:
        return self.state.take(limit, after_id, holder=holder)

    def done(self, ids: list[int]) -> None:
        self.state.done(ids)

    def pending(self) -> int:
        return self.state.pending()

    # ---- items ---------------------------------------------------------------------------------------------

    def upsert(self, items: list[Item], words: Sequence[Sequence[str] | None] | None = None,
               published_ts: Sequence[float] | None = None) -> list[UpsertResult]:
        return self.items.upsert(items, words, published_ts)

    def get(self, item_id: int) -> Item:
        return self.items.get(item_id)

    def original(self, item_id: int) -> dict | None:
        return self.items.original(item_id)

    def search(self, query: ItemQuery) -> Page[Item]:
        return self.items.search(query)

    def search_item_json(self, query: ItemQuery) -> Page[bytes]:
        return self.items.search_item_json(query)

    def update_enrichment(self, item_id: int, enrichment: Enrichment) -> None:
        self.items.update_enrichment(item_id, enrichment)

    def stats(self) -> StoreStats:
        stats = self.items.stats()
        stats.quarantined = self.state.quarantined()
        return stats

    def lookup(self, items: list[Item]) -> tuple[dict[tuple[str, str], tuple[int, str]], dict[str, int]]:
        return self.items.lookup(items)

    def record_duplicates(self, pairs: list[tuple[int, Item]]) -> None:
        self.items.record_duplicates(pairs)

    def duplicates_of(self, item_id: int) -> list[dict]:
        return self.items.duplicates_of(item_id)

    def reassign_events(self, merged: Mapping[str, str]) -> int:
        return self.items.reassign_events(merged)

    def known_items(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], KnownItem]:
        return self.items.known_items(keys)

    def event_totals(self, event_id: str) -> EventTotals | None:
        return self.items.event_totals(event_id)

    def item_facets(self, since: datetime, until: datetime) -> list[ItemFacets]:
        return self.items.item_facets(since, until)

    def subject_facts(self, *, event_id: str | None = None, item_id: int | None = None) -> SubjectFacts | None:
        return self.items.subject_facts(event_id=event_id, item_id=item_id)

    def event_opinions(self, event_id: str, since_ts: float, until_ts: float) -> list[ItemOpinion]:
        return self.items.event_opinions(event_id, since_ts, until_ts)

    def scan_texts(self, since: datetime, until: datetime, batch_size: int = 1000) -> Iterator[list[ItemText]]:
        return self.items.scan_texts(since, until, batch_size)

    def scan_items(self, since: datetime, until: datetime, batch_size: int = 1000) -> Iterator[list[Item]]:
        return self.items.scan_items(since, until, batch_size)

    def volume_histogram(self, since: datetime, until: datetime, interval: str = "day",
                         group: str | None = None) -> dict[str, list[tuple[str, int]]]:
        return self.items.volume_histogram(since, until, interval, group)

    def average_risk(self, group: str, since: datetime, until: datetime) -> dict[str, float]:
        return self.items.average_risk(group, since, until)
