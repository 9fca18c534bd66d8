"""Events and hot issues, monitoring schemes (list and dry run) and volume spikes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from access.guard import require
from access.roles import FEED
from analysis.event_store import get_event, list_events, list_issues
from analysis.schemes import dry_run
from analysis.spikes import DIMENSIONS, detect_spikes
from analysis.stages import analysis_config, scheme_specs
from api.deps import ConfigDep, StoreDep
from core.config_analysis import SchemeSpec
from core.errors import InputError
from nlp.normalise import SHANGHAI, TimeParseError, parse_time
from storage.base import ItemQuery

router = APIRouter(tags=["events"], dependencies=[require(FEED)])


def _time(name: str, value: str | None) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return parse_time(value, tz=SHANGHAI)
    except TimeParseError as exc:
        raise InputError(f"{name}: {exc}", errors=[{"loc": ["query", name], "msg": str(exc)}]) from exc


@router.get("/api/events")
def events_ranked(store: StoreDep, since: str | None = None, min_volume: Annotated[int, Query(ge=1)] = 1,
                  limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0)] = 0) -> dict:
    """Events ranked by heat: `{data, count}`."""
    data, count = list_events(store, limit=limit, offset=offset, since=_time("since", since), min_volume=min_volume)
    return {"data": data, "count": count}


@router.get("/api/issues")
def issues_ranked(store: StoreDep, min_events: Annotated[int, Query(ge=1)] = 1,
                  limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0)] = 0) -> dict:
    """Issues (热点问题): the events of one grievance across time, most items first: `{data, count}`."""
    data, count = list_issues(store, limit=limit, offset=offset, min_events=min_events)
    return {"data": data, "count": count}


@router.get("/api/events/hot")
def events_hot(store: StoreDep, days: Annotated[float | None, Query(gt=0)] = None,
               limit: Annotated[int, Query(ge=1, le=100)] = 10) -> dict:
    """The hot-issue list: events of two or more items by heat, optionally seen in the last `days`."""
    since = datetime.now(UTC) - timedelta(days=days) if days else None
    data, count = list_events(store, limit=limit, since=since, min_volume=2)
    for rank, event in enumerate(data, 1):
        event["rank"] = rank
    return {"data": data, "count": count}


@router.get("/api/events/{event_id}")
def event_detail(event_id: str, store: StoreDep, limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict:
    """One event with its items (newest first)."""
    event = get_event(store, event_id)
    page = store.search(ItemQuery(event_id=event_id, limit=limit))
    event["items"] = [item.model_dump(mode="json") for item in page.data]
    event["item_count"] = page.count
    return event


@router.get("/api/schemes")
def schemes_list(config: ConfigDep) -> dict:
    specs = scheme_specs(analysis_config(config))
    return {"data": [s.model_dump() for s in specs], "count": len(specs)}


class DryRunRequest(BaseModel):
    """A scheme (new or edited) and the window to try it on; the default window is the last 7 days."""

    scheme: SchemeSpec
    since: str | None = None
    until: str | None = None
    days: float = Field(7, gt=0, le=3660)


@router.post("/api/schemes/dry-run")
def schemes_dry_run(body: DryRunRequest, store: StoreDep) -> dict[str, Any]:
    """How many stored items the scheme would have matched in the window (invalid schemes: 400 with field and position)."""
    until = _time("until", body.until) or datetime.now(UTC)
    since = _time("since", body.since) or until - timedelta(days=body.days)
    return dry_run(store, body.scheme, since, until)


@router.get("/api/trends/spikes")
def trends_spikes(store: StoreDep, config: ConfigDep, at: str | None = None,
                  dimension: Annotated[list[str] | None, Query()] = None) -> dict:
    """Volume spikes per topic, scheme, region and source at `at` (default now), explained; groups without enough
    history yet are listed under `waiting_for_baseline` instead."""
    dims = tuple(dimension or DIMENSIONS)
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown:
        raise InputError(f"unknown dimension {unknown[0]!r}; expected one of {', '.join(DIMENSIONS)}",
                         errors=[{"loc": ["query", "dimension"], "msg": "unknown dimension"}])
    now = _time("at", at) or datetime.now(UTC)
    waiting: list[dict] = []
    data = detect_spikes(store, analysis_config(config).spikes, now, dims, waiting)
    return {"data": data, "count": len(data), "waiting_for_baseline": waiting}
