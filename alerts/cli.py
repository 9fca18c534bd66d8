"""`yuqing alerts …`: dry-run a rule, send a test message, read the audit trail — the same engine the API uses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

alerts_app = typer.Typer(help="Alerts: dry-run rules, test receivers, read the audit trail, re-queue dead notifications.",
                         no_args_is_help=True)


def _engine(config):  # noqa: ANN001, ANN202 - Path | None → (Service, AlertEngine)
    from yuqing.config_file import load_config_or_exit
    from yuqing.service import build_service

    service = build_service(load_config_or_exit(config), enrich=False)
    engine = service.alerts
    if engine is None:
        raise typer.BadParameter("the alerts extension is not attached")
    return service, engine


@alerts_app.command("dry-run")
def dry_run(rule: Annotated[str, typer.Argument(help="a configured rule name")], days: float = 7.0,
            config: Annotated[str | None, typer.Option("--config", "-c")] = None) -> None:
    """How many alerts RULE would have raised over items published in the last DAYS days."""
    from pathlib import Path

    service, engine = _engine(Path(config) if config else None)
    until = datetime.now(UTC)
    typer.echo(json.dumps(engine.dry_run(rule, until - timedelta(days=days), until), ensure_ascii=False))
    service.close()


@alerts_app.command("test-receiver")
def test_receiver(name: str, config: Annotated[str | None, typer.Option("--config", "-c")] = None) -> None:
    """Send a test message through every channel of receiver NAME and report each outcome."""
    from pathlib import Path

    service, engine = _engine(Path(config) if config else None)
    result = engine.test_receiver(name, by="cli")
    typer.echo(json.dumps(result, ensure_ascii=False))
    service.close()
    if not result["ok"]:
        raise typer.Exit(1)


@alerts_app.command("audit")
def audit(limit: int = 20, decision: str | None = None, alert_id: int | None = None,
          config: Annotated[str | None, typer.Option("--config", "-c")] = None) -> None:
    """The newest decisions (send, skip, group, silence, inhibit, escalate, retry, fail…) with their reasons."""
    from pathlib import Path

    service, engine = _engine(Path(config) if config else None)
    rows, _ = engine.reader.audit(limit=limit, decision=decision, alert_id=alert_id)
    for row in rows:
        typer.echo(json.dumps(row, ensure_ascii=False))
    service.close()


@alerts_app.command("dead")
def dead(limit: int = 50, config: Annotated[str | None, typer.Option("--config", "-c")] = None) -> None:
    """Notifications given up on (dead: retries ran out; failed: permanent error), one JSON line each."""
    from pathlib import Path

    service, engine = _engine(Path(config) if config else None)
    for status in ("dead", "failed"):
        rows, _ = engine.reader.outbox(status=status, limit=limit)
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
    service.close()


@alerts_app.command("requeue")
def requeue(ids: Annotated[list[int] | None, typer.Argument(help="outbox ids (see `yuqing alerts dead`)")] = None,
            all_: Annotated[bool, typer.Option("--all", help="every dead or failed notification")] = False,
            config: Annotated[str | None, typer.Option("--config", "-c")] = None) -> None:
    """Send given-up notifications again (attempts reset, same dedup key); audited as re-queued by `cli`. A running
    service sends them on its next dispatcher pass."""
    from pathlib import Path

    if not ids and not all_:
        raise typer.BadParameter("give outbox ids or --all")
    service, engine = _engine(Path(config) if config else None)
    requeued = engine.dispatcher.requeue(engine.clock.now(), by="cli", ids=None if all_ else list(ids or []))
    typer.echo(f"re-queued {len(requeued)} notification(s): {', '.join(map(str, requeued)) or 'none'}", err=True)
    service.close()
