"""The web page for people: a static page that reads the same JSON API as any client."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from access.guard import require
from access.roles import READERS

WEB_DIR = Path(__file__).resolve().parents[1] / "web"

router = APIRouter(include_in_schema=False, dependencies=[require(READERS)])


@router.get("/")
def index() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8")


@router.get("/items/{item_id}")
def item_link(item_id: int) -> RedirectResponse:
    """Links in alert messages point here; until a detail page exists, show the item's JSON."""
    return RedirectResponse(f"/api/items/{item_id}", status_code=307)


@router.get("/events/{event_id}")
def event_link(event_id: str) -> RedirectResponse:
    return RedirectResponse(f"/api/events/{quote(event_id, safe='')}", status_code=307)
