"""Scrapy components of our own: retry with backoff (honouring Retry-After) and a progress reporter."""

from __future__ import annotations

import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.http import Response

MAX_BACKOFF_SECONDS = 60.0


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's retry, plus a growing delay on the site's download slot so a throttling site is given room.

    Scrapy retries at once by default; hammering a site that answered 429 gets a source banned.
    """

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.base_delay = settings.getfloat("YUQING_BACKOFF_BASE", 0.5)

    def _slow_down(self, request: Request, seconds: float | None = None) -> None:
        engine = getattr(self.crawler, "engine", None)
        downloader = getattr(engine, "downloader", None)
        if downloader is None:
            return
        key = request.meta.get("download_slot") or urlsplit(request.url).hostname or ""
        slot = downloader.slots.get(key)
        if slot is None:
            return
        retries = request.meta.get("retry_times", 0) + 1
        wanted = seconds if seconds is not None else self.base_delay * (2 ** (retries - 1))
        slot.delay = min(max(slot.delay, wanted), MAX_BACKOFF_SECONDS)
        self.crawler.stats.inc_value("yuqing/backoffs")

    def process_response(self, request: Request, response: Response, spider: Any = None) -> Request | Response:
        if response.status in self.retry_http_codes and not request.meta.get("dont_retry", False):
            retry_after = response.headers.get("Retry-After")
            seconds = None
            if retry_after and retry_after.strip().isdigit():
                seconds = float(retry_after.strip())
            self._slow_down(request, seconds)
        return super().process_response(request, response)

    def process_exception(self, request: Request, exception: Exception, spider: Any = None) -> Any:
        if isinstance(exception, self.exceptions_to_retry):
            self._slow_down(request)
        return super().process_exception(request, exception)


class ProgressExtension:
    """Writes `{"event": "progress", ...}` lines to stdout so the parent can show a live progress display."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.last = 0.0

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ProgressExtension:
        ext = cls(crawler)
        crawler.signals.connect(ext.tick, signal=signals.response_received)
        crawler.signals.connect(ext.tick, signal=signals.item_scraped)
        return ext

    def tick(self, *args: Any, **kwargs: Any) -> None:
        now = time.monotonic()
        if now - self.last < 0.25:
            return
        self.last = now
        stats = self.crawler.stats
        line = {"event": "progress", "pages": stats.get_value("response_received_count", 0),
                "items": stats.get_value("item_scraped_count", 0), "entries": stats.get_value("yuqing/entries", 0)}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
