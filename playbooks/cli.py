"""`yuqing plans …`: playbooks, runs, step changes, clocks, deadlines and reviews — the same objects the API uses."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

plans_app = typer.Typer(help="Response plans (预案): playbooks, runs, steps, clocks, reviews.", no_args_is_help=True)
ConfigOpt = Annotated[str | None, typer.Option("--config", "-c")]


def _plans(config: str | None) -> tuple[Any, Any]:
    from yuqing.config_file import load_config_or_exit as load
    from yuqing.service import build_service

    service = build_service(load(Path(config) if config else None), enrich=False)
    plans = service.playbooks
    if plans is None:
        raise typer.BadParameter("the playbooks extension is not attached (playbooks.enabled: false?)")
    return service, plans


def _echo(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, default=str))


@plans_app.command("list")
def list_playbooks(config: ConfigOpt = None) -> None:
    """The playbooks loaded (id, name, steps, basis)."""
    service, plans = _plans(config)
    for p in plans.playbooks.values():
        _echo({"id": p.id, "name": p.name, "version": p.version, "steps": [s.id for s in p.steps], "basis": p.basis})
    service.close()


@plans_app.command("check")
def check(directory: Path, config: ConfigOpt = None) -> None:
    """Validate the playbooks in DIRECTORY against the configured roles and alert rules; exit 2 when invalid."""
    from core.errors import PlaybookError
    from playbooks.plans import load_playbooks
    from yuqing.config_file import load_config_or_exit as load

    cfg = load(Path(config) if config else None)
    try:
        found = load_playbooks(directory, roles=cfg.playbooks.roles, rules={r.name for r in cfg.alerts.rules},
                               receivers={r.name for r in cfg.alerts.receivers})
    except PlaybookError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"ok: {len(found)} playbooks ({', '.join(found)})")


@plans_app.command("runs")
def runs(item_id: int | None = None, event_id: str | None = None, playbook: str | None = None,
         state: str | None = None, limit: int = 20, config: ConfigOpt = None) -> None:
    """Runs, newest first, with their steps' due times and time left."""
    service, plans = _plans(config)
    data, count = plans.runs.list(item_id=item_id, event_id=event_id, playbook_id=playbook, state=state, limit=limit)
    for run in data:
        _echo(run)
    typer.echo(f"{count} run(s)", err=True)
    service.close()


@plans_app.command("show")
def show(run_id: int, audit: bool = False, config: ConfigOpt = None) -> None:
    """One run with steps, approvals and evidence (and its audit trail with --audit)."""
    service, plans = _plans(config)
    _echo(plans.runs.get(run_id))
    if audit:
        for entry in plans.runs.audit(run_id):
            _echo(entry)
    service.close()


@plans_app.command("start")
def start(playbook: str, actor: Annotated[str, typer.Option(help="who starts it")], title: str = "",
          item_id: int | None = None, event_id: str | None = None, config: ConfigOpt = None) -> None:
    """Start PLAYBOOK by hand (for an item or an event, or on its own)."""
    service, plans = _plans(config)
    item = service.store.get(item_id) if item_id is not None else None
    _echo(plans.runs.start_manual(playbook, actor=actor, title=title, item_id=item_id, event_id=event_id, item=item))
    service.close()


@plans_app.command("step")
def step(run_id: int, step_id: str, to: Annotated[str, typer.Option(help="in_progress, awaiting_approval, done, skipped")],
         actor: Annotated[str, typer.Option()], reason: str = "", config: ConfigOpt = None) -> None:
    """Move a step along the transition table."""
    service, plans = _plans(config)
    _echo(plans.runs.transition(run_id, step_id, to, actor=actor, reason=reason))
    service.close()


@plans_app.command("approve")
def approve(run_id: int, step_id: str, actor: Annotated[str, typer.Option()], reject: bool = False,
            comment: str = "", config: ConfigOpt = None) -> None:
    """Sign (or with --reject send back) a statement awaiting approval."""
    service, plans = _plans(config)
    if reject:
        _echo(plans.runs.reject(run_id, step_id, actor=actor, comment=comment))
    else:
        _echo(plans.runs.approve(run_id, step_id, actor=actor, comment=comment))
    service.close()


@plans_app.command("evidence")
def evidence(run_id: int, step_id: str, kind: str, actor: Annotated[str, typer.Option()], value: str | None = None,
             file: Path | None = None, config: ConfigOpt = None) -> None:
    """Attach a link or text (--value) or a file (--file) to a step."""
    import base64

    service, plans = _plans(config)
    content = base64.b64encode(file.read_bytes()).decode() if file else None
    _echo(plans.runs.add_evidence(run_id, step_id, kind=kind, actor=actor, value=value, content_b64=content,
                                  filename=file.name if file else None))
    service.close()


@plans_app.command("tick")
def tick(config: ConfigOpt = None) -> None:
    """Evaluate every plan clock now: warnings and breaches become `deadline` alerts."""
    service, plans = _plans(config)
    _echo(plans.tick())
    service.close()


@plans_app.command("deadline")
def deadline(start: str, due: str, config: ConfigOpt = None) -> None:
    """When a clock of DUE (5h, 48h, 2d, 15wd) started at START (ISO-8601) runs out, and from which calendar."""
    from playbooks.service import build_calendar
    from yuqing.config_file import load_config_or_exit as load

    cal = build_calendar(load(Path(config) if config else None))
    _echo(cal.deadline(datetime.fromisoformat(start), due).public())


@plans_app.command("review")
def review(run_id: int, window_hours: float = 24.0, config: ConfigOpt = None) -> None:
    """Outcome review of one run: deadlines, response and close times, who did what, opinion before/after."""
    from datetime import timedelta

    service, plans = _plans(config)
    _echo(plans.review.run(run_id, window=timedelta(hours=window_hours)))
    service.close()


@plans_app.command("sla")
def sla(since: str, until: str, csv: Annotated[Path | None, typer.Option(help="write the period as CSV here")] = None,
        config: ConfigOpt = None) -> None:
    """SLA compliance of clocks due in [SINCE, UNTIL) by playbook, department, topic and region (and CSV export)."""
    from playbooks.api import _period

    service, plans = _plans(config)
    start, end = _period(since, until)
    _echo(plans.review.period(start, end))
    if csv is not None:
        csv.write_text(plans.review.period_csv(start, end), encoding="utf-8")
    service.close()


@plans_app.command("reply-quality")
def reply_quality(data_dir: Annotated[str | None, typer.Option(help="default: $YUQING_DATA_DIR, then ../shared/data")] = None,
                  config: ConfigOpt = None) -> None:
    """Score the 泰迪杯 replies (relevance, completeness, interpretability, timeliness) and compare with weak labels."""
    from playbooks.reply_quality import evaluate
    from playbooks.service import build_calendar
    from yuqing.config_file import load_config_or_exit as load

    cfg = load(Path(config) if config else None)
    _echo(evaluate(data_dir or cfg.data_dir, calendar=build_calendar(cfg)))
