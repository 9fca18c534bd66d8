"""Checks every page goes through before parsing: the real encoding and whether it is a login wall."""

from __future__ import annotations

import re

import lxml.html
from charset_normalizer import from_bytes
from lxml import etree

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w-]+)""", re.I)
# Chinese sites label GBK pages as GB2312 or leave them unlabelled; GB18030 is the superset that reads them all.
_CHINESE = {"gbk", "gb2312", "gb18030", "cp936", "x-gbk", "hz-gb-2312"}


def _superset(name: str) -> str:
    name = name.lower()
    return "gb18030" if name in _CHINESE else name


def declared_encoding(content_type: str | None, body: bytes) -> str | None:
    """The charset from the Content-Type header, else from a <meta> tag in the first 4 KB."""
    if content_type and (m := re.search(r"charset=([\w-]+)", content_type, re.I)):
        return m.group(1)
    if m := _META_CHARSET.search(body[:4096]):
        return m.group(1).decode("ascii", "replace")
    return None


def decode_page(body: bytes, content_type: str | None = None, forced: str | None = None) -> tuple[str, str, bool]:
    """Decode a page: forced encoding, else the declared one when it decodes cleanly, else a detected one.

    Returns (text, encoding used, whether the declared label was wrong). A wrong label is common (GBK bytes
    served as UTF-8); decoding with replacement characters would silently corrupt every field.
    """
    if forced:
        return body.decode(_superset(forced), errors="replace"), forced, False
    declared = declared_encoding(content_type, body)
    candidates = [_superset(declared)] if declared else []
    candidates += [c for c in ("utf-8", "gb18030") if c not in candidates]
    for index, encoding in enumerate(candidates):
        try:
            return body.decode(encoding), encoding, bool(declared) and index > 0
        except (UnicodeDecodeError, LookupError):
            continue
    guess = from_bytes(body[:200_000]).best()
    encoding = _superset(guess.encoding) if guess else "gb18030"
    return body.decode(encoding, errors="replace"), encoding, True


# A login or anti-crawl page says little: markers count on the page's structure only when its visible text is short.
# Spiders ask only about pages that gave none of their fields, so a letter or a reply that mentions "请登录一网通办"
# (or a site-wide login box) never makes a page a wall.
SHORT_PAGE_CHARS = 600


def _structure(text: str) -> tuple[str, list[str], str, bool, int]:
    """(title, headings, script text, has a password field, visible text length) of an HTML page."""
    try:
        root = lxml.html.fromstring(text[:300_000])
    except (etree.ParserError, ValueError):
        return "", [], "", False, len(text)
    title = " ".join(root.xpath("string(//title)").split())
    headings = [" ".join(h.text_content().split()) for h in root.xpath(
        "//h1|//h2|//h3|//*[contains(@class,'title') or contains(@class,'msg') or contains(@class,'tips')]")]
    scripts = " ".join(root.xpath("//script/text()"))
    password = bool(root.xpath("//input[translate(@type,'PASWORD','pasword')='password']"))
    for node in root.xpath("//script|//style|//noscript"):
        node.drop_tree()
    visible = len("".join(root.text_content().split()))
    return title, headings, scripts, password, visible


def login_wall(url: str, text: str, markers: list[str], redirected_from: list[str] | None = None) -> str | None:
    """Why this page is a login or anti-crawl wall rather than content, or None.

    Markers with "/" or "." are looked for in the URL (a redirect to `/login`, `passport.weibo`); the others in the
    page's structure — its <title>, headings and scripts (JS-rendered interstitials) — and a password field counts
    too, but only on a short page: never in the body text of a letter, which may quote them. Spiders call it with
    the page's text only when the page gave none of its fields (the URL alone is checked on every page).
    """
    lowered_url = url.lower()
    url_markers = [m for m in markers if m.startswith("/") or "." in m]
    for marker in url_markers:
        if marker.lower() in lowered_url:
            return f"redirected to a login page ({url})" if redirected_from else f"login page ({url})"
    text_markers = [m for m in markers if m not in url_markers]
    if not text.strip() or "<" not in text:
        return None
    title, headings, scripts, password, visible = _structure(text)
    if visible > SHORT_PAGE_CHARS:
        return None
    if password and visible < SHORT_PAGE_CHARS // 3:
        return "page is a login form (password field)"
    for marker in text_markers:
        if marker in title:
            return f"page title says {marker!r}"
        if any(marker in h for h in headings):
            return f"page heading says {marker!r}"
        if marker in scripts:
            return f"page script shows {marker!r}"
    return None
