"""Service extension of the analysis half of nlp: persists events and signatures after each stored batch, adds
the events, schemes and trends API, and publishes `components["event_heat"]` (event id → heat) for alert rules."""

from __future__ import annotations

from typing import Any

from analysis.event_store import get_event
from analysis.stages import PersistStage, state_for
from core.errors import NotFound, StorageError


def event_heat(store: Any, event_id: str) -> float | None:
    """The event's heat as the event store computes it; None for an unknown event."""
    try:
        return float(get_event(store, event_id)["heat"])
    except (NotFound, StorageError, KeyError):
        return None


def attach(service: Any) -> None:
    state = state_for(service.store)
    if state is not None:
        service.add_after_store(PersistStage(state))
        service.components["analysis"] = state
        service.components["event_heat"] = lambda event_id: event_heat(service.store, event_id)
    from analysis import api as events

    service.routers.append(events.router)
