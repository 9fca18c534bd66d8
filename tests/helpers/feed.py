"""What the feed must send for a page of items: the page of models as `ItemsPublic` serialises it, the encoding
`api.readers.feed_json` reproduces from `Store.search_item_json` without building the models."""

from __future__ import annotations

from api.schemas import ItemsPublic
from core.models import Item
from storage.base import Page


def models_page_json(page: Page[Item]) -> bytes:
    """The page of `Store.search`, serialised by pydantic as one `ItemsPublic` (the reference for the feed's bytes)."""
    return ItemsPublic(data=page.data, count=page.count, next_cursor=page.next_cursor, count_exact=page.count_exact,
                       sorted_among=page.sorted_among).model_dump_json().encode()
