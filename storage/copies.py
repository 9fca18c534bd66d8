"""Exact copies of stored items seen elsewhere: rows and entries, the same for every backend (kept in SQL)."""

from __future__ import annotations

import json

from core.models import Item


def copy_rows(pairs: list[tuple[int, Item]], now: str) -> list[dict]:
    """Rows of exact copies (item id, the copy): a copy seen again keeps its first sighting's time but takes the newer
    document (a reply may have come). Both backends keep them in SQL."""
    return [{"item_id": item_id, "source": item.source, "source_id": item.source_id, "url": item.url, "seen_at": now,
             "doc": item.model_dump_json(exclude={"id", "enrichment"})} for item_id, item in pairs]


def copy_entries(rows: list) -> list[dict]:  # noqa: ANN001 - result rows with source, source_id, url, seen_at, doc
    """Where each copy was seen and, when kept, what it carried of its own (author, time, engagement, reply)."""
    out = []
    for r in rows:
        entry = {"source": r.source, "source_id": r.source_id, "url": r.url, "seen_at": r.seen_at}
        if r.doc:
            doc = json.loads(r.doc)
            entry.update({k: doc.get(k) for k in ("channel", "author", "published_at", "engagement", "reply")})
        out.append(entry)
    return out
