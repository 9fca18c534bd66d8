"""Reader processes for the item feed (`server.read_workers`).

One Python process answers every request on one core at a time (the GIL): 8 clients of the feed queue behind each
other's query building, item validation and JSON encoding, whatever the second core does. With read workers, a page
of `GET /api/items` is searched and encoded in one of N other processes, each with the SQLite file open read-only
(`SqliteStore.read_only`: SQLite itself refuses their writes); the service process keeps routing, access control and
every write, and waits for the page's bytes with the GIL released. The single writer stays the service's.

A page is the same there as here: the same `feed_json` (`search_item_json` in the `ItemsPublic` envelope); errors (a
bad cursor or query) come back as the same exceptions. Without workers (the default), or until they have started (their
imports take a few seconds), the page is searched in the service process.
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from api.schemas import ItemsPublic
from storage.base import ItemQuery, Page, Store

logger = logging.getLogger(__name__)

_STORE: Store | None = None  # the reader process's read-only store


def page_json(page: Page[bytes]) -> bytes:
    """A page as the feed sends it: the items' JSON (`Store.search_item_json`) in pydantic's envelope. The bytes are
    `ItemsPublic`'s own for the page's models (data is its first field; tests/helpers/feed.py compares)."""
    rest = ItemsPublic(data=[], count=page.count, next_cursor=page.next_cursor, count_exact=page.count_exact,
                       sorted_among=page.sorted_among).model_dump_json(exclude={"data"}).encode()
    return b'{"data":[' + b",".join(page.data) + b"]," + rest[1:]  # rest: '{"count":…}', never empty (count is required)


def feed_json(store: Store, query: ItemQuery) -> bytes:
    """The feed's page for `query`: items written by the store (from its rows, on SQLite: 50 models a page are not
    built and validated), the envelope around them pydantic's."""
    return page_json(store.search_item_json(query))


def _open(path: str) -> None:
    global _STORE
    from nlp.tokenize import segment
    from storage.sqlite import SqliteStore

    _STORE = SqliteStore.read_only(path, segment=segment)
    segment("小区")  # the dictionary loads now, not on the first full-text search


def _search(query: ItemQuery) -> bytes:
    if _STORE is None:  # only a process whose pool initializer (`_open`) ran has one
        raise RuntimeError("this process is not a reader: _open did not run")
    return feed_json(_STORE, query)


def _ready() -> int:
    import os

    return os.getpid()


class ReadWorkers:
    """A pool of reader processes (a service `Worker`: started with the API, stopped with it)."""

    def __init__(self, sqlite_path: Path, count: int) -> None:
        self.path = str(sqlite_path)
        self.count = count
        self._pool: ProcessPoolExecutor | None = None
        self._warming: list[Future] = []  # one start-up call per worker, done once it has opened the store

    def start(self) -> None:
        if self._pool is not None or self.count < 1:
            return
        # spawn, not fork: the service process already runs threads (a forked child would inherit their locks).
        self._pool = ProcessPoolExecutor(self.count, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_open, initargs=(self.path,))
        # Started now rather than on the first request; until every one has opened the store (imports take seconds),
        # pages are searched here, so the service answers at full speed from its first request.
        self._warming = [self._pool.submit(_ready) for _ in range(self.count)]
        logger.info("read workers starting count=%d", self.count)

    def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def search_json(self, store: Store, query: ItemQuery) -> bytes:
        """The page's JSON, from a reader process when the pool runs, else searched here."""
        pool = self._pool
        if pool is None or not self.ready():
            return feed_json(store, query)
        return pool.submit(_search, query).result()

    def ready(self) -> bool:
        """Whether every worker has opened the store (pages then go to them)."""
        if self._warming and all(f.done() for f in self._warming):
            for future in self._warming:
                future.result()  # a worker that failed to open the store fails loudly here
            self._warming = []
        return not self._warming

    def wait_ready(self) -> None:
        """Until every worker has opened the store (tests)."""
        for future in list(self._warming):
            future.result()

    def pids(self) -> list[int]:
        """The reader processes (for tests and the bench)."""
        pool = self._pool
        return [p.pid for p in getattr(pool, "_processes", {}).values()] if pool is not None else []
