"""The manager review page's one read: the period's SLA compliance (by playbook, department, topic, region), the
latest runs' reviews (time to first response, opinion before and after the response) and the quality of their
official replies, in one request so the page loads in one round trip."""

from __future__ import annotations

import csv
import io
import statistics
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from access.guard import require
from access.roles import READERS, REVIEWERS, Role
from api.deps import StoreDep
from core.errors import InputError, NotFound
from nlp.normalise import SHANGHAI, TimeParseError, parse_time

router = APIRouter(prefix="/api/review", tags=["playbooks"], dependencies=[require(REVIEWERS | {Role.press_office})])


def _time(name: str, value: str) -> datetime:
    try:
        return parse_time(value, tz=SHANGHAI)
    except TimeParseError as exc:
        raise InputError(f"{name}: {exc}", errors=[{"loc": ["query", name], "msg": str(exc)}]) from exc


def _reply_quality(store: Any, runs: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Relevance, completeness, interpretability and working days of the official reply to each run's item."""
    from playbooks.reply_quality import ReplyScorer

    pairs = {}
    for run in runs:
        if run.get("item_id") is None:
            continue
        try:
            item = store.get(run["item_id"])
        except NotFound:
            continue
        if item.reply is not None and item.reply.text.strip():
            pairs[run["id"]] = item
    if not pairs:
        return {}
    scorer = ReplyScorer().fit([t for i in pairs.values() for t in (i.content, i.reply.text)])
    out = {}
    for run_id, item in pairs.items():
        score = scorer.score(item.content, item.reply.text, item.published_at, item.reply.replied_at).public()
        score.pop("detail", None)
        out[run_id] = score
    return out


def _trend(clocks_csv: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Met / missed / open clocks per day (periods up to 14 days), week (up to 120) or 30 days, by due time: the
    period's clocks (playbooks' one row per clock) counted into buckets, so one query serves the whole chart."""
    step = timedelta(days=1 if end - start <= timedelta(days=14) else 7 if end - start <= timedelta(days=120) else 30)
    buckets = []
    cut = start
    while cut < end:
        buckets.append({"since": cut.isoformat(), "met": 0, "missed": 0, "open": 0, "skipped": 0, "compliance": None})
        cut += step
    for row in csv.DictReader(io.StringIO(clocks_csv.lstrip("\ufeff"))):
        if row["due"] and row["outcome"] in ("met", "missed", "open", "skipped"):
            index = int((datetime.fromisoformat(row["due"]) - start) / step)
            if 0 <= index < len(buckets):
                buckets[index][row["outcome"]] += 1
    for bucket in buckets:
        decided = bucket["met"] + bucket["missed"]
        bucket["compliance"] = round(bucket["met"] / decided, 4) if decided else None
    return buckets


@router.get("/summary")
def review_summary(request: Request, store: StoreDep, since: str, until: str,
                   runs: Annotated[int, Query(ge=1, le=100)] = 20) -> dict[str, Any]:
    """`period`: SLA compliance of the clocks due in [since, until); `trend`: the same per day, week or 30 days;
    `runs`: the latest runs started in the period, each with its review (deadlines, time to first response, opinion
    before/after) and reply quality; `first_response`: median and mean seconds to the first public response over those runs."""
    plans = request.app.state.service.playbooks
    if plans is None:
        raise NotFound("the playbooks extension is not attached")
    start, end = _time("since", since), _time("until", until)
    if end <= start:
        raise InputError("until must be after since", errors=[{"loc": ["query", "until"], "msg": "before since"}])
    period = plans.review.period(start, end)
    trend = _trend(plans.review.period_csv(start, end), start, end)
    latest, _count = plans.runs.list(limit=runs)  # newest first: the period's latest runs are among them
    chosen = [r for r in latest if r.get("started_at") and start <= datetime.fromisoformat(r["started_at"]) < end][:runs]
    quality = _reply_quality(store, chosen)
    reviews = []
    for run in chosen:
        review = plans.review.run(run["id"], window=timedelta(hours=24))
        review.pop("who_did_what", None)
        review["deadlines"].pop("steps", None)
        reviews.append({**review, "department": run.get("department"), "region": run.get("region"),
                        "started_at": run.get("started_at"), "reply_quality": quality.get(run["id"])})
    firsts = [r["time_to_first_response"] for r in reviews if r["time_to_first_response"] is not None]
    return {"since": start.isoformat(), "until": end.isoformat(), "period": period, "trend": trend, "runs": reviews,
            "first_response": {"runs": len(firsts), "median": statistics.median(firsts) if firsts else None,
                               "mean": round(statistics.fmean(firsts), 1) if firsts else None}}


board = APIRouter(prefix="/api/board", tags=["playbooks"], dependencies=[require(READERS)])


@board.get("/runs")
def board_runs(request: Request, state: Literal["open", "closed", "cancelled"] | None = None,
               limit: Annotated[int, Query(ge=1, le=100)] = 30) -> dict[str, Any]:
    """The plan board in one request: runs (newest first) with every step's evidence and approvals, and the names of
    the plan roles (playbooks.roles) the steps are assigned to."""
    plans = request.app.state.service.playbooks
    if plans is None:
        raise NotFound("the playbooks extension is not attached")
    runs, count = plans.runs.list(state=state, limit=limit)
    return {"data": [plans.runs.get(run["id"]) for run in runs], "count": count,
            "roles": {key: role.name or key for key, role in plans.config.roles.items()}}
