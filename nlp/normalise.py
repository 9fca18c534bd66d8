"""Pure text and time normalisation for crawled and imported input."""

from __future__ import annotations

import html
import re
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from email.utils import parsedate_to_datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")

_TAG = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>|<!--.*?-->|<[^>]{0,2000}>", re.IGNORECASE | re.DOTALL)
_BLOCK = re.compile(r"<\s*(br|/p|/div|/li|/h\d|/tr)\b[^>]*>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\u3000\xa0\u200b\ufeff]+")
_NEWLINES = re.compile(r"\s*\n\s*")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# Full-width digits and Latin letters → ASCII, the ideographic space → a space: one C-level `str.translate` (the
# per-character Python loop it replaces cost ~1.5 µs per 100 characters, the largest cost of normalising an item),
# and only when the text holds one of them (a character-class search; most texts hold none).
_HALFWIDTH = {code: code - 0xFEE0 for lo, hi in ((0xFF10, 0xFF19), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A))
              for code in range(lo, hi + 1)} | {0x3000: 0x20}
_FULLWIDTH = re.compile("[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a\u3000]")


def to_halfwidth(text: str) -> str:
    """Full-width ASCII letters, digits and space to half-width; Chinese punctuation is kept (it carries meaning)."""
    if _FULLWIDTH.search(text) is None:
        return text
    return text.translate(_HALFWIDTH)


# Every character one of the steps after the HTML ones would change (`_CONTROL`, a carriage return, `_FULLWIDTH`,
# `_SPACES` but the plain space, a line feed for `_NEWLINES`): a text without one, and without two spaces in a row,
# comes out of them as it went in, stripped. One search instead of four passes (most texts need none of them).
_UNCLEAN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\r\n\t\xa0\u200b\ufeff\u3000\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")


def clean_text(text: str | None) -> str:
    """Strip HTML, unescape entities, drop control characters, collapse whitespace (keeping paragraph breaks)."""
    if not text:
        return ""
    text = unicodedata.normalize("NFC", str(text))
    if "<" in text:
        text = _BLOCK.sub("\n", text)
        text = _TAG.sub("", text)
    if "&" in text:
        text = html.unescape(text)
    if "  " not in text and _UNCLEAN.search(text) is None:
        return text.strip()
    text = _CONTROL.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    text = to_halfwidth(text)
    text = _SPACES.sub(" ", text)
    text = _NEWLINES.sub("\n", text)
    return text.strip()


class TimeParseError(ValueError):
    """A time string matched none of the known formats."""


_RELATIVE = re.compile(r"^(\d+)\s*(秒|分钟|分|小时|天|周|个月|月)前$")
_DAYWORD = re.compile(r"^(今天|昨天|前天)\s*(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_FULL = re.compile(
    r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:[\sT]*(\d{1,2})\s*[:时]\s*(\d{1,2})\s*(?:[:分]\s*(\d{1,2})(?:\.(\d+))?\s*秒?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$"
)
_EPOCH = re.compile(r"\d{10}(\.\d+)?|\d{13}")
_MONTHDAY = re.compile(r"^(\d{1,2})\s*[-/月]\s*(\d{1,2})\s*日?(?:\s+(\d{1,2}):(\d{2}))?$")
_UNITS = {"秒": "seconds", "分钟": "minutes", "分": "minutes", "小时": "hours", "天": "days", "周": "weeks"}


@lru_cache(maxsize=256)
def _offset(text: str) -> tzinfo:
    """The zone of an explicit offset ("+08:00"), one object per spelling: a timezone is immutable, and a new one per
    parsed time cost 2.5 µs an item and, on an import, pickling each apart to the writer (one shared object is sent
    once per batch)."""
    if text == "Z":
        return UTC
    sign = 1 if text[0] == "+" else -1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def parse_time(value: object, *, now: datetime | None = None, tz: tzinfo = SHANGHAI) -> datetime:
    """Parse the time formats Chinese sites use into an aware datetime (naive input is read in `tz`).

    Handles 刚刚, N分钟前/小时前/天前, 今天/昨天/前天 HH:MM, 2019/1/3 8:05, 2019年1月3日, ISO 8601,
    Weibo's `Thu Nov 26 10:00:00 +0800 2026`, 01-03 08:05 (this year) and Unix seconds or milliseconds.
    """
    now = (now or datetime.now(tz)).astimezone(tz)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=tz)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_epoch(float(value), tz)
    if not isinstance(value, str):
        raise TimeParseError(f"cannot read a time from {type(value).__name__}")
    text = unicodedata.normalize("NFKC", value).strip()
    if not text:
        raise TimeParseError("empty time")
    # the common form first: no text another branch reads matches it (they begin with no year and a separator)
    if m := _FULL.match(text):
        year, month, day, hour, minute, second, frac, off = m.groups()
        micro = int((frac or "0")[:6].ljust(6, "0"))
        zone = _offset(off) if off else tz
        try:
            parsed = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro,
                              tzinfo=zone)
        except ValueError as exc:
            raise TimeParseError(f"invalid date {value!r}: {exc}") from exc
        return parsed
    if text in ("刚刚", "刚才"):
        return now
    if m := _RELATIVE.match(text):
        amount, unit = int(m.group(1)), m.group(2)
        if unit in ("个月", "月"):
            return now - timedelta(days=30 * amount)
        return now - timedelta(**{_UNITS[unit]: amount})
    if m := _DAYWORD.match(text):
        back = {"今天": 0, "昨天": 1, "前天": 2}[m.group(1)]
        day = (now - timedelta(days=back)).date()
        return datetime(day.year, day.month, day.day, int(m.group(2)), int(m.group(3)), int(m.group(4) or 0), tzinfo=tz)
    if _EPOCH.fullmatch(text):
        return _from_epoch(float(text), tz)
    if m := _MONTHDAY.match(text):
        month, day, hour, minute = m.groups()
        try:
            parsed = datetime(now.year, int(month), int(day), int(hour or 0), int(minute or 0), tzinfo=tz)
        except ValueError as exc:
            raise TimeParseError(f"invalid date {value!r}: {exc}") from exc
        # A month-day later than today belongs to last year (sites omit the year for the current one).
        return parsed.replace(year=now.year - 1) if parsed > now + timedelta(days=1) else parsed
    try:
        parsed = datetime.strptime(text, "%a %b %d %H:%M:%S %z %Y")
        return parsed
    except ValueError:
        pass
    try:
        parsed = parsedate_to_datetime(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)
    except (TypeError, ValueError, IndexError):
        pass
    raise TimeParseError(f"unrecognised time format: {value!r}")


def _from_epoch(seconds: float, tz: tzinfo) -> datetime:
    if seconds > 1e12:
        seconds /= 1000.0
    if not 0 < seconds < 4e9:
        raise TimeParseError(f"timestamp out of range: {seconds}")
    return datetime.fromtimestamp(seconds, tz)
