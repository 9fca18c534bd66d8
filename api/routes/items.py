"""The item feed: filters, full-text search and cursor paging."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from access.guard import PrincipalDep, client_address, require
from access.roles import FEED, READERS
from api.deps import StoreDep
from api.readers import feed_json
from api.schemas import ItemDetail, ItemsPublic
from core.errors import InputError, NotFound, PermissionDenied
from core.models import Channel
from nlp.normalise import SHANGHAI, TimeParseError, parse_time
from storage.base import ItemQuery

router = APIRouter(prefix="/api/items", tags=["items"], dependencies=[require(READERS)])


def _time(name: str, value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return parse_time(value, tz=SHANGHAI)
    except TimeParseError as exc:
        raise InputError(f"{name}: {exc}", errors=[{"loc": ["query", name], "msg": str(exc)}]) from exc


@router.get("", response_model=ItemsPublic, dependencies=[require(FEED)])
def list_items(
    request: Request,
    store: StoreDep,
    principal: PrincipalDep,
    source: str | None = None,
    channel: Channel | None = None,
    since: Annotated[str | None, Query(description="ISO time or 2小时前 / 昨天 12:30; Asia/Shanghai if no offset")] = None,
    until: str | None = None,
    q: Annotated[str | None, Query(max_length=500, description="full text: words, \"phrases\", AND OR NOT ( ) NEAR/n")] = None,
    topic: str | None = None,
    emotion: str | None = None,
    risk_level: str | None = None,
    min_risk: Annotated[float | None, Query(ge=0, le=100)] = None,
    scheme: str | None = None,
    event: str | None = None,
    region: str | None = None,
    sort: Literal["time", "risk"] = "time",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> Response:
    query = ItemQuery(source=source, channel=channel, since=_time("since", since), until=_time("until", until),
                      q=q or None, topic=topic, emotion=emotion, risk_level=risk_level, min_risk=min_risk, scheme=scheme,
                      event_id=event, region=region, within_regions=principal.regions, sort=sort, limit=limit,
                      cursor=cursor)
    # Serialised once, by pydantic's own JSON encoder: returned as a model, FastAPI would validate every item again,
    # turn it into dicts and encode those. With `server.read_workers`, searched and encoded in a reader process.
    readers = request.app.state.service.readers
    body = readers.search_json(store, query) if readers is not None else feed_json(store, query)
    return Response(body, media_type="application/json")


# Ids are SQL integers (64-bit signed): a larger number can name no item, and must not reach the driver (OverflowError).
ItemId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the item's id")]


@router.get("/{item_id}", response_model=ItemDetail)
def get_item(item_id: ItemId, store: StoreDep, principal: PrincipalDep) -> ItemDetail:
    item = store.get(item_id)
    if not principal.sees_region(item.region):
        raise NotFound(f"no item {item_id}")  # outside the caller's region: as if it did not exist
    return ItemDetail(**item.model_dump(), duplicates=store.duplicates_of(item_id))


@router.get("/{item_id}/original")
def get_original(item_id: ItemId, request: Request, store: StoreDep, principal: PrincipalDep) -> dict[str, Any]:
    """The unmasked values PII masking replaced (kept only with `analysis.pii.keep_raw`): for the roles in
    `access.pii_roles` only, and every view — or refused attempt — is written to the audit log."""
    access = request.app.state.access
    allowed = {r.value for r in principal.roles} & set(access.config.pii_roles)
    if not allowed or not principal.sees_region(store.get(item_id).region):
        access.audit(principal.actor, "pii_view", f"item:{item_id}", "denied", client_address(request))
        raise PermissionDenied(f"viewing personal data needs one of the roles {access.config.pii_roles}")
    original = store.original(item_id)
    access.audit(principal.actor, "pii_view", f"item:{item_id}", "ok", client_address(request),
                 {"kept": original is not None})
    return {"item_id": item_id, "original": original}
