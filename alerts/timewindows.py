"""Named time windows (working hours, weekends, rest days) evaluated against the product's working-day calendar.

Working days come from `core.calendar` (official schedule with 调休, local override files, then a flagged
Monday–Friday fallback that logs a warning once per year), so alerts and plan deadlines agree on every date.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from core.calendar import default_calendar
from core.config_alerts import TimeInterval

logger = logging.getLogger(__name__)


class _FallbackYears:
    """Years for which the weekday fallback was used (shown by the API); a view of the calendar's own record."""

    def __contains__(self, year: object) -> bool:
        return year in default_calendar().fallback_years

    def __iter__(self):  # noqa: ANN204
        return iter(sorted(default_calendar().fallback_years))


fallback_years = _FallbackYears()


def is_workday(day: date) -> bool:
    """Official working day (调休 included), an override file's, or Monday–Friday (flagged) for unknown years."""
    return default_calendar().is_workday(day)


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
