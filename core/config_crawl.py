"""Crawl configuration: how each source is fetched, how often, and the demo site that imitates the five channels.

Pointing a spider at a real government site is configuration only: URLs, selectors, date format, encoding and
secrets (cookies, tokens) read from the environment through `{"$env": NAME}`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, SecretStr, model_validator

from core.config_base import Strict

# Checked on the URL (markers with "/" or ".") and on the page's structure: its <title>, short headings and scripts
# (JS-rendered interstitials), and a password field; never on body text, which may quote them ("请登录一网通办办理").
DEFAULT_LOGIN_MARKERS = ["请登录", "登录后", "用户登录", "访问过于频繁", "验证身份", "passport.weibo", "/login", "/signin"]


def check_selector(expression: str) -> str:
    """A CSS selector (parsel's `::text`/`::attr()` included) or `xpath:` expression that compiles, else ValueError."""
    from cssselect import SelectorError
    from lxml import etree
    from parsel.csstranslator import HTMLTranslator

    if not expression.strip():
        raise ValueError("empty selector")
    try:
        if expression.startswith("xpath:"):
            etree.XPath(expression[6:])
        else:
            HTMLTranslator().css_to_xpath(expression)
    except (SelectorError, etree.XPathError, ValueError) as exc:
        kind = "XPath" if expression.startswith("xpath:") else "CSS selector"
        raise ValueError(f"bad {kind} {expression!r}: {exc}") from None
    return expression


def check_relative_selector(expression: str) -> str:
    """Selectors read inside one list row: an absolute XPath (`//td`) would read the whole page for every row."""
    check_selector(expression)
    if expression.startswith("xpath:") and expression[6:].lstrip().startswith("/"):
        raise ValueError(f"XPath {expression!r} is absolute, so it reads the whole page, not the row: "
                         f"start it with `./` or `.//`")
    return expression


def check_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad regex {pattern!r}: {exc}") from None
    return pattern


def check_jmespath(expression: str) -> str:
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        jmespath.compile(expression)
    except JMESPathError as exc:
        raise ValueError(f"bad JMESPath {expression!r}: {' '.join(str(exc).split())}") from None
    return expression


SelectorExpr = Annotated[str, AfterValidator(check_selector)]
RowSelector = Annotated[str, AfterValidator(check_relative_selector)]
Regex = Annotated[str, AfterValidator(check_regex)]
JMESPath = Annotated[str, AfterValidator(check_jmespath)]


class FieldRule(Strict):
    """Where one field is on a page: a CSS (default) or XPath (`xpath:` prefix) selector, an optional regex.

    An element's text is assembled before the regex sees it: text inside inline elements (span, a, em, b, font...)
    runs on, block elements (p, div, li, tr, br, h1-h6...) start a new line, whitespace is trimmed per line.
    """

    select: SelectorExpr
    regex: Regex | None = None  # first group (or whole match) of this pattern is the value
    join: str = "\n"  # how several matched elements are joined
    attr: str | None = None  # read this attribute instead of the text

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """`title: h1.title` is short for `title: {select: h1.title}`."""
        return {"select": data} if isinstance(data, str) else data


class RowFieldRule(FieldRule):
    """A field read inside one list row: its XPath must be relative (`./`, `.//`)."""

    select: RowSelector


class PagingSpec(Strict):
    """How to reach the next list page: follow a link, or count a URL parameter up."""

    mode: Literal["next_link", "param"] = "next_link"
    next_selector: SelectorExpr = "a.next::attr(href)"  # for next_link
    param: str = "page"  # for param: the query parameter to set
    start: int = 1
    step: int = 1  # 1 for page numbers, page size for offset paging (`start=0,20,40`)


class HtmlSpec(Strict):
    """A list page of links plus a detail page per item: 领导信箱 and 留言板 sites of every shape."""

    list_url: str
    row: SelectorExpr  # selector of one entry on the list page (CSS, or `xpath:...`)
    link: RowSelector = "a::attr(href)"  # selector, relative to the row, of the detail link
    row_fields: dict[str, RowFieldRule] = Field(default_factory=dict)  # fields read on the list page
    detail_fields: dict[str, FieldRule] = Field(default_factory=dict)  # fields read on the detail page
    id_pattern: Regex | None = None  # regex on the detail URL whose first group is the item id (default: the URL)
    paging: PagingSpec = Field(default_factory=PagingSpec)
    date_format: str | None = None  # strptime format when the site's dates are unusual; else the normaliser guesses
    required: list[str] = Field(default_factory=lambda: ["title", "content", "published_at"])


class HotlineSpec(Strict):
    """A 12345 work-order platform's JSON API; `fields` maps item fields to (dotted) keys of one record."""

    records_path: str = "data.records"
    page_param: str = "page"
    page_size_param: str = "page_size"
    page_size: int = Field(50, ge=1, le=1000)
    updated_since_param: str = "updated_since"
    updated_field: str = "updateTime"
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    # An item's `url`, `{id}` the work-order number; default: the API URL asking for that order (`?orderNo={id}`,
    # the parameter named as the id's key in `fields`).
    item_url: str | None = None
    fields: dict[str, str] = Field(default_factory=lambda: {
        "source_id": "orderNo", "title": "title", "content": "content", "region": "area", "published_at": "acceptTime",
        "request_type": "requestType", "handling_unit": "handleUnit", "deadline": "timeLimit", "status": "status",
        "closed_at": "finishTime", "satisfaction": "satisfaction", "author": "citizenName",
        "reply.text": "replyContent", "reply.department": "handleUnit", "reply.replied_at": "finishTime",
    })


class JsonPagingSpec(Strict):
    """How to reach the next list page of a JSON API.

    param: a page number (`page=1,2,3`); offset: a record offset (`start=0,20,40`, `step` is the page size);
    cursor: the list response gives the next cursor at `path` (sent as `param`; a full URL is followed as is);
    none: one list request. For `method: POST` with a mapping `body`, `param` is set in the body (dotted for a
    nested key: `param.page`), else in the URL's query.
    """

    mode: Literal["param", "offset", "cursor", "none"] = "param"
    param: str | None = None  # default: page (param), start (offset), cursor (cursor)
    start: int | None = None  # default: 1 (param), 0 (offset)
    step: int | None = Field(None, ge=1)  # default 1 for param; required for offset (the page size)
    path: JMESPath | None = None  # cursor: JMESPath to the next cursor in the list response

    @model_validator(mode="after")
    def _defaults(self) -> JsonPagingSpec:
        if self.mode == "offset" and self.step is None:
            raise ValueError("offset paging needs step (the page size, e.g. 20)")
        if self.mode == "cursor" and self.path is None:
            raise ValueError("cursor paging needs path (JMESPath to the next cursor in the list response)")
        if self.mode != "cursor" and self.path is not None:
            raise ValueError(f"path is only for cursor paging, not {self.mode}")
        self.param = self.param or {"param": "page", "offset": "start", "cursor": "cursor", "none": "page"}[self.mode]
        self.start = (1 if self.mode == "param" else 0) if self.start is None else self.start
        self.step = self.step or 1
        return self


class JsonApiSpec(Strict):
    """A JSON list API whose entries (optionally) link to a JSON detail: 问政 platforms behind a single-page front end.

    Every expression is JMESPath (https://jmespath.org), compiled when the config loads. Each field is read from the
    detail record when there is one, else (or when that gives nothing) from the list entry.
    """

    list_url: str
    method: Literal["GET", "POST"] = "GET"
    body: dict[str, Any] | str | None = None  # POST body: a mapping is sent as JSON, a string as it is
    paging: JsonPagingSpec = Field(default_factory=JsonPagingSpec)
    records: JMESPath  # the list of entries in a list response
    has_more: JMESPath | None = None  # false → last page (an empty page always ends the list)
    id: JMESPath  # the entry's id on the site
    detail_url: str | None = None  # fetched per new entry; `{id}` is replaced by the (URL-quoted) id
    detail_record: JMESPath = "@"  # the record inside a detail response
    item_url: str | None = None  # the page a person opens (`{id}`); default: detail_url, else list_url
    fields: dict[str, JMESPath] = Field(min_length=1)  # item field (dotted: reply.text) → JMESPath
    headers: dict[str, SecretStr] = Field(default_factory=dict)  # e.g. Authorization: {"$env": BOARD_TOKEN}
    date_format: str | None = None  # strptime format when the dates are unusual
    required: list[str] = Field(default_factory=lambda: ["title", "content", "published_at"])

    @model_validator(mode="after")
    def _consistent(self) -> JsonApiSpec:
        for name, template in (("detail_url", self.detail_url), ("item_url", self.item_url)):
            if template is not None and "{id}" not in template:
                raise ValueError(f"{name} must contain {{id}} (where the entry's id goes)")
        if self.body is not None and self.method == "GET":
            raise ValueError("body needs method: POST")
        return self


class WeiboSpec(Strict):
    """The mobile Weibo API (`/api/container/getIndex`): keyword searches and account timelines."""

    base_url: str = "https://m.weibo.cn"
    keywords: list[str] = Field(default_factory=list)
    accounts: list[str] = Field(default_factory=list)  # numeric user ids (uid)
    max_pages: int = Field(10, ge=1, le=1000)
    fetch_long_text: bool = True

    @model_validator(mode="after")
    def _something(self) -> WeiboSpec:
        if not self.keywords and not self.accounts:
            raise ValueError("weibo needs at least one keyword or account")
        return self


class WechatSpec(Strict):
    """公众号 profile (history) pages listing articles, each article a `rich_media_content` page."""

    profile_urls: list[str] = Field(min_length=1)


class ScheduleSpec(Strict):
    """When a source runs: every `interval_seconds`, or on a crontab line (minute hour day month weekday)."""

    interval_seconds: int | None = Field(None, ge=5)
    cron: str | None = None

    @model_validator(mode="after")
    def _one(self) -> ScheduleSpec:
        if (self.interval_seconds is None) == (self.cron is None):
            raise ValueError("give exactly one of interval_seconds or cron")
        if self.cron is not None and len(self.cron.split()) != 5:
            raise ValueError(f"cron must have five fields (minute hour day month weekday), got {self.cron!r}")
        return self


class RevisitSpec(Strict):
    """Re-fetch recently collected entries so a reply (or new likes) arriving later reaches the store.

    List pages only show what is new, so without this a letter first seen unanswered stays unanswered for good and
    the risk model's "official reply missing or overdue" is wrong. Bounded for politeness: at most `max_items`
    detail pages per run (and never more than half of `max_pages`), each entry at most once per `interval_hours`,
    only entries first seen in the last `days`.
    """

    enabled: bool = True
    days: float = Field(15, gt=0, le=365)  # entries first seen this recently (a reply is due within 15 working days)
    max_items: int = Field(50, ge=1, le=10_000)  # detail pages re-fetched per run, at most
    interval_hours: float = Field(12, ge=0)  # an entry is re-fetched at most this often
    only_unreplied: bool = True  # false: replied entries too (new likes), after the unreplied ones


# Kinds for which a revisit is off unless configured; html revisits by default (see RevisitSpec).
REVISIT_OFF_BY_DEFAULT = {"weibo_api"}
REVISIT_NOT_NEEDED = {
    "hotline_api": "the work-order API already returns changed orders (updated_since)",
    "wechat": "article read/like counts come only from mp/getappmsgext with a WeChat client's short-lived key; "
              "the public article page does not change",
}


class CrawlSpec(Strict):
    """How one source is crawled: the kind of spider, its site description, politeness and caps."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: Literal["html", "json_api", "hotline_api", "weibo_api", "wechat"]
    start_url: str | None = None  # hotline: the work-order API URL
    schedule: ScheduleSpec = Field(default_factory=lambda: ScheduleSpec(interval_seconds=600))
    robots: bool = True  # obey robots.txt
    max_pages: int = Field(300, ge=1)  # pages fetched per run; the rest waits for the next run (resumable)
    max_list_pages: int = Field(50, ge=1)  # list pages followed per run: stops infinite pagination
    max_page_bytes: int = Field(5_000_000, ge=10_000)  # bigger responses are cancelled and recorded
    timeout_seconds: float = Field(20, gt=0)
    retries: int = Field(2, ge=0, le=10)
    concurrency: int = Field(2, ge=1, le=32)  # concurrent requests per domain
    download_delay: float = Field(0.0, ge=0)
    autothrottle: bool = True
    user_agent: str = "Mozilla/5.0 (compatible; yuqing-crawler/0.1; +https://github.com/yuqing)"
    encoding: str | None = None  # force a page encoding (e.g. gb18030) when a site declares the wrong one
    login_markers: list[str] = Field(default_factory=lambda: list(DEFAULT_LOGIN_MARKERS))
    headers: dict[str, str] = Field(default_factory=dict)
    cookies: dict[str, SecretStr] = Field(default_factory=dict)
    token: SecretStr | None = None
    html: HtmlSpec | None = None
    json_api: JsonApiSpec | None = Field(None, alias="json")  # `json:` in YAML (a pydantic name is taken)
    hotline: HotlineSpec | None = None
    weibo: WeiboSpec | None = None
    wechat: WechatSpec | None = None
    revisit: RevisitSpec | None = None  # default: on for html, off for weibo_api; not for hotline_api / wechat

    @model_validator(mode="after")
    def _kind_section(self) -> CrawlSpec:
        needed = {"html": "html", "json_api": "json", "hotline_api": "hotline", "weibo_api": "weibo",
                  "wechat": "wechat"}[self.kind]
        if needed == "hotline":
            if self.hotline is None:
                self.hotline = HotlineSpec()
            if not self.start_url:
                raise ValueError("kind hotline_api needs start_url (the work-order API URL)")
        elif getattr(self, "json_api" if needed == "json" else needed) is None:
            raise ValueError(f"kind {self.kind} needs a `{needed}` section")
        if self.kind in REVISIT_NOT_NEEDED:
            if self.revisit is not None and self.revisit.enabled:
                raise ValueError(f"revisit is not available for kind {self.kind}: {REVISIT_NOT_NEEDED[self.kind]}")
        elif self.revisit is None:
            self.revisit = RevisitSpec(enabled=self.kind not in REVISIT_OFF_BY_DEFAULT)
        return self


class ReplaySpec(Strict):
    """Serve a real CSV export through the demo site as one more message board."""

    path: Path
    path_prefix: str = "replay"  # served under /<path_prefix>/list
    columns: dict[str, str] = Field(default_factory=lambda: {
        "message_id": "source_id", "user_id": "author", "title": "title", "created_at": "published_at",
        "body": "content", "likes": "likes", "dislikes": "dislikes"})
    limit: int = Field(2000, ge=1)


class DemoSiteConfig(Strict):
    """The local site imitating the five channels; `yuqing serve` runs it when enabled."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    seed: int = 2026
    history_items: int = Field(60, ge=0, le=20_000)  # per channel, spread over the past week
    new_item_seconds: float = Field(30, gt=0)  # a new item per channel this often while running
    incident_after_minutes: float = Field(2, ge=0)  # the incident starts this long after start-up…
    incident_minutes: float = Field(6, gt=0)  # …and escalates over this long (first reports, then a burst)
    # Letters published while the site runs get their reply this many minutes later (a revisit picks it up);
    # None keeps the generator's 1-12 days.
    reply_after_minutes: float | None = Field(None, gt=0)
    hotline_token: SecretStr = SecretStr("demo-token")
    weibo_cookie: SecretStr = SecretStr("demo-sub")  # the `SUB` cookie value the Weibo imitation accepts
    replay: list[ReplaySpec] = Field(default_factory=list)

    @property
    def url(self) -> str:
        """Where a crawler on this machine reaches the site; what `{demo_site}` in a source's URLs stands for."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"


class HealthSpec(Strict):
    """When a source is degraded or failing."""

    failing_after: int = Field(3, ge=1)  # consecutive failed runs
    error_jump_ratio: float = Field(0.3, gt=0, le=1)  # parse errors over this share of parsed entries → degraded
    # A configured field empty on every page of a run (at least this many pages) that was filled on at least this
    # share of the pages of the last ten runs → degraded, naming the field.
    field_drift_min_pages: int = Field(5, ge=1)
    field_drift_share: float = Field(0.5, gt=0, le=1)


class CrawlingConfig(Strict):
    """Service-wide crawling: the scheduler, where crawl state lives, health rules and the demo site."""

    scheduler: bool = True
    max_parallel: int = Field(2, ge=1, le=16)  # crawls running at once (each a subprocess)
    state_dir: Path = Path("var/crawl")
    run_timeout_seconds: int = Field(900, ge=10)
    health: HealthSpec = Field(default_factory=HealthSpec)
    demo_site: DemoSiteConfig = Field(default_factory=DemoSiteConfig)
    # redis://host:6379/0: the crawl queue and duplicate filter live in Redis (scrapy-redis) so several crawler
    # machines share them, and live alert/feed streams fan out across instances. Unset: local (one machine).
    redis_url: str | None = Field(None, pattern=r"^(redis|rediss|unix)://")

