"""The embedded default store: SQLite in WAL mode, one writer at a time, FTS5 over segmented text."""

from __future__ import annotations

import fcntl
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path
from typing import TypeVar

from sqlalchemy import (
    Connection,
    Row,
    bindparam,
    column,
    distinct,
    func,
    inspect,
    literal,
    or_,
    select,
    table,
    tuple_,
)

from core.errors import InputError, NotFound, StorageError
from core.models import Enrichment, Item
from storage import schema
from storage.base import (
    BulkLoad,
    Cursor,
    EventTotals,
    ItemFacets,
    ItemOpinion,
    ItemQuery,
    ItemText,
    KnownItem,
    Page,
    StoreStats,
    SubjectFacts,
    UpsertOutcome,
    UpsertResult,
    check_group,
)
from storage.copies import copy_entries, copy_rows
from storage.dialect import delete_ids, in_list, insert_many, insert_values, update_by_id, upsert
from storage.fts import FTS_ID_BITS, FTS_ID_MASK, compile_fts, fts_key, fts_second
from storage.item_rows import (
    FACT_POSITIONS,
    HASH_POSITION,
    READ_COLUMNS,
    ROW_COLUMNS,
    TS_POSITION,
    item_from_row,
    item_json_from_row,
    item_row_values,
)
from storage.migrations import create_missing_indexes
from storage.originals import read_original, write_originals
from storage.state import SqlState, create_sqlite_engine

logger = logging.getLogger(__name__)

Segmenter = Callable[[str], list[str]]
IndexFromWords = Callable[[str, str, Sequence[str]], tuple[list[str], list[str]]]
T = schema.items.c
T_ITEM = TypeVar("T_ITEM")
FTS = table("items_fts", column("rowid"), column("items_fts"))
FEW_TO_SORT = 2_000  # up to this many matching rows, a page may read them all and sort them (see _narrowed)
SHANGHAI_OFFSET_S = 8 * 3600  # Asia/Shanghai has had no daylight saving since 1991
COUNT_CAP = 10_000  # a page's count stops here (then count_exact is False), as Elasticsearch's track_total_hits
# The feed indexes' cost per item (50,000 imported rows in groups of 5,000): kept up to date as each row goes in, about
# 60 µs more than without them; built from the whole table at the end of a load, about 36 µs per row then stored.
FEED_INDEX_UPKEEP_US = 60
FEED_INDEX_BUILD_US = 36


def deferring_pays(stored: int, expected: int) -> bool:
    """Whether a load of `expected` items into a store of `stored` costs less without the feed indexes, built at its
    end for every row, than with them kept up to date for each row it adds: with the costs above, when it brings at
    least one and a half times the rows already there (an empty store: always)."""
    return expected * FEED_INDEX_UPKEEP_US > (stored + expected) * FEED_INDEX_BUILD_US


# How much of the file SQLite may map while it builds indexes (`_memory_mapped`); it maps at most what its build
# allows (2 GB by default).
INDEX_BUILD_MAP_BYTES = 1 << 31


@contextmanager
def _memory_mapped(conn: Connection) -> Iterator[None]:
    """The database file memory-mapped while the block runs (SQLite's `mmap_size`), read through the page cache again
    after it. Why: each CREATE INDEX reads the whole items table, through the page cache a pread and a copy of every
    page, sixteen times for the feed indexes; mapped, SQLite reads the OS's pages in place (50,000 items, 16 indexes:
    1.82–2.07 → 1.05–1.11 s of CPU). Only for that while: a mapped file turns an I/O error into a SIGBUS."""
    before = conn.exec_driver_sql("PRAGMA mmap_size").scalar()
    conn.exec_driver_sql(f"PRAGMA mmap_size={INDEX_BUILD_MAP_BYTES}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA mmap_size={int(before or 0)}")


def _now() -> str:
    return datetime.now(UTC).isoformat()


class _FtsInsert:
    """Full-text rows (key, title, content) to insert, in key order; deferred to an import group's commit, it takes in
    the inserts deferred after it (`absorb`, see `SqlState.defer_to_commit`), so that the group's rows go in as one
    sorted statement. Why: FTS5 writes its pending terms out as a new segment, to be merged later, whenever a row's key
    is lower than the one before, and each batch's rows start again at an early publication time: a segment per batch
    and its merging (callgrind, 5,000 pool-enriched items replayed in one group: the commit 2,043 → 1,422 M
    instructions, the same index entries)."""

    def __init__(self, rows: list[tuple[int, str, str]]) -> None:
        self.rows = rows

    def absorb(self, other: object) -> bool:
        if type(other) is not _FtsInsert:
            return False
        self.rows.extend(other.rows)
        return True

    def __call__(self, conn: Connection) -> None:
        self.rows.sort()  # (the keys are unique: the texts are never compared)
        conn.exec_driver_sql("INSERT INTO items_fts(rowid, title, content) VALUES (?, ?, ?)", self.rows)


# The look-ups of `SqliteStore._lookup` and `known_items`, each ending in an IN list ("{}": its placeholders, see
# `storage.dialect.in_list`).
_BY_KEY = (f"SELECT {', '.join(c.name for c in (*READ_COLUMNS, T.signature))} FROM items "
           "WHERE items.source = ? AND items.source_id IN ({})")
_KNOWN = ("SELECT items.id, items.source_id, items.event_id, items.likes, items.reposts, items.comments FROM items "
          "WHERE items.source = ? AND items.source_id IN ({})")
# items of an absorbed event to the event that absorbed it (`reassign_events`), one statement for all merges
_REASSIGN_EVENT = (schema.items.update().where(T.event_id == bindparam("absorbed"))
                   .values(event_id=bindparam("target")))
_BY_ID = f"SELECT {', '.join(c.name for c in READ_COLUMNS)} FROM items WHERE items.id = ?"
_INSERT_COLUMNS = ("id", *ROW_COLUMNS)
_BY_HASH = "SELECT items.id, items.content_hash FROM items WHERE items.content_hash IN ({})"


class SqliteStore(SqlState):
    """Items, quarantine and inbox in one SQLite file, with the relational state of the other components.

    Writes are serialised by a lock (as Datasette's single writer thread) because SQLite allows one writer;
    readers run concurrently thanks to WAL.
    """

    items_with_state = True  # the state tables share the items' database and transactions

    def __init__(self, path: Path | str, *, segment: Segmenter, index_segment: Segmenter | None = None,
                 index_from_words: IndexFromWords | None = None, fts: bool = True) -> None:
        self.path = path
        self.segment = segment
        self.index_segment = index_segment or segment
        # (title, content, words of the item's text) → the index's title and content tokens, equal to
        # `index_segment` of each: lets `upsert` index the words enrichment already cut instead of cutting again.
        self.index_from_words = index_from_words
        self.fts = fts
        try:
            super().__init__(create_sqlite_engine(path), single_writer=True)
        except StorageError as exc:
            raise StorageError(f"cannot open store at {path}: {exc}") from exc

    @classmethod
    def read_only(cls, path: Path | str, *, segment: Segmenter) -> SqliteStore:
        """The store as a reader process opens it (api/readers.py): the file another process writes, read-only
        (SQLite refuses writes), no migration; its searches are those of the writer's store."""
        store = cls.__new__(cls)
        store.path, store.segment, store.index_segment, store.index_from_words, store.fts = path, segment, segment, None, True
        store.migrate = lambda: {}  # type: ignore[method-assign] - the writer's process migrates
        SqlState.__init__(store, create_sqlite_engine(path, read_only=True), single_writer=True)
        return store

    def item_write(self) -> AbstractContextManager[Connection]:
        """A write transaction on the items' database: here the same as `write()` (and joining it)."""
        return self.write()

    def item_read(self) -> AbstractContextManager[Connection]:
        return self.read()

    # ---- items -------------------------------------------------------------------------------------------

    @staticmethod
    def _update_row(values: tuple, item_id: int) -> dict:
        """The UPDATE parameters of a stored item from its `item_row_values`: every column but its id and created time."""
        row = dict(zip(ROW_COLUMNS, values, strict=True))
        del row["created_at"]
        row["_id"] = item_id
        return row

    def _fts_rows(self, pairs: list[tuple[int, Item]], words: dict[int, Sequence[str]] | None = None,
                  published_ts: Sequence[float] | None = None) -> list[tuple[int, str, str]]:
        """`published_ts`: the items' publication timestamps, when the caller has them (their rows' published_ts)."""
        rows = []
        if published_ts is None:
            published_ts = [item.published_at.timestamp() for _, item in pairs]
        for (item_id, item), seconds in zip(pairs, published_ts, strict=True):
            known = words.get(id(item)) if words and self.index_from_words else None
            if known is not None:
                title, content = self.index_from_words(item.title, item.content, known)
            else:
                title, content = self.index_segment(item.title), self.index_segment(item.content)
            rows.append((fts_key(seconds, item_id), " ".join(title), " ".join(content)))
        return rows

    def _index(self, conn: Connection, pairs: list[tuple[int, Item]], replaced: list[tuple[int, Item]] | None = None,
               words: dict[int, Sequence[str]] | None = None, published_ts: Sequence[float] | None = None) -> None:
        """Index the items' text; `replaced` are the stored versions they replace (id, item), taken out first.

        The index keeps no text (contentless), so taking an entry out needs the text it was made from: the stored
        item's, segmented again the same way. Rows go in in rowid order (keys lead with the publishing time, which
        arrives in any order), which FTS5 takes more cheaply (storing 6,000 items in batches of 500: 4–8 % less CPU;
        bench_ingest with FTS: 5–10 % more items/s)."""
        if not self.fts or not pairs:
            return
        taken_out = sorted(self._fts_rows(replaced)) if replaced else []
        put_in = _FtsInsert(self._fts_rows(pairs, words, published_ts))

        def write(conn: Connection) -> None:
            conn.exec_driver_sql("INSERT INTO items_fts(items_fts, rowid, title, content) "
                                 "VALUES ('delete', ?, ?, ?)", taken_out)
            put_in(conn)

        action = write if taken_out else put_in
        if not self.defer_to_commit(action):  # inside an import's group: at its commit (SqlState.defer_to_commit)
            action(conn)

    def _set_schemes(self, conn: Connection, pairs: list[tuple[int, Item]], replace: bool) -> None:
        if replace and pairs:
            delete_ids(conn, schema.item_schemes, schema.item_schemes.c.item_id, [item_id for item_id, _ in pairs])
        rows = [{"item_id": item_id, "scheme": s} for item_id, item in pairs for s in sorted(set(item.enrichment.schemes))]
        if rows:
            insert_many(conn, schema.item_schemes, rows)

    def upsert(self, items: list[Item], words: Sequence[Sequence[str] | None] | None = None,
               published_ts: Sequence[float] | None = None) -> list[UpsertResult]:
        """Insert new items, update changed ones by (source, source_id), and drop exact content duplicates.

        Works in bulk (one lookup, one executemany per kind) because per-row statements dominate ingest time.
        A duplicate's source and id are kept in `item_duplicates` so reposts still count toward reach.
        `words[i]`, when given, are the words `segment` cut from `items[i].text`; the full-text index is built from
        them (with `index_from_words`) instead of segmenting the text again. `published_ts[i]`, when given, is
        `items[i].published_at.timestamp()`.
        """
        if not items:
            return []
        now = _now()
        # tuples in ROW_COLUMNS order
        rows = (list(map(item_row_values, items, repeat(now), published_ts)) if published_ts is not None
                else [item_row_values(item, now) for item in items])
        known_words = ({id(item): w for item, w in zip(items, words, strict=True) if w is not None}
                       if words is not None else None)
        with self.write() as conn:
            by_key, by_hash = self._lookup(conn, items)
            outcomes: list[UpsertResult | None] = [None] * len(items)
            inserts: list[int] = []
            updates: list[tuple[int, int]] = []
            dups: list[tuple[int, Item]] = []
            new_hashes: dict[str, int] = {}
            for index, (item, row) in enumerate(zip(items, rows, strict=True)):
                existing = by_key.get((item.source, item.source_id))
                if existing is not None:
                    item_id = existing.id
                    stored = existing._mapping
                    if all(stored[name] == row[i] for name, i in FACT_POSITIONS):
                        outcomes[index] = UpsertResult(item_id, UpsertOutcome.unchanged)
                    else:
                        updates.append((index, item_id))
                        outcomes[index] = UpsertResult(item_id, UpsertOutcome.updated)
                    continue
                content_hash = row[HASH_POSITION]
                same = by_hash.get(content_hash)
                if same is not None:
                    dups.append((same, item))
                    outcomes[index] = UpsertResult(same, UpsertOutcome.duplicate)
                    continue
                if content_hash in new_hashes:
                    outcomes[index] = UpsertResult(-1, UpsertOutcome.duplicate)  # id filled after insert
                    continue
                new_hashes[content_hash] = index
                inserts.append(index)
            if inserts:
                # Ids are given, not returned: INSERT … RETURNING in parameter order runs one statement per row on
                # SQLite, and this transaction is the only writer, so the next ids are known.
                first = (conn.execute(select(func.max(T.id))).scalar() or 0) + 1
                ids = list(range(first, first + len(inserts)))
                insert_values(conn, schema.items, _INSERT_COLUMNS,
                              [(new_id, *rows[i]) for i, new_id in zip(inserts, ids, strict=True)])
                for index, new_id in zip(inserts, ids, strict=True):
                    outcomes[index] = UpsertResult(new_id, UpsertOutcome.inserted)
                pairs = [(outcomes[i].item_id, items[i]) for i in inserts]
                self._index(conn, pairs, words=known_words, published_ts=[rows[i][TS_POSITION] for i in inserts])
                self._set_schemes(conn, pairs, replace=False)
                write_originals(conn, pairs, now, replace=False)
            for index, result in enumerate(outcomes):
                if result is not None and result.item_id == -1:
                    first = outcomes[new_hashes[rows[index][HASH_POSITION]]]
                    outcomes[index] = UpsertResult(first.item_id, UpsertOutcome.duplicate)
                    dups.append((first.item_id, items[index]))
            if updates:
                update_by_id(conn, schema.items, [self._update_row(rows[index], item_id) for index, item_id in updates])
                pairs = [(item_id, items[index]) for index, item_id in updates]
                old = [(item_id, item_from_row(by_key[(items[index].source, items[index].source_id)]))
                       for index, item_id in updates]
                self._index(conn, pairs, replaced=old, words=known_words,
                            published_ts=[rows[index][TS_POSITION] for index, _ in updates])
                self._set_schemes(conn, pairs, replace=True)
                write_originals(conn, pairs, now, replace=True)
            self._record_duplicates(conn, dups, now)
        return [o for o in outcomes if o is not None]

    def _lookup(self, conn: Connection, items: list[Item]) -> tuple[dict[tuple[str, str], Row], dict[str, int]]:
        """Stored rows (READ_COLUMNS and the signature) by (source, source_id), and stored item id by content hash.

        Through the driver, with the statement text made once per number of values: SQLAlchemy renders an expanding
        IN list of 500 values anew on every execution (three look-ups of a batch's keys: dedup's, the analysis
        stages' `known_items` and the upsert's)."""
        by_key: dict[tuple[str, str], Row] = {}
        by_hash: dict[str, int] = {}
        by_source: dict[str, list[str]] = {}
        for it in items:
            by_source.setdefault(it.source, []).append(it.source_id)
        for source, sids in by_source.items():
            for start in range(0, len(sids), 500):
                chunk = sids[start : start + 500]
                found = conn.exec_driver_sql(in_list(_BY_KEY, len(chunk)), (source, *chunk)).all()
                by_key.update({(source, r.source_id): r for r in found})
        hashes = list({it.content_hash for it in items})
        for start in range(0, len(hashes), 500):
            chunk = hashes[start : start + 500]
            for r in conn.exec_driver_sql(in_list(_BY_HASH, len(chunk)), tuple(chunk)).all():
                by_hash.setdefault(r.content_hash, r.id)
        return by_key, by_hash

    def _record_duplicates(self, conn: Connection, pairs: list[tuple[int, Item]], now: str) -> None:
        if not pairs:
            return
        rows = copy_rows(pairs, now)
        upsert(conn, schema.item_duplicates, rows, keys=["source", "source_id"], update=["doc", "url"])

    def get(self, item_id: int) -> Item:
        with self.read() as conn:
            row = conn.exec_driver_sql(_BY_ID, (item_id,)).first()
        if row is None:
            raise NotFound(f"item {item_id} not found")
        return item_from_row(row)

    def original(self, item_id: int) -> dict | None:
        """The unmasked values PII masking replaced in item `item_id` (field → value: title, content, reply, author,
        extra), kept only with `analysis.pii.keep_raw`; None when nothing was kept. The one way back to what a citizen
        wrote: callers must check the caller's role and write an audit row first (GET /api/items/{id}/original).
        Raises NotFound for an unknown item."""
        with self.read() as conn:
            if conn.execute(select(T.id).where(T.id == item_id)).first() is None:
                raise NotFound(f"item {item_id} not found")
            return read_original(conn, item_id)

    def duplicates_of(self, item_id: int) -> list[dict]:
        """The exact copies of an item: where each was seen and, when kept, what it carried of its own (author, time,
        engagement, official reply), since a copy-paste petition sent by many people gets a reply for each."""
        dup = schema.item_duplicates
        with self.read() as conn:
            rows = conn.execute(select(dup.c.source, dup.c.source_id, dup.c.url, dup.c.seen_at, dup.c.doc)
                                .where(dup.c.item_id == item_id).order_by(dup.c.id)).all()
        return copy_entries(rows)

    def update_enrichment(self, item_id: int, enrichment: Enrichment) -> None:
        item = self.get(item_id)
        item.enrichment = enrichment
        row = self._update_row(item_row_values(item, _now()), item_id)
        with self.write() as conn:
            update_by_id(conn, schema.items, [row])
            self._set_schemes(conn, [(item_id, item)], replace=True)

    def _filters(self, query: ItemQuery, walk: bool = False) -> list:
        """Conditions on `items` for every filter but the full-text one (see `_search_text`).

        `walk`: the conditions that narrow by something other than the sort key are written so that no index serves
        them (`+ 0`), which leaves SQLite only the sort's index to read the page through (see `_narrowed`)."""
        conds = []
        ts = T.published_ts + 0 if walk and query.sort == "risk" else T.published_ts
        rank = T.risk_rank + 0 if walk and query.sort == "time" else T.risk_rank
        if query.source:
            conds.append(T.source == query.source)
        if query.channel:
            conds.append(T.channel == str(query.channel))
        if query.since:
            conds.append(ts >= query.since.timestamp())
        if query.until:
            conds.append(ts < query.until.timestamp())
        if query.topic:
            conds.append(T.topic == query.topic)
        if query.emotion:
            conds.append(T.emotion == query.emotion)
        if query.risk_level:
            conds.append(T.risk_level == query.risk_level)
        if query.min_risk is not None:
            conds.append(rank >= query.min_risk)
            if query.min_risk <= schema.UNSCORED_RISK:
                conds.append(T.risk_score.is_not(None))  # no score never passes
        if query.event_id:
            conds.append(T.event_id == query.event_id)
        if query.region:
            conds.append(T.region == query.region)
        if query.within_regions:  # a caller's 属地 scope: the item's region names one of them (雨花区 ⊂ 江城市雨花区)
            conds.append(or_(*[T.region.contains(r, autoescape=True) for r in query.within_regions]))
        if query.scheme:
            sub = select(schema.item_schemes.c.item_id).where(schema.item_schemes.c.scheme == query.scheme)
            conds.append((T.id + 0 if walk else T.id).in_(sub))
        return conds

    def search(self, query: ItemQuery) -> Page[Item]:
        """Filtered items newest first (or riskiest first), with an opaque cursor for the next page.

        Every query kind reads its page in order from an index and stops there; the count stops at COUNT_CAP."""
        return self._search(query, item_from_row)

    def search_item_json(self, query: ItemQuery) -> Page[bytes]:
        """`search`, each item as its JSON (`Item.model_dump_json()` as UTF-8), encoded from the row without
        building the model: the feed sends pages of these (api/readers.py), and validating 50 items per request
        was most of a page's CPU."""
        return self._search(query, item_json_from_row)

    def _search(self, query: ItemQuery, build: Callable[[Row], T_ITEM]) -> Page[T_ITEM]:
        if not 1 <= query.limit <= 500:
            raise InputError("limit must be between 1 and 500")
        conds = self._filters(query)
        match = None
        if query.q:
            if not self.fts:
                raise InputError("full-text search is disabled on this store")
            match = compile_fts(query.q, self.segment)
        sort_key = T.published_ts if query.sort == "time" else T.risk_rank
        cursor = Cursor.decode(query.cursor, query.sort) if query.cursor else None
        try:
            with self.read() as conn:
                count = self._count(conn, conds, match)
                narrowed = match is None and self._narrowed(query)
                walk = narrowed and count > FEW_TO_SORT
                page_conds = self._filters(query, walk=True) if walk else list(conds)
                if cursor is not None:  # a row value: the index seeks to the cursor instead of testing every row before it
                    page_conds.append(tuple_(sort_key, T.id) < tuple_(literal(cursor.key), literal(cursor.item_id)))
                sorted_among = None
                if match is not None and query.sort == "time":
                    rows = self._search_text(conn, match, page_conds, cursor, query.limit + 1)
                elif match is not None:
                    rows = self._search_text_by_risk(conn, match, conds, cursor, query.limit + 1)
                    sorted_among = COUNT_CAP if count > COUNT_CAP else None
                else:
                    stmt = select(*READ_COLUMNS, sort_key.label("k")).where(*page_conds)
                    # a few narrowed rows: read through the narrowing filter's index and sorted (`+ 0`: not the sort's)
                    order = sort_key + 0 if narrowed and not walk else sort_key
                    rows = conn.execute(stmt.order_by(order.desc(), T.id.desc()).limit(query.limit + 1)).all()
        except StorageError as exc:
            if "fts5" in str(exc).lower() or "MATCH" in str(exc):
                raise InputError(f"search query not understood: {exc}") from exc
            raise
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        data = [build(r) for r in rows]
        next_cursor = Cursor(query.sort, float(rows[-1].k), rows[-1].id).encode() if more and rows else None
        return Page(data=data, count=min(count, COUNT_CAP), next_cursor=next_cursor, count_exact=count <= COUNT_CAP,
                    sorted_among=sorted_among)

    @staticmethod
    def _narrowed(query: ItemQuery) -> bool:
        """Whether a filter narrows the page by something other than its sort key: a time window with the risk sort,
        a minimum risk with the time sort, a scheme. SQLite then reads every matching row through that filter's
        index and sorts them, which is right for a few and grows with the data for many. With more than FEW_TO_SORT
        (the count, read first, says so) the page walks the sort's index instead (`_filters(walk=True)`), paired
        with an equality filter when there is one, and stops after the page: many matching rows are met early.
        With fewer, the sort key is hidden from the planner instead, so that it reads them through the filter."""
        return bool((query.sort == "risk" and (query.since or query.until)) or
                    (query.sort == "time" and query.min_risk is not None) or query.scheme)

    def _text_matches(self, match: str, conds: list):  # noqa: ANN202 - a SQLAlchemy Select
        """Items matching the full-text expression and `conds`, walked newest second first through the index."""
        return (select(*READ_COLUMNS, T.published_ts.label("k"), FTS.c.rowid.label("key"))
                .select_from(FTS.join(schema.items, T.id == FTS.c.rowid.op("&")(FTS_ID_MASK), full=False))
                .where(FTS.c.items_fts.match(match), *conds))

    def _search_text(self, conn: Connection, match: str, conds: list, cursor: Cursor | None, want: int) -> list:
        """The first `want` matches in feed order, reading the index only down to the page.

        The index is walked by its time key (second, id); the rows of the page's last second are then fetched whole
        and put in (published_ts, id) order, since within one second the key orders by id alone."""
        keyed = list(conds)
        if cursor is not None:
            keyed.append(FTS.c.rowid < (fts_second(cursor.key) + 1) << FTS_ID_BITS)
        rows = conn.execute(self._text_matches(match, keyed).order_by(FTS.c.rowid.desc()).limit(want)).all()
        if len(rows) < want:
            return sorted(rows, key=lambda r: (r.k, r.id), reverse=True)
        last_second = rows[-1].key >> FTS_ID_BITS
        earlier = [r for r in rows if r.key >> FTS_ID_BITS > last_second]
        same_second = conn.execute(self._text_matches(match, [
            *conds, FTS.c.rowid >= last_second << FTS_ID_BITS, FTS.c.rowid < (last_second + 1) << FTS_ID_BITS])).all()
        return sorted(earlier + list(same_second), key=lambda r: (r.k, r.id), reverse=True)[:want]

    def _search_text_by_risk(self, conn: Connection, match: str, conds: list, cursor: Cursor | None,
                             want: int) -> list:
        """The first `want` matches riskiest first, among the newest COUNT_CAP matches (all of them when there are no
        more; `Page.sorted_among` says when there are): the candidates are read as the time-sorted search reads them,
        down to the cap and no further, so a common word costs the same as its count, however much matches."""
        candidates = (self._text_matches(match, conds).with_only_columns(T.id.label("cid"), T.risk_rank.label("crank"))
                      .order_by(FTS.c.rowid.desc()).limit(COUNT_CAP).subquery())
        top = select(candidates.c.cid).order_by(candidates.c.crank.desc(), candidates.c.cid.desc()).limit(want)
        if cursor is not None:
            top = top.where(tuple_(candidates.c.crank, candidates.c.cid) < tuple_(literal(cursor.key),
                                                                                literal(cursor.item_id)))
        ids = conn.execute(top).scalars().all()
        rows = conn.execute(select(*READ_COLUMNS, T.risk_rank.label("k")).where(T.id.in_(ids))).all()
        return sorted(rows, key=lambda r: (r.k, r.id), reverse=True)

    def _count(self, conn: Connection, conds: list, match: str | None) -> int:
        """How many items the filters select, counted up to COUNT_CAP + 1 (more says only "more than the cap")."""
        if match is None:
            hits = select(T.id).where(*conds)
        elif conds:
            hits = self._text_matches(match, conds).with_only_columns(T.id)
        else:
            hits = select(FTS.c.rowid).where(FTS.c.items_fts.match(match))
        return conn.execute(select(func.count()).select_from(hits.limit(COUNT_CAP + 1).subquery())).scalar_one()

    def lookup(self, items: list[Item]) -> tuple[dict[tuple[str, str], tuple[int, str]], dict[str, int]]:
        """For a batch: stored (id, signature) by (source, source_id), and stored item id by content hash."""
        if not items:
            return {}, {}
        with self.read() as conn:
            by_key, by_hash = self._lookup(conn, items)
        return {k: (v.id, v.signature) for k, v in by_key.items()}, by_hash

    def record_duplicates(self, pairs: list[tuple[int, Item]]) -> None:
        """Remember that `item` repeats stored item `item_id`, so its reach still counts."""
        if not pairs:
            return
        with self.write() as conn:
            self._record_duplicates(conn, pairs, _now())

    def migrate(self) -> dict[str, int]:
        """The migrations, then every index schema.py declares that the file lacks (`create_missing_indexes`): those a
        load killed before its end had dropped. Unless a live process's load is running without them: its end
        builds them, and building them here would hold the write lock under it."""
        versions = super().migrate()
        with self._bulk_load_lock(create=False) as alone:
            if alone:
                with self.write() as conn:
                    if created := create_missing_indexes(conn):
                        logger.warning("indexes missing from the store created again: %s", ", ".join(created))
        return versions

    @contextmanager
    def _bulk_load_lock(self, *, create: bool = True) -> Iterator[bool]:
        """An exclusive `flock` on a file beside the database (`DB-bulk-load`), held by the process whose load runs
        without the feed indexes (`bulk_load`); False, not holding it, when another process (or another open in this
        one) holds it. A process that dies lets go of it with its file descriptors. Without `create` a missing file
        is free: no load ever ran here (the file stays after one, so no open of it races another's unlink)."""
        if str(self.path) == ":memory:":
            yield True
            return
        try:
            handle = open(f"{self.path}-bulk-load", "a+" if create else "r")  # noqa: SIM115 - held while locked
        except FileNotFoundError:
            yield True
            return
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True  # closing the file releases the lock

    @contextmanager
    def bulk_load(self, expected_items: int) -> Iterator[BulkLoad]:
        """Without the feed indexes while a large load writes (see `deferring_pays`), built again at its end even when
        it raises; a kill in between leaves them to the next open (`migrate`). Readers of the file meanwhile get the
        same answers, read without them. Not while another process's load is at it (one load defers at a time)."""
        load = BulkLoad()
        with self.read() as conn:
            stored = conn.execute(select(func.max(T.id))).scalar() or 0  # never fewer than the items: cheap, cautious
        with ExitStack() as held:
            if not deferring_pays(stored, expected_items) or not held.enter_context(self._bulk_load_lock()):
                yield load
                return
            with self.write() as conn:
                present = {index["name"] for index in inspect(conn).get_indexes(schema.items.name)}
                dropped = [index for index in schema.FEED_INDEXES if index.name in present]
                for index in dropped:
                    index.drop(conn)
                load.deferred = tuple(index.name for index in dropped)
            logger.info("bulk load of about %d items into %d: %d feed indexes deferred", expected_items, stored,
                        len(load.deferred))
            try:
                yield load
            finally:
                started = time.perf_counter()
                # (SQLite's sorter helper threads, PRAGMA threads=2, made it no faster: 1,000,000 rows, 3 indexes;
                # 50,000 rows, 16 indexes: the same CPU, 1.78–1.99 s against 1.82–2.07)
                with self.write() as conn, _memory_mapped(conn):
                    create_missing_indexes(conn)
                load.rebuild_seconds = time.perf_counter() - started
                logger.info("feed indexes built again in %.1f s", load.rebuild_seconds)

    def reassign_events(self, merged: Mapping[str, str]) -> int:
        """Items of each absorbed event now belong to the event that absorbed it (the event_id column: the document
        does not repeat it)."""
        if not merged:
            return 0
        with self.write() as conn:  # one executemany of one statement, in order (an import merges a few a batch)
            result = conn.execute(_REASSIGN_EVENT, [{"absorbed": a, "target": t} for a, t in merged.items()])
        return result.rowcount

    # ---- reads for analysis and alerting -------------------------------------------------------------------

    def known_items(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], KnownItem]:
        """Stored items among the keys, looked up per source in chunks of 500 (SQLite's parameter limit)."""
        by_source: dict[str, list[str]] = {}
        for source, source_id in keys:
            by_source.setdefault(source, []).append(source_id)
        found: dict[tuple[str, str], KnownItem] = {}
        if not by_source:
            return found
        with self.read() as conn:
            for source, source_ids in by_source.items():
                for start in range(0, len(source_ids), 500):
                    chunk = source_ids[start:start + 500]
                    rows = conn.exec_driver_sql(in_list(_KNOWN, len(chunk)), (source, *chunk)).all()
                    for r in rows:
                        found[(source, r.source_id)] = KnownItem(r.id, r.event_id, r.likes + r.reposts + r.comments)
        return found

    def event_totals(self, event_id: str) -> EventTotals | None:
        with self.read() as conn:
            row = conn.execute(
                select(func.count(), func.count(distinct(T.channel)),
                       func.coalesce(func.sum(T.likes + T.reposts + T.comments), 0), func.max(T.risk_score))
                .where(T.event_id == event_id)
            ).first()
        if row is None or not row[0]:
            return None
        return EventTotals(event_id, int(row[0]), int(row[1]), int(row[2]), float(row[3] or 0))

    def subject_facts(self, *, event_id: str | None = None, item_id: int | None = None) -> SubjectFacts | None:
        if not event_id and item_id is None:
            return None
        if not event_id:
            with self.read() as conn:
                row = conn.execute(select(T.published_ts, T.created_at, T.risk_level).where(T.id == item_id)).first()
            return None if row is None else SubjectFacts(float(row[0]), row[1] or "", row[2] or "")
        # Three lookups that each stop at one index entry, so the cost does not grow with the event (a burst puts
        # tens of thousands of items in one, and this is asked for every batch that adds to it): the earliest
        # publication by the event's time index, the first stored item by the event's plain index (its rowid order
        # is the order of storing), and the grade of its riskiest item by the event's risk index (the grade follows
        # the score).
        where = T.event_id == event_id
        with self.read() as conn:
            first = conn.execute(select(T.published_ts).where(where).order_by(T.published_ts, T.id).limit(1)).first()
            if first is None:
                return None
            stored = conn.execute(select(T.created_at).where(where).order_by(T.id).limit(1)).scalar()
            grade = conn.execute(select(T.risk_level).where(where).order_by(T.risk_rank.desc(), T.id.desc())
                                 .limit(1)).scalar()
        return SubjectFacts(float(first[0]), stored or "", grade or "")

    def event_opinions(self, event_id: str, since_ts: float, until_ts: float) -> list[ItemOpinion]:
        with self.read() as conn:
            rows = conn.execute(select(T.polarity, T.emotion, T.risk_score).where(
                T.event_id == event_id, T.published_ts >= since_ts, T.published_ts < until_ts)).all()
        return [ItemOpinion(r.polarity, r.emotion, r.risk_score) for r in rows]

    def item_facets(self, since: datetime, until: datetime) -> list[ItemFacets]:
        """Oldest first; schemes come from one join over the same window, not one query per item."""
        window = (T.published_ts >= since.timestamp(), T.published_ts < until.timestamp())
        s = schema.item_schemes.c
        with self.read() as conn:
            rows = conn.execute(select(T.id, T.published_ts, T.topic, T.region, T.source, T.doc)
                                .where(*window).order_by(T.published_ts, T.id)).all()
            schemes: dict[int, list[str]] = {}
            for r in conn.execute(select(s.item_id, s.scheme).join(schema.items, T.id == s.item_id)
                                  .where(*window).order_by(s.item_id, s.scheme)):
                schemes.setdefault(r.item_id, []).append(r.scheme)
        out = []
        for r in rows:
            doc = json.loads(r.doc)
            out.append(ItemFacets(item_id=r.id, published_ts=r.published_ts, topic=r.topic, region=r.region,
                                  source=r.source, schemes=schemes.get(r.id, []),
                                  keywords=doc.get("enrichment", {}).get("keywords", []),
                                  backfill=doc.get("extra", {}).get("backfill") is True))
        return out

    def scan_texts(self, since: datetime, until: datetime, batch_size: int = 1000) -> Iterator[list[ItemText]]:
        """Newest first by keyset paging, so no connection stays open while the caller works on a batch."""
        window = [T.published_ts >= since.timestamp(), T.published_ts < until.timestamp()]
        after: tuple[float, int] | None = None
        while True:
            conds = list(window)
            if after is not None:
                conds.append(tuple_(T.published_ts, T.id) < tuple_(literal(after[0]), literal(after[1])))
            with self.read() as conn:
                rows = conn.execute(select(T.id, T.published_ts, T.title, T.content).where(*conds)
                                    .order_by(T.published_ts.desc(), T.id.desc()).limit(batch_size)).all()
            if not rows:
                return
            yield [ItemText(r.id, r.title, r.content) for r in rows]
            after = (rows[-1].published_ts, rows[-1].id)

    def scan_items(self, since: datetime, until: datetime, batch_size: int = 1000) -> Iterator[list[Item]]:
        window = [T.published_ts >= since.timestamp(), T.published_ts < until.timestamp()]
        last_id = 0
        while True:
            with self.read() as conn:
                rows = conn.execute(select(*READ_COLUMNS).where(*window, T.id > last_id)
                                    .order_by(T.id).limit(batch_size)).all()
            if not rows:
                return
            yield [item_from_row(r) for r in rows]
            last_id = rows[-1].id

    def stats(self) -> StoreStats:
        with self.read() as conn:
            by_channel = dict(conn.execute(select(T.channel, func.count()).group_by(T.channel)).all())
            by_source = dict(conn.execute(select(T.source, func.count()).group_by(T.source)).all())
            quarantined = self.quarantined_count(conn)
        return StoreStats(items=sum(by_channel.values()), by_channel=by_channel, by_source=by_source, quarantined=quarantined)

    def volume_histogram(self, since: datetime, until: datetime, interval: str = "day",
                         group: str | None = None) -> dict[str, list[tuple[str, int]]]:
        """Buckets of local (Asia/Shanghai, no daylight saving) time computed from the publication second."""
        check_group(group)
        formats = {"day": "%Y-%m-%dT00:00:00", "hour": "%Y-%m-%dT%H:00:00"}
        if interval not in formats:
            raise InputError("interval must be day or hour")
        bucket = func.strftime(formats[interval], T.published_ts + SHANGHAI_OFFSET_S, "unixepoch").label("bucket")
        key = getattr(T, group) if group else literal("all")
        conds = [T.published_ts >= since.timestamp(), T.published_ts < until.timestamp()]
        if group:
            conds.append(key.is_not(None))
        with self.read() as conn:
            rows = conn.execute(select(key.label("key"), bucket, func.count()).where(*conds)
                                .group_by(key, bucket).order_by(key, bucket)).all()
        out: dict[str, list[tuple[str, int]]] = {}
        for row in rows:
            out.setdefault(row[0], []).append((row[1], row[2]))
        return out

    def average_risk(self, group: str, since: datetime, until: datetime) -> dict[str, float]:
        check_group(group)
        key = getattr(T, group)
        with self.read() as conn:
            rows = conn.execute(select(key, func.avg(T.risk_score))
                                .where(T.published_ts >= since.timestamp(), T.published_ts < until.timestamp(),
                                       key.is_not(None), T.risk_score.is_not(None)).group_by(key)).all()
        return {r[0]: round(r[1], 6) for r in rows}
