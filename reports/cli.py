"""`yuqing reports …`: make a report to a file, list the reports kept, e-mail one — the objects the API uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

reports_app = typer.Typer(help="舆情日报 and 周报: make, list, send.", no_args_is_help=True)
ConfigOpt = Annotated[str | None, typer.Option("--config", "-c")]
KindArg = Annotated[str, typer.Argument(help="daily | weekly")]
DateOpt = Annotated[str | None, typer.Option("--date", help="any day of the period, YYYY-MM-DD; default: the last "
                                                             "complete one (yesterday, last week)")]


def _reports(config: str | None) -> tuple[Any, Any]:
    from yuqing.config_file import load_config_or_exit as load
    from yuqing.service import build_service

    service = build_service(load(Path(config) if config else None), enrich=False)
    if service.reports is None:
        service.close()
        raise typer.BadParameter("the reports extension is not attached (reports.enabled: false?)")
    return service, service.reports


def _fail(service: Any, exc: Exception) -> typer.Exit:
    service.close()
    typer.echo(f"error: {getattr(exc, 'message', exc)}", err=True)
    return typer.Exit(2)


@reports_app.command("make")
def make(kind: KindArg, date: DateOpt = None, fmt: Annotated[str, typer.Option("--format", help="html | pdf")] = "pdf",
         out: Annotated[Path | None, typer.Option("--out", help="file to write (default: the report's own name)")] = None,
         refresh: Annotated[bool, typer.Option(help="make it again even when a complete one is kept")] = False,
         config: ConfigOpt = None) -> None:
    """Make (or take the kept) report of the period and write it as HTML or PDF."""
    from core.errors import YuqingError
    from reports.mail import file_name

    if fmt not in ("html", "pdf"):
        raise typer.BadParameter("--format must be html or pdf")
    service, reports = _reports(config)
    try:
        report = reports.get_or_make(reports.period(kind, date), trigger="cli", refresh=refresh)
        data = reports.pdf(report) if fmt == "pdf" else report.html.encode("utf-8")
    except YuqingError as exc:
        raise _fail(service, exc) from exc
    target = out or Path(file_name(report.content, fmt))
    target.write_bytes(data)
    typer.echo(f"{target}: {report.title}（{report.content['period']['label']}），{report.content['volume']['total']} 条信息，"
               f"{len(data)} 字节")
    service.close()


@reports_app.command("list")
def list_reports(kind: Annotated[str | None, typer.Option(help="daily | weekly")] = None, limit: int = 20,
                 config: ConfigOpt = None) -> None:
    """Reports kept, newest period first (one JSON line each)."""
    service, reports = _reports(config)
    data, _count = reports.archive.list(kind=kind, limit=limit)
    for row in data:
        typer.echo(json.dumps(row, ensure_ascii=False))
    service.close()


@reports_app.command("send")
def send(kind: KindArg, date: DateOpt = None,
         receiver: Annotated[list[str] | None,
                             typer.Option("--receiver", help="alert receiver (default: reports.receivers)")] = None,
         config: ConfigOpt = None) -> None:
    """E-mail the report (HTML body, PDF attached) through the alert receivers; exit 1 when one failed."""
    from core.errors import YuqingError

    service, reports = _reports(config)
    try:
        report = reports.get_or_make(reports.period(kind, date), trigger="cli")
        outcomes = reports.send(report, receivers=receiver or None)
    except YuqingError as exc:
        raise _fail(service, exc) from exc
    for outcome in outcomes:
        typer.echo(json.dumps(outcome, ensure_ascii=False))
    service.close()
    if any(o["status"] != "sent" for o in outcomes):
        raise typer.Exit(1)
