"""Opening the store a config describes: items in SQLite or on Elasticsearch (`storage.backend`), the state with them
or in `storage.state_url`'s database. The one place that chooses a backend (the composition root and the crawl
processes call it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.config_storage import ElasticsearchConfig
from core.errors import StorageError
from storage.base import Store
from storage.split import SplitStore
from storage.sqlite import IndexFromWords, SqliteStore
from storage.state import SqlState, create_sqlite_engine, create_state_engine

Segmenter = Callable[[str], list[str]]


def open_store(sqlite_path: Path | str, state_url: str | None = None, *, segment: Segmenter,
               index_segment: Segmenter | None = None, index_from_words: IndexFromWords | None = None,
               fts: bool = True, elasticsearch: ElasticsearchConfig | None = None) -> Store:
    """Without `elasticsearch`: the items' SQLite store, alone (state in the same file) or paired with the state
    database at `state_url`. With it: items on that cluster, their identity and the state in `state_url`'s database
    (the SQLite file at `sqlite_path` when unset)."""
    if elasticsearch is not None:
        from storage.elasticsearch import ElasticsearchStore  # the client is imported only where a cluster is used

        engine = create_state_engine(state_url) if state_url else create_sqlite_engine(sqlite_path)
        return ElasticsearchStore(elasticsearch, engine, segment=segment, index_segment=index_segment)
    items = SqliteStore(sqlite_path, segment=segment, index_segment=index_segment, index_from_words=index_from_words,
                        fts=fts)
    if not state_url:
        return items
    try:
        state = SqlState(create_state_engine(state_url))
    except StorageError as exc:
        items.close()
        where = create_state_engine(state_url).url.render_as_string(hide_password=True)
        raise StorageError(f"cannot open the state database storage.state_url={where}: {exc}") from exc
    return SplitStore(items, state)
