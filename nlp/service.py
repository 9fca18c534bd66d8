"""Service extension of the analysis half of nlp: persists events and signatures after each stored batch and adds
the events, schemes and trends API."""

from __future__ import annotations

from typing import Any

from nlp.analysis import PersistStage, state_for


def attach(service: Any) -> None:
    state = state_for(service.store)
    if state is not None:
        service.add_after_store(PersistStage(state))
        service.components["analysis"] = state
    from api.routes import events

    service.routers.append(events.router)
