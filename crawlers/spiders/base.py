"""What every yuqing spider shares: page checks, error accounting, seen-key stop rule and item emission.

Spiders only fetch and follow; the extractors read pages, the pipelines hand items to the inbox.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

import scrapy
from scrapy.http import Response
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from core.config_crawl import CrawlSpec
from core.errors import ExtractionError
from core.models import QuarantineRecord
from crawlers.extractors.fields import ConfigProblem
from crawlers.extractors.page import decode_page, login_wall
from crawlers.state import CrawlState
from storage.base import Store

logger = logging.getLogger(__name__)

CREDENTIAL_STATUSES = {401, 403}


def payload_digest(payload: dict[str, Any]) -> str:
    """What an entry looked like when collected: a revisit sends it on only when this changed."""
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:24]


class YuqingSpider(scrapy.Spider):
    """Base spider: one configured source, its crawl spec and its persisted state."""

    name = "yuqing"

    def __init__(self, source: str, spec: CrawlSpec, crawl_state: CrawlState, store: Store, **kwargs: Any) -> None:
        super().__init__(name=source, **kwargs)
        self.source = source
        self.spec = spec
        # Not `self.state`: Scrapy's SpiderState extension owns that attribute when JOBDIR is set.
        self.crawl_state = crawl_state
        self.store = store
        self.problems: list[QuarantineRecord] = []
        self.first_problem: dict[str, str] = {}  # kind → its first detail, for the run's message
        self.list_pages = 0
        self.scheduled: set[str] = set()  # keys requested in this run (search and timeline streams overlap)
        self.allowed_domains = []

    # ---- accounting ------------------------------------------------------------------------------------------

    def count(self, name: str, amount: int = 1) -> None:
        self.crawler.stats.inc_value(f"yuqing/{name}", amount)

    def field_yield(self, values: dict[str, Any], configured: list[str]) -> None:
        """Count, per configured field, the pages read and those where it had a value: health compares this with
        earlier runs, so a field that silently stops matching (an optional `reply.text`) is noticed and named."""
        for name in configured:
            self.count(f"fields/{name}/read")
            if values.get(name) not in (None, ""):
                self.count(f"fields/{name}/filled")

    def problem(self, kind: str, url: str, detail: str, snippet: str | bytes = "") -> None:
        """Record a page that could not be used: counted by kind for health, kept in quarantine with its reason."""
        self.count(f"errors/{kind}")
        self.first_problem.setdefault(kind, f"{detail} ({url})")
        if isinstance(snippet, bytes):
            snippet = snippet[:2000].decode("utf-8", errors="replace")
        logger.warning("crawl problem source=%s kind=%s url=%s detail=%s", self.source, kind, url, detail[:200])
        self.problems.append(QuarantineRecord(source=self.source, stage=f"crawl:{kind}", reason=detail[:1000],
                                              payload={"url": url, "snippet": snippet[:2000]}, origin=url,
                                              created_at=datetime.now(UTC)))

    # ---- pages -----------------------------------------------------------------------------------------------

    def page_text(self, response: Response) -> str | None:
        """The decoded page, or None (recorded) when it is a login/anti-crawl wall."""
        content_type = response.headers.get("Content-Type", b"").decode("latin-1")
        text, encoding, relabelled = decode_page(response.body, content_type, self.spec.encoding)
        if relabelled:
            self.count("encoding_fixed")
            logger.info("encoding fixed source=%s url=%s used=%s", self.source, response.url, encoding)
        self.count("pages_ok")
        # Only the URL here: a page that gives its fields is content whatever it says (a reply may well say
        # "请登录一网通办办理"); the page's structure is looked at when it gives nothing (`page_problem`).
        if reason := login_wall(response.url, "", self.spec.login_markers, response.meta.get("redirect_urls")):
            self.problem("login_wall", response.url, f"login or anti-crawl wall: {reason}", text[:2000])
            return None
        return text

    def page_problem(self, response: Response, text: str, kind: str, detail: str) -> None:
        """A page that gave nothing usable: a login or anti-crawl wall when its structure says so, else `kind`."""
        if reason := login_wall(response.url, text, self.spec.login_markers, response.meta.get("redirect_urls")):
            self.problem("login_wall", response.url, f"login or anti-crawl wall: {reason}", text[:2000])
        else:
            self.problem(kind, response.url, detail, text[:2000])

    def json_ok(self, response: Response) -> bool:
        """Counts a JSON page as fetched unless it is a redirect to a login page."""
        if reason := login_wall(response.url, "", self.spec.login_markers, response.meta.get("redirect_urls")):
            self.problem("login_wall", response.url, f"login wall: {reason}")
            return False
        self.count("pages_ok")
        return True

    def extraction_failed(self, response: Response, exc: ExtractionError, kind: str = "parse_error") -> None:
        """A page that could not be read; a configuration that cannot run is counted as `config_error` whatever
        the caller expected, so health says "configuration error", never "ok" with 0 items."""
        if isinstance(exc, ConfigProblem):
            self.problem("config_error", response.url, str(exc), response.body[:2000])
            return
        content_type = response.headers.get("Content-Type", b"").decode("latin-1")
        text = decode_page(response.body[:300_000], content_type, self.spec.encoding)[0] if kind != "login_wall" else ""
        self.page_problem(response, text, kind, str(exc))

    def errback(self, failure: Failure) -> None:
        """Every failed request is counted by kind (http_429, timeout, too_large...) and kept with its reason."""
        request = failure.request
        if failure.check(HttpError):
            response = failure.value.response
            kind = f"http_{response.status}"
            if response.status in CREDENTIAL_STATUSES and (self.spec.token or self.spec.cookies):
                self.count("errors/credentials_rejected")
            self.problem(kind, response.url, f"HTTP {response.status} after retries", response.body[:500])
            return
        name = type(failure.value).__name__
        kinds = {"DownloadTimeoutError": "timeout", "TimeoutError": "timeout", "TCPTimedOutError": "timeout",
                 "DownloadCancelledError": "too_large", "CancelledError": "too_large",
                 "DownloadConnectionRefusedError": "connection", "ConnectionRefusedError": "connection",
                 "CannotResolveHostError": "dns", "DNSLookupError": "dns", "ResponseDataLossError": "data_loss"}
        kind = kinds.get(name, "request_failed")
        if name == "IgnoreRequest":
            kind = "robots_forbidden" if "robots" in failure.getErrorMessage().lower() else "ignored"
        self.problem(kind, request.url, f"{name}: {failure.getErrorMessage()}"[:1000])

    # ---- items -----------------------------------------------------------------------------------------------

    def unseen(self, keys: list[str]) -> list[str]:
        """Keys not collected before; a list page with none left means the crawl has caught up."""
        self.count("entries", len(keys))
        fresh = [k for k in keys if not self.crawl_state.is_seen(k)]
        self.count("entries_seen", len(keys) - len(fresh))
        new = [k for k in dict.fromkeys(fresh) if k not in self.scheduled]
        self.scheduled.update(new)
        return new

    def emit(self, key: str, payload: dict[str, Any], fingerprint: str = "", url: str = "",
             row_fields: dict[str, Any] | None = None) -> dict[str, Any]:
        """An item for the pipelines; `url` and `row_fields` are kept with the seen key so a revisit can fetch it again."""
        payload.setdefault("source_id", key)
        reply = payload.get("reply")
        return {"key": key, "fingerprint": fingerprint or payload_digest(payload), "url": url or payload.get("url", ""),
                "payload": payload, "replied": isinstance(reply, dict) and bool(reply.get("text")),
                "row_fields": row_fields or {}}

    # ---- revisits --------------------------------------------------------------------------------------------

    def revisit_due(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Entries collected recently to fetch again this run (see RevisitSpec): (key, url, list-row fields).

        Never more than half the run's page budget, so revisits cannot crowd out new entries.
        """
        revisit = self.spec.revisit
        if revisit is None or not revisit.enabled:
            return []
        limit = min(revisit.max_items, max(self.spec.max_pages // 2, 1))
        with self.store.write() as conn:
            due = self.crawl_state.due_for_revisit(conn, revisit.days, limit, revisit.only_unreplied,
                                                   revisit.interval_hours)
        self.scheduled.update(key for key, _, _ in due)
        self.count("revisit_due", len(due))
        return due

    def revisited(self, key: str, payload: dict[str, Any], url: str = "",
                  row_fields: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """A re-fetched entry, as an item when it changed since it was collected (a reply, more likes), else None."""
        item = self.emit(key, payload, url=url, row_fields=row_fields)
        if self.crawl_state.seen.get(key) == item["fingerprint"]:
            self.count("revisit_unchanged")
            return None
        self.count("revisit_changed")
        return item

    def may_follow_list(self, url: str) -> bool:
        """Caps list pages per run, so endless pagination ends and is reported."""
        self.list_pages += 1
        if self.list_pages >= self.spec.max_list_pages:
            self.problem("list_page_cap", url, f"stopped after {self.list_pages} list pages (max_list_pages)")
            return False
        return True
