"""Report routes: the list of reports made, one report as HTML or PDF (kept, or made on demand), and sending one.

Managers and the press office read reports (as do admins); managers and admins send them. A report covers every
region, so a caller limited to some regions (属地) is refused rather than shown others' matters.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from access.guard import PrincipalDep, require
from access.roles import FEED, REVIEWERS, Principal
from api.schemas import ErrorPublic
from core.errors import NotFound, PermissionDenied
from reports.mail import content_disposition

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorPublic, "description": "a date that is not YYYY-MM-DD (1990–2199), or no / unknown receivers"},
    403: {"model": ErrorPublic, "description": "the caller's role (or region scope) may not read or send reports"},
    404: {"model": ErrorPublic, "description": "the reports extension is not attached"},
    503: {"model": ErrorPublic, "description": "no CJK font for the PDF (ReportError)"},
}
router = APIRouter(prefix="/api/reports", tags=["reports"], responses=ERRORS, dependencies=[require(FEED)])
# The page is self-contained: inline styles and data: images, nothing else (crawled text in it can never run).
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"


def get_reports(request: Request) -> Any:
    reports = request.app.state.service.reports
    if reports is None:
        raise NotFound("the reports extension is not attached (reports.enabled: false?)")
    return reports


ReportsDep = Annotated[Any, Depends(get_reports)]
Kind = Literal["daily", "weekly"]


def _whole_scope(principal: Principal) -> None:
    if principal.regions:
        raise PermissionDenied("报告覆盖全部属地：限定属地的账号不能查看或发送（请由不限属地的账号操作）")


@router.get("")
def list_reports(reports: ReportsDep, principal: PrincipalDep, kind: Kind | None = None,
                 limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0)] = 0) -> dict:
    """Reports made so far, newest period first: `{data, count}`."""
    _whole_scope(principal)
    data, count = reports.archive.list(kind=kind, limit=limit, offset=offset)
    return {"data": data, "count": count}


@router.get("/{kind}", response_class=Response,
            responses={200: {"content": {"text/html": {}, "application/pdf": {}},
                             "description": "the report (Content-Disposition names it in Chinese, RFC 5987)"}})
def get_report(kind: Kind, reports: ReportsDep, principal: PrincipalDep,
               date: Annotated[str | None, Query(description="any day of the period, YYYY-MM-DD; default: the last "
                                                             "complete one (yesterday, last week)")] = None,
               format: Annotated[Literal["html", "pdf"], Query()] = "html",  # noqa: A002 - the query's name
               refresh: bool = False) -> Response:
    """The report of the period holding `date`: the kept one when it covers the whole period, else made now."""
    _whole_scope(principal)
    report = reports.get_or_make(reports.period(kind, date), refresh=refresh)
    if format == "pdf":
        return Response(reports.pdf(report), media_type="application/pdf", headers={
            "Content-Disposition": content_disposition("attachment", kind, report.period_key, report.content, "pdf"),
            "Cache-Control": "private, no-store"})
    return HTMLResponse(report.html, headers={
        "Content-Disposition": content_disposition("inline", kind, report.period_key, report.content, "html"),
        "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"})


class SendCreate(BaseModel):
    """Which period (default: the last complete one) and to whom (default: reports.receivers)."""

    date: str | None = None
    receivers: list[str] | None = Field(None, min_length=1, max_length=50)


@router.post("/{kind}/send", dependencies=[require(REVIEWERS)])
def send_report(kind: Kind, reports: ReportsDep, principal: PrincipalDep, body: SendCreate | None = None) -> dict:
    """E-mail the report (HTML body, PDF attached) through the alert receivers; each receiver's outcome."""
    _whole_scope(principal)
    body = body or SendCreate()
    report = reports.get_or_make(reports.period(kind, body.date))
    outcomes = reports.send(report, receivers=body.receivers)
    return {"report": report.public(), "data": outcomes, "count": len(outcomes)}
