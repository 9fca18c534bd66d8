"""Open the store `storage.backend` names: the one place that chooses a backend (the composition root calls it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.config import StorageConfig
from storage.base import Store
from storage.sqlite import SqliteStore, create_sqlite_engine

Segmenter = Callable[[str], list[str]]


def open_store(config: StorageConfig, *, segment: Segmenter, index_segment: Segmenter,
               sqlite_path: Path | None = None) -> Store:
    """SQLite: items and state in one file. Elasticsearch: items on the cluster, state in the SQLite file (the
    state store moves to PostgreSQL with `storage.state_url`)."""
    path = sqlite_path or config.sqlite_path
    if config.backend == "elasticsearch":
        from storage.elasticsearch import ElasticsearchStore

        assert config.elasticsearch is not None  # the config validator requires it with this backend
        return ElasticsearchStore(config.elasticsearch, create_sqlite_engine(path), segment=segment,
                                  index_segment=index_segment, single_writer=True)
    return SqliteStore(path, segment=segment, index_segment=index_segment)
