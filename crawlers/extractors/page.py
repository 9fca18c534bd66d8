"""Checks every page goes through before parsing: the real encoding and whether it is a login wall."""

from __future__ import annotations

import re

from charset_normalizer import from_bytes

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


def login_wall(url: str, text: str, markers: list[str], redirected_from: list[str] | None = None) -> str | None:
    """Why this page is a login or anti-crawl wall rather than content, or None."""
    lowered_url = url.lower()
    for marker in markers:
        if marker.startswith("/") or "." in marker:
            if marker.lower() in lowered_url:
                return f"redirected to a login page ({url})" if redirected_from else f"login page ({url})"
        elif marker in text[:20_000]:
            return f"page says {marker!r}"
    return None
