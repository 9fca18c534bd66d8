"""HTTP API for playbooks, runs, steps, approvals, evidence and reviews, plus the public deadline calculator.

Lists answer `{data, count}`; errors use the project's one shape (PlaybookError 400, InvalidTransition 409,
PermissionDenied 403, NotFound 404)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from access.guard import PrincipalDep, require
from access.roles import ADMINS, READERS, Principal, Role
from api.schemas import ErrorPublic
from core.calendar import default_calendar, parse_due
from core.errors import InputError, NotFound, PermissionDenied

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorPublic, "description": "invalid input (PlaybookError / InputError); `errors[].loc` names the field"},
    403: {"model": ErrorPublic, "description": "the actor does not hold the role (PermissionDenied)"},
    404: {"model": ErrorPublic, "description": "no such playbook, run, step or evidence"},
    409: {"model": ErrorPublic, "description": "the state machine refuses the change (InvalidTransition)"},
    422: {"model": ErrorPublic, "description": "the request body or query does not validate"},
}
router = APIRouter(prefix="/api", tags=["playbooks"], responses=ERRORS, dependencies=[require(READERS)])
calendar_router = APIRouter(prefix="/api/calendar", tags=["calendar"], responses={400: ERRORS[400], 422: ERRORS[422]},
                            dependencies=[require(READERS)])
REVIEWS = frozenset({Role.manager, Role.admin, Role.press_office})  # outcome review: managers first
ACTOR_DOC = "who acts is the signed-in caller (user or token name); if given, it must be that name"


def _actor(claimed: str | None, principal: Principal) -> str:
    """The signed-in caller's name: plan actions record who really acted, never a name the request claims."""
    if claimed is not None and claimed != principal.name:
        raise PermissionDenied(f"you act as yourself ({principal.name!r}), not as {claimed!r}")
    return principal.name


def get_plans(request: Request) -> Any:
    plans = request.app.state.service.playbooks
    if plans is None:
        raise NotFound("the playbooks extension is not attached")
    return plans


PlansDep = Annotated[Any, Depends(get_plans)]


# ---- models ------------------------------------------------------------------------------------------------------


class DeadlinePublic(BaseModel):
    start: str
    due_spec: str
    due: str
    calendar: Literal["official", "override", "fallback"]
    working_days: list[str]


class PlaybookPublic(BaseModel):
    id: str
    name: str
    description: str
    basis: str
    version: str
    triggers: list[dict[str, Any]]
    steps: list[dict[str, Any]]


class PlaybooksPublic(BaseModel):
    data: list[PlaybookPublic]
    count: int


class ApprovalPublic(BaseModel):
    round: int
    position: int
    role: str
    actor: str | None = Field(None, description=ACTOR_DOC)
    decision: str
    comment: str | None = None
    at: str | None = None


class EvidencePublic(BaseModel):
    id: int
    kind: str
    value: str | None = None
    size: int | None = None
    sha256: str | None = None
    media_type: str | None = None
    actor: str | None = Field(None, description=ACTOR_DOC)
    at: str | None = None
    run_id: int | None = None
    step_id: str | None = None


class StepPublic(BaseModel):
    step_id: str
    position: int
    title: str
    role: str | None = None
    assignee: str | None = None
    state: Literal["pending", "in_progress", "awaiting_approval", "done", "skipped"]
    due_spec: str | None = None
    anchor: str
    anchor_at: str | None = None
    due: str | None = None
    warn_at: str | None = None
    calendar: str | None = None
    time_left: float | None = Field(None, description="seconds until the deadline (negative: overdue); null when finished")
    overdue: bool
    met: bool | None = None
    warned_at: str | None = None
    breached_at: str | None = None
    round: int
    started_at: str | None = None
    finished_at: str | None = None
    skip_reason: str | None = None
    extension: str | None = None
    waiting_for: str | None = None
    approval: list[str] = []
    evidence_required: list[str] = []
    statement: bool = False
    public_response: bool = False
    basis: str = ""
    approvals: list[ApprovalPublic] = []
    evidence: list[EvidencePublic] = []


class RunPublic(BaseModel):
    id: int
    playbook_id: str
    playbook_version: str
    subject: str
    title: str
    state: Literal["open", "closed", "cancelled"]
    trigger: str
    alert_id: int | None = None
    item_id: int | None = None
    event_id: str | None = None
    labels: dict[str, str] = {}
    region: str | None = None
    topic: str | None = None
    department: str | None = None
    received_at: str | None = None
    detected_at: str | None = None
    alert_at: str | None = None
    started_at: str | None = None
    started_by: str
    closed_at: str | None = None
    first_response_at: str | None = None
    steps: list[StepPublic] = []


class RunsPublic(BaseModel):
    data: list[RunPublic]
    count: int


class RunCreate(BaseModel):
    model_config = {"extra": "forbid"}

    playbook_id: str
    actor: str | None = Field(None, description=ACTOR_DOC)
    title: str = ""
    item_id: int | None = None
    event_id: str | None = None
    received_at: datetime | None = None
    detected_at: datetime | None = None
    labels: dict[str, str] = {}


class TransitionCreate(BaseModel):
    model_config = {"extra": "forbid"}

    to: str = Field(description="pending | in_progress | awaiting_approval | done | skipped")
    actor: str | None = Field(None, description=ACTOR_DOC)
    reason: str = ""


class ApprovalCreate(BaseModel):
    model_config = {"extra": "forbid"}

    actor: str | None = Field(None, description=ACTOR_DOC)
    decision: Literal["approve", "reject"]
    comment: str = ""


class AssignCreate(BaseModel):
    model_config = {"extra": "forbid"}

    assignee: str
    actor: str | None = Field(None, description=ACTOR_DOC)


class EvidenceCreate(BaseModel):
    model_config = {"extra": "forbid"}

    kind: Literal["link", "text", "file"]
    actor: str | None = Field(None, description=ACTOR_DOC)
    value: str | None = None
    content_b64: str | None = None
    filename: str | None = None
    media_type: str | None = None


class ExtendCreate(BaseModel):
    model_config = {"extra": "forbid"}

    by: str = Field(description="extra time in the step's unit, e.g. 20wd")
    actor: str | None = Field(None, description=ACTOR_DOC)
    reason: str


class CancelCreate(BaseModel):
    model_config = {"extra": "forbid"}

    actor: str | None = Field(None, description=ACTOR_DOC)
    reason: str


class CommentCreate(BaseModel):
    model_config = {"extra": "forbid"}

    actor: str | None = Field(None, description=ACTOR_DOC)
    text: str
    step_id: str | None = None


class CommentPublic(BaseModel):
    run_id: int
    step_id: str | None = None
    actor: str | None = Field(None, description=ACTOR_DOC)
    text: str
    at: str | None = None


class AuditEntry(BaseModel):
    id: int
    step_id: str | None = None
    at: str | None = None
    actor: str | None = Field(None, description=ACTOR_DOC)
    action: str
    from_state: str | None = None
    to_state: str | None = None
    detail: Any = None


class AuditPublic(BaseModel):
    data: list[AuditEntry]
    count: int


class TickPublic(BaseModel):
    warning: int
    breach: int
    stale: int


# ---- calendar ------------------------------------------------------------------------------------------------------


@calendar_router.get("/deadline", response_model=DeadlinePublic)
def deadline(start: Annotated[str, Query(description="ISO-8601 start (receipt, detection…); no offset = Asia/Shanghai")],
             due: Annotated[str, Query(description="5h, 48h, 2d (calendar days) or 15wd (working days)")]) -> dict:
    """When a clock started at `start` runs out: working days skip holidays and count 调休 make-up days."""
    try:
        moment = datetime.fromisoformat(start.strip().replace(" ", "T").replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"start {start!r} is not an ISO-8601 time",
                         errors=[{"loc": ["query", "start"], "msg": "not an ISO-8601 time"}]) from None
    try:
        spec = parse_due(due)
    except ValueError as exc:
        raise InputError(str(exc), errors=[{"loc": ["query", "due"], "msg": str(exc)}]) from None
    try:
        return default_calendar().deadline(moment, spec).public()
    except ValueError as exc:
        raise InputError(str(exc), errors=[{"loc": ["query", "due"], "msg": str(exc)}]) from None


# ---- playbooks -----------------------------------------------------------------------------------------------------


def _playbook_public(p: Any) -> dict:
    data = p.model_dump(mode="json")
    return {**data, "version": p.version, "triggers": data["triggers"], "steps": data["steps"]}


@router.get("/playbooks", response_model=PlaybooksPublic)
def list_playbooks(plans: PlansDep) -> dict:
    data = [_playbook_public(p) for p in plans.playbooks.values()]
    return {"data": data, "count": len(data)}


@router.get("/playbooks/{playbook_id}", response_model=PlaybookPublic)
def get_playbook(playbook_id: str, plans: PlansDep) -> dict:
    return _playbook_public(plans.runs.playbook(playbook_id))


@router.post("/playbooks/validate", response_model=PlaybookPublic)
def validate_playbook(body: dict[str, Any], plans: PlansDep, request: Request) -> dict:
    """Check a playbook (as JSON) against the roles and alert rules without installing it."""
    from playbooks.plans import parse_playbook

    config = request.app.state.service.config
    playbook = parse_playbook(body, "<request>", roles=plans.config.roles, rules={r.name for r in config.alerts.rules},
                              receivers={r.name for r in config.alerts.receivers})
    return _playbook_public(playbook)


# ---- runs ----------------------------------------------------------------------------------------------------------


@router.get("/plans/runs", response_model=RunsPublic)
def list_runs(plans: PlansDep, item_id: int | None = None, event_id: str | None = None,
              playbook_id: str | None = None, state: Literal["open", "closed", "cancelled"] | None = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0)] = 0) -> dict:
    data, count = plans.runs.list(item_id=item_id, event_id=event_id, playbook_id=playbook_id, state=state,
                                  limit=limit, offset=offset)
    return {"data": data, "count": count}


@router.post("/plans/runs", response_model=RunPublic, status_code=201)
def start_run(body: RunCreate, plans: PlansDep, principal: PrincipalDep, request: Request) -> dict:
    """Start a run by hand; for an item, its labels and times are read from the store."""
    item = None
    if body.item_id is not None:
        item = request.app.state.service.store.get(body.item_id)
    return plans.runs.start_manual(body.playbook_id, actor=_actor(body.actor, principal), title=body.title, item_id=body.item_id,
                                   event_id=body.event_id, received=body.received_at, detected=body.detected_at,
                                   labels=body.labels, item=item)


@router.get("/plans/runs/{run_id}", response_model=RunPublic)
def get_run(run_id: int, plans: PlansDep) -> dict:
    return plans.runs.get(run_id)


@router.get("/plans/runs/{run_id}/audit", response_model=AuditPublic)
def run_audit(run_id: int, plans: PlansDep) -> dict:
    data = plans.runs.audit(run_id)
    return {"data": data, "count": len(data)}


@router.post("/plans/runs/{run_id}/cancel", response_model=RunPublic)
def cancel_run(run_id: int, body: CancelCreate, plans: PlansDep, principal: PrincipalDep) -> dict:
    return plans.runs.cancel(run_id, actor=_actor(body.actor, principal), reason=body.reason)


@router.post("/plans/runs/{run_id}/comments", response_model=CommentPublic, status_code=201)
def add_comment(run_id: int, body: CommentCreate, plans: PlansDep, principal: PrincipalDep) -> dict:
    return plans.runs.comment(run_id, actor=_actor(body.actor, principal), text=body.text, step_id=body.step_id)


@router.post("/plans/runs/{run_id}/steps/{step_id}/transition", response_model=RunPublic)
def transition(run_id: int, step_id: str, body: TransitionCreate, plans: PlansDep, principal: PrincipalDep) -> dict:
    return plans.runs.transition(run_id, step_id, body.to, actor=_actor(body.actor, principal), reason=body.reason)


@router.post("/plans/runs/{run_id}/steps/{step_id}/assign", response_model=RunPublic)
def assign(run_id: int, step_id: str, body: AssignCreate, plans: PlansDep, principal: PrincipalDep) -> dict:
    return plans.runs.assign(run_id, step_id, assignee=body.assignee, actor=_actor(body.actor, principal))


@router.post("/plans/runs/{run_id}/steps/{step_id}/approvals", response_model=RunPublic)
def decide(run_id: int, step_id: str, body: ApprovalCreate, plans: PlansDep, principal: PrincipalDep) -> dict:
    if body.decision == "approve":
        return plans.runs.approve(run_id, step_id, actor=_actor(body.actor, principal), comment=body.comment)
    return plans.runs.reject(run_id, step_id, actor=_actor(body.actor, principal), comment=body.comment)


@router.post("/plans/runs/{run_id}/steps/{step_id}/evidence", response_model=EvidencePublic, status_code=201)
def add_evidence(run_id: int, step_id: str, body: EvidenceCreate, plans: PlansDep, principal: PrincipalDep) -> dict:
    return plans.runs.add_evidence(run_id, step_id, kind=body.kind, actor=_actor(body.actor, principal), value=body.value,
                                   content_b64=body.content_b64, filename=body.filename, media_type=body.media_type)


@router.get("/plans/runs/{run_id}/evidence/{evidence_id}/file", response_class=Response)
def evidence_file(run_id: int, evidence_id: int, plans: PlansDep) -> Response:
    content, name, media_type = plans.runs.evidence_file(run_id, evidence_id)
    from urllib.parse import quote

    return Response(content, media_type=media_type,
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})


@router.post("/plans/runs/{run_id}/steps/{step_id}/extend", response_model=RunPublic)
def extend(run_id: int, step_id: str, body: ExtendCreate, plans: PlansDep, principal: PrincipalDep) -> dict:
    return plans.runs.extend(run_id, step_id, by=body.by, actor=_actor(body.actor, principal), reason=body.reason)


class PeriodGroup(BaseModel):
    key: str
    met: int
    missed: int
    open: int
    skipped: int
    compliance: float | None = None


class PeriodSummary(BaseModel):
    met: int
    missed: int
    open: int
    skipped: int
    compliance: float | None = Field(None, description="met / (met + missed); null when no clock was decided")


class PeriodReview(BaseModel):
    since: str
    until: str
    clocks: int
    total: PeriodSummary
    by_playbook: list[PeriodGroup]
    by_department: list[PeriodGroup]
    by_topic: list[PeriodGroup]
    by_region: list[PeriodGroup]


class OpinionWindow(BaseModel):
    model_config = {"populate_by_name": True}

    from_: str = Field(alias="from")
    to: str
    volume: int
    negative_share: float | None = None
    mean_risk: float | None = None


class Effect(BaseModel):
    response_at: str
    window_hours: float
    before: OpinionWindow
    after: OpinionWindow
    after_complete: bool
    change: dict[str, float | int | None]


class RunReview(BaseModel):
    run_id: int
    playbook_id: str
    title: str
    state: str
    event_id: str | None = None
    item_id: int | None = None
    deadlines: dict[str, Any]
    time_to_first_response: float | None = Field(None, description="seconds from detection (or receipt)")
    time_to_close: float | None = Field(None, description="seconds from receipt")
    measured_from: str | None = None
    who_did_what: list[dict[str, Any]]
    effect: Effect | None = None


def _period(since: str, until: str) -> tuple[datetime, datetime]:
    try:
        a = datetime.fromisoformat(since.replace("Z", "+00:00"))
        b = datetime.fromisoformat(until.replace("Z", "+00:00"))
    except ValueError:
        raise InputError("since and until must be ISO-8601 times",
                         errors=[{"loc": ["query", "since"], "msg": "not an ISO-8601 time"}]) from None
    zone = default_calendar().zone
    return (a if a.tzinfo else a.replace(tzinfo=zone)), (b if b.tzinfo else b.replace(tzinfo=zone))


@router.get("/plans/runs/{run_id}/review", dependencies=[require(REVIEWS)], response_model=RunReview,
            response_model_by_alias=True)
def review_run(run_id: int, plans: PlansDep,
               window_hours: Annotated[float, Query(gt=0, le=24 * 90)] = 24.0) -> dict:
    """Deadlines met or missed, time to first public response and to close, who did what, and the event's volume,
    negative share and mean risk in equal windows before and after the first public response."""
    from datetime import timedelta

    return plans.review.run(run_id, window=timedelta(hours=window_hours))


@router.get("/plans/review", dependencies=[require(REVIEWS)], response_model=PeriodReview)
def review_period(plans: PlansDep, since: str, until: str) -> dict:
    """SLA compliance of the clocks that fell due in [since, until), by playbook, department, topic and region."""
    return plans.review.period(*_period(since, until))


@router.get("/plans/review.csv", dependencies=[require(REVIEWS)], response_class=Response)
def review_csv(plans: PlansDep, since: str, until: str) -> Response:
    """The period as CSV: one row per clock (run, step, due, finished, outcome, hours late)."""
    body = plans.review.period_csv(*_period(since, until))
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="plan_review.csv"'})


@router.post("/plans/tick", dependencies=[require(ADMINS)], response_model=TickPublic)
def tick(plans: PlansDep) -> dict:
    """Evaluate every plan clock now (the worker does this every `playbooks.clock_interval`)."""
    return plans.tick()
