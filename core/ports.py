"""Typed collaborators one package hands another through the composition root (yuqing/service.py), so that neither
imports the other: collection publishes source health, analysis publishes event heat, alert rules read both."""

from __future__ import annotations

from typing import Protocol

from core.models import SourceStatus


class SourceHealthProvider(Protocol):
    """Every source that has run, with its status (ok / degraded / failing) and the reason."""

    def __call__(self) -> list[SourceStatus]: ...


class EventHeat(Protocol):
    """The heat of an event (`analysis.cluster.event_heat` is its one definition); None for an unknown event."""

    def __call__(self, event_id: str) -> float | None: ...
