"""Configuration-driven list + detail spider for 领导信箱 and 留言板 sites: adding a site is YAML, not code."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import scrapy
from parsel import Selector
from scrapy.http import Response

from core.errors import ExtractionError
from crawlers.extractors.fields import apply_date_format, extract_fields, extract_first, nest, select
from crawlers.spiders.base import YuqingSpider


def with_param(url: str, name: str, value: str | int) -> str:
    """The URL with one query parameter set (replaced if present)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name] + [(name, str(value))]
    return urlunsplit(parts._replace(query=urlencode(query)))


class HtmlSpider(YuqingSpider):
    """Walks list pages (next link or page parameter), reads each unseen entry's detail page."""

    name = "html"

    async def start(self) -> AsyncIterator[Any]:
        html = self.spec.html
        assert html is not None
        url = html.list_url if html.paging.mode == "next_link" else with_param(html.list_url, html.paging.param,
                                                                                   html.paging.start)
        yield scrapy.Request(url, callback=self.parse_list, errback=self.errback, cb_kwargs={"page": html.paging.start})
        # Recently collected entries again, after the new ones (lower priority): a reply may have arrived since.
        for key, detail_url, row_fields in self.revisit_due():
            yield scrapy.Request(detail_url, callback=self.parse_detail, errback=self.errback, priority=-1,
                                 cb_kwargs={"key": key, "row_fields": row_fields, "revisit": True})

    def key_of(self, url: str) -> str:
        pattern = self.spec.html.id_pattern
        if pattern and (m := re.search(pattern, url)):
            return m.group(1) if m.groups() else m.group(0)
        return url

    def parse_list(self, response: Response, page: int) -> Iterator[Any]:
        html = self.spec.html
        text = self.page_text(response)
        if text is None:
            return
        node = Selector(text=text, base_url=response.url)
        try:
            rows = select(node, html.row)
        except ExtractionError as exc:
            self.extraction_failed(response, exc, "config_error")
            return
        entries: list[tuple[str, str, dict[str, str]]] = []
        links_missing = 0
        for row in rows:
            try:
                link = extract_first(row, html.link)
                fields = extract_fields(row, html.row_fields)
            except ExtractionError as exc:
                self.extraction_failed(response, exc, "config_error")
                return
            if not link:
                links_missing += 1
                continue
            url = response.urljoin(link)
            entries.append((self.key_of(url), url, fields))
        first_page = page == html.paging.start
        if not entries:
            if first_page or html.paging.mode == "next_link":
                # A list that used to have entries and now has none is the sign of a redesign (schema drift).
                reason = (f"{len(rows)} rows match row selector {html.row!r} but none has a link matching {html.link!r}"
                          if rows else f"list page has no entries matching row selector {html.row!r}")
                self.page_problem(response, text, "no_entries", reason)
            return
        if links_missing:  # some rows without a link (an advert, a notice): counted, not fatal
            self.problem("parse_error", response.url, f"{links_missing} of {len(rows)} rows have no link matching "
                                                      f"{html.link!r}", text[:2000])
        fresh = set(self.unseen([k for k, _, _ in entries]))
        for key, url, fields in entries:
            if key in fresh:
                yield scrapy.Request(url, callback=self.parse_detail, errback=self.errback,
                                     cb_kwargs={"key": key, "row_fields": fields})
        if not fresh:
            return  # caught up with what earlier runs collected
        if html.paging.mode == "next_link":
            next_link = node.css(html.paging.next_selector).get() if not html.paging.next_selector.startswith("xpath:") \
                else node.xpath(html.paging.next_selector[6:]).get()
            if next_link and self.may_follow_list(response.urljoin(next_link)):
                yield scrapy.Request(response.urljoin(next_link), callback=self.parse_list, errback=self.errback,
                                     cb_kwargs={"page": page + 1})
        else:
            next_page = page + html.paging.step
            next_url = with_param(html.list_url, html.paging.param, next_page)
            if self.may_follow_list(next_url):
                yield scrapy.Request(next_url, callback=self.parse_list, errback=self.errback, cb_kwargs={"page": next_page})

    def parse_detail(self, response: Response, key: str, row_fields: dict[str, str], revisit: bool = False) -> Iterator[Any]:
        html = self.spec.html
        text = self.page_text(response)
        if text is None:
            return
        try:
            values = {**row_fields, **extract_fields(Selector(text=text, base_url=response.url), html.detail_fields)}
            values = apply_date_format(values, html.date_format)
        except ExtractionError as exc:
            self.extraction_failed(response, exc)
            return
        if not revisit:  # revisits re-read unanswered letters: their empty replies say nothing about the selectors
            self.field_yield(values, [*html.row_fields, *html.detail_fields])
        missing = [f for f in html.required if not values.get(f)]
        if missing:
            self.page_problem(response, text, "parse_error", f"detail page lacks {', '.join(missing)} (page changed?)")
            return
        payload = nest(values)
        payload["url"] = response.url
        if not revisit:
            yield self.emit(key, payload, url=response.url, row_fields=row_fields)
        elif (item := self.revisited(key, payload, response.url, row_fields)) is not None:
            yield item
