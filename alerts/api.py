"""Alerts API: list and filter, acknowledge/resolve, silences, audit trail, outbox, test a receiver, dry run,
reload, and the live SSE stream. Errors are core.errors subclasses, mapped to the one JSON error shape."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse

from access.guard import PrincipalDep, require
from access.roles import ADMINS, READERS, RESPONDERS
from alerts.engine import AlertEngine
from core.errors import ConfigError, InputError, NotFound

router = APIRouter(prefix="/api/alerts", tags=["alerts"], dependencies=[require(READERS)])
# A silence mutes alerts for everyone: it must end, and not in a century.
MAX_SILENCE = timedelta(days=90)


def get_engine(request: Request) -> AlertEngine:
    engine = request.app.state.service.alerts
    if engine is None:
        raise NotFound("alerts are not enabled in this service")
    return engine


EngineDep = Annotated[AlertEngine, Depends(get_engine)]


class ListPublic(BaseModel):
    data: list[dict[str, Any]]
    count: int
    next_before_id: int | None = None
    count_exact: bool = True  # False: the archive held more alerts than its count cap (alerts/store.py)


class StateChange(BaseModel):
    """Who acts is the signed-in caller; an `owner` sent by older clients is ignored."""

    comment: str = Field("", max_length=2000)


class SilenceCreate(BaseModel):
    matchers: list[str] | dict[str, str]
    reason: str = Field(min_length=1, max_length=2000)
    ends_at: datetime | None = None
    duration: str | None = None  # "2h", "3d": alternative to ends_at
    starts_at: datetime | None = None


class DryRunRequest(BaseModel):
    rule: str | dict[str, Any]
    since: datetime | None = None
    until: datetime | None = None
    days: float = Field(7, gt=0, le=3650)  # window when since is not given


class ReloadRequest(BaseModel):
    """Apply this `alerts:` section, or (no body) re-read the file the service was started with. A path is never
    taken from a request: it would let a caller make the service read, and echo, any file it can open."""

    model_config = ConfigDict(extra="forbid")

    alerts: dict[str, Any] | None = None


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        from core.models import SHANGHAI

        return moment.replace(tzinfo=SHANGHAI)
    return moment


def _labels(label: list[str]) -> dict[str, str]:
    out = {}
    for entry in label:
        name, sep, value = entry.partition("=")
        if not sep or not name:
            raise InputError(f"label filter {entry!r} must look like name=value")
        out[name] = value
    return out


def _page(data: list[dict[str, Any]], count: int, limit: int) -> ListPublic:
    return ListPublic(data=data, count=count, next_before_id=data[-1]["id"] if len(data) == limit and data else None)


@router.get("", response_model=ListPublic)
def list_alerts(engine: EngineDep, principal: PrincipalDep, state: str | None = None, severity: str | None = None,
                rule: str | None = None,
                item_id: int | None = None, event_id: str | None = None,
                label: Annotated[list[str], Query(description="name=value, repeatable")] = [],  # noqa: B006
                limit: Annotated[int, Query(ge=1, le=500)] = 50, before_id: int | None = None) -> ListPublic:
    """Newest first; without `state`, or with `state=resolved`, archived alerts (resolved a while ago) are included."""
    data, count, exact = engine.reader.list_page(state=state, severity=severity, rule=rule, item_id=item_id,
                                                 event_id=event_id, labels=_labels(label), limit=limit,
                                                 before_id=before_id, within_regions=principal.regions)
    page = _page(data, count, limit)
    page.count_exact = exact
    return page


def _visible(engine: AlertEngine, alert_id: int, principal: Any) -> dict[str, Any]:
    """The alert, if within the caller's region scope; else 404 as if it did not exist."""
    alert = engine.reader.get(alert_id)
    if not principal.sees_region(alert.get("labels", {}).get("region")):
        raise NotFound(f"alert {alert_id} not found")
    return alert


@router.get("/audit", response_model=ListPublic)
def audit_trail(engine: EngineDep, alert_id: int | None = None, decision: str | None = None,
                receiver: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                before_id: int | None = None) -> ListPublic:
    data, count = engine.reader.audit(alert_id=alert_id, decision=decision, receiver=receiver, limit=limit,
                                      before_id=before_id)
    return _page(data, count, limit)


@router.get("/outbox", response_model=ListPublic)
def outbox(engine: EngineDep, status: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> ListPublic:
    data, count = engine.reader.outbox(status=status, limit=limit)
    return ListPublic(data=data, count=count)


class RequeueRequest(BaseModel):
    """Which given-up notifications to send again: `ids`, or every one with `all`."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] | None = Field(None, max_length=10000)
    all: bool = False


@router.get("/outbox/dead", response_model=ListPublic, dependencies=[require(ADMINS)])
def dead_notifications(engine: EngineDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> ListPublic:
    """Notifications given up on (`dead`: retries ran out; `failed`: a permanent error), newest first."""
    dead, dead_count = engine.reader.outbox(status="dead", limit=limit)
    failed, failed_count = engine.reader.outbox(status="failed", limit=limit)
    data = sorted(dead + failed, key=lambda row: row["id"], reverse=True)[:limit]
    return ListPublic(data=data, count=dead_count + failed_count)


@router.post("/outbox/requeue", dependencies=[require(ADMINS)])
def requeue(engine: EngineDep, body: RequeueRequest, principal: PrincipalDep) -> dict[str, Any]:
    """Send given-up notifications again (attempts reset, same dedup key); audited with who asked."""
    if body.ids is None and not body.all:
        raise InputError("name the notifications to re-queue (`ids`) or pass `all: true`")
    ids = engine.dispatcher.requeue(engine.clock.now(), by=principal.actor, ids=None if body.all else body.ids)
    return {"ok": True, "requeued": ids, "count": len(ids)}


@router.get("/silences")
def list_silences(engine: EngineDep, include_expired: bool = False) -> dict[str, Any]:
    data = engine.silencer.list(engine.clock.now(), include_expired=include_expired)
    return {"data": data, "count": len(data)}


@router.post("/silences", status_code=201, dependencies=[require(ADMINS)])
def create_silence(engine: EngineDep, body: SilenceCreate, principal: PrincipalDep) -> dict[str, Any]:
    from core.config_alerts import parse_duration

    now = engine.clock.now()
    if body.ends_at is None and body.duration is None:
        raise InputError("give ends_at or duration (e.g. \"2h\"): a silence always expires")
    try:
        ends_at = _aware(body.ends_at) or now + parse_duration(body.duration)
    except (ValueError, OverflowError) as exc:
        raise InputError(f"bad duration: {exc}") from None
    if ends_at - max(now, _aware(body.starts_at) or now) > MAX_SILENCE:
        raise InputError(f"a silence lasts at most {MAX_SILENCE.days} days",
                         errors=[{"loc": ["body", "ends_at"], "msg": "too long"}])
    return engine.create_silence(matchers=body.matchers, reason=body.reason, owner=principal.actor, ends_at=ends_at,
                                 starts_at=_aware(body.starts_at))


@router.get("/silences/{silence_id}")
def get_silence(engine: EngineDep, silence_id: int) -> dict[str, Any]:
    return engine.silencer.get(silence_id, engine.clock.now())


@router.delete("/silences/{silence_id}", dependencies=[require(ADMINS)])
def expire_silence(engine: EngineDep, silence_id: int, principal: PrincipalDep) -> dict[str, Any]:
    return engine.expire_silence(silence_id, by=principal.actor)


@router.post("/receivers/{name}/test", dependencies=[require(ADMINS)])
def test_receiver(engine: EngineDep, name: str, principal: PrincipalDep) -> dict[str, Any]:
    return engine.test_receiver(name, by=principal.actor)


@router.post("/dry-run")
def dry_run(engine: EngineDep, body: DryRunRequest) -> dict[str, Any]:
    until = _aware(body.until) or datetime.now(UTC)
    since = _aware(body.since) or until - timedelta(days=body.days)
    return engine.dry_run(body.rule, since, until)


@router.post("/reload", dependencies=[require(ADMINS)])
def reload(request: Request, engine: EngineDep, body: ReloadRequest | None = None) -> dict[str, Any]:
    """Apply a new `alerts:` section (inline, or re-read from the config file); a bad one keeps the old rules."""
    try:
        if body is not None and body.alerts is not None:
            return {"ok": True, **engine.reload(body.alerts)}
        worker = request.app.state.service.alerts_worker
        if worker is None:
            raise NotFound("no alerts worker to reload")
        return {"ok": True, **worker.reload_from_file()}
    except ConfigError as exc:
        raise InputError(f"reload rejected, the old alert config stays in force: {exc.message}", errors=exc.errors) from exc


@router.get("/status")
def status(engine: EngineDep) -> dict[str, Any]:
    from alerts.timewindows import fallback_years

    cfg = engine.config
    return {"enabled": cfg.enabled, "rules": [r.name for r in cfg.rules], "receivers": [r.name for r in cfg.receivers],
            "source_health_hook": engine.source_health is not None, "event_heat_hook": engine.event_heat is not None,
            "stream_subscribers": engine.broadcaster.subscribers,
            "calendar_fallback_years": sorted(fallback_years)}


@router.get("/stream")
async def stream(request: Request, engine: EngineDep,
                 last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None) -> EventSourceResponse:
    """Server-sent events: `notification` (in-app deliveries) and `alert_state` (ack/resolve)."""
    try:
        resume = int(last_event_id) if last_event_id else None
    except ValueError:
        resume = None
    queue = engine.broadcaster.subscribe(resume)

    async def events():  # noqa: ANN202 - async generator of SSE dicts
        try:
            while True:
                if await request.is_disconnected():
                    break
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    continue  # sse-starlette sends its own keep-alive pings
                yield {"id": str(item.id), "event": item.event, "data": json.dumps(item.data, ensure_ascii=False)}
        finally:
            engine.broadcaster.unsubscribe(queue)

    return EventSourceResponse(events(), ping=10)


@router.get("/{alert_id}")
def get_alert(engine: EngineDep, alert_id: int, principal: PrincipalDep) -> dict[str, Any]:
    return _visible(engine, alert_id, principal)


@router.post("/{alert_id}/ack", dependencies=[require(RESPONDERS)])
def acknowledge(engine: EngineDep, alert_id: int, principal: PrincipalDep, body: StateChange | None = None) -> dict[str, Any]:
    _visible(engine, alert_id, principal)
    return engine.acknowledge(alert_id, principal.actor, body.comment if body else "")


@router.post("/{alert_id}/resolve", dependencies=[require(RESPONDERS)])
def resolve(engine: EngineDep, alert_id: int, principal: PrincipalDep, body: StateChange | None = None) -> dict[str, Any]:
    _visible(engine, alert_id, principal)
    return engine.resolve(alert_id, principal.actor, body.comment if body else "")
