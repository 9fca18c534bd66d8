"""`/metrics` in the Prometheus text format. Guarded like every route: managers and admins (a scraper is given an API
token of role manager, read-only); counts and latencies only, never personal data."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from access.guard import require
from access.roles import REVIEWERS

router = APIRouter(tags=["metrics"], dependencies=[require(REVIEWERS)])


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    from yuqing.observe import render

    return Response(render(request.app.state.service), media_type=CONTENT_TYPE_LATEST)
