"""A local HTTP site imitating the five channels, shaped on the real saved responses in shared/data/page_samples.

- 12345 work-order API: bearer token, paging, `updated_since` (JSON)             /hotline/api/workorders
- 领导信箱 like 上海信访办: GBK list table + detail `li>h6` / `li>p` pages         /mailbox/feedbacklist, /feedbackshow
- 留言板 with next-link paging, likes/dislikes and replies                      /board/list, /board/thread/<id>
- a second 留言板 with another structure: tables, offset paging, 年月日 dates      /board2/index, /board2/detail/<id>.html
- Weibo mobile API `cards[].mblog`, search (card_group) and uid timelines       /weibo/api/container/getIndex
- WeChat 公众号 profile (`var msgList`) + getmsg paging + article pages          /wechat/mp/profile_ext, /wechat/s
- JSON 留言板 like 人民网 领导留言板: POST list `data.data[]`, JSON detail     /liuyan/v2/threads/search, /v1/threads/content
- gov.cn 我为政府网站找错: JSON list by offset or cursor, JSON detail           /zfwzzc/check_web/errorInfo_*.action
- fault pages (403/418/429/500, slow, 20 MB, endless paging, wrong charset, bad JSON, login redirect, anti-crawl)

A stdlib threading server: no dependency, starts in milliseconds, and is easy to run in a test thread.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import re
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from core.models import SHANGHAI
from demo.feed import WECHAT_ACCOUNTS, WEIBO_ACCOUNTS, ReplayFeed, SiteFeed, SiteItem

logger = logging.getLogger(__name__)

REQUEST_TYPES_ZH = {"consult": "咨询", "help": "求助", "suggest": "建议", "complain": "投诉", "report": "举报"}
DEADLINE_DAYS = {"consult": 2, "help": 10, "suggest": 10, "complain": 15, "report": 15}
PAGE_SIZE = {"mailbox": 20, "board": 15, "board2": 20, "weibo": 10, "wechat": 10, "liuyan": 10, "zhaocuo": 20}
# gov.cn 找错: problem_id (问题类型) codes and blzt (办理状态) codes as in its list; the names are the platform's.
ZHAOCUO_PROBLEMS = {1: "内容更新不及时", 2: "链接不可用", 3: "错别字", 4: "互动回应差", 5: "服务不实用"}
# 人民网 留言板 classifications: typeId/typeName (留言类型) and domainId/domainName (领域), as in its list API.
LIUYAN_TYPES = [(1, "建言"), (2, "投诉/求助"), (3, "咨询")]
LIUYAN_DOMAINS = [(1, "城建"), (2, "交通"), (3, "环保"), (4, "教育"), (5, "医疗"), (6, "三农"), (7, "文娱")]
ROBOTS = "User-agent: *\nDisallow: /private/\n"


def _t(at: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    if at is None:
        return ""
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return at.astimezone(SHANGHAI).strftime(fmt)


def _e(text: Any) -> str:
    return html.escape(str(text if text is not None else ""))


def _page(title: str, body: str, charset: str = "utf-8") -> str:
    return (f'<!DOCTYPE html>\n<html><head><meta http-equiv="Content-Type" content="text/html; charset={charset}">'
            f"<title>{_e(title)}</title></head>\n<body>\n{body}\n</body></html>\n")


def reply_of(item: SiteItem, now: datetime) -> dict[str, Any] | None:
    """The official reply, once its time has come (a letter is answered days after it arrives)."""
    reply = item.payload.get("reply")
    if not reply or datetime.fromisoformat(reply["replied_at"]) > now:
        return None
    return reply


def work_order(item: SiteItem, now: datetime) -> dict[str, Any]:
    """A 12345 work order as the platform API returns it; closed once its reply time has passed."""
    p = item.payload
    kind = p.get("request_type") or "complain"
    reply = reply_of(item, now)
    accepted = item.published_at
    region = p.get("region") or ""
    return {
        "orderNo": item.key,
        "requestType": REQUEST_TYPES_ZH.get(kind, "投诉"),
        "title": p.get("title", ""),
        "content": p.get("content", ""),
        "area": region,
        "handleUnit": p.get("handling_unit") or (reply or {}).get("department") or "市政府办公室",
        "acceptTime": _t(accepted),
        "timeLimit": _t(accepted + timedelta(days=DEADLINE_DAYS.get(kind, 15))),
        "status": "已办结" if reply else "办理中",
        "finishTime": _t(reply["replied_at"]) if reply else None,
        "replyContent": reply["text"] if reply else None,
        "satisfaction": ("满意" if item.seq % 3 else "基本满意") if reply else None,
        "citizenName": (p.get("author") or "市民")[:1] + "**",
        "updateTime": _t(reply["replied_at"]) if reply else _t(accepted),
    }


def weibo_html(text: str) -> str:
    """Weibo's `text`: topics as search links, line breaks as <br />."""
    out = _e(text)
    out = re.sub(r"#([^#\s]{1,30})#", lambda m: (
        f'<a  href="/search?containerid=231522type%3D1%26q%3D%23{quote(m.group(1))}%23" data-hide="">'
        f'<span class="surl-text">#{m.group(1)}#</span></a>'), out)
    return out.replace("\n", "<br />")


def liuyan_thread(item: SiteItem, with_content: bool = True) -> dict[str, Any]:
    """One message as the list API's `data.data[]` entry (the keys of the saved 人民网 sample)."""
    p = item.payload
    now = datetime.now(SHANGHAI)
    reply = reply_of(item, now) if "reply" in p else None
    type_id, type_name = LIUYAN_TYPES[item.seq % len(LIUYAN_TYPES)]
    domain_id, domain_name = LIUYAN_DOMAINS[item.seq % len(LIUYAN_DOMAINS)]
    author = str(p.get("author") or "")
    thread = {
        "tid": int(item.key), "fid": 539 + item.seq % 3, "forumName": "江城市委书记" if item.seq % 2 else "江城市市长",
        "subject": p.get("title", ""), "nickName": (author[:2] + "*" * max(len(author) - 3, 1) + author[-1:]) if author
        else "网友", "typeId": type_id, "typeName": type_name, "domainId": domain_id, "domainName": domain_name,
        "stateInfo": "已办理" if reply else "办理中", "createDateline": _t(item.published_at),
        "dateline": int(item.published_at.timestamp()), "threadsCheckTime": int(item.published_at.timestamp()) + 3600,
        "lastAnswerTime": int(datetime.fromisoformat(reply["replied_at"]).timestamp()) if reply else None,
        "threadState": 1, "processState": 2 if reply else 1,
        "traceStateDesc": "已回复待评价" if reply else "办理中", "favNum": 0, "likesNum": p.get("likes", 0) or 0,
        "threadPlace": p.get("region", ""), "userType": 0, "attachment": "", "topicId": 0,
    }
    if with_content:
        thread["content"] = str(p.get("content", ""))[:60]  # the list shows the beginning only
    return thread


def zhaocuo_site(item: SiteItem) -> str:
    """The government website a 找错 report is about."""
    return ["江城市财政局", "江城市城市管理委员会", "江城市农业农村委员会", "江城市教育局"][item.seq % 4]


class DemoSite:
    """The site's state (feeds, layout versions, request counts) and its server."""

    def __init__(self, *, seed: int = 2026, history: int = 60, new_item_seconds: float = 30.0,
                 incident_after_minutes: float = 2.0, hotline_token: str = "demo-token", weibo_cookie: str = "demo-sub",
                 replay: list[tuple[str, Path, dict[str, str], int]] | None = None, start: datetime | None = None,
                 reply_after_minutes: float | None = None, incident_minutes: float = 6.0) -> None:
        self.feed = SiteFeed(seed, history, new_item_seconds, incident_after_minutes, start=start,
                             reply_after_minutes=reply_after_minutes, incident_minutes=incident_minutes)
        self.hotline_token = hotline_token
        self.weibo_cookie = weibo_cookie
        self.layouts: dict[str, int] = {}
        self.replays = {prefix: ReplayFeed(path, columns, limit) for prefix, path, columns, limit in (replay or [])}
        self.hits: dict[str, int] = {}
        self.last_headers: dict[str, dict[str, str]] = {}  # path?query → headers of its last request (tests: secrets)
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a daemon thread; returns the base URL (port 0 picks a free port)."""
        site = self

        class Handler(_Handler):
            pass

        Handler.site = site
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="demo-site", daemon=True)
        self.thread.start()
        return self.base_url

    @property
    def base_url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def serve_forever(self, host: str, port: int) -> None:
        self.start(host, port)
        assert self.thread is not None
        try:
            while self.thread.is_alive():
                self.thread.join(1)
        except KeyboardInterrupt:
            self.stop()

    def layout(self, feed: str) -> int:
        return self.layouts.get(feed, 1)


class _Handler(BaseHTTPRequestHandler):
    site: DemoSite
    server_version = "demo-gov/1.0"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("demo-site " + format, *args)

    # ---- response helpers -------------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _html(self, text: str, status: int = 200, charset: str = "utf-8", declare: bool = True) -> None:
        body = text.encode(charset, errors="xmlcharrefreplace")
        self._send(status, body, f"text/html; charset={charset}" if declare else "text/html")

    def _json(self, data: Any, status: int = 200) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        """JSON APIs that take their parameters as a JSON body (the 人民网 留言板 list)."""
        parts = urlsplit(self.path)
        self.site.hits[parts.path] = self.site.hits.get(parts.path, 0) + 1
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        for pattern, method in POST_ROUTES:
            if re.fullmatch(pattern, parts.path):
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    getattr(self, method)(body if isinstance(body, dict) else None)
                return
        self._json({"resultCode": "404", "resultMsg": "接口不存在"}, status=404)

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        site = self.site
        site.hits[parts.path] = site.hits.get(parts.path, 0) + 1
        if len(site.last_headers) < 2000 or self.path in site.last_headers:  # bounded while `make run` goes on
            site.last_headers[self.path] = dict(self.headers)
        for pattern, method in ROUTES:
            match = re.fullmatch(pattern, parts.path)
            if match:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    getattr(self, method)(query, *match.groups())
                return
        self._html(_page("404", "<h1>页面不存在</h1>"), status=404)

    def _int(self, query: dict[str, str], name: str, default: int) -> int:
        try:
            return max(int(query.get(name, default)), 0)
        except ValueError:
            return default

    # ---- index and robots -----------------------------------------------------------------------------------

    def index(self, query: dict[str, str]) -> None:
        links = ["/hotline/api/workorders", "/mailbox/feedbacklist", "/board/list", "/board2/index",
                 "/weibo/api/container/getIndex?containerid=100103type%3D1%26q%3D%E6%B1%9F%E5%9F%8E",
                 f"/wechat/mp/profile_ext?action=home&__biz={list(WECHAT_ACCOUNTS)[0]}"]
        self._html(_page("演示站点", "<h1>江城市 演示政务站点</h1><ul>" + "".join(
            f'<li><a href="{_e(u)}">{_e(u)}</a></li>' for u in links) + "</ul>"))

    def robots(self, query: dict[str, str]) -> None:
        self._send(200, ROBOTS.encode(), "text/plain; charset=utf-8")

    def admin_layout(self, query: dict[str, str]) -> None:
        """Switch a feed's HTML structure (tests use it to imitate a site redesign)."""
        feed, version = query.get("feed", "board"), self._int(query, "version", 1)
        self.site.layouts[feed] = version
        self._json({"ok": True, "feed": feed, "version": version})

    def admin_reply(self, query: dict[str, str]) -> None:
        """Answer an existing letter or message now (`feed`, `key`; optional `text`): demos and tests of revisits."""
        item = self.site.feed.add_reply(query.get("feed", "mailbox"), query.get("key", ""), text=query.get("text"))
        if item is None:
            self._json({"ok": False, "error": "no such item"}, status=404)
            return
        self._json({"ok": True, "feed": item.feed, "key": item.key, "reply": item.payload["reply"]})

    def admin_engage(self, query: dict[str, str]) -> None:
        """Add likes/reposts/comments/dislikes to an existing item (`feed`, `key`, counts as integers)."""
        more = {k: self._int(query, k, 0) for k in ("likes", "reposts", "comments", "dislikes") if k in query}
        item = self.site.feed.engage(query.get("feed", "weibo"), query.get("key", ""), **more)
        if item is None:
            self._json({"ok": False, "error": "no such item"}, status=404)
            return
        self._json({"ok": True, "feed": item.feed, "key": item.key, **{k: item.payload.get(k) for k in more}})

    # ---- 12345 work orders ------------------------------------------------------------------------------------

    def hotline(self, query: dict[str, str]) -> None:
        auth = self.headers.get("Authorization", "")
        if auth != f"Bearer {self.site.hotline_token}":
            self._json({"code": 401, "msg": "token 无效或已过期", "data": None}, status=401)
            return
        now = datetime.now(SHANGHAI)
        since = query.get("updated_since", "")
        orders = [work_order(i, now) for i in self.site.feed.visible("hotline", now)]
        if since:
            orders = [o for o in orders if o["updateTime"] > since]
        if order_no := query.get("orderNo"):  # one work order, as its item `url` asks for it
            orders = [o for o in orders if o["orderNo"] == order_no]
        orders.sort(key=lambda o: (o["updateTime"], o["orderNo"]))
        size = min(max(self._int(query, "page_size", 20), 1), 200)
        page = max(self._int(query, "page", 1), 1)
        chunk = orders[(page - 1) * size : page * size]
        self._json({"code": 0, "msg": "success", "data": {"total": len(orders), "page": page, "pageSize": size,
                                                          "records": chunk}})

    # ---- 领导信箱 (GBK) -------------------------------------------------------------------------------------------

    def mailbox_list(self, query: dict[str, str]) -> None:
        items = self.site.feed.visible("mailbox")
        size = min(max(self._int(query, "pagesize", PAGE_SIZE["mailbox"]), 1), 1000)
        page = max(self._int(query, "pageNo", 1), 1)
        rows = "".join(
            f'<tr><td class="title"><a href="feedbackshow?id={i.key}" target="_blank">{_e(i.payload["title"])}</a></td>'
            f'<td>{_e((reply_of(i, datetime.now(SHANGHAI)) or {}).get("department", "待答复"))}</td>'
            f"<td>{_t(i.published_at, '%Y-%m-%d')}</td></tr>\n"
            for i in items[(page - 1) * size : page * size])
        pages = max((len(items) + size - 1) // size, 1)
        nav = f'<div class="page">第 {page}/{pages} 页 '
        if page < pages:
            nav += f'<a class="next" href="feedbacklist?testpara=0&amp;pageNo={page + 1}&amp;pagesize={size}">下一页</a>'
        nav += "</div>"
        body = (f'<div class="list"><table class="table"><tr><th>标题</th><th>答复单位</th><th>日期</th></tr>\n{rows}'
                f"</table>{nav}</div>")
        self._html(_page("意见征集-反馈", body, "gbk"), charset="gbk")

    def mailbox_show(self, query: dict[str, str]) -> None:
        item = self.site.feed.find("mailbox", query.get("id", ""))
        if item is None:
            self._html(_page("信件不存在", "<p>信件不存在或已删除</p>", "gbk"), status=404, charset="gbk")
            return
        reply = reply_of(item, datetime.now(SHANGHAI)) or {}
        # As on the real 上海信访办 pages (page_samples/mayor_mailbox): the title in `li>h6`, then five `li>p`, each
        # label in a <span>, dates without a time, no name of the writer.
        rows = [("来信日期", _t(item.published_at, "%Y-%m-%d")), ("信件内容", item.payload["content"]),
                ("回复日期", _t(reply.get("replied_at"), "%Y-%m-%d")), ("回复单位", reply.get("department", "")),
                ("回复内容", reply.get("text", ""))]
        body = (f'<div class="detail"><ul>\n<li><h6>{_e(item.payload["title"])}</h6></li>\n'
                + "".join(f"<li><p><span>{label}：</span>{_e(value)}</p></li>\n" for label, value in rows)
                + "</ul></div>")
        # Half the detail pages declare GBK only inside the page (a meta tag), as many old sites do.
        self._html(_page(item.payload["title"], body, "gbk"), charset="gbk", declare=item.seq % 2 == 0)

    # ---- 留言板 ---------------------------------------------------------------------------------------------------

    def _board_items(self, prefix: str) -> list[SiteItem]:
        if prefix in self.site.replays:
            return self.site.replays[prefix].visible()
        return self.site.feed.visible("board")

    def board_list(self, query: dict[str, str], prefix: str) -> None:
        items = self._board_items(prefix)
        size = PAGE_SIZE["board"]
        page = max(self._int(query, "page", 1), 1)
        chunk = items[(page - 1) * size : page * size]
        v2 = self.site.layout("board") >= 2 and prefix == "board"
        now = datetime.now(SHANGHAI)
        if v2:  # the redesigned site: other classes, other nesting
            rows = "".join(f'<div class="post-entry"><span class="post-head"><a href="/{prefix}/thread/{i.key}">'
                           f'{_e(i.payload["title"])}</a></span><i>{_t(i.published_at, "%Y-%m-%d %H:%M")}</i></div>\n'
                           for i in chunk)
        else:
            rows = "".join(f'<li class="msg-item"><h3><a href="/{prefix}/thread/{i.key}">{_e(i.payload["title"])}</a></h3>'
                           f'<span class="state">{"已回复" if reply_of(i, now) else "办理中"}</span>'
                           f'<span class="date">{_t(i.published_at, "%Y-%m-%d %H:%M")}</span></li>\n' for i in chunk)
        nav = f'<a class="next" href="/{prefix}/list?page={page + 1}">下一页</a>' if page * size < len(items) else ""
        body = f'<div class="board"><ul class="msg-list">\n{rows}</ul><div class="pager">{nav}</div></div>'
        self._html(_page("留言板", body))

    def board_thread(self, query: dict[str, str], prefix: str, key: str) -> None:
        item = self.site.replays[prefix].find(key) if prefix in self.site.replays else self.site.feed.find("board", key)
        if item is None:
            self._html(_page("留言不存在", "<p>留言不存在</p>"), status=404)
            return
        p = item.payload
        reply = reply_of(item, datetime.now(SHANGHAI)) if "reply" in p else None
        paragraphs = "".join(f"<p>{_e(line)}</p>" for line in str(p.get("content", "")).splitlines() if line.strip())
        reply_html = ""
        if reply:
            reply_html = (f'<div class="reply"><div class="reply-dept">{_e(reply["department"])}</div>'
                          f'<div class="reply-time">{_t(reply["replied_at"])}</div>'
                          f'<div class="reply-content">{_e(reply["text"])}</div></div>')
        if self.site.layout("board") >= 2 and prefix == "board":
            body = (f'<article><header><h2>{_e(p.get("title"))}</h2></header><section class="txt">{paragraphs}</section>'
                    f"</article>")
        else:
            body = (f'<div class="thread"><h1 class="thread-title">{_e(p.get("title"))}</h1>'
                    f'<div class="thread-meta"><span class="author">{_e(p.get("author", ""))}</span>'
                    f'<span class="time">{_t(item.published_at)}</span><span class="region">{_e(p.get("region") or "")}</span>'
                    f'</div><div class="thread-content">{paragraphs}</div>'
                    f'<div class="votes"><span class="likes">赞 <em>{_e(p.get("likes", 0) or 0)}</em></span>'
                    f'<span class="dislikes">踩 <em>{_e(p.get("dislikes", 0) or 0)}</em></span></div>{reply_html}</div>')
        self._html(_page(str(p.get("title")), body))

    def board2_index(self, query: dict[str, str]) -> None:
        items = self.site.feed.visible("board2")
        size = PAGE_SIZE["board2"]
        start = self._int(query, "start", 0)
        rows = "".join(f'<tr class="row"><td class="bh">{i.key}</td><td class="bt"><a href="detail/{i.key}.html" '
                       f'title="{_e(i.payload["title"])}">{_e(i.payload["title"])}</a></td>'
                       f'<td class="sj">{_t(i.published_at, "%Y年%m月%d日 %H:%M")}</td>'
                       f'<td class="zc">{_e(i.payload.get("likes", 0) or 0)}</td></tr>\n' for i in items[start : start + size])
        body = (f'<table class="liuyan" width="100%"><tr><th>编号</th><th>标题</th><th>时间</th><th>支持</th></tr>\n'
                f'{rows}</table><div class="fy">共 {len(items)} 条</div>')
        self._html(_page("网上信访 留言列表", body))

    def board2_detail(self, query: dict[str, str], key: str) -> None:
        item = next((i for i in self.site.feed.visible("board2") if i.key == key), None)
        if item is None:
            self._html(_page("无此留言", "<p>无此留言</p>"), status=404)
            return
        p = item.payload
        reply = reply_of(item, datetime.now(SHANGHAI)) or {}
        rows = [("留言标题", p.get("title")), ("留言人", p.get("author")),
                ("留言时间", _t(item.published_at, "%Y年%m月%d日 %H:%M")),
                ("所属区域", p.get("region")), ("留言内容", p.get("content")), ("支持数", p.get("likes", 0) or 0),
                ("反对数", p.get("dislikes", 0) or 0)]
        if reply:
            rows += [("回复单位", reply["department"]), ("回复时间", _t(reply["replied_at"], "%Y年%m月%d日 %H:%M")),
                     ("回复内容", reply["text"])]
        body = '<dl class="ly">' + "".join(f"<dt>{k}</dt><dd>{_e(v)}</dd>" for k, v in rows) + "</dl>"
        self._html(_page(str(p.get("title")), body))

    # ---- Weibo ----------------------------------------------------------------------------------------------------

    def _mblog(self, item: SiteItem) -> dict[str, Any]:
        p = item.payload
        text = str(p.get("content", ""))
        long = len(text) > 60  # Weibo truncates long posts and links to the full text
        shown = weibo_html(text[:50]) + f' ...<a href="/status/{item.key}">全文</a>' if long else weibo_html(text)
        uid = item.account
        return {
            "created_at": _t(item.published_at, "%a %b %d %H:%M:%S +0800 %Y"), "id": item.key, "mid": item.key,
            "bid": f"K{int(item.key) % 10**8:08d}", "text": shown, "textLength": len(text), "isLongText": long,
            "source": "微博 weibo.com", "reposts_count": p.get("reposts", 0) or 0, "comments_count": p.get("comments", 0) or 0,
            "attitudes_count": p.get("likes", 0) or 0, "pic_ids": [], "pic_num": 0, "mblogtype": 0, "isTop": 0,
            "user": {"id": int(uid), "screen_name": WEIBO_ACCOUNTS[uid], "verified": True, "verified_type": 1,
                     "followers_count": 120_000 + int(uid) % 1000, "profile_url": f"https://m.weibo.cn/u/{uid}"},
        }

    def weibo_index(self, query: dict[str, str]) -> None:
        if f"SUB={self.site.weibo_cookie}" not in (self.headers.get("Cookie") or ""):
            self._json({"ok": -100, "url": "https://passport.weibo.cn/signin/welcome?entry=mweibo&r=https%3A%2F%2Fm.weibo.cn%2F"})
            return
        items = self.site.feed.visible("weibo")
        size = PAGE_SIZE["weibo"]
        containerid = query.get("containerid", "")
        if containerid.startswith("100103"):
            keyword = parse_qs(containerid[6:]).get("q", [""])[-1]
            found = [i for i in items if keyword in str(i.payload.get("content", ""))]
            page = max(self._int(query, "page", 1), 1)
            chunk = found[(page - 1) * size : page * size]
            if not chunk:
                self._json({"ok": 0, "msg": "这里还没有内容", "data": {"cards": []}})
                return
            cards = [{"card_type": 11, "card_group": [{"card_type": 9, "itemid": f"seqid:{i.seq}", "mblog": self._mblog(i)}
                                                      for i in chunk]}]
            self._json({"ok": 1, "data": {"cardlistInfo": {"containerid": containerid, "page": page + 1,
                                                              "total": len(found)}, "cards": cards}})
            return
        uid = query.get("value") or containerid.removeprefix("107603")
        if uid not in WEIBO_ACCOUNTS:
            self._json({"ok": 0, "msg": "用户不存在", "data": {"cards": []}})
            return
        timeline = [i for i in items if i.account == uid]
        since = query.get("since_id")
        start = next((n for n, i in enumerate(timeline) if i.key == since), 0) if since else 0
        chunk = timeline[start : start + size]
        info: dict[str, Any] = {"containerid": f"107603{uid}", "v_p": 42, "show_style": 1, "total": len(timeline)}
        if start + size < len(timeline):
            info["since_id"] = int(timeline[start + size].key)
        cards = [{"card_type": 9, "itemid": f"107603{uid}_-_{i.key}", "scheme": f"https://m.weibo.cn/status/{i.key}",
                  "mblog": self._mblog(i)} for i in chunk]
        self._json({"ok": 1, "data": {"cardlistInfo": info, "cards": cards, "scheme": ""}})

    def weibo_show(self, query: dict[str, str]) -> None:
        """`statuses/show?id=`: one post with its current counts (what a revisit asks for)."""
        if f"SUB={self.site.weibo_cookie}" not in (self.headers.get("Cookie") or ""):
            self._json({"ok": -100, "url": "https://passport.weibo.cn/signin/welcome?entry=mweibo"})
            return
        item = self.site.feed.find("weibo", query.get("id", ""))
        if item is None:
            self._json({"ok": 0, "msg": "该微博不存在或已被删除"})
            return
        self._json({"ok": 1, "data": self._mblog(item)})

    def weibo_longtext(self, query: dict[str, str]) -> None:
        item = self.site.feed.find("weibo", query.get("id", ""))
        if item is None:
            self._json({"ok": 0, "msg": "已删除"})
            return
        p = item.payload
        self._json({"ok": 1, "data": {"ok": 1, "longTextContent": weibo_html(str(p.get("content", ""))),
                                      "reposts_count": p.get("reposts", 0) or 0, "comments_count": p.get("comments", 0) or 0,
                                      "attitudes_count": p.get("likes", 0) or 0}})

    # ---- JSON 留言板 (人民网 领导留言板 shapes) ------------------------------------------------------------------------

    def liuyan_search(self, body: dict[str, Any] | None) -> None:
        """`POST /v2/threads/search`: body `{"appCode", "param": {"page", "rows", ...}}` or the same keys flat."""
        if body is None or not body.get("appCode"):
            self._json({"resultCode": "400", "resultMsg": "参数错误：缺少appCode", "data": None}, status=200)
            return
        param = body.get("param") if isinstance(body.get("param"), dict) else body
        try:
            page, rows = max(int(param.get("page", 1)), 1), min(max(int(param.get("rows", PAGE_SIZE["liuyan"])), 1), 100)
        except (TypeError, ValueError):
            self._json({"resultCode": "400", "resultMsg": "参数错误：page/rows", "data": None})
            return
        items = self.site.feed.visible("liuyan")
        chunk = items[(page - 1) * rows : page * rows]
        self._json({"resultCode": "200", "resultMsg": "成功",
                    "data": {"data": [liuyan_thread(i) for i in chunk], "total": len(items), "page": page,
                             "rows": rows, "hasMore": page * rows < len(items)}})

    def liuyan_content(self, query: dict[str, str]) -> None:
        """`GET /v1/threads/content?tid=`: the message in full with its answers (`reply[]`, newest last)."""
        item = self.site.feed.find("liuyan", query.get("tid", ""))
        if item is None:
            self._json({"resultCode": "404", "resultMsg": "留言不存在或未公开", "data": None})
            return
        thread = liuyan_thread(item, with_content=False)
        thread["content"] = str(item.payload.get("content", ""))
        reply = reply_of(item, datetime.now(SHANGHAI)) if "reply" in item.payload else None
        answers = []
        if reply:
            answers.append({"answerId": int(item.key) * 10 + 1, "unitName": reply["department"],
                            "content": reply["text"],
                            "answerTime": int(datetime.fromisoformat(reply["replied_at"]).timestamp()) * 1000})
        self._json({"resultCode": "200", "resultMsg": "成功", "data": {"thread": thread, "reply": answers}})

    # ---- gov.cn 我为政府网站找错 (list rows as in page_samples/message_board/…_table.csv) -------------------------------

    def zhaocuo_list(self, query: dict[str, str]) -> None:
        """The report list: `start`/`length` offsets (DataTables style) or the `cursor` its answer gives for the next
        page; rows carry only the site, the problem code, the state and the date, as on the real platform."""
        items = self.site.feed.visible("zhaocuo")
        length = min(max(self._int(query, "length", PAGE_SIZE["zhaocuo"]), 1), 100)
        cursor = query.get("cursor", "")
        start = int(cursor[1:]) if cursor.startswith("s") and cursor[1:].isdigit() else self._int(query, "start", 0)
        chunk = items[start : start + length]
        rows = [{"id": int(i.key), "sitecode": f"12000000{i.seq % 90 + 10}", "wzmc": zhaocuo_site(i),
                 "problem_id": str(i.seq % len(ZHAOCUO_PROBLEMS) + 1), "blzt": "22" if reply_of(i, datetime.now(SHANGHAI))
                 and "reply" in i.payload else "1", "bgdate": _t(i.published_at, "%Y-%m-%d")} for i in chunk]
        more = start + length < len(items)
        self._json({"draw": 1, "recordsTotal": len(items), "recordsFiltered": len(items), "data": rows,
                    "nextCursor": f"s{start + length}" if more else None})

    def zhaocuo_detail(self, query: dict[str, str]) -> None:
        """One report with the problem described and the site's answer (`hfnr`, `hfdw`, `hfsj`)."""
        item = self.site.feed.find("zhaocuo", query.get("id", ""))
        if item is None:
            self._json({"success": False, "msg": "记录不存在"})
            return
        reply = reply_of(item, datetime.now(SHANGHAI)) if "reply" in item.payload else None
        self._json({"success": True, "errorInfo": {
            "id": int(item.key), "wzmc": zhaocuo_site(item), "wtlx": ZHAOCUO_PROBLEMS[item.seq % len(ZHAOCUO_PROBLEMS) + 1],
            "wtbt": item.payload.get("title", ""), "wtms": item.payload.get("content", ""),
            "bgsj": _t(item.published_at), "hfnr": reply["text"] if reply else "", "hfdw": reply["department"] if reply
            else "", "hfsj": _t(reply["replied_at"]) if reply else ""}})

    # ---- WeChat ---------------------------------------------------------------------------------------------------

    def _wechat_items(self, biz: str) -> list[SiteItem]:
        return [i for i in self.site.feed.visible("wechat") if i.account == biz]

    def _msg_list(self, items: list[SiteItem], biz: str) -> dict[str, Any]:
        out = []
        for i in items:
            url = f"/wechat/s?__biz={biz}&amp;mid={i.key}&amp;idx=1&amp;sn={i.key[-6:]}abcdef&amp;scene=27"
            out.append({"comm_msg_info": {"content": "", "datetime": int(i.published_at.timestamp()), "fakeid": "2397406721",
                                          "id": 1_000_000_000 + i.seq, "status": 2, "type": 49},
                        "app_msg_ext_info": {"title": i.payload.get("title", ""),
                                             "digest": str(i.payload.get("content", ""))[:40],
                                             "content_url": url, "author": "", "cover": "", "is_multi": 0,
                                             "multi_app_msg_item_list": [], "copyright_stat": 11, "del_flag": 1}})
        return {"list": out}

    def wechat_profile(self, query: dict[str, str]) -> None:
        biz = query.get("__biz", "")
        if biz not in WECHAT_ACCOUNTS:
            self._html(_page("验证", "<p>请在微信客户端打开链接</p>"))
            return
        items = self._wechat_items(biz)
        size = PAGE_SIZE["wechat"]
        if query.get("action") == "getmsg":
            offset = self._int(query, "offset", 0)
            chunk = items[offset : offset + size]
            more = offset + size < len(items)
            self._json({"ret": 0, "errmsg": "ok", "msg_count": len(chunk), "can_msg_continue": int(more),
                        "general_msg_list": json.dumps(self._msg_list(chunk, biz), ensure_ascii=False),
                        "next_offset": offset + size})
            return
        msg_list = json.dumps(self._msg_list(items[:size], biz), ensure_ascii=False)
        more = "1" if len(items) > size else "0"
        script = (f'<script type="text/javascript">\n    var name="jcfb"||"{WECHAT_ACCOUNTS[biz]}";\n'
                  f"    var msgList = {msg_list};\n    var can_msg_continue = '{more}' * 1;\n"
                  f"    var next_offset = '{size}' * 1;\n</script>")
        self._html(_page(WECHAT_ACCOUNTS[biz], f'<div class="profile_info"><strong class="profile_nickname">'
                                               f"{WECHAT_ACCOUNTS[biz]}</strong></div>\n{script}"))

    def wechat_article(self, query: dict[str, str]) -> None:
        biz = query.get("__biz", "")
        item = next((i for i in self._wechat_items(biz) if i.key == query.get("mid")), None)
        if item is None:
            self._html(_page("", '<div class="weui-msg"><p class="weui-msg__desc">该内容已被发布者删除</p></div>'))
            return
        p = item.payload
        paragraphs = "".join(f"<p>{_e(line)}</p>" for line in str(p.get("content", "")).splitlines() if line.strip())
        name = WECHAT_ACCOUNTS[biz]
        body = (f'<div id="img-content" class="rich_media_wrp">\n<h1 class="rich_media_title" id="activity-name">\n'
                f'{_e(p.get("title", ""))}\n</h1>\n<div id="meta_content" class="rich_media_meta_list">'
                f'<span class="rich_media_meta rich_media_meta_nickname" id="profileBt">'
                f'<a href="javascript:void(0);" id="js_name">'
                f'\n{name}\n</a></span><em id="publish_time" class="rich_media_meta rich_media_meta_text"></em></div>\n'
                f'<div class="rich_media_content " id="js_content" style="visibility: hidden;">{paragraphs}</div></div>\n'
                f'<script nonce="" type="text/javascript">\n    var biz = ""||"{biz}";\n    var mid = "" || ""|| "{item.key}";\n'
                f'    var idx = "" || "" || "1";\n    var nickname = "{name}";\n'
                f'    var ct = "{int(item.published_at.timestamp())}";\n'
                f'    var msg_title = \'{_e(p.get("title", ""))}\'.html(false);\n'
                f'    var read_num = "{(p.get("reposts", 0) or 0) * 37 + 100}" * 1;\n'
                f'    var like_num = "{p.get("likes", 0) or 0}" * 1;\n</script>')
        self._html(_page(str(p.get("title")), body))

    # ---- faults -----------------------------------------------------------------------------------------------------

    def fault_status(self, query: dict[str, str], code: str) -> None:
        status = int(code)
        headers = {"Retry-After": "1"} if status in (429, 503) else None
        self._send(status, f"<html><body>status {status}</body></html>".encode(), "text/html; charset=utf-8", headers)

    def fault_slow(self, query: dict[str, str]) -> None:
        time.sleep(min(float(query.get("seconds", "5")), 60))
        self._html(_page("slow", '<ul><li class="msg-item"><h3><a href="/board/thread/1">slow</a></h3></li></ul>'))

    def fault_huge(self, query: dict[str, str]) -> None:
        """A 20 MB page, streamed, to check the page-size cap."""
        size = int(query.get("mb", "20")) * 1024 * 1024
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        chunk = b"<p>" + ("很长的页面" * 3000).encode() + b"</p>\n"
        sent = 0
        try:
            while sent < size:
                part = chunk[: size - sent]
                self.wfile.write(part)
                sent += len(part)
        except (BrokenPipeError, ConnectionResetError):
            return

    def fault_endless(self, query: dict[str, str]) -> None:
        """A list whose `下一页` never ends (every page links to the next)."""
        page = max(self._int(query, "page", 1), 1)
        items = self.site.feed.visible("board")
        item = items[(page - 1) % len(items)] if items else None
        link = f"/board/thread/{item.key}" if item else "/board/thread/0"
        rows = f'<li class="msg-item"><h3><a href="{link}">第{page}页</a></h3></li>'
        self._html(_page("endless", f'<ul>{rows}</ul><a class="next" href="/faults/endless?page={page + 1}">下一页</a>'))

    def fault_mislabelled(self, query: dict[str, str]) -> None:
        """GBK bytes under a UTF-8 label: the board list rendered, then encoded wrongly."""
        items = self.site.feed.visible("board")[:5]
        rows = "".join(f'<li class="msg-item"><h3><a href="/board/thread/{i.key}">{_e(i.payload["title"])}</a></h3>'
                       f'<span class="date">{_t(i.published_at, "%Y-%m-%d %H:%M")}</span></li>\n' for i in items)
        text = _page("留言板", f'<ul class="msg-list">{rows}</ul>', "utf-8")
        self._send(200, text.encode("gbk", errors="xmlcharrefreplace"), "text/html; charset=utf-8")

    def fault_list(self, query: dict[str, str]) -> None:
        """A board list whose entries fail in every way a page can, beside two good ones."""
        good = self.site.feed.visible("board")[:2]
        links = [f"/board/thread/{i.key}" for i in good] + [
            "/faults/status/403", "/faults/status/418", "/faults/status/429", "/faults/status/500", "/faults/slow?seconds=4",
            "/faults/huge", "/faults/login", "/board/thread/999999999"]
        rows = "".join(f'<li class="msg-item"><h3><a href="{u}">{u}</a></h3></li>' for u in links)
        self._html(_page("faults", f'<ul class="msg-list">{rows}</ul>'))

    def fault_bad_json(self, query: dict[str, str]) -> None:
        self._send(200, b'{"code": 0, "data": {"records": [{"orderNo": "GD1", "title": "\xe6\xb5', "application/json")

    def fault_login(self, query: dict[str, str]) -> None:
        self._send(302, b"", "text/html", {"Location": "/login?next=%2Ffaults%2Flogin"})

    def login_page(self, query: dict[str, str]) -> None:
        self._html(_page("用户登录", '<form action="/login" method="post"><p>请登录后查看</p><input name="user"></form>'))

    def wechat_quota(self, query: dict[str, str]) -> None:
        self._html(_page("验证", '<div class="weui-msg"><p>访问过于频繁，请用微信扫描二维码进行访问</p><p>验证身份</p></div>'))

    def broken_html(self, query: dict[str, str]) -> None:
        """Malformed HTML: unclosed tags, stray bytes; the rows that can be read still are."""
        items = self.site.feed.visible("board")[:3]
        rows = "".join(f'<li class="msg-item"><h3><a href="/board/thread/{i.key}">{_e(i.payload["title"])}</h3><span>'
                       for i in items)
        self._send(200, b"<html><body><ul class='msg-list'>" + rows.encode() + b"\xff\xfe<<<div</ul", "text/html; charset=utf-8")


ROUTES: list[tuple[str, str]] = [
    (r"/", "index"),
    (r"/robots\.txt", "robots"),
    (r"/_admin/layout", "admin_layout"),
    (r"/_admin/reply", "admin_reply"),
    (r"/_admin/engage", "admin_engage"),
    (r"/hotline/api/workorders", "hotline"),
    (r"/mailbox/feedbacklist", "mailbox_list"),
    (r"/mailbox/feedbackshow", "mailbox_show"),
    (r"/(board|replay\w*|private)/list", "board_list"),
    (r"/(board|replay\w*|private)/thread/(\w+)", "board_thread"),
    (r"/board2/index", "board2_index"),
    (r"/board2/detail/(\w+)\.html", "board2_detail"),
    (r"/weibo/api/container/getIndex", "weibo_index"),
    (r"/weibo/statuses/longtext", "weibo_longtext"),
    (r"/weibo/statuses/show", "weibo_show"),
    (r"/wechat/mp/profile_ext", "wechat_profile"),
    (r"/wechat/s", "wechat_article"),
    (r"/wechat/mp/quota", "wechat_quota"),
    (r"/faults/list", "fault_list"),
    (r"/faults/status/(\d{3})", "fault_status"),
    (r"/faults/slow", "fault_slow"),
    (r"/faults/huge", "fault_huge"),
    (r"/faults/endless", "fault_endless"),
    (r"/faults/mislabelled", "fault_mislabelled"),
    (r"/faults/bad\.json", "fault_bad_json"),
    (r"/faults/login", "fault_login"),
    (r"/faults/broken", "broken_html"),
    (r"/login", "login_page"),
    (r"/liuyan/v1/threads/content", "liuyan_content"),
    (r"/zfwzzc/check_web/errorInfo_querySearch\.action", "zhaocuo_list"),
    (r"/zfwzzc/check_web/errorInfo_getErrorInfoList2\.action", "zhaocuo_detail"),
]
POST_ROUTES: list[tuple[str, str]] = [
    (r"/liuyan/v2/threads/search", "liuyan_search"),
]


def site_from_config(config: Any) -> DemoSite:
    """Build the site from `crawling.demo_site` (a DemoSiteConfig), resolving replay paths against the data folder."""
    from core.paths import data_dir

    replay = []
    for spec in config.replay:
        path = spec.path if spec.path.is_absolute() else data_dir() / spec.path if not spec.path.exists() else spec.path
        replay.append((spec.path_prefix, Path(path), spec.columns, spec.limit))
    return DemoSite(seed=config.seed, history=config.history_items, new_item_seconds=config.new_item_seconds,
                    incident_after_minutes=config.incident_after_minutes, incident_minutes=config.incident_minutes,
                    hotline_token=config.hotline_token.get_secret_value(), weibo_cookie=config.weibo_cookie.get_secret_value(),
                    replay=replay, reply_after_minutes=config.reply_after_minutes)


class DemoSiteWorker:
    """Runs the demo site inside `yuqing serve` (a service worker with start/stop)."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.site: DemoSite | None = None

    def start(self) -> None:
        self.site = site_from_config(self.config)
        url = self.site.start(self.config.host, self.config.port)
        logger.info("demo site serving url=%s", url)

    def stop(self) -> None:
        if self.site is not None:
            self.site.stop()
            self.site = None
