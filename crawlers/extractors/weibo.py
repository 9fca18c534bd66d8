"""Weibo mobile API (`cards[].mblog`, search `card_group`, longtext) → item payloads."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

from core.errors import ExtractionError

_TAG = re.compile(r"<[^>]+>")
_BR = re.compile(r"<br\s*/?>", re.I)


def text_of(html_text: str) -> str:
    """Weibo's HTML `text` as plain text: line breaks kept, links and icons reduced to their words."""
    return unescape(_TAG.sub("", _BR.sub("\n", html_text or ""))).strip()


class LoginRequired(ExtractionError):
    """The API answered with its login redirect (`ok: -100`): the cookie is missing or expired."""


def parse_json(body: bytes | str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ExtractionError(f"Weibo API returned malformed JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ExtractionError("Weibo API returned JSON that is not an object")
    if data.get("ok") == -100:
        raise LoginRequired(f"Weibo asks for login ({data.get('url', 'no url')}): cookie missing or expired")
    return data


def mblogs(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every post on a getIndex page, whether cards are flat (timelines) or grouped (search)."""
    cards = (data.get("data") or {}).get("cards") or []
    out = []
    for card in cards:
        if not isinstance(card, dict):
            continue
        if isinstance(card.get("mblog"), dict):
            out.append(card["mblog"])
        for sub in card.get("card_group") or []:
            if isinstance(sub, dict) and isinstance(sub.get("mblog"), dict):
                out.append(sub["mblog"])
    return out


def next_since_id(data: dict[str, Any]) -> str | None:
    info = (data.get("data") or {}).get("cardlistInfo") or {}
    since = info.get("since_id")
    return str(since) if since else None


def mblog_payload(mblog: dict[str, Any], base_url: str) -> dict[str, Any]:
    """A post as an item payload; a long post's text is completed later from the longtext API."""
    if not mblog.get("id") or not mblog.get("created_at"):
        raise ExtractionError("Weibo post without id or created_at")
    user = mblog.get("user") or {}
    return {
        "source_id": str(mblog["id"]),
        "url": f"{base_url.rstrip('/')}/detail/{mblog['id']}",
        "title": "",
        "content": text_of(mblog.get("text", "")),
        "author": user.get("screen_name"),
        "published_at": mblog["created_at"],
        "reposts": mblog.get("reposts_count", 0),
        "comments": mblog.get("comments_count", 0),
        "likes": mblog.get("attitudes_count", 0),
        "user_id": str(user.get("id", "")),
        "followers": user.get("followers_count"),
        "verified": user.get("verified"),
        "is_long_text": bool(mblog.get("isLongText")),
    }


def long_text(body: bytes | str) -> str:
    data = parse_json(body)
    content = (data.get("data") or {}).get("longTextContent")
    if not content:
        raise ExtractionError("Weibo longtext response without longTextContent")
    return text_of(content)
