"""Service extension of the analysis package: the events, schemes and trends API, and the event heat alert rules
read (`core.ports.EventHeat`). Its stages, persisting included, come with enrichment (`analysis.stages.enrich_stages`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analysis.event_store import get_event
from analysis.stages import AnalysisState
from core.errors import NotFound, StorageError
from core.ports import EventHeat

if TYPE_CHECKING:  # the composition root imports this module
    from yuqing.host import Service


class StoredEventHeat:
    """`core.ports.EventHeat` read from the event store: the heat the events API shows (`analysis.cluster.heat_index`
    computed when the event was last saved, after each stored batch and before the alert rules run)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def __call__(self, event_id: str) -> float | None:
        try:
            return float(get_event(self.store, event_id)["heat"])
        except (NotFound, StorageError, KeyError):
            return None


def attach(service: Service, state: AnalysisState | None) -> EventHeat | None:
    """Add the analysis API; return the event heat for alert rules, None without enrichment (no events then)."""
    service.add_routers("analysis.api:router")
    return StoredEventHeat(service.store) if state is not None else None
