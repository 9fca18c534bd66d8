"""Item pipelines: validate what spiders yield, then put raw records into the store's inbox.

Nothing here classifies or stores items: the service drains the inbox through the ingest flow, so crawls stay
cheap and can be replayed. Dropped items and problem pages are quarantined with their reason.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem

from core.models import QuarantineRecord, RawRecord
from crawlers.state import SeenEntry

logger = logging.getLogger(__name__)


class ValidatePipeline:
    """An item needs an id, a time and some text; anything else is dropped with a reason and quarantined."""

    def process_item(self, item: dict[str, Any], spider: Any = None) -> dict[str, Any]:
        spider = spider or self.spider
        payload = item.get("payload")
        reason = None
        if not isinstance(payload, dict):
            reason = "spider yielded an item without a payload"
        elif not payload.get("source_id"):
            reason = "item has no id"
        elif payload.get("published_at") in (None, ""):
            reason = "item has no publish time"
        elif not (payload.get("title") or payload.get("content")):
            reason = "item has no text"
        if reason:
            spider.count("errors/invalid_item")
            spider.problems.append(QuarantineRecord(source=spider.source, stage="crawl:validate", reason=reason,
                                                    payload=payload if isinstance(payload, dict) else str(item),
                                                    origin=item.get("url", ""), created_at=datetime.now(UTC)))
            raise DropItem(reason)
        return item

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ValidatePipeline:
        pipe = cls()
        pipe.crawler = crawler
        return pipe

    def open_spider(self, spider: Any = None) -> None:
        self.spider = spider or self.crawler.spider


class InboxPipeline:
    """Batches items into the inbox and marks their keys seen, so the next run stops where this one got to."""

    def __init__(self, crawler: Crawler, batch: int = 25) -> None:
        self.crawler = crawler
        self.batch = batch
        self.pending: list[dict[str, Any]] = []

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> InboxPipeline:
        return cls(crawler)

    @property
    def spider(self) -> Any:
        return self.crawler.spider

    def process_item(self, item: dict[str, Any], spider: Any = None) -> dict[str, Any]:
        self.pending.append(item)
        if len(self.pending) >= self.batch:
            self.flush()
        return item

    def flush(self) -> None:
        spider = self.spider
        if self.pending:
            records = [RawRecord(source=spider.source, payload=i["payload"], origin=i.get("url", "")) for i in self.pending]
            spider.store.put(records)
            with spider.store.write() as conn:
                spider.crawl_state.mark_seen(conn, [
                    SeenEntry(i["key"], i.get("fingerprint", ""), i.get("url", ""), bool(i.get("replied")),
                              i.get("row_fields") or {}) for i in self.pending])
            self.pending = []
        if spider.problems:
            spider.store.quarantine(spider.problems)
            spider.problems = []

    def close_spider(self, spider: Any = None) -> None:
        self.flush()
