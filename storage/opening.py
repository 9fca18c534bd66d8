"""Opening the store a config describes: items in SQLite, state with them or in `storage.state_url`'s database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.errors import StorageError
from storage.split import SplitStore
from storage.sqlite import IndexFromWords, SqliteStore
from storage.state import SqlState, create_state_engine

Segmenter = Callable[[str], list[str]]


def open_store(sqlite_path: Path | str, state_url: str | None = None, *, segment: Segmenter,
               index_segment: Segmenter | None = None, index_from_words: IndexFromWords | None = None,
               fts: bool = True) -> SqliteStore | SplitStore:
    """The items' SQLite store, alone (state in the same file) or paired with the state database at `state_url`."""
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
