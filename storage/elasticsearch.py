"""Items on Elasticsearch (or OpenSearch and API-compatible forks), the rest of the state in SQL.

Layout on the cluster: an index template `{prefix}-items` for indices `{prefix}-items-YYYY-MM` (one per month of
publication, Asia/Shanghai), all behind the alias `{prefix}-items` that every read goes through. Mappings: the
segmented words (the same ones the SQLite full-text index holds) under a whitespace analyzer, so no server plugin is
needed; the raw text under a CJK bigram analyzer for recall; keywords for every filter and aggregation; dates and
numbers. The document keeps the item's JSON as stored (`doc`, not indexed), so an item reads back exactly.

In the state database (SQL, `storage.state_url`; the SQLite file by default) the store keeps what must be exact and
shared by every instance: the identity of each item (`es_items`: id, source and source id, content hash, signature,
a digest of the document, the index holding it), the exact copies seen elsewhere and the unmasked originals. Ids are
allocated there, so (source, source_id) is unique across instances, and a re-crawl is compared without a search.

Writes and the after-store outbox (flow/after_store.py): an upsert runs inside the caller's state transaction. It
writes the identity rows, indexes the documents (bulk, bounded batches, retries with backoff on 429, 5xx and lost
connections, per document), and only then lets the transaction commit, with the outbox rows the store stage adds to
it. So an item whose identity committed is on the cluster and has its alert rules pending; a failure (or a crash)
before the commit leaves nothing committed and the records in the inbox, and the retry indexes the same documents
again under the same `_id` (derived from source and source id, so an orphan of the failed attempt is overwritten).
Alert fingerprints make a re-drive raise nothing twice. Moving items between events (`reassign_events`) is recorded
in the transaction and applied to the cluster after it commits (`es_event_moves`, re-applied at start if a crash
came in between).

Reads that must see the latest writes (search, aggregations) refresh the alias first when this process wrote since
the last refresh; gets are realtime. Deep paging uses `search_after` on (sort key, id): no point-in-time API, no
scripts, no runtime mappings, so OpenSearch and forks answer every request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, Transport
from elasticsearch import ApiError, Elasticsearch, TransportError
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
)

from core.config_storage import ElasticsearchConfig
from core.errors import InputError, NotFound, StorageError
from core.models import SHANGHAI, Enrichment, Item
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
    item_json,
)
from storage.copies import copy_entries, copy_rows
from storage.dialect import upsert as sql_upsert
from storage.es_query import compile_text, filters, words
from storage.held import held
from storage.migrations import register
from storage.state import SqlState

logger = logging.getLogger(__name__)

Segmenter = Callable[[str], list[str]]
COUNT_CAP = 10_000  # as SqliteStore: a page's count stops here (track_total_hits)
SCAN_PAGE = 1000  # documents per request when a read walks many items

# ---- the state tables of this backend -------------------------------------------------------------------------------

es_items = Table(
    "es_items",
    schema.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("source_id", String(300), nullable=False),
    Column("content_hash", String(40), nullable=False),
    Column("signature", String(40), nullable=False),
    Column("digest", String(40), nullable=False),  # sha1 of the stored document: an unchanged re-crawl is seen here
    Column("index_name", String(200), nullable=False),  # the monthly index holding the document
    Column("created_at", String(40), nullable=False),
    UniqueConstraint("source", "source_id", name="uq_es_items_source_sid"),
    Index("ix_es_items_hash", "content_hash"),
)

es_item_duplicates = Table(
    "es_item_duplicates",
    schema.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_id", Integer, nullable=False),
    Column("source", String(100), nullable=False),
    Column("source_id", String(300), nullable=False),
    Column("url", Text),
    Column("seen_at", String(40), nullable=False),
    Column("doc", Text),
    UniqueConstraint("source", "source_id", name="uq_es_dups_source_sid"),
    Index("ix_es_dups_item", "item_id"),
)

es_item_originals = Table(
    "es_item_originals",
    schema.metadata,
    Column("item_id", Integer, primary_key=True, autoincrement=False),
    Column("fields", Text, nullable=False),
    Column("kept_at", String(40), nullable=False),
)

es_event_moves = Table(
    "es_event_moves",
    schema.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("absorbed", String(64), nullable=False),
    Column("target", String(64), nullable=False),
    Column("queued_ts", Float, nullable=False),
)


@register("elasticsearch", 1, "es_items, es_item_duplicates, es_item_originals, es_event_moves: the SQL side of "
                              "items kept on Elasticsearch")
def _elasticsearch_v1(conn: Connection) -> None:
    schema.metadata.create_all(conn, tables=[es_items, es_item_duplicates, es_item_originals, es_event_moves])


E = es_items.c

# ---- the cluster side --------------------------------------------------------------------------------------------------


def index_settings(config: ElasticsearchConfig) -> dict:
    return {
        "number_of_shards": config.shards,
        "number_of_replicas": config.replicas,
        "analysis": {
            "analyzer": {
                # the words are segmented by yuqing (jieba) before indexing: split at spaces only
                "yuqing_tokens": {"type": "custom", "tokenizer": "whitespace"},
                # every two adjacent CJK characters: finds what a segmentation split differently
                "yuqing_bigram": {"type": "custom", "tokenizer": "standard",
                                  "filter": ["cjk_width", "lowercase", "cjk_bigram"]},
            }
        },
    }


# Derived from `doc` (the item's JSON, which every read uses): indexed, never stored a second time in `_source`.
DERIVED_TEXT = ["title_tok", "content_tok", "text"]

MAPPINGS: dict = {
    "dynamic": "strict",
    "_source": {"excludes": DERIVED_TEXT},
    "properties": {
        "id": {"type": "long"},
        "source": {"type": "keyword"},
        "channel": {"type": "keyword"},
        "source_id": {"type": "keyword"},
        "region": {"type": "keyword"},
        "topic": {"type": "keyword"},
        "emotion": {"type": "keyword"},
        "polarity": {"type": "keyword"},
        "risk_level": {"type": "keyword"},
        "risk_score": {"type": "double"},
        "risk_rank": {"type": "double"},  # risk_score, or -1 when unscored: the risk sort needs no script
        "event_id": {"type": "keyword"},
        "schemes": {"type": "keyword"},
        "keywords": {"type": "keyword"},
        "likes": {"type": "long"},
        "reposts": {"type": "long"},
        "comments": {"type": "long"},
        "engagement": {"type": "long"},
        "has_reply": {"type": "boolean"},
        "backfill": {"type": "boolean"},  # imported history (`yuqing import`): left out of spike baselines
        "published_ts": {"type": "double"},  # seconds, exactly as the cursor carries them
        "published_at": {"type": "date", "format": "epoch_millis"},  # for date_histogram (Asia/Shanghai)
        "created_at": {"type": "date", "format": "epoch_millis"},
        "content_hash": {"type": "keyword"},
        "signature": {"type": "keyword"},
        # No norms: every text query is a filter and every sort explicit, so length normalisation is never used.
        # Positions stay: phrases and NEAR are span_near on the words, a phrase on the bigrams needs them too.
        "title_tok": {"type": "text", "analyzer": "yuqing_tokens", "norms": False},
        "content_tok": {"type": "text", "analyzer": "yuqing_tokens", "norms": False},
        "text": {"type": "text", "analyzer": "yuqing_bigram", "norms": False},
        "doc": {"type": "keyword", "index": False, "doc_values": False},
    },
}


class _PlainJsonTransport(Transport):
    """Sends `application/json` where the Elasticsearch client sends its `compatible-with` media type, which
    OpenSearch and its forks answer with 406 (`storage.elasticsearch.compatible_with: false`)."""

    _COMPAT = re.compile(r"application/vnd\.elasticsearch\+([\w-]+);\s*compatible-with=\d+")

    def perform_request(self, method: str, target: str, *, headers: Any = None, **kwargs: Any) -> Any:  # noqa: ANN401
        if headers:
            headers = headers.copy()
            for name in ("accept", "content-type"):
                value = headers.get(name)
                if value:
                    headers[name] = self._COMPAT.sub(r"application/\1", value)
        return super().perform_request(method, target, headers=headers, **kwargs)


def make_client(config: ElasticsearchConfig) -> Elasticsearch:
    """The official client as configured: nodes, basic auth, the CA file for TLS, plain JSON if asked.
    Its own retries are off: this store retries with backoff and reports what failed."""
    options: dict[str, Any] = {"request_timeout": config.timeout_s, "max_retries": 0, "retry_on_timeout": False}
    if config.username is not None and config.password is not None:
        options["basic_auth"] = (config.username, config.password.get_secret_value())
    if config.ca_file is not None:
        options["ca_certs"] = str(config.ca_file)
    if not config.compatible_with:
        options["transport_class"] = _PlainJsonTransport
    return Elasticsearch(config.urls, **options)


class ItemsRejected(ValueError):
    """The cluster refused some documents for good (a mapping it rejects, a malformed value): not a storage outage,
    so the ingest chain retries item by item and quarantines each refused item with this reason."""

    def __init__(self, reasons: dict[str, str]) -> None:
        self.reasons = reasons
        first = next(iter(reasons.values()))
        super().__init__(f"Elasticsearch refused {len(reasons)} document(s): {first}")


def _retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


NOT_ACCEPTABLE_HINT = ("; the server refuses the client's compatible-with media type (OpenSearch and its forks do): "
                       "set storage.elasticsearch.compatible_with: false")


def _error_reason(error: Any) -> str:  # noqa: ANN401 - the cluster's error object or text
    if isinstance(error, str) and "Content-Type header" in error and "not supported" in error:
        return error + NOT_ACCEPTABLE_HINT
    if isinstance(error, dict):
        reason = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        cause = error.get("caused_by")
        return f"{reason} ({_error_reason(cause)})" if cause else reason
    return str(error)


def doc_key(source: str, source_id: str) -> str:
    """The document `_id`: from the item's key, so indexing the same item again (a retry after a failure before
    the state committed) overwrites the same document instead of leaving an orphan."""
    return hashlib.sha1(f"{source}\x1f{source_id}".encode()).hexdigest()


def _digest(doc: str) -> str:
    return hashlib.sha1(doc.encode()).hexdigest()


def _millis(moment: datetime) -> int:
    return int(round(moment.timestamp() * 1000))


class ElasticsearchStore(SqlState):
    """`Store` with items on a cluster and everything else (inbox, quarantine, the state of the other packages) in the
    SQL database of `engine`."""

    items_with_state = True  # the items' identity rows share the state's database and transactions

    def __init__(self, config: ElasticsearchConfig, engine: Engine, *, segment: Segmenter,
                 index_segment: Segmenter | None = None, single_writer: bool | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.segment = segment
        self.index_segment = index_segment or segment
        self.alias = f"{config.index_prefix}-items"
        self.nodes = ", ".join(config.urls)
        self._sleep = sleep
        self._known_indices: set[str] = set()
        self._dirty = threading.Event()  # written since the last refresh: the next search refreshes first
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="es-bulk")  # one bulk request in flight
        self._committed = threading.local()  # cluster changes waiting for this thread's transaction to commit
        self.client = make_client(config)
        super().__init__(engine, single_writer=single_writer)
        self._prepare_cluster()
        self._apply_event_moves()

    def item_write(self) -> AbstractContextManager[Connection]:
        """The state's write transaction (joining it): the identity rows and the after-store outbox are in the state
        database, and the documents reach the cluster before it commits."""
        return self.write()

    def item_read(self) -> AbstractContextManager[Connection]:
        return self.read()

    def bulk(self) -> AbstractContextManager[None]:
        """Nothing grouped: each write's documents reach the cluster right after its own commit (`after_commit`)."""
        return nullcontext()

    def bulk_load(self, expected_items: int) -> AbstractContextManager[BulkLoad]:
        """Nothing deferred: the cluster keeps its own indexes (Store.bulk_load's default)."""
        return nullcontext(BulkLoad())

    def close(self) -> None:
        self._sender.shutdown(wait=True)
        self.client.close()
        super().close()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """The state's write transaction (joined when one is open on this thread); the cluster changes registered
        with `after_commit` meanwhile run once the outermost one has committed, and never after a rollback."""
        if getattr(self._committed, "actions", None) is not None:
            with super().write() as conn:
                yield conn
            return
        self._committed.actions = actions = []
        try:
            with super().write() as conn:
                yield conn
        finally:
            self._committed.actions = None
        for action in actions:
            action()

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run `action` after the write transaction open on this thread commits (at once when none is open). For a
        change to documents that must follow a state change only if it holds; record it durably in the transaction
        to survive a crash in between."""
        actions = getattr(self._committed, "actions", None)
        if actions is None:
            action()
        else:
            actions.append(action)

    # ---- talking to the cluster ----------------------------------------------------------------------------------

    def _call(self, what: str, call: Callable[[], Any]) -> Any:  # noqa: ANN401 - the client's response
        """One request, retried with exponential backoff on lost connections, timeouts, 429 and 5xx; then a
        StorageError naming the cluster, what was asked and why it failed."""
        attempts = self.config.retries + 1
        for attempt in range(attempts):
            try:
                return call()
            except (TransportConnectionError, ConnectionTimeout) as exc:
                error = f"cannot reach the cluster ({exc.__class__.__name__}: {exc})"
            except ApiError as exc:
                if not _retryable_status(exc.meta.status):
                    raise
                error = f"HTTP {exc.meta.status}: {_error_reason(self._body_error(exc))}"
            except TransportError as exc:
                error = f"{exc.__class__.__name__}: {exc}"
            if attempt + 1 < attempts:
                delay = self._backoff(attempt)
                logger.warning("elasticsearch %s failed at %s: %s; retry %d/%d in %.1f s", what, self.nodes, error,
                               attempt + 1, attempts - 1, delay)
                self._sleep(delay)
        raise StorageError(f"Elasticsearch at {self.nodes}: {what} failed after {attempts} attempt(s): {error}")

    def _backoff(self, attempt: int) -> float:
        base = self.config.retry_backoff_s * (2 ** attempt)
        return min(30.0, base) * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not secrecy

    def _prepare_cluster(self) -> None:
        """Check the cluster answers and put the index template (idempotent: every start puts the current one)."""
        self._call("connect", lambda: self.client.info())
        try:
            self._call("put index template", lambda: self.client.indices.put_index_template(
                name=self.alias, index_patterns=[f"{self.alias}-*"], priority=200,
                template={"settings": index_settings(self.config), "mappings": MAPPINGS, "aliases": {self.alias: {}}}))
        except ApiError as exc:
            raise StorageError(f"Elasticsearch at {self.nodes} rejected the index template {self.alias!r}: "
                               f"HTTP {exc.meta.status}: {_error_reason(self._body_error(exc))}") from exc
        self._ensure_alias()

    @staticmethod
    def _body_error(exc: ApiError) -> Any:  # noqa: ANN401
        return exc.body.get("error", exc.body) if isinstance(exc.body, dict) else exc.body

    def _ensure_alias(self) -> None:
        """Reads go through the alias, so it must exist before the first item: an empty month-less index holds it."""
        self._ensure_index(f"{self.alias}-empty")

    def _ensure_index(self, name: str) -> None:
        if name in self._known_indices:
            return
        try:
            self._call(f"create index {name}", lambda: self.client.indices.create(
                index=name, settings=index_settings(self.config), mappings=MAPPINGS, aliases={self.alias: {}}))
        except ApiError as exc:
            error = self._body_error(exc)
            if "already_exists" not in json.dumps(error, default=str):
                raise StorageError(f"Elasticsearch at {self.nodes} rejected index {name!r}: HTTP {exc.meta.status}: "
                                   f"{_error_reason(error)}") from exc
        self._known_indices.add(name)

    def index_for(self, item: Item) -> str:
        """The monthly index of an item: its month of publication in Asia/Shanghai."""
        return f"{self.alias}-{item.published_at.astimezone(SHANGHAI):%Y-%m}"

    def refresh(self) -> None:
        """Make every write of this process searchable (a cluster shows documents to searches only after a refresh)."""
        self._dirty.clear()
        self._call("refresh", lambda: self.client.indices.refresh(index=self.alias))

    def _fresh(self) -> None:
        if self._dirty.is_set():
            self.refresh()

    def _bulk(self, actions: Iterable[tuple[dict, dict | None]]) -> None:
        """Index (or delete) documents in batches of at most `bulk_batch` documents and `bulk_max_bytes`; a document
        the cluster answers 429 or 5xx for, or a batch lost with its connection, is sent again with backoff.
        `actions` may be lazy: the next batch's documents are built (segmented) while the previous batch is on the
        wire, one batch in flight at a time, in order.
        Raises StorageError when the cluster is unavailable after the retries (nothing of the caller's transaction
        commits), ItemsRejected with each refused document's reason otherwise."""
        rejected: dict[str, str] = {}
        in_flight: Future[dict[str, str]] | None = None

        def send(lines: list[tuple[str, str | None]]) -> None:
            nonlocal in_flight
            if in_flight is not None:
                rejected.update(in_flight.result())
            in_flight = self._sender.submit(self._send, lines, list(range(len(lines))))

        batch: list[tuple[str, str | None]] = []
        size = 0
        try:
            for meta, body in actions:
                line = (json.dumps(meta), None if body is None else json.dumps(body, ensure_ascii=False))
                cost = len(line[0]) + (len(line[1].encode()) if line[1] is not None else 0) + 2
                if batch and (len(batch) >= self.config.bulk_batch or size + cost > self.config.bulk_max_bytes):
                    send(batch)
                    batch, size = [], 0
                batch.append(line)
                size += cost
            if batch:
                send(batch)
            if in_flight is not None:
                rejected.update(in_flight.result())
        finally:
            if in_flight is not None and not in_flight.done():
                wait([in_flight])  # never leave a request behind the caller's rollback
            self._dirty.set()
        if rejected:
            raise ItemsRejected(rejected)

    def _send(self, lines: list[tuple[str, str | None]], positions: list[int]) -> dict[str, str]:
        attempts = self.config.retries + 1
        todo = list(positions)
        rejected: dict[str, str] = {}
        error = ""
        for attempt in range(attempts):
            body = [part for p in todo for part in lines[p] if part is not None]
            try:
                response = self.client.bulk(operations=body)
            except (TransportConnectionError, ConnectionTimeout, TransportError) as exc:
                error = f"cannot reach the cluster ({exc.__class__.__name__}: {exc})"
                response = None
            except ApiError as exc:
                if not _retryable_status(exc.meta.status):
                    raise StorageError(f"Elasticsearch at {self.nodes}: bulk request refused: HTTP {exc.meta.status}: "
                                       f"{_error_reason(self._body_error(exc))}") from exc
                error = f"HTTP {exc.meta.status}"
                response = None
            if response is not None:
                again = []
                for p, result in zip(todo, response["items"], strict=True):
                    outcome = next(iter(result.values()))
                    status = outcome.get("status", 500)
                    if status < 300 or (status == 404 and "delete" in result):
                        continue
                    reason = _error_reason(outcome.get("error", f"HTTP {status}"))
                    if _retryable_status(status):
                        again.append(p)
                        error = f"HTTP {status}: {reason}"
                    else:
                        rejected[json.loads(lines[p][0]).popitem()[1]["_id"]] = f"HTTP {status}: {reason}"
                todo = again
            if not todo:
                return rejected
            if attempt + 1 < attempts:
                delay = self._backoff(attempt)
                logger.warning("elasticsearch bulk at %s: %d of %d documents not indexed (%s); retry %d/%d in %.1f s",
                               self.nodes, len(todo), len(positions), error, attempt + 1, attempts - 1, delay)
                self._sleep(delay)
        raise StorageError(f"Elasticsearch at {self.nodes}: {len(todo)} document(s) not indexed after {attempts} "
                           f"attempt(s): {error}")

    def _search(self, what: str, **body: Any) -> dict:  # noqa: ANN401
        try:
            return self._call(what, lambda: self.client.search(index=self.alias, **body))
        except ApiError as exc:
            raise StorageError(f"Elasticsearch at {self.nodes}: {what} refused: HTTP {exc.meta.status}: "
                               f"{_error_reason(self._body_error(exc))}") from exc

    def _scan(self, query: dict, sort: list[dict], fields: list[str] | None, batch_size: int = SCAN_PAGE,
              ) -> Iterator[list[dict]]:
        """Every matching document's source, `batch_size` at a time, by search_after on a total order."""
        self._fresh()
        after = None
        while True:
            extra = {"search_after": after} if after is not None else {}
            response = self._search("scan", query=query, sort=sort, size=batch_size, _source=fields or True,
                                    track_total_hits=False, **extra)
            hits = response["hits"]["hits"]
            if not hits:
                return
            yield [hit["_source"] for hit in hits]
            if len(hits) < batch_size:
                return
            after = hits[-1]["sort"]

    # ---- documents -------------------------------------------------------------------------------------------------

    def _document(self, item_id: int, item: Item, doc: str, created_ms: int) -> dict:
        e = item.enrichment
        eng = item.engagement
        title_words = words(self.index_segment(item.title))
        content_words = words(self.index_segment(item.content))
        return {
            "id": item_id, "source": item.source, "channel": item.channel.value, "source_id": item.source_id,
            "region": item.region, "topic": e.topic, "emotion": e.emotion, "polarity": e.polarity,
            "risk_level": e.risk_level, "risk_score": e.risk_score,
            "risk_rank": schema.UNSCORED_RISK if e.risk_score is None else e.risk_score,
            "event_id": e.event_id, "schemes": sorted(set(e.schemes)), "keywords": list(e.keywords),
            "likes": eng.likes, "reposts": eng.reposts, "comments": eng.comments,
            "engagement": eng.likes + eng.reposts + eng.comments, "has_reply": item.reply is not None,
            "backfill": item.backfill,
            "published_ts": item.published_at.timestamp(), "published_at": _millis(item.published_at),
            "created_at": created_ms, "content_hash": item.content_hash, "signature": item.signature,
            "title_tok": " ".join(title_words), "content_tok": " ".join(content_words),
            "text": f"{item.title}\n{item.content}", "doc": doc,
        }

    @staticmethod
    def _to_item(source: dict) -> Item:
        item = Item.model_validate_json(source["doc"])
        item.id = int(source["id"])
        return item

    def _index_actions(self, rows: list[tuple[int, Item, str, str, int, str | None]]) -> Iterator[tuple[dict, dict | None]]:
        """(id, item, doc, index, created ms, previous index) → bulk actions, built as they are sent; a document whose
        month changed leaves its old index."""
        for index in dict.fromkeys(row[3] for row in rows):
            self._ensure_index(index)
        for item_id, item, doc, index, created_ms, previous in rows:
            key = doc_key(item.source, item.source_id)
            yield {"index": {"_index": index, "_id": key}}, self._document(item_id, item, doc, created_ms)
            if previous and previous != index:
                yield {"delete": {"_index": previous, "_id": key}}, None

    # ---- items -------------------------------------------------------------------------------------------------------

    def upsert(self, items: list[Item], words: Sequence[Sequence[str] | None] | None = None,
               published_ts: Sequence[float] | None = None) -> list[UpsertResult]:
        """As SqliteStore.upsert: insert new items, update changed ones by (source, source_id), drop exact content
        duplicates. Identity rows in the state transaction, documents on the cluster before it commits. `words` is
        not used: the documents carry the index segmentation's words (title and content apart), not the
        enrichment's; nor is `published_ts`."""
        if not items:
            return []
        now = datetime.now(UTC)
        now_iso = now.isoformat()
        docs = [item.model_dump_json(exclude={"id"}) for item in items]
        with self.write() as conn:
            by_key, by_hash = self._lookup(conn, items)
            outcomes: list[UpsertResult | None] = [None] * len(items)
            inserts: list[int] = []
            updates: list[tuple[int, Any]] = []
            dups: list[tuple[int, Item]] = []
            first_of_hash: dict[str, int] = {}
            for index, (item, doc) in enumerate(zip(items, docs, strict=True)):
                row = by_key.get((item.source, item.source_id))
                if row is not None:
                    if row.digest == _digest(doc):
                        outcomes[index] = UpsertResult(row.id, UpsertOutcome.unchanged)
                    else:
                        updates.append((index, row))
                        outcomes[index] = UpsertResult(row.id, UpsertOutcome.updated)
                    continue
                same = by_hash.get(item.content_hash)
                if same is not None:
                    dups.append((same, item))
                    outcomes[index] = UpsertResult(same, UpsertOutcome.duplicate)
                    continue
                if item.content_hash in first_of_hash:
                    outcomes[index] = UpsertResult(-1, UpsertOutcome.duplicate)  # id known after the insert
                    continue
                first_of_hash[item.content_hash] = index
                inserts.append(index)
            rows: list[tuple[int, Item, str, str, int, str | None]] = []
            if inserts:
                values = [{"source": items[i].source, "source_id": items[i].source_id,
                           "content_hash": items[i].content_hash, "signature": items[i].signature,
                           "digest": _digest(docs[i]), "index_name": self.index_for(items[i]), "created_at": now_iso}
                          for i in inserts]
                ids = list(conn.execute(es_items.insert().returning(E.id, sort_by_parameter_order=True), values).scalars())
                for i, new_id in zip(inserts, ids, strict=True):
                    outcomes[i] = UpsertResult(new_id, UpsertOutcome.inserted)
                    rows.append((new_id, items[i], docs[i], self.index_for(items[i]), _millis(now), None))
            for index, result in enumerate(outcomes):
                if result is not None and result.item_id == -1:
                    first = outcomes[first_of_hash[items[index].content_hash]]
                    outcomes[index] = UpsertResult(first.item_id, UpsertOutcome.duplicate)
                    dups.append((first.item_id, items[index]))
            for index, row in updates:
                item = items[index]
                target = self.index_for(item)
                conn.execute(es_items.update().where(E.id == row.id).values(
                    signature=item.signature, content_hash=item.content_hash, digest=_digest(docs[index]),
                    index_name=target))
                created = datetime.fromisoformat(row.created_at)
                rows.append((row.id, item, docs[index], target, _millis(created), row.index_name))
            stored = [(r[0], r[1]) for r in rows]
            self._write_originals(conn, stored, now_iso, replaced=[item_id for item_id, _ in stored])
            self._record_duplicates(conn, dups, now_iso)
            # an attempt that failed before its state committed may have left a document under a duplicate's key
            gone = [({"delete": {"_index": self.index_for(item), "_id": doc_key(item.source, item.source_id)}}, None)
                    for _, item in dups]
            actions = chain(self._index_actions(rows), gone)
            try:
                self._bulk(actions)
            except ItemsRejected as refused:
                self._forget_refused(refused, {doc_key(items[i].source, items[i].source_id): items[i] for i in inserts})
                raise
        return [o for o in outcomes if o is not None]

    def _forget_refused(self, refused: ItemsRejected, inserted: dict[str, Item]) -> None:
        """A new item refused by the cluster leaves no identity (the transaction rolls back): make sure no document of
        it stays either (a cluster that refuses after writing, or a proxy rewriting answers). Best effort: the
        documents of the batch the cluster took are written again by the item-by-item retry that follows."""
        gone = [({"delete": {"_index": self.index_for(item), "_id": key}}, None)
                for key, item in inserted.items() if key in refused.reasons]
        if gone:
            try:
                self._bulk(gone)
            except (StorageError, ItemsRejected) as exc:
                logger.warning("elasticsearch at %s: could not delete %d refused document(s): %s", self.nodes,
                               len(gone), exc)

    def restore(self, rows: list[tuple[Item, str]]) -> None:
        """Put items that keep their ids and first-stored times (ISO) — a migration from another store, whose state
        (alerts, events, plan runs) names these ids. Idempotent: an item already here is written again."""
        if not rows:
            return
        docs = [item.model_dump_json(exclude={"id"}) for item, _ in rows]
        with self.write() as conn:
            ids = [item.id for item, _ in rows]
            conn.execute(es_items.delete().where(E.id.in_(ids)))
            conn.execute(es_items.insert(), [
                {"id": item.id, "source": item.source, "source_id": item.source_id, "content_hash": item.content_hash,
                 "signature": item.signature, "digest": _digest(doc), "index_name": self.index_for(item),
                 "created_at": created} for (item, created), doc in zip(rows, docs, strict=True)])
            self._bulk(self._index_actions([(item.id, item, doc, self.index_for(item),
                                             _millis(datetime.fromisoformat(created)), None)
                                            for (item, created), doc in zip(rows, docs, strict=True)]))

    def restore_extras(self, duplicates: list[dict], originals: list[dict]) -> None:
        """Copies seen elsewhere and kept originals of restored items (rows as the SQLite tables hold them)."""
        with self.write() as conn:
            if duplicates:
                sql_upsert(conn, es_item_duplicates, [{k: d[k] for k in ("item_id", "source", "source_id", "url",
                                                                         "seen_at", "doc")} for d in duplicates],
                           keys=["source", "source_id"], update=["item_id", "url", "seen_at", "doc"])
            if originals:
                sql_upsert(conn, es_item_originals, originals, keys=["item_id"], update=["fields", "kept_at"])
            if conn.dialect.name == "postgresql":  # ids were given: the sequence must continue after them
                conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('es_items', 'id'), "
                                     "GREATEST((SELECT max(id) FROM es_items), 1))")

    def identity_count(self) -> int:
        """Items this store has identities for (reindex verifies it against the source)."""
        with self.read() as conn:
            return conn.execute(select(func.count()).select_from(es_items)).scalar_one()

    def _lookup(self, conn: Connection, items: list[Item]) -> tuple[dict[tuple[str, str], Any], dict[str, int]]:
        by_key: dict[tuple[str, str], Any] = {}
        by_hash: dict[str, int] = {}
        by_source: dict[str, list[str]] = {}
        for it in items:
            by_source.setdefault(it.source, []).append(it.source_id)
        for source, sids in by_source.items():
            for start in range(0, len(sids), 500):
                found = conn.execute(select(es_items).where(E.source == source,
                                                            E.source_id.in_(sids[start:start + 500]))).all()
                by_key.update({(source, r.source_id): r for r in found})
        hashes = list({it.content_hash for it in items})
        for start in range(0, len(hashes), 500):
            for r in conn.execute(select(E.id, E.content_hash).where(E.content_hash.in_(hashes[start:start + 500]))
                                  .order_by(E.id)):
                by_hash.setdefault(r.content_hash, r.id)
        return by_key, by_hash

    def lookup(self, items: list[Item]) -> tuple[dict[tuple[str, str], tuple[int, str]], dict[str, int]]:
        if not items:
            return {}, {}
        with self.read() as conn:
            by_key, by_hash = self._lookup(conn, items)
        return {k: (r.id, r.signature) for k, r in by_key.items()}, by_hash

    def _write_originals(self, conn: Connection, pairs: list[tuple[int, Item]], now: str, replaced: list[int]) -> None:
        o = es_item_originals
        for start in range(0, len(replaced), 500):
            conn.execute(o.delete().where(o.c.item_id.in_(replaced[start:start + 500])))
        rows = [{"item_id": item_id, "fields": json.dumps(fields, ensure_ascii=False, default=str), "kept_at": now}
                for item_id, item in pairs if (fields := held(item))]
        if rows:
            conn.execute(o.insert(), rows)

    def original(self, item_id: int) -> dict | None:
        """The unmasked values PII masking replaced (analysis.pii.keep_raw), or None; NotFound for an unknown item.
        As SqliteStore.original: callers check the role and audit first."""
        with self.read() as conn:
            if conn.execute(select(E.id).where(E.id == item_id)).first() is None:
                raise NotFound(f"item {item_id} not found")
            fields = conn.execute(select(es_item_originals.c.fields)
                                  .where(es_item_originals.c.item_id == item_id)).scalar()
        return None if fields is None else json.loads(fields)

    def _record_duplicates(self, conn: Connection, pairs: list[tuple[int, Item]], now: str) -> None:
        if not pairs:
            return
        rows = copy_rows(pairs, now)
        sql_upsert(conn, es_item_duplicates, rows, keys=["source", "source_id"], update=["doc", "url"])

    def record_duplicates(self, pairs: list[tuple[int, Item]]) -> None:
        if not pairs:
            return
        with self.write() as conn:
            self._record_duplicates(conn, pairs, datetime.now(UTC).isoformat())

    def duplicates_of(self, item_id: int) -> list[dict]:
        d = es_item_duplicates.c
        with self.read() as conn:
            rows = conn.execute(select(d.source, d.source_id, d.url, d.seen_at, d.doc)
                                .where(d.item_id == item_id).order_by(d.id)).all()
        return copy_entries(rows)

    def _rows_by_id(self, item_ids: Iterable[int]) -> dict[int, Any]:
        ids = list(item_ids)
        found: dict[int, Any] = {}
        with self.read() as conn:
            for start in range(0, len(ids), 500):
                found.update({r.id: r for r in conn.execute(select(es_items).where(E.id.in_(ids[start:start + 500])))})
        return found

    def _get_sources(self, rows: list[Any], fields: list[str] | None = None) -> dict[int, dict]:
        """Realtime reads of documents by their identity rows (no refresh needed), 500 per request."""
        out: dict[int, dict] = {}
        for start in range(0, len(rows), 500):
            chunk = rows[start:start + 500]
            docs = [{"_index": r.index_name, "_id": doc_key(r.source, r.source_id)} for r in chunk]
            extra = {"_source_includes": fields} if fields else {}
            response = self._call("get documents", lambda docs=docs, extra=extra: self.client.mget(docs=docs, **extra))
            for row, doc in zip(chunk, response["docs"], strict=True):
                if doc.get("found"):
                    out[row.id] = doc["_source"]
        return out

    def get(self, item_id: int) -> Item:
        row = self._rows_by_id([item_id]).get(item_id)
        found = self._get_sources([row]) if row is not None else {}
        if item_id not in found:
            raise NotFound(f"item {item_id} not found")
        return self._to_item(found[item_id])

    def update_enrichment(self, item_id: int, enrichment: Enrichment) -> None:
        item = self.get(item_id)
        item.enrichment = enrichment
        doc = item.model_dump_json(exclude={"id"})
        with self.write() as conn:
            row = conn.execute(select(es_items).where(E.id == item_id)).one()
            conn.execute(es_items.update().where(E.id == item_id).values(digest=_digest(doc)))
            self._bulk(self._index_actions([(item_id, item, doc, row.index_name,
                                             _millis(datetime.fromisoformat(row.created_at)), None)]))

    def reassign_events(self, merged: Mapping[str, str]) -> int:
        """Items of each absorbed event now belong to the event that absorbed it. Recorded in the state transaction,
        applied to the documents once it commits (rolled back with it); returns how many items move."""
        if not merged:
            return 0
        self._fresh()
        moved = 0
        for absorbed in merged:
            response = self._search("count event items", query={"term": {"event_id": absorbed}}, size=0,
                                    track_total_hits=True)
            moved += response["hits"]["total"]["value"]
        now = time.time()
        with self.write() as conn:
            conn.execute(es_event_moves.insert(), [{"absorbed": a, "target": t, "queued_ts": now}
                                                   for a, t in merged.items()])
        self.after_commit(self._apply_event_moves)
        return moved

    def _apply_event_moves(self) -> None:
        """Rewrite the documents of recorded event moves (oldest first), then forget each move."""
        m = es_event_moves.c
        with self.read() as conn:
            moves = conn.execute(select(m.id, m.absorbed, m.target).order_by(m.id)).all()
        for move in moves:
            rows: list[tuple[int, Item, str, str, int, str | None]] = []
            for batch in self._scan({"term": {"event_id": move.absorbed}}, [{"id": "asc"}], None):
                for source in batch:
                    item = self._to_item(source)
                    item.enrichment.event_id = move.target
                    doc = item.model_dump_json(exclude={"id"})
                    rows.append((item.id, item, doc, self.index_for(item), int(source["created_at"]), None))
            with self.write() as conn:
                if rows:
                    for item_id, _item, doc, _index, _created, _prev in rows:
                        conn.execute(es_items.update().where(E.id == item_id).values(digest=_digest(doc)))
                    self._bulk(self._index_actions(rows))
                conn.execute(es_event_moves.delete().where(m.id == move.id))
        if moves:
            self.refresh()

    # ---- search ------------------------------------------------------------------------------------------------------

    def search(self, query: ItemQuery) -> Page[Item]:
        """Filtered items newest first (or riskiest first); cursors are search_after on (sort key, id)."""
        if not 1 <= query.limit <= 500:
            raise InputError("limit must be between 1 and 500")
        clauses: dict[str, Any] = {"filter": filters(query)}
        if query.q:  # in filter context too: the sort is explicit, so scoring the text would be wasted work
            clauses["filter"].append(compile_text(query.q, self.segment))
        sort_field = "published_ts" if query.sort == "time" else "risk_rank"
        cursor = Cursor.decode(query.cursor, query.sort) if query.cursor else None
        extra = {"search_after": [cursor.key, cursor.item_id]} if cursor is not None else {}
        self._fresh()
        response = self._search("search", query={"bool": clauses},
                                sort=[{sort_field: {"order": "desc"}}, {"id": {"order": "desc"}}],
                                size=query.limit + 1, track_total_hits=COUNT_CAP, _source=["id", "doc"], **extra)
        hits = response["hits"]["hits"]
        total = response["hits"]["total"]
        more = len(hits) > query.limit
        hits = hits[:query.limit]
        data = [self._to_item(hit["_source"]) for hit in hits]
        next_cursor = (Cursor(query.sort, float(hits[-1]["sort"][0]), int(hits[-1]["sort"][1])).encode()
                       if more and hits else None)
        exact = total["relation"] == "eq" and total["value"] <= COUNT_CAP
        return Page(data=data, count=min(int(total["value"]), COUNT_CAP), next_cursor=next_cursor, count_exact=exact)

    def search_item_json(self, query: ItemQuery) -> Page[bytes]:
        """`search`'s items, each encoded by `item_json`. A hit's document is already the model's JSON but for its
        id; sending it unvalidated would also send whatever an older model wrote there."""
        page = self.search(query)
        return Page(data=[item_json(item) for item in page.data], count=page.count, next_cursor=page.next_cursor,
                    count_exact=page.count_exact, sorted_among=page.sorted_among)

    # ---- reads for analysis and alerting -----------------------------------------------------------------------------

    def known_items(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], KnownItem]:
        """From the identity rows and a realtime multi-get: a re-crawl sees its item even before a refresh."""
        by_source: dict[str, list[str]] = {}
        for source, source_id in keys:
            by_source.setdefault(source, []).append(source_id)
        rows: list[Any] = []
        with self.read() as conn:
            for source, sids in by_source.items():
                for start in range(0, len(sids), 500):
                    rows.extend(conn.execute(select(es_items).where(E.source == source,
                                                                    E.source_id.in_(sids[start:start + 500]))).all())
        sources = self._get_sources(rows, ["id", "event_id", "engagement"])
        return {(r.source, r.source_id): KnownItem(r.id, sources[r.id].get("event_id"), int(sources[r.id]["engagement"]))
                for r in rows if r.id in sources}

    def event_totals(self, event_id: str) -> EventTotals | None:
        self._fresh()
        response = self._search("event totals", query={"term": {"event_id": event_id}}, size=0, track_total_hits=True,
                                aggs={"channels": {"terms": {"field": "channel", "size": 100}},
                                      "engagement": {"sum": {"field": "engagement"}},
                                      "max_risk": {"max": {"field": "risk_score"}}})
        count = response["hits"]["total"]["value"]
        if not count:
            return None
        aggs = response["aggregations"]
        return EventTotals(event_id, int(count), len(aggs["channels"]["buckets"]), int(aggs["engagement"]["value"] or 0),
                           float(aggs["max_risk"]["value"] or 0))

    def subject_facts(self, *, event_id: str | None = None, item_id: int | None = None) -> SubjectFacts | None:
        if not event_id and item_id is None:
            return None
        self._fresh()
        query = {"term": {"event_id": event_id}} if event_id else {"term": {"id": item_id}}
        response = self._search("subject facts", query=query, size=0, track_total_hits=True,
                                aggs={"first_published": {"min": {"field": "published_ts"}},
                                      "first_stored": {"min": {"field": "created_at"}},
                                      # the most severe grade: "I" < "II" < "III" < "IV" as text
                                      "grade": {"terms": {"field": "risk_level", "size": 1, "order": {"_key": "asc"}}}})
        if not response["hits"]["total"]["value"]:
            return None
        aggs = response["aggregations"]
        stored = aggs["first_stored"]["value"]
        grades = aggs["grade"]["buckets"]
        return SubjectFacts(float(aggs["first_published"]["value"]),
                            datetime.fromtimestamp(stored / 1000, UTC).isoformat() if stored is not None else "",
                            grades[0]["key"] if grades else "")

    def event_opinions(self, event_id: str, since_ts: float, until_ts: float) -> list[ItemOpinion]:
        query = {"bool": {"filter": [{"term": {"event_id": event_id}},
                                     {"range": {"published_ts": {"gte": since_ts, "lt": until_ts}}}]}}
        return [ItemOpinion(s.get("polarity"), s.get("emotion"), s.get("risk_score"))
                for batch in self._scan(query, [{"id": "asc"}], ["polarity", "emotion", "risk_score"]) for s in batch]

    @staticmethod
    def _window(since: datetime, until: datetime) -> dict:
        return {"range": {"published_ts": {"gte": since.timestamp(), "lt": until.timestamp()}}}

    def item_facets(self, since: datetime, until: datetime) -> list[ItemFacets]:
        """Oldest first, as SqliteStore."""
        fields = ["id", "published_ts", "topic", "region", "source", "schemes", "keywords", "backfill"]
        return [ItemFacets(item_id=int(s["id"]), published_ts=float(s["published_ts"]), topic=s.get("topic"),
                           region=s.get("region"), source=s["source"], schemes=list(s.get("schemes") or []),
                           keywords=list(s.get("keywords") or []), backfill=s.get("backfill") is True)
                for batch in self._scan(self._window(since, until), [{"published_ts": "asc"}, {"id": "asc"}], fields)
                for s in batch]

    def scan_texts(self, since: datetime, until: datetime, batch_size: int = 1000) -> Iterator[list[ItemText]]:
        for batch in self._scan(self._window(since, until), [{"published_ts": "desc"}, {"id": "desc"}],
                                ["id", "doc"], batch_size):
            texts = []
            for source in batch:
                item = self._to_item(source)
                texts.append(ItemText(item.id, item.title, item.content))
            yield texts

    def scan_items(self, since: datetime, until: datetime, batch_size: int = 1000) -> Iterator[list[Item]]:
        for batch in self._scan(self._window(since, until), [{"id": "asc"}], ["id", "doc"], batch_size):
            yield [self._to_item(source) for source in batch]

    def stats(self) -> StoreStats:
        self._fresh()
        response = self._search("stats", query={"match_all": {}}, size=0, track_total_hits=True,
                                aggs={"channel": {"terms": {"field": "channel", "size": 100}},
                                      "source": {"terms": {"field": "source", "size": 10_000}}})
        aggs = response["aggregations"]
        with self.read() as conn:
            quarantined = self.quarantined_count(conn)
        return StoreStats(items=int(response["hits"]["total"]["value"]),
                          by_channel={b["key"]: b["doc_count"] for b in aggs["channel"]["buckets"]},
                          by_source={b["key"]: b["doc_count"] for b in aggs["source"]["buckets"]},
                          quarantined=quarantined)

    def volume_histogram(self, since: datetime, until: datetime, interval: str = "day",
                         group: str | None = None) -> dict[str, list[tuple[str, int]]]:
        """A date_histogram in Asia/Shanghai, under a terms aggregation when grouped."""
        check_group(group)
        if interval not in ("day", "hour"):
            raise InputError("interval must be day or hour")
        histogram = {"date_histogram": {"field": "published_at", "calendar_interval": interval,
                                        "time_zone": "Asia/Shanghai", "min_doc_count": 1}}
        aggs = {"by": {"terms": {"field": group, "size": 10_000}, "aggs": {"h": histogram}}} if group else {"h": histogram}
        self._fresh()
        result = self._search("histogram", query=self._window(since, until), size=0, aggs=aggs)["aggregations"]

        def series(node: dict) -> list[tuple[str, int]]:
            return [(datetime.fromtimestamp(b["key"] / 1000, SHANGHAI).strftime("%Y-%m-%dT%H:%M:%S"), b["doc_count"])
                    for b in node["h"]["buckets"]]

        if group:
            return {b["key"]: series(b) for b in result["by"]["buckets"]}
        return {"all": series(result)} if result["h"]["buckets"] else {}

    def average_risk(self, group: str, since: datetime, until: datetime) -> dict[str, float]:
        """An avg aggregation under terms."""
        check_group(group)
        self._fresh()
        response = self._search("average risk", query=self._window(since, until), size=0,
                                aggs={"by": {"terms": {"field": group, "size": 10_000},
                                             "aggs": {"risk": {"avg": {"field": "risk_score"}}}}})
        return {b["key"]: round(b["risk"]["value"], 6) for b in response["aggregations"]["by"]["buckets"]
                if b["risk"]["value"] is not None}
