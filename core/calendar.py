"""The one working-day calendar of the product: official holidays and 调休 make-up workdays, local overrides, a
flagged Monday–Friday fallback, office hours, and deadline arithmetic (`15wd`, `5h`, `2d`).

Where a day's status comes from, in order:
1. an override file (`core/holidays/<year>.yaml` shipped, plus files named in the config) — for years the package
   does not know yet, or to correct it; the State Council publishes next year's schedule each November/December;
2. `chinese-calendar` (official schedules 2004–2026 in 1.11; raises NotImplementedError beyond);
3. Monday–Friday, logged once per year and reported as `calendar: "fallback"` on every deadline that used it.

Deadline rules (民法典 第二百零一条、第二百零三条, which the 12345, 政府信息公开 and 信访 clocks follow):
- `Nwd` (working days): the day of the start does not count; the clock ends with the Nth working day after it, at
  office closing (`day_end: office_close`, "有业务时间的，停止业务活动的时间为截止时间") or at 24:00
  (`day_end: midnight`). A start on a rest day or after hours changes nothing: counting starts the next day anyway.
- `Nd` (calendar days): the day of the start does not count; the clock ends at 24:00 of the Nth day. Holidays count.
- `Nh` (hours): start + N hours, through nights and holidays (国办发〔2016〕80号's "5小时内").
Hour and day clocks never consult the calendar, so their `calendar` is "official".
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core import yamlfile

logger = logging.getLogger(__name__)

CalendarSource = Literal["official", "override", "fallback"]
_RANK = {"official": 0, "override": 1, "fallback": 2}
HOLIDAYS_DIR = Path(__file__).with_name("holidays")

# ---- due times ------------------------------------------------------------------------------------------------

_DUE = re.compile(r"^\s*(\d{1,4})\s*(wd|h|d)\s*$", re.IGNORECASE)
DueUnit = Literal["h", "d", "wd"]


@dataclass(frozen=True)
class DueSpec:
    """A relative due time: `amount` hours, calendar days or working days."""

    amount: int
    unit: DueUnit

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    def plus(self, other: DueSpec) -> DueSpec:
        if other.unit != self.unit:
            raise ValueError(f"cannot add {other} to {self}: the units differ")
        return DueSpec(self.amount + other.amount, self.unit)


def parse_due(value: object) -> DueSpec:
    """'5h', '48h', '2d', '15wd' → DueSpec; anything else is a ValueError that says what is accepted."""
    if isinstance(value, DueSpec):
        return value
    match = _DUE.match(value) if isinstance(value, str) else None
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"cannot read due time {value!r}: write a positive whole number with h (hours), "
                         "d (calendar days) or wd (working days), e.g. 5h, 48h, 2d, 15wd")
    return DueSpec(int(match.group(1)), match.group(2).lower())  # type: ignore[arg-type]


# ---- override files -------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HolidayRange(_Strict):
    name: str = Field(min_length=1)
    start: date = Field(alias="from")
    end: date = Field(alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> HolidayRange:
        if self.end < self.start:
            raise ValueError(f"holiday {self.name!r}: `to` {self.end} is before `from` {self.start}")
        return self


class MakeupDay(_Strict):
    day: date = Field(alias="date")
    name: str = Field(min_length=1)


class OverrideYear(_Strict):
    """One year's schedule: days off (ranges, weekends inside them included) and 调休 make-up workdays."""

    year: int = Field(ge=2000, le=2200)
    source: str = Field(min_length=5)  # the notice it copies (国办发明电〔…〕…号), so a reader can check it
    holidays: list[HolidayRange] = Field(default_factory=list)
    workdays: list[MakeupDay] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> OverrideYear:
        off = self.days_off()
        for i, h in enumerate(self.holidays):
            for d in (h.start, h.end):
                if d.year != self.year:
                    raise ValueError(f"holidays[{i}] ({h.name}): {d} is not in year {self.year}")
        for i, w in enumerate(self.workdays):
            if w.day.year != self.year:
                raise ValueError(f"workdays[{i}] ({w.name}): {w.day} is not in year {self.year}")
            if w.day.weekday() < 5:
                raise ValueError(f"workdays[{i}] ({w.name}): {w.day} is a weekday; list only weekend make-up days")
            if w.day in off:
                raise ValueError(f"workdays[{i}] ({w.name}): {w.day} is also listed as a holiday")
        return self

    def days_off(self) -> set[date]:
        out: set[date] = set()
        for h in self.holidays:
            d = h.start
            while d <= h.end:
                out.add(d)
                d += timedelta(days=1)
        return out


def load_override(path: Path) -> OverrideYear:
    """Read and validate one override file; errors name the file and the field."""
    from core.errors import ConfigError

    try:
        data = yamlfile.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read calendar override: {exc}") from exc
    try:
        return OverrideYear.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: invalid calendar override: {problems}",
                          errors=[{"loc": [str(path), *map(str, e["loc"])], "msg": e["msg"]} for e in exc.errors()]) from exc


# ---- the calendar ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    """A computed due moment, where its working days came from, and which working days were counted."""

    start: datetime
    spec: DueSpec
    due: datetime
    calendar: CalendarSource
    working_days: tuple[date, ...] = ()

    def public(self) -> dict:
        return {"start": self.start.isoformat(), "due_spec": str(self.spec), "due": self.due.isoformat(),
                "calendar": self.calendar, "working_days": [d.isoformat() for d in self.working_days]}


def weakest(*sources: CalendarSource) -> CalendarSource:
    return max(sources, key=_RANK.__getitem__) if sources else "official"


@dataclass
class WorkCalendar:
    """Working days and office hours in one time zone; cheap to query (each day is looked up once)."""

    overrides: dict[int, OverrideYear] = field(default_factory=dict)
    timezone: str = "Asia/Shanghai"
    office_open: time = time(9, 0)
    office_close: time = time(17, 0)
    day_end: Literal["office_close", "midnight"] = "office_close"

    def __post_init__(self) -> None:
        self.zone = ZoneInfo(self.timezone)
        self._days: dict[date, tuple[bool, CalendarSource]] = {}
        self._off = {y: o.days_off() for y, o in self.overrides.items()}
        self._on = {y: {w.day for w in o.workdays} for y, o in self.overrides.items()}
        self.fallback_years: set[int] = set()
        self._lock = threading.Lock()
        self._nth = lru_cache(maxsize=65536)(self._nth_uncached)

    @classmethod
    def from_files(cls, paths: list[Path] | None = None, **kw: object) -> WorkCalendar:
        """The shipped override files plus `paths` (later files win for the same year)."""
        files = sorted(HOLIDAYS_DIR.glob("*.yaml")) + list(paths or [])
        overrides = {}
        for path in files:
            year = load_override(Path(path))
            overrides[year.year] = year
        return cls(overrides=overrides, **kw)  # type: ignore[arg-type]

    # ---- days --------------------------------------------------------------------------------------------

    def day(self, day: date) -> tuple[bool, CalendarSource]:
        """(is a working day, where that came from)."""
        found = self._days.get(day)
        if found is not None:
            return found
        if day.year in self.overrides:
            found = (day in self._on[day.year] or (day.weekday() < 5 and day not in self._off[day.year]), "override")
        else:
            try:
                import chinese_calendar

                found = (bool(chinese_calendar.is_workday(day)), "official")
            except NotImplementedError:
                with self._lock:
                    if day.year not in self.fallback_years:
                        self.fallback_years.add(day.year)
                        logger.warning("calendar has no official schedule or override for year=%d; counting "
                                       "Monday-Friday as working days (deadlines are flagged 'fallback')", day.year)
                found = (day.weekday() < 5, "fallback")
        self._days[day] = found
        return found

    def is_workday(self, day: date) -> bool:
        return self.day(day)[0]

    def is_office_hours(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        return self.is_workday(local.date()) and self.office_open <= local.time().replace(tzinfo=None) < self.office_close

    def _day_end(self, day: date) -> datetime:
        if self.day_end == "midnight":
            return datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
        return datetime.combine(day, self.office_close, tzinfo=self.zone)

    def _nth_uncached(self, after: date, n: int) -> tuple[tuple[date, ...], CalendarSource]:
        days: list[date] = []
        source: CalendarSource = "official"
        d = after
        limit = after + timedelta(days=n * 7 + 60)  # no real schedule has a gap this long; guards a broken override
        while len(days) < n:
            d += timedelta(days=1)
            if d > limit:
                raise ValueError(f"no {n} working days found after {after} within {limit - after}")
            working, origin = self.day(d)
            source = weakest(source, origin)
            if working:
                days.append(d)
        return tuple(days), source

    # ---- deadlines -----------------------------------------------------------------------------------------

    def aware(self, moment: datetime) -> datetime:
        return moment.replace(tzinfo=self.zone) if moment.tzinfo is None else moment

    def deadline(self, start: datetime, due: DueSpec | str) -> Deadline:
        """When a clock of `due` started at `start` runs out (see the module docstring for the rules)."""
        spec = parse_due(due)
        start = self.aware(start)
        local = start.astimezone(self.zone)
        if spec.unit == "h":
            return Deadline(start, spec, (start + timedelta(hours=spec.amount)).astimezone(self.zone), "official")
        if spec.unit == "d":
            end = datetime.combine(local.date() + timedelta(days=spec.amount + 1), time(0), tzinfo=self.zone)
            return Deadline(start, spec, end, "official")
        days, source = self._nth(local.date(), spec.amount)
        return Deadline(start, spec, self._day_end(days[-1]), source, days)

    def warning_time(self, deadline: Deadline, *, before_hours: timedelta = timedelta(hours=1),
                     before_working_days: int = 1) -> datetime:
        """When to warn: `before_working_days` working days before a working-day deadline (same time of day, on
        the earlier working day), `before_hours` before other clocks; never before the clock started."""
        if deadline.spec.unit == "wd" and before_working_days > 0:
            counted = deadline.working_days
            at = self._day_end(counted[-1 - before_working_days]) if len(counted) > before_working_days else deadline.start
        else:
            at = deadline.due - before_hours
        return max(at, deadline.start)

    def working_days_between(self, start: datetime, end: datetime) -> tuple[int, CalendarSource]:
        """Working days after the day of `start` up to and including the day of `end` (0 on the same day): a reply
        on the 15th working day after receipt counts 15, so "within 15 working days" is `count <= 15`."""
        first = self.aware(start).astimezone(self.zone).date()
        last = self.aware(end).astimezone(self.zone).date()
        n = 0
        source: CalendarSource = "official"
        d = first
        while d < last:
            d += timedelta(days=1)
            working, origin = self.day(d)
            source = weakest(source, origin)
            n += working
        return n, source


_default: WorkCalendar | None = None
_default_lock = threading.Lock()


def default_calendar() -> WorkCalendar:
    """The process's calendar: set by `configure` from the config, else the shipped overrides and defaults."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = WorkCalendar.from_files()
    return _default


def configure(calendar: WorkCalendar) -> None:
    """Make `calendar` the one every module uses (the service does this once from the config)."""
    global _default
    _default = calendar
