"""Shared by the playbooks tests: the harness's start time (a Tuesday in March 2026, 10:00 in Shanghai)."""

from datetime import UTC, datetime

T0 = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
