"""WeChat 公众号 profile pages (`var msgList`), getmsg JSON and article pages (`rich_media_content`) → payloads."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

from parsel import Selector

from core.errors import ExtractionError

_MSGLIST = re.compile(r"var\s+msgList\s*=\s*'?(\{.*?\})'?\s*;\s*\n", re.S)
_CONTINUE = re.compile(r"can_msg_continue\s*=\s*'?(\d)'?")
_OFFSET = re.compile(r"next_offset\s*=\s*'?(\d+)'?")


def _js_var(text: str, name: str) -> str | None:
    """A `var name = "" || "value"` assignment as real article pages write it (quotes and fallbacks vary)."""
    m = re.search(rf"var\s+{name}\s*=\s*([^;\n]+)", text)
    if not m:
        return None
    values = [a or b for a, b in re.findall(r'"([^"]*)"|\'([^\']*)\'', m.group(1))]
    values = [v for v in values if v]
    return values[-1] if values else None


def _articles(msg_list: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for entry in msg_list.get("list") or []:
        info = entry.get("comm_msg_info") or {}
        ext = entry.get("app_msg_ext_info") or {}
        for article in [ext, *(ext.get("multi_app_msg_item_list") or [])]:
            url = unescape(article.get("content_url") or "")
            if url:
                out.append({"url": url, "title": article.get("title", ""), "datetime": info.get("datetime")})
    return out


def parse_profile(text: str) -> tuple[list[dict[str, Any]], bool, int | None]:
    """Articles listed on a profile page, whether more can be loaded, and the next offset."""
    m = _MSGLIST.search(text)
    if not m:
        raise ExtractionError("profile page has no msgList (changed page or anti-crawl page)")
    raw = unescape(m.group(1)) if m.group(1).startswith("{&quot;") else m.group(1)
    try:
        msg_list = json.loads(raw)
    except ValueError as exc:
        raise ExtractionError(f"profile msgList is not valid JSON: {exc}") from exc
    more = (c := _CONTINUE.search(text)) is not None and c.group(1) == "1"
    offset = int(o.group(1)) if (o := _OFFSET.search(text)) else None
    return _articles(msg_list), more, offset


def parse_getmsg(body: bytes | str) -> tuple[list[dict[str, Any]], bool, int | None]:
    try:
        data = json.loads(body)
        if data.get("ret") != 0:
            raise ExtractionError(f"getmsg refused: ret={data.get('ret')} {data.get('errmsg', '')}")
        msg_list = json.loads(data["general_msg_list"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ExtractionError(f"getmsg response not understood: {exc}") from exc
    return _articles(msg_list), bool(data.get("can_msg_continue")), data.get("next_offset")


def article_payload(text: str, url: str) -> dict[str, Any]:
    """An article page as an item payload; the publish time comes from `var ct` (the visible one is filled by JS)."""
    page = Selector(text=text)
    content_node = page.css("#js_content, .rich_media_content")
    if not content_node:
        raise ExtractionError("article page has no rich_media_content (deleted, blocked or changed page)")
    paragraphs = [t.strip() for t in content_node[0].xpath(".//text()").getall() if t.strip()]
    title_node = page.css("#activity-name") or page.css(".rich_media_title")
    title = " ".join(t.strip() for t in title_node[:1].css("::text").getall() if t.strip())
    published = _js_var(text, "ct") or page.css("#publish_time::text").get("").strip()
    if not published:
        raise ExtractionError("article page has no publish time (var ct)")
    account = " ".join(t.strip() for t in page.css("#js_name ::text").getall() if t.strip()) or _js_var(text, "nickname")
    mid, idx = _js_var(text, "mid"), _js_var(text, "idx")
    biz = _js_var(text, "biz")
    payload: dict[str, Any] = {
        "source_id": f"{biz}:{mid}:{idx}" if biz and mid else url,
        "url": url,
        "title": title or unescape(_js_var(text, "msg_title") or ""),
        "content": "\n".join(paragraphs),
        "author": account,
        "published_at": int(published) if published.isdigit() else published,
        "account": account,
    }
    if (reads := _js_var(text, "read_num")) and reads.isdigit():
        payload["reads"] = int(reads)
    if (likes := _js_var(text, "like_num")) and likes.isdigit():
        payload["likes"] = int(likes)
    return payload
