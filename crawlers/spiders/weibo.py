"""Weibo spider over the mobile API: keyword searches and account timelines, cookie from an environment secret."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import scrapy
from scrapy.http import Response

from core.errors import ExtractionError
from crawlers.extractors.weibo import LoginRequired, long_text, mblog_payload, mblogs, next_since_id, parse_json
from crawlers.spiders.base import YuqingSpider


class WeiboSpider(YuqingSpider):
    """Each keyword or account is a stream of pages; a stream stops at the first page with nothing unseen."""

    name = "weibo_api"

    def _cookies(self) -> dict[str, str]:
        return {k: v.get_secret_value() for k, v in self.spec.cookies.items()}

    def _index(self, params: str, stream: str, page: int, since: str | None = None) -> scrapy.Request:
        base = self.spec.weibo.base_url.rstrip("/")
        url = f"{base}/api/container/getIndex?{params}"
        if since:
            url += f"&since_id={since}"
        elif page > 1:
            url += f"&page={page}"
        return scrapy.Request(url, cookies=self._cookies(), callback=self.parse_index, errback=self.errback,
                              cb_kwargs={"params": params, "stream": stream, "page": page},
                              headers={"Accept": "application/json, text/plain, */*", "X-Requested-With": "XMLHttpRequest"})

    async def start(self) -> AsyncIterator[Any]:
        for keyword in self.spec.weibo.keywords:
            containerid = quote(f"100103type=1&q={keyword}", safe="")
            yield self._index(f"containerid={containerid}&page_type=searchall", "search", 1)
        for uid in self.spec.weibo.accounts:
            yield self._index(f"type=uid&value={uid}&containerid=107603{uid}", "timeline", 1)
        # Counts (reposts, comments, likes) of recent posts, one `statuses/show` call each, when revisits are on.
        base = self.spec.weibo.base_url.rstrip("/")
        for key, _url, _fields in self.revisit_due():
            yield scrapy.Request(f"{base}/statuses/show?id={key}", cookies=self._cookies(), callback=self.parse_show,
                                 errback=self.errback, priority=-1, cb_kwargs={"key": key},
                                 headers={"Accept": "application/json, text/plain, */*", "X-Requested-With": "XMLHttpRequest"})

    def _api_json(self, response: Response) -> dict[str, Any] | None:
        """The API's JSON body, or None after recording why it is unusable (HTTP error, login wall, bad JSON)."""
        if not self.json_ok(response):
            return None
        try:
            return parse_json(response.body)
        except LoginRequired as exc:
            self.count("errors/credentials_rejected")
            self.extraction_failed(response, exc, "login_wall")
        except ExtractionError as exc:
            self.extraction_failed(response, exc)
        return None

    def parse_show(self, response: Response, key: str) -> Iterator[Any]:
        """One post again (a revisit): sent on only when its counts or text changed."""
        data = self._api_json(response)
        if data is None:
            return
        mblog = data.get("data")
        if data.get("ok") != 1 or not isinstance(mblog, dict):
            self.count("revisit_gone")  # deleted or hidden since: nothing to update
            return
        try:
            payload = mblog_payload(mblog, self.spec.weibo.base_url)
        except ExtractionError as exc:
            self.extraction_failed(response, exc)
            return
        if payload.pop("is_long_text") and self.spec.weibo.fetch_long_text:
            url = f"{self.spec.weibo.base_url.rstrip('/')}/statuses/longtext?id={key}"
            yield scrapy.Request(url, cookies=self._cookies(), callback=self.parse_long, errback=self.errback,
                                 cb_kwargs={"payload": payload, "revisit": True})
        elif (item := self.revisited(key, payload)) is not None:
            yield item

    def parse_index(self, response: Response, params: str, stream: str, page: int) -> Iterator[Any]:
        data = self._api_json(response)
        if data is None:
            return
        if data.get("ok") != 1:
            return  # "这里还没有内容": the end of the results, not an error
        posts = []
        for mblog in mblogs(data):
            try:
                posts.append((mblog_payload(mblog, self.spec.weibo.base_url), bool(mblog.get("isTop"))))
            except ExtractionError as exc:
                self.problem("parse_error", response.url, str(exc), str(mblog)[:500])
        if not posts and page == 1:
            self.problem("no_entries", response.url, "Weibo page has no posts (cards changed?)", response.body[:2000])
            return
        fresh = set(self.unseen([p["source_id"] for p, _ in posts]))
        for payload, _top in posts:
            key = payload["source_id"]
            if key not in fresh:
                continue
            if payload.pop("is_long_text") and self.spec.weibo.fetch_long_text:
                url = f"{self.spec.weibo.base_url.rstrip('/')}/statuses/longtext?id={key}"
                yield scrapy.Request(url, cookies=self._cookies(), callback=self.parse_long, errback=self.errback,
                                     cb_kwargs={"payload": payload})
            else:
                yield self.emit(key, payload)
        # Pinned posts (isTop) sit on top of every timeline; only unpinned ones tell whether we have caught up.
        if not any(p["source_id"] in fresh for p, top in posts if not top) or page >= self.spec.weibo.max_pages:
            return
        since = next_since_id(data) if stream == "timeline" else None
        if stream == "timeline" and not since:
            return
        if self.may_follow_list(response.url):
            yield self._index(params, stream, page + 1, since)

    def parse_long(self, response: Response, payload: dict[str, Any], revisit: bool = False) -> Iterator[Any]:
        if not self.json_ok(response):
            return
        try:
            payload["content"] = long_text(response.body)
        except ExtractionError as exc:
            # The truncated text is still worth keeping (not on a revisit: the stored text is whole); the fault is recorded.
            self.extraction_failed(response, exc)
            if revisit:
                return
        if not revisit:
            yield self.emit(payload["source_id"], payload)
        elif (item := self.revisited(payload["source_id"], payload)) is not None:
            yield item
