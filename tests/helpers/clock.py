"""Times relative to the real clock, for tests whose items must pass the alert rules' `max_age` (7 days by default)
on whatever day the suite runs: a fixed date in them stops raising alerts a week after it was written."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.models import SHANGHAI


def recent(hours: float = 6) -> str:
    """`hours` before now, in Beijing time, as a collector writes it ("2026-12-01 09:00")."""
    return (datetime.now(SHANGHAI) - timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M")
