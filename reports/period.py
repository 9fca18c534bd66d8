"""Report periods: a day, or a Monday-to-Sunday week, in the reports' time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from core.errors import InputError

Kind = Literal["daily", "weekly"]
KINDS: tuple[Kind, ...] = ("daily", "weekly")
KIND_ZH = {"daily": "日报", "weekly": "周报"}
FIRST_DAY, LAST_DAY = date(1990, 1, 1), date(2199, 12, 31)  # a report's date: neither before the web nor past reason


@dataclass(frozen=True)
class Period:
    """[start, end) of one report, local midnight to local midnight; `key` (its first day) names it."""

    kind: Kind
    first_day: date
    zone: ZoneInfo

    @property
    def days(self) -> int:
        return 1 if self.kind == "daily" else 7

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time(0), self.zone)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.first_day + timedelta(days=self.days), time(0), self.zone)

    @property
    def key(self) -> str:
        return self.first_day.isoformat()

    @property
    def label(self) -> str:
        """How the report names its period, e.g. 2026年12月5日 or 2026年11月30日—12月6日."""
        first = self.first_day
        if self.kind == "daily":
            return f"{first.year}年{first.month}月{first.day}日"
        last = first + timedelta(days=6)
        tail = f"{last.month}月{last.day}日" if last.year == first.year else f"{last.year}年{last.month}月{last.day}日"
        return f"{first.year}年{first.month}月{first.day}日—{tail}"

    def previous(self) -> Period:
        return Period(self.kind, self.first_day - timedelta(days=self.days), self.zone)

    def complete_at(self, moment: datetime) -> bool:
        """Whether the period is over at `moment` (a report made then covers all of it)."""
        return moment >= self.end


def period_of(kind: str, day: date, zone: ZoneInfo) -> Period:
    """The period of `kind` that holds `day` (a week starts on Monday)."""
    if kind not in KINDS:
        raise InputError(f"unknown report kind {kind!r}; kinds: daily, weekly",
                         errors=[{"loc": ["path", "kind"], "msg": "daily or weekly"}])
    first = day if kind == "daily" else day - timedelta(days=day.weekday())
    return Period(kind, first, zone)  # type: ignore[arg-type]


def latest_complete(kind: str, now: datetime, zone: ZoneInfo) -> Period:
    """The last period of `kind` that is over at `now`: yesterday, or last week."""
    today = now.astimezone(zone).date()
    current = period_of(kind, today, zone)
    return current.previous()


def parse_day(value: str | None, kind: str, now: datetime, zone: ZoneInfo) -> Period:
    """`YYYY-MM-DD` → its period; none → the latest complete one. A bad date is an InputError naming `date`."""
    if value in (None, ""):
        return latest_complete(kind, now, zone)
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise InputError(f"date must be YYYY-MM-DD, got {value!r}",
                         errors=[{"loc": ["query", "date"], "msg": "YYYY-MM-DD"}]) from exc
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InputError(f"date must be between {FIRST_DAY} and {LAST_DAY}, got {value}",
                         errors=[{"loc": ["query", "date"], "msg": "out of range"}])
    return period_of(kind, day, zone)
