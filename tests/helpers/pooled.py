"""What the tests of an import through the enrichment pool share: a service to import into (the 泰迪杯 columns, small
batches, one clock for risk), its stored items, and those items in a form two imports can be compared by."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from core.config import parse_config
from core.models import Item
from yuqing.host import Service
from yuqing.service import build_service

COLUMNS = {"message_id": "source_id", "user_id": "author", "title": "title", "created_at": "published_at",
           "body": "content", "likes": "likes", "dislikes": "dislikes"}
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def open_service(folder: Path, name: str, commit_items: int = 5000) -> Service:
    # A scheme with NEAR: the writer cuts the words of the items it checks again (the workers do not send them).
    near = {"name": "小区噪音", "expression": "小区 NEAR/8 噪音"}
    config = parse_config({"storage": {"sqlite_path": str(folder / f"{name}.db")},
                           "analysis": {"schemes": {"items": [near]}},
                           "ingest": {"batch_size": 150, "import_commit_items": commit_items},
                           "sources": {"board_tipdm": {"channel": "board", "import": {"columns": COLUMNS}}}})
    service = build_service(config)
    for stage in service.ingestor.chain.stages:
        if stage.name == "risk":
            stage.now = lambda: NOW  # risk reads the clock (reply overdue, engagement per hour): one instant for both
    return service


def stored(service: Service) -> list[Item]:
    items = [i for batch in service.store.scan_items(datetime(2000, 1, 1, tzinfo=UTC), NOW) for i in batch]
    return sorted(items, key=lambda i: i.id)


def canonical(items: list[Item]) -> list[dict]:
    """Each item as stored, with its event named by the first item in it (event ids are random) and the times
    that come from the clock (fetched_at: the import's now) left out."""
    first_of: dict[str, int] = {}
    out = []
    for item in items:
        row = item.model_dump(mode="json", exclude={"fetched_at"})
        event = item.enrichment.event_id
        row["enrichment"]["event_id"] = event and first_of.setdefault(event, item.id)
        out.append(row)
    return out
