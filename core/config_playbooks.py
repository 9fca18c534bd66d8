"""The `calendar:` and `playbooks:` sections of yuqing.yaml: working days and office hours, response plans (预案),
the roles that carry them out and sign statements off, and how plan clocks warn."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from core.config_alerts import Duration
from core.config_base import Strict


class CalendarConfig(Strict):
    """One working-day calendar for the product (core/calendar.py); `overrides` add years the package lacks."""

    timezone: str = "Asia/Shanghai"
    office_open: time = time(9, 0)
    office_close: time = time(17, 0)
    day_end: Literal["office_close", "midnight"] = "office_close"  # when the last working day of a clock ends
    overrides: list[Path] = Field(default_factory=list)  # extra YYYY.yaml files (format: core/holidays/README.md)

    @model_validator(mode="after")
    def _hours(self) -> CalendarConfig:
        if self.office_close <= self.office_open:
            raise ValueError("office_close must be after office_open")
        return self


class RoleConfig(Strict):
    """Who carries out a step or signs off: `receiver` is the alerts receiver told about its clocks; `members`
    are the people holding the role (approvals and step changes by anyone else are refused)."""

    name: str = ""  # what users read, e.g. 新闻发言人
    receiver: str | None = None
    members: list[str] = Field(default_factory=list)


def _default_roles() -> dict[str, RoleConfig]:
    return {
        "duty_office": RoleConfig(name="值班室"),
        "press_office": RoleConfig(name="新闻办（宣传部门）"),
        "responsible_department": RoleConfig(name="涉事责任部门"),
        "handling_unit": RoleConfig(name="承办单位"),
        "hotline_center": RoleConfig(name="12345 热线中心"),
        "disclosure_office": RoleConfig(name="政府信息公开工作机构"),
        "petition_office": RoleConfig(name="信访工作机构"),
        "drafter": RoleConfig(name="口径起草人"),
        "reviewer": RoleConfig(name="审核人"),
        "leader": RoleConfig(name="分管领导"),
    }


class PlaybooksConfig(Strict):
    """Response plans: loaded from `dir` (default: the shipped playbooks/plans/) and checked against these roles
    and the alert rules; clocks warn `warn_before` (hour/day clocks) or `warn_before_working_days` ahead."""

    enabled: bool = True
    dir: Path | None = None
    roles: dict[str, RoleConfig] = Field(default_factory=_default_roles)
    # A role with no `members` accepts any named actor for step work (installations without accounts); signing —
    # drafting or approving a statement, granting an extension, cancelling a run — always needs a listed member.
    open_roles: bool = True
    auto_start: bool = True
    warn_before: Duration = timedelta(hours=1)
    warn_before_working_days: int = Field(1, ge=0, le=30)
    clock_interval: Duration = timedelta(seconds=30)
    max_evidence_bytes: int = Field(5 * 1024 * 1024, ge=1, le=200 * 1024 * 1024)
    max_text_chars: int = Field(20_000, ge=1, le=1_000_000)
    four_eyes: bool = True  # nobody approves a statement they drafted or already approved in the same round

    @field_validator("roles")
    @classmethod
    def _role_ids(cls, value: dict[str, RoleConfig]) -> dict[str, RoleConfig]:
        for key in value:
            if not key.replace("_", "").isalnum() or not key.isascii():
                raise ValueError(f"role id {key!r} must be ASCII letters, digits and underscores")
        return value
