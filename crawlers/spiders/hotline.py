"""12345 work-order API spider: token auth, paging, and `updated_since` from the last completed run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import scrapy
from scrapy.http import Response

from core.errors import ExtractionError
from crawlers.extractors.hotline import dig, parse_page, work_order_payload
from crawlers.spiders.base import YuqingSpider
from crawlers.spiders.html import with_param


class HotlineSpider(YuqingSpider):
    """Pages through work orders updated since the cursor; a changed work order (closed, replied) comes again."""

    name = "hotline_api"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.updated_max: str | None = None

    def _request(self, page: int) -> scrapy.Request:
        spec, hot = self.spec, self.spec.hotline
        url = with_param(spec.start_url, hot.page_param, page)
        url = with_param(url, hot.page_size_param, hot.page_size)
        since = self.crawl_state.cursor("updated_since")
        if since:
            url = with_param(url, hot.updated_since_param, since)
            # The API returns only what changed, so an empty answer is normal, not a sign of a changed site.
            self.crawler.stats.set_value("yuqing/incremental", 1)
        headers = {}
        if spec.token is not None:
            token = spec.token.get_secret_value()
            headers[hot.auth_header] = f"{hot.auth_scheme} {token}".strip()
        return scrapy.Request(url, headers=headers, callback=self.parse_page, errback=self.errback, cb_kwargs={"page": page})

    def item_url(self, order_no: str) -> str:
        """Where a person (with the platform's token) finds this work order: every item has a `url`."""
        hot = self.spec.hotline
        if hot.item_url:
            return hot.item_url.replace("{id}", quote(order_no, safe=""))
        return with_param(self.spec.start_url, hot.fields.get("source_id", "id"), order_no)

    async def start(self) -> AsyncIterator[Any]:
        yield self._request(1)

    def parse_page(self, response: Response, page: int) -> Iterator[Any]:
        hot = self.spec.hotline
        if not self.json_ok(response):
            return
        try:
            records = parse_page(response.body, hot)
        except ExtractionError as exc:
            self.extraction_failed(response, exc)
            return
        orders = []
        for record in records:
            if not isinstance(record, dict):
                self.count("errors/parse_error")
                continue
            payload = work_order_payload(record, hot)
            if not payload.get("source_id"):
                self.problem("parse_error", response.url, "work order without an id", str(record)[:500])
                continue
            payload["url"] = self.item_url(str(payload["source_id"]))
            updated = str(dig(record, hot.updated_field) or "")
            orders.append((str(payload["source_id"]), updated, payload))
            if updated and (self.updated_max is None or updated > self.updated_max):
                self.updated_max = updated
        self.count("entries", len(orders))
        for key, updated, payload in orders:
            if self.crawl_state.is_seen(key, updated):
                self.count("entries_seen")
                continue
            yield self.emit(key, payload, fingerprint=updated, url=response.url)
        if len(records) >= hot.page_size and self.may_follow_list(response.url):
            yield self._request(page + 1)
