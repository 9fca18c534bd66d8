"""The `reports:` section of yuqing.yaml: 舆情日报 and 周报 — when they are made (Asia/Shanghai by default), who gets
them by e-mail (alert receivers with an e-mail integration), how links are written and how much each lists."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from core.config_base import Strict

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class DailySchedule(Strict):
    """The daily report of the day before is made (and sent) every day at `at`."""

    enabled: bool = True
    at: time = time(8, 0)


class WeeklySchedule(Strict):
    """The weekly report of the week before (Monday–Sunday) is made on `weekday` at `at`."""

    enabled: bool = True
    weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    at: time = time(8, 30)


class ReportsConfig(Strict):
    """Root of the `reports:` section."""

    enabled: bool = True
    title: str = Field("舆情", min_length=1, max_length=40)  # 「{title}日报」, e.g. 江城市舆情
    timezone: str = "Asia/Shanghai"  # what a day and a week are, and when the schedule fires
    schedule: bool = True  # false: reports are made on demand only (API, CLI)
    daily: DailySchedule = Field(default_factory=DailySchedule)
    weekly: WeeklySchedule = Field(default_factory=WeeklySchedule)
    receivers: list[str] = Field(default_factory=list)  # alert receivers (with `email`) sent each scheduled report
    base_url: str | None = None  # links as {base_url}/items/{id}; none: relative links (/items/{id})
    top_items: int = Field(10, ge=1, le=100)  # riskiest items listed
    top_events: int = Field(10, ge=1, le=100)  # hot events listed
    links_per_statement: int = Field(5, ge=1, le=50)  # items linked under one statement
    font_path: Path | None = None  # a CJK TrueType/TTC font for the PDF; none: WenQuanYi Zen Hei or Noto CJK, found

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (IANA name, e.g. Asia/Shanghai)") from exc
        return value

    @field_validator("base_url")
    @classmethod
    def _base(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    @field_validator("receivers")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        dupes = sorted({v for v in value if value.count(v) > 1})
        if dupes:
            raise ValueError(f"receivers listed twice: {dupes}")
        return value
