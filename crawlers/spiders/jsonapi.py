"""Configuration-driven JSON spider: a list API (GET or POST, page/offset/cursor paging) and a detail per entry.

More and more 问政 platforms are JSON behind a single-page front end; adding one is YAML (JMESPath), not code.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import scrapy
from scrapy.http import Response

from core.config_crawl import JsonApiSpec
from core.errors import ExtractionError
from crawlers.extractors.fields import apply_date_format, nest
from crawlers.extractors.jsonapi import parse_json, read_fields, search
from crawlers.extractors.page import decode_page
from crawlers.spiders.base import YuqingSpider
from crawlers.spiders.html import with_param

JSON_ACCEPT = "application/json, text/plain, */*"


def with_key(body: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of a JSON body with one (dotted: `param.page`) key set; the objects on the way are copied, not shared."""
    head, _, rest = dotted.partition(".")
    if not rest:
        return {**body, head: value}
    inner = body.get(head)
    return {**body, head: with_key(inner if isinstance(inner, dict) else {}, rest, value)}


class JsonApiSpider(YuqingSpider):
    """Walks the list pages until one has nothing unseen (or `has_more` is false), fetches each new entry's detail."""

    name = "json_api"

    @property
    def api(self) -> JsonApiSpec:
        assert self.spec.json_api is not None
        return self.spec.json_api

    # ---- requests --------------------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Accept": JSON_ACCEPT, **{k: v.get_secret_value() for k, v in self.api.headers.items()}}

    def list_request(self, position: int | str | None, page: int) -> scrapy.Request:
        """The list request for a page number, offset or cursor (None: the first page of a cursor list)."""
        api, paging = self.api, self.api.paging
        url, body = api.list_url, api.body
        if position is not None and paging.mode != "none":
            if paging.mode == "cursor" and isinstance(position, str) and position.startswith(("http://", "https://")):
                url = position
            elif api.method == "POST" and isinstance(body, dict):
                body = with_key(body, paging.param, position)
            else:
                url = with_param(url, paging.param, position)
        headers = self._headers()
        payload: bytes | None = None
        if api.method == "POST":
            if isinstance(body, dict):
                payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
                headers["Content-Type"] = "application/json;charset=UTF-8"
            else:
                payload = (body or "").encode("utf-8")
        return scrapy.Request(url, method=api.method, body=payload, headers=headers, callback=self.parse_list,
                              errback=self.errback, cb_kwargs={"position": position, "page": page},
                              dont_filter=api.method == "POST")

    def detail_request(self, key: str, entry: Any, revisit: bool = False) -> scrapy.Request:
        """The detail of one entry; the list entry goes along (and is kept with the seen key for revisits), since
        fields the detail lacks are read from it."""
        url = self.api.detail_url.replace("{id}", quote(key, safe=""))
        return scrapy.Request(url, headers=self._headers(), callback=self.parse_detail, errback=self.errback,
                              priority=-1 if revisit else 0, cb_kwargs={"key": key, "entry": entry, "revisit": revisit})

    async def start(self) -> AsyncIterator[Any]:
        paging = self.api.paging
        yield self.list_request(None if paging.mode == "cursor" else paging.start, 1)
        if self.api.detail_url:  # without a detail, the list itself carries changes (see parse_list)
            for key, _url, entry in self.revisit_due():
                yield self.detail_request(key, entry, revisit=True)

    # ---- responses -------------------------------------------------------------------------------------------

    def json_of(self, response: Response, what: str) -> Any:
        """The decoded JSON, or None after recording why it is unusable (login redirect, bad JSON)."""
        if not self.json_ok(response):
            return None
        content_type = response.headers.get("Content-Type", b"").decode("latin-1")
        text, _, _ = decode_page(response.body, content_type, self.spec.encoding)
        try:
            return parse_json(text, what)
        except ExtractionError as exc:
            self.extraction_failed(response, exc)
            return None

    def key_of(self, entry: Any) -> str | None:
        value = search(self.api.id, entry)
        return None if value in (None, "") or isinstance(value, dict | list) else str(value).strip()

    def item_url(self, key: str) -> str:
        template = self.api.item_url or self.api.detail_url
        return template.replace("{id}", quote(key, safe="")) if template else self.api.list_url

    def parse_list(self, response: Response, position: int | str | None, page: int) -> Iterator[Any]:
        api = self.api
        data = self.json_of(response, "list response")
        if data is None:
            return
        try:
            records = search(api.records, data)
            if records is None:
                records = []
            if not isinstance(records, list):
                raise ExtractionError(f"records {api.records!r} is not a list in the list response "
                                      f"(got {type(records).__name__})")
            entries = []
            for record in records:
                key = self.key_of(record)
                if key is None:
                    self.problem("parse_error", response.url, f"list entry without an id at {api.id!r}", str(record)[:500])
                    continue
                entries.append((key, record))
            more = search(api.has_more, data) if api.has_more else None
            cursor = search(api.paging.path, data) if api.paging.mode == "cursor" else None
        except ExtractionError as exc:
            self.extraction_failed(response, exc, "config_error")
            return
        if not entries:
            if page == 1:
                self.problem("no_entries", response.url, f"list response has no entries at {api.records!r}",
                             response.body[:2000])
            return
        fresh = set(self.unseen([k for k, _ in entries]))
        changed = 0
        for key, record in entries:
            if api.detail_url:
                if key in fresh:
                    yield self.detail_request(key, record)
            elif (item := self._list_item(response, key, record, key in fresh)) is not None:
                changed += key not in fresh
                yield item
        if not fresh and not changed:
            return  # caught up with what earlier runs collected
        if api.has_more and not more:
            return
        next_position: int | str | None
        if api.paging.mode == "none":
            return
        if api.paging.mode == "cursor":
            if cursor in (None, "", position):
                return
            next_position = cursor if isinstance(cursor, str) else json.dumps(cursor) if isinstance(cursor, dict | list) \
                else cursor
        else:
            next_position = int(position or 0) + (api.paging.step or 1)
        request = self.list_request(next_position, page + 1)
        if self.may_follow_list(request.url if api.method == "GET" else f"{request.url} page {page + 1}"):
            yield request

    def _payload(self, key: str, *records: Any, revisit: bool = False) -> dict[str, Any]:
        values = read_fields(self.api.fields, *records)
        if not revisit:  # revisits re-read unanswered entries: their empty replies say nothing about the config
            self.field_yield(values, list(self.api.fields))
        values = apply_date_format(values, self.api.date_format)
        missing = [f for f in self.api.required if values.get(f) in (None, "")]
        if missing:
            raise ExtractionError(f"record {key} lacks {', '.join(missing)} (API changed?)")
        payload = nest(values)
        payload["url"] = self.item_url(key)
        return payload

    def _list_item(self, response: Response, key: str, record: Any, fresh: bool) -> dict[str, Any] | None:
        """An entry read from the list alone: new, or changed since collected (a reply, new counts)."""
        try:
            payload = self._payload(key, record, revisit=not fresh)
        except ExtractionError as exc:
            self.problem("parse_error", response.url, str(exc), str(record)[:1000])
            return None
        if fresh:
            return self.emit(key, payload, url=payload["url"])
        return self.revisited(key, payload, url=payload["url"])

    def parse_detail(self, response: Response, key: str, entry: Any, revisit: bool = False) -> Iterator[Any]:
        data = self.json_of(response, "detail response")
        if data is None:
            return
        try:
            record = search(self.api.detail_record, data)
            if not isinstance(record, dict):
                raise ExtractionError(f"detail_record {self.api.detail_record!r} is not an object in the detail response")
            payload = self._payload(key, record, entry, revisit=revisit)
        except ExtractionError as exc:
            self.extraction_failed(response, exc)
            return
        if not revisit:
            yield self.emit(key, payload, url=response.url, row_fields=entry)
        elif (item := self.revisited(key, payload, response.url, entry)) is not None:
            yield item
