"""Named time windows (working hours, weekends, rest days) evaluated against the official Chinese calendar.

`chinese-calendar` knows holidays and 调休 make-up workdays only for the years it ships (2004–2026 in 1.11);
for other years we fall back to Monday–Friday and log a visible warning once per year, so nobody mistakes a
guessed working day for an official one.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from core.config_alerts import TimeInterval

logger = logging.getLogger(__name__)

_warned_years: set[int] = set()
fallback_years: set[int] = set()  # years for which the weekday fallback was used (shown by the API)


@lru_cache(maxsize=4096)
def is_workday(day: date) -> bool:
    """Official working day (调休 included) where the calendar knows the year, else Monday–Friday with a warning."""
    try:
        import chinese_calendar

        return bool(chinese_calendar.is_workday(day))
    except (NotImplementedError, ImportError):
        fallback_years.add(day.year)
        if day.year not in _warned_years:
            _warned_years.add(day.year)
            logger.warning("workday calendar has no official schedule for year=%d; using Monday-Friday as working days",
                           day.year)
        return day.weekday() < 5


def in_interval(interval: TimeInterval, moment: datetime) -> bool:
    """Whether `moment` falls inside the window (weekday, workday and time-of-day conditions all hold)."""
    local = moment.astimezone(ZoneInfo(interval.timezone))
    if interval.weekdays is not None and local.isoweekday() not in interval.weekdays:
        return False
    if interval.workdays is not None and is_workday(local.date()) != interval.workdays:
        return False
    if not interval.times:
        return True
    clock = local.time().replace(tzinfo=None)
    return any(r.start <= clock < r.end for r in interval.times)


def next_change(predicate, moment: datetime, *, step: timedelta = timedelta(minutes=1),  # noqa: ANN001
                horizon: timedelta = timedelta(days=15)) -> datetime | None:
    """The first minute after `moment` at which `predicate(t)` differs from now; None within the horizon.

    A linear scan in one-minute steps (≈ 21,600 checks over 15 days) is cheap next to a network send and exact
    for windows given to the minute.
    """
    current = predicate(moment)
    start = moment.replace(second=0, microsecond=0) + step
    t = start
    while t - moment <= horizon:
        if predicate(t) != current:
            return t
        t += step
    return None
