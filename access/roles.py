"""Roles and the authenticated caller (`Principal`) every guarded route receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from core.config_access import ROLES


class Role(StrEnum):
    """What a caller is for; a route names the roles it admits (admin is admitted everywhere a person is)."""

    press_office = "press_office"  # risk feed, events, reports
    staff = "staff"  # their alerts and plan steps
    manager = "manager"  # everything read-only, plus reviews
    admin = "admin"  # config, users, sources, silences
    ingest = "ingest"  # a machine: may only push records to named sources


assert tuple(Role) == ROLES  # one list of role names (the config validates against it without importing this module)

# Route groups, so routers say what they are for rather than list roles one by one.
READERS = frozenset({Role.press_office, Role.staff, Role.manager, Role.admin})  # people: alerts, an alert's item, pages
FEED = frozenset({Role.press_office, Role.manager, Role.admin})  # the whole feed, events, trends, sources
RESPONDERS = frozenset({Role.press_office, Role.staff, Role.admin})  # act on alerts (ack, resolve)
REVIEWERS = frozenset({Role.manager, Role.admin})
ADMINS = frozenset({Role.admin})
INGESTERS = frozenset({Role.ingest, Role.admin})


def parse_roles(names: list[str] | tuple[str, ...] | str) -> frozenset[Role]:
    """Role names → roles; an unknown name is a ValueError naming it and the valid ones."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        raise ValueError(f"at least one role is required; roles are {[r.value for r in Role]}")
    unknown = [n for n in names if n not in Role.__members__]
    if unknown:
        raise ValueError(f"unknown role(s) {unknown}; roles are {[r.value for r in Role]}")
    return frozenset(Role(n) for n in names)


@dataclass(frozen=True)
class Principal:
    """The caller of one request: a signed-in user or an API token."""

    name: str  # user name, or the token's name
    roles: frozenset[Role]
    kind: str  # "user" or "token"
    id: int
    regions: tuple[str, ...] = ()  # 属地管理: empty = every region
    departments: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # ingest tokens: the sources they may push to (empty = none)
    csrf: str | None = field(default=None, repr=False)  # sessions only: the token state-changing requests must echo

    @property
    def actor(self) -> str:
        """How the audit log and the records it touches (acks, silences, plan steps) name this caller."""
        return f"{self.kind}:{self.name}" if self.kind == "user" else f"token:{self.id}:{self.name}"

    def has_any(self, roles: frozenset[Role]) -> bool:
        return bool(self.roles & roles)

    def sees_region(self, region: str | None) -> bool:
        """Whether an item or alert of `region` is within this caller's scope (unscoped callers see all)."""
        return not self.regions or (region is not None and any(r in region for r in self.regions))  # 雨花区 ⊂ 江城市雨花区
