"""WeChat 公众号 spider: profile (history) pages, getmsg paging, then each unseen article page."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import scrapy
from scrapy.http import Response

from core.errors import ExtractionError
from crawlers.extractors.wechat import article_payload, parse_getmsg, parse_profile
from crawlers.spiders.base import YuqingSpider
from crawlers.spiders.html import with_param


def article_key(url: str) -> str:
    """`__biz:mid:idx` identifies an article whatever the signature parameters of its link."""
    query = parse_qs(urlsplit(url).query)
    biz, mid, idx = (query.get(k, [""])[0] for k in ("__biz", "mid", "idx"))
    return f"{biz}:{mid}:{idx or '1'}" if biz and mid else url


class WechatSpider(YuqingSpider):
    name = "wechat"

    def _cookies(self) -> dict[str, str]:
        return {k: v.get_secret_value() for k, v in self.spec.cookies.items()}

    async def start(self) -> AsyncIterator[Any]:
        for url in self.spec.wechat.profile_urls:
            yield scrapy.Request(url, cookies=self._cookies(), callback=self.parse_profile, errback=self.errback,
                                 cb_kwargs={"profile": url})

    def parse_profile(self, response: Response, profile: str) -> Iterator[Any]:
        if response.url.find("getmsg") >= 0 or "json" in response.headers.get("Content-Type", b"").decode("latin-1"):
            if not self.json_ok(response):
                return
            try:
                articles, more, offset = parse_getmsg(response.body)
            except ExtractionError as exc:
                self.extraction_failed(response, exc)
                return
        else:
            text = self.page_text(response)
            if text is None:
                return
            try:
                articles, more, offset = parse_profile(text)
            except ExtractionError as exc:
                self.extraction_failed(response, exc, "no_entries")
                return
        links = [(article_key(response.urljoin(a["url"])), response.urljoin(a["url"])) for a in articles]
        fresh = set(self.unseen([k for k, _ in links]))
        for key, url in links:
            if key in fresh:
                yield scrapy.Request(url, cookies=self._cookies(), callback=self.parse_article, errback=self.errback,
                                     cb_kwargs={"key": key})
        if fresh and more and offset is not None:
            next_url = with_param(with_param(with_param(profile, "action", "getmsg"), "offset", offset), "f", "json")
            if self.may_follow_list(next_url):
                yield scrapy.Request(next_url, cookies=self._cookies(), callback=self.parse_profile, errback=self.errback,
                                     cb_kwargs={"profile": profile})

    def parse_article(self, response: Response, key: str) -> Iterator[Any]:
        text = self.page_text(response)
        if text is None:
            return
        try:
            payload = article_payload(text, response.url)
        except ExtractionError as exc:
            self.extraction_failed(response, exc)
            return
        payload["source_id"] = key
        yield self.emit(key, payload)
