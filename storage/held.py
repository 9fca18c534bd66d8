"""Unmasked originals on their way from PII masking to the store, beside the item, not in it (`hold` / `held`).

Why a module of its own: the masking stage and the import's pool workers hold and read them but never write them;
`storage.originals`, which writes them, imports SQLAlchemy (≈ 0.25 s of CPU at the start of every worker process).
Anything in the item would be hashed into its signature, serialised and served; a pydantic private attribute would
do, but costs 1.3 µs on every Item ever built or read (27 % of constructing one), for a feature that is usually off.
"""

from __future__ import annotations

import weakref
from typing import Any

from core.models import Item

# id(item) → (weak reference to the item, its originals); an entry leaves when its item is garbage-collected.
_held: dict[int, tuple[weakref.ref, dict[str, Any]]] = {}


def hold(item: Item, fields: dict[str, Any]) -> None:
    """Attach the originals masking replaced to this item object until the store writes them."""
    key = id(item)
    _held[key] = (weakref.ref(item, lambda _ref, key=key: _held.pop(key, None)), fields)


def held(item: Item) -> dict[str, Any] | None:
    """The originals held for this very item object, if any."""
    entry = _held.get(id(item))
    return entry[1] if entry is not None and entry[0]() is item else None
