"""The `yuqing` command: serve, import, check-config and the sub-commands other packages add."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from core.config import Config, load_config
from core.errors import YuqingError
from core.logging import setup_logging

app = typer.Typer(help="yuqing 舆情: collect, understand, alert and respond.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config; default $YUQING_CONFIG, ./yuqing.yaml, then ./yuqing.example.yaml"),
]


def config_path(explicit: Path | None) -> Path:
    """Which config file to use when none is named."""
    if explicit:
        return explicit
    if env := os.environ.get("YUQING_CONFIG"):
        return Path(env)
    return Path("yuqing.yaml") if Path("yuqing.yaml").exists() else Path("yuqing.example.yaml")


def load(explicit: Path | None) -> Config:
    """Load the config or exit with the file, the field and the reason."""
    path = config_path(explicit)
    try:
        return load_config(path)
    except YuqingError as exc:
        console.print(f"[red]configuration error[/red]: {exc.message}")
        raise typer.Exit(2) from exc


@app.command("check-config")
def check_config(config: ConfigOption = None) -> None:
    """Validate the configuration file and report every problem with its field."""
    cfg = load(config)
    console.print(f"[green]ok[/green]: {config_path(config)} ({len(cfg.sources)} sources)")


@app.command("serve")
def serve(config: ConfigOption = None, host: str | None = None, port: int | None = None,
          log_level: str = "info") -> None:
    """Run the API (and the background workers the config enables) until interrupted."""
    import uvicorn

    from api.main import create_app
    from yuqing.service import build_service, load_demo_if_empty

    setup_logging(log_level)
    cfg = load(config)
    service = build_service(cfg)
    load_demo_if_empty(service)
    app_ = create_app(service)
    uvicorn.run(app_, host=host or cfg.server.host, port=port or cfg.server.port, log_level=log_level)


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="CSV, JSON lines or XLSX export")],
    source: Annotated[str, typer.Option("--source", "-s", help="configured source id")],
    config: ConfigOption = None,
) -> None:
    """Import a file export into the store; re-importing the same file adds nothing."""
    from flow.importer import FileImporter
    from yuqing.service import build_service

    setup_logging("warning")
    cfg = load(config)
    try:
        source_cfg = cfg.source(source)
        importer = FileImporter(file, source, source_cfg.import_)
        service = build_service(cfg)
    except YuqingError as exc:
        console.print(f"[red]error[/red]: {exc.message}")
        raise typer.Exit(2) from exc
    from core.models import IngestReport

    total = IngestReport()
    batch: list = []
    size = cfg.ingest.batch_size
    columns = [TextColumn("importing {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as progress:
        task = progress.add_task(file.name, total=None)
        for record in importer.records():
            if importer.total is not None:
                progress.update(task, total=importer.total)
            batch.append(record)
            if len(batch) >= size:
                total.merge(service.ingestor.ingest_batch(batch))
                progress.advance(task, len(batch))
                batch = []
        if batch:
            total.merge(service.ingestor.ingest_batch(batch))
            progress.advance(task, len(batch))
    service.close()
    summary = total.model_dump(exclude={"item_ids"})
    typer.echo(json.dumps(summary, ensure_ascii=False))


@app.command("quarantine")
def quarantine(config: ConfigOption = None, source: str | None = None, limit: int = 20) -> None:
    """List rejected input with the reason for each."""
    from yuqing.service import build_service

    cfg = load(config)
    service = build_service(cfg, enrich=False)
    page = service.store.list_quarantine(source=source, limit=limit)
    for rec in page.data:
        typer.echo(json.dumps(rec.model_dump(mode="json"), ensure_ascii=False))
    console.print(f"{page.count} quarantined record(s)")


@app.command("demo-data")
def demo_data(config: ConfigOption = None, count: int = 300, seed: int = 2026) -> None:
    """Generate demo items into the store (the same seed gives the same items)."""
    from yuqing.service import build_service, ingest_demo

    setup_logging("warning")
    cfg = load(config)
    service = build_service(cfg)
    report = ingest_demo(service, count=count, seed=seed)
    typer.echo(json.dumps(report.model_dump(exclude={"item_ids"}), ensure_ascii=False))


# Sub-commands live with their package; they import their heavy dependencies lazily, inside each command.
from alerts.cli import alerts_app  # noqa: E402
from crawlers.cli import crawl_command, demo_site_command  # noqa: E402
from nlp.cli import nlp_app  # noqa: E402
from playbooks.cli import plans_app  # noqa: E402

app.add_typer(nlp_app, name="nlp")  # yuqing nlp train | classify
app.add_typer(alerts_app, name="alerts")  # yuqing alerts dry-run | test-receiver | audit
app.add_typer(plans_app, name="plans")  # yuqing plans list | runs | show | start | step | approve | tick | deadline …

app.command("crawl")(crawl_command)
app.command("demo-site")(demo_site_command)


def main() -> None:
    try:
        app()
    except YuqingError as exc:
        console.print(f"[red]error[/red]: {exc.message}")
        sys.exit(2)
