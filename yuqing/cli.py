"""The `yuqing` command: serve, import, check-config and the sub-commands other packages add."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from access.cli import token_app, user_app
from alerts.cli import alerts_app
from core.errors import YuqingError
from core.listen import port_problem
from core.logging import setup_logging
from core.memory import fix_mmap_threshold
from crawlers.cli import crawl_command, demo_site_command
from nlp.cli import nlp_app
from playbooks.cli import plans_app
from reports.cli import reports_app
from yuqing.config_file import ConfigOption, config_path, console, load_config_or_exit

app = typer.Typer(help="yuqing 舆情: collect, understand, alert and respond.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
# Sub-commands live with their package; they import their heavy dependencies lazily, inside each command.
app.add_typer(nlp_app, name="nlp")  # yuqing nlp train | classify
app.add_typer(alerts_app, name="alerts")  # yuqing alerts dry-run | test-receiver | audit
app.add_typer(token_app, name="token")  # yuqing token create | list | revoke
app.add_typer(user_app, name="user")  # yuqing user create | list | set-roles
app.add_typer(reports_app, name="reports")  # yuqing reports make | list | send
app.add_typer(plans_app, name="plans")  # yuqing plans list | runs | show | start | step | approve | tick | deadline …
app.command("crawl")(crawl_command)
app.command("demo-site")(demo_site_command)


@app.command("check-config")
def check_config(config: ConfigOption = None) -> None:
    """Validate the configuration file and report every problem with its field."""
    cfg = load_config_or_exit(config)
    console.print(f"[green]ok[/green]: {config_path(config)} ({len(cfg.sources)} sources)")


@app.command("serve")
def serve(config: ConfigOption = None, host: str | None = None, port: int | None = None,
          log_level: str = "info") -> None:
    """Run the API (and the background workers the config enables) until interrupted.

    Says what it is doing at each step, so a first start never looks hung, and stops with one line when a port it
    needs is taken.
    """
    started = time.monotonic()
    cfg = load_config_or_exit(config)
    host = host or cfg.server.host
    port = port or cfg.server.port
    demo_site = cfg.crawling.demo_site
    busy = [port_problem(host, port, "server.port")]
    if demo_site.enabled:
        busy.append(port_problem(demo_site.host, demo_site.port, "crawling.demo_site.port"))
    if problems := [p for p in busy if p]:
        for problem in problems:
            typer.echo(problem, err=True)
        raise typer.Exit(1)

    def step(message: str) -> None:
        typer.echo(f"[{time.monotonic() - started:5.1f}s] {message}", err=True)

    step(f"config {config_path(config)} ({len(cfg.sources)} sources)")
    step("importing the web framework and the text pipeline...")
    import uvicorn

    from api.main import create_app
    from yuqing.service import build_service, load_demo_if_empty

    setup_logging(log_level)
    step(f"opening the store {cfg.storage.sqlite_path} (migrations) and loading the text models...")
    service = build_service(cfg)
    if cfg.demo.enabled:
        step(f"loading demo data ({cfg.demo.items} items) if the store is empty...")
    load_demo_if_empty(service)
    app_ = create_app(service)
    if cfg.demo.enabled or cfg.crawling.demo_site.enabled:  # demo mode: generated items or the local demo site
        from access.app import DEMO_ADMIN, ensure_demo_admin

        password = ensure_demo_admin(app_.state.access)
        if password is not None:
            console.print(f"demo admin created — user [bold]{DEMO_ADMIN}[/bold], password [bold]{password}[/bold] "
                          "(shown only now; `yuqing user create` adds more)")
    if demo_site.enabled:
        step(f"starting the demo site on {demo_site.url} and the crawl scheduler...")
    step(f"starting the API on http://{host}:{port} (web page /, API docs /docs); Ctrl-C stops")
    # server_header=False: no banner with versions for an attacker to match against advisories.
    uvicorn.run(app_, host=host, port=port, log_level=log_level, server_header=False)


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="CSV, JSON lines or XLSX export")],
    source: Annotated[str, typer.Option("--source", "-s", help="configured source id")],
    workers: Annotated[int | None, typer.Option(
        min=1, max=64, help="processes enriching the records (default ingest.workers, else cores − 1, at least 2; 1: none)")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Import a file export into the store; re-importing the same file adds nothing."""
    started = time.perf_counter()
    from flow.importer import FileImporter
    from flow.pool import PooledImport, pool_size
    from yuqing.pooled import pooled_stages

    setup_logging("warning")
    cfg = load_config_or_exit(config)

    columns = [TextColumn("importing {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    progress = Progress(*columns, console=console, transient=False, disable=not console.is_terminal)
    task = progress.add_task(file.name, total=None)

    def batches():  # noqa: ANN202
        for batch in importer.batches(cfg.ingest.batch_size):
            if importer.total is not None:
                progress.update(task, total=importer.total)
            yield batch

    feed: PooledImport | None = None
    try:
        try:
            # history: analysed and stored, never alerted on (alerts.rules)
            importer = FileImporter(file, source, cfg.source(source).import_, stamp={"backfill": True})
            # The pool starts, and takes the first batches, before this process builds its service (the workers load
            # their models while the writer loads its own) and before the progress bar starts its refresh thread
            # (the workers are forked from a process with one thread: `flow.pool.start_method`).
            feed = PooledImport(cfg, batches(), pool_size(cfg, workers), pooled_stages)
            progress.start()
            from yuqing.service import build_service  # the composition root: after the pool has started

            service = build_service(cfg, models_on_demand=feed.pool is not None)  # the workers classify
        except BaseException as exc:
            if feed is not None:
                feed.close()
            if isinstance(exc, YuqingError):
                console.print(f"[red]error[/red]: {exc.message}")
                raise typer.Exit(2) from exc
            raise
        ready, ready_cpu = time.perf_counter(), time.process_time()
        try:
            with service.writer.bulk_load(importer.estimated_records()) as load:
                total, pooled = feed.run(service.writer, lambda n: progress.advance(task, n))
        finally:
            feed.close()  # when the bulk load could not start (`run` closes it itself)
            service.close()
    finally:
        progress.stop()
    summary = total.model_dump(exclude={"item_ids"})
    summary["batches_enriched_by_workers"] = pooled
    summary["indexes_deferred"] = len(load.deferred)  # feed indexes built after the last row (Store.bulk_load)
    # start-up: loading the config, the store and the models; import: reading, enriching and storing; CPU seconds of
    # this process and of its pool workers
    summary["seconds"] = {"startup": round(ready - started, 2), "import": round(time.perf_counter() - ready, 2),
                          "startup_cpu": round(ready_cpu, 2),
                          "cpu": round(time.process_time(), 2), "workers_cpu": round(_children_cpu(), 2),
                          "index_rebuild": round(load.rebuild_seconds, 2)}
    typer.echo(json.dumps(summary, ensure_ascii=False))


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@app.command("reindex")
def reindex_command(
    source: Annotated[str, typer.Option("--from", help="sqlite:PATH of the store to copy")],
    target: Annotated[str, typer.Option("--to", help="elasticsearch:URL (http(s)://host:port) to copy the items to")],
    state: Annotated[Path | None, typer.Option(help="SQLite file of the target's state (identities, checkpoint); "
                                                    "default the config's storage.state_url, else the source file, "
                                                    "as storage.backend: elasticsearch expects")] = None,
    prefix: Annotated[str | None, typer.Option(help="index prefix (default storage.elasticsearch.index_prefix "
                                                    "of the config, else yuqing)")] = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000)] = 1000,
    compatible_with: Annotated[bool | None, typer.Option(
        "--compatible-with/--no-compatible-with",
        help="send the Elasticsearch compatible-with media type (default the config's, else yes; "
             "OpenSearch and forks need --no-compatible-with)")] = None,
    config: ConfigOption = None,
) -> None:
    """Copy every item of a SQLite store onto Elasticsearch, keeping ids; resumable (run it again after a stop) and
    verified at the end (exit 1 when counts differ). Auth, TLS and shards come from the config's storage.elasticsearch."""
    from core.config_storage import ElasticsearchConfig
    from nlp.search_tokens import index_tokens
    from nlp.tokenize import segment
    from storage.opening import open_store
    from storage.reindex import reindex
    from storage.sqlite import SqliteStore

    setup_logging("warning")
    if not source.startswith("sqlite:") or not target.startswith("elasticsearch:"):
        console.print("[red]error[/red]: use --from sqlite:PATH --to elasticsearch:URL")
        raise typer.Exit(2)
    path = Path(source.removeprefix("sqlite:"))
    if not path.is_file():
        console.print(f"[red]error[/red]: {path} is not a file")
        raise typer.Exit(2)
    configured, state_url = None, None
    if config is not None or config_path(None).exists():
        storage = load_config_or_exit(config).storage
        configured, state_url = storage.elasticsearch, storage.state_url
    try:
        options = configured.model_dump() if configured is not None else {}
        options.update(url=target.removeprefix("elasticsearch:"))
        if prefix:
            options["index_prefix"] = prefix
        if compatible_with is not None:
            options["compatible_with"] = compatible_with
        if configured is not None and configured.password is not None:
            options["password"] = configured.password.get_secret_value()
        es_config = ElasticsearchConfig.model_validate(options)
        from_store = SqliteStore(path, segment=segment, index_segment=index_tokens)
        # The target's state is where the service will look for it: --state, else the config's state_url, else the file.
        to_store = open_store(state or path, None if state else state_url, segment=segment,
                              index_segment=index_tokens, elasticsearch=es_config)
    except (YuqingError, ValueError) as exc:
        console.print(f"[red]error[/red]: {getattr(exc, 'message', exc)}")
        raise typer.Exit(2) from exc
    columns = [TextColumn("reindex {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    try:
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(path.name, total=None)
            report = reindex(from_store, to_store, str(path.resolve()), batch_size=batch,
                             progress=lambda done, total: bar.update(task, completed=done, total=total))
    except YuqingError as exc:
        console.print(f"[red]error[/red]: {exc.message} (run the same command again to resume)")
        raise typer.Exit(1) from exc
    finally:
        from_store.close()
        to_store.close()
    typer.echo(json.dumps({"source_items": report.source_items, "copied_now": report.copied_now,
                           "resumed_after_id": report.resumed_after_id, "target_identities": report.target_identities,
                           "target_documents": report.target_documents, "verified": report.verified}))
    if not report.verified:
        console.print("[red]counts differ[/red]: source, target identities and documents must all be equal")
        raise typer.Exit(1)


@app.command("quarantine")
def quarantine(config: ConfigOption = None, source: str | None = None, limit: int = 20) -> None:
    """List rejected input with the reason for each (personal data masked; the store keeps the record as received)."""
    from analysis.pii import mask_quarantine
    from yuqing.service import build_service

    cfg = load_config_or_exit(config)
    service = build_service(cfg, enrich=False)
    page = service.store.list_quarantine(source=source, limit=limit)
    for rec in page.data:
        typer.echo(json.dumps(mask_quarantine(rec).model_dump(mode="json"), ensure_ascii=False))
    console.print(f"{page.count} quarantined record(s)")


@app.command("demo-data")
def demo_data(config: ConfigOption = None, count: int = 300, seed: int = 2026) -> None:
    """Generate demo items into the store (the same seed gives the same items)."""
    from yuqing.service import build_service, ingest_demo

    setup_logging("warning")
    cfg = load_config_or_exit(config)
    service = build_service(cfg)
    report = ingest_demo(service, count=count, seed=seed)
    typer.echo(json.dumps(report.model_dump(exclude={"item_ids"}), ensure_ascii=False))


@app.command("status")
def status(config: ConfigOption = None, as_json: bool = typer.Option(False, "--json", help="one JSON object")) -> None:
    """What /metrics reports, read from the store for an operator: items per source, quarantine, inbox, the
    after-store outbox (items whose alert rules are pending), notifications per status, source health."""
    from yuqing.observe import snapshot
    from yuqing.service import build_service

    setup_logging("warning")
    service = build_service(load_config_or_exit(config), enrich=False)
    try:
        snap = snapshot(service)
    finally:
        service.close()
    if as_json:
        typer.echo(json.dumps(snap.as_dict(), ensure_ascii=False))
        return
    items = ", ".join(f"{s} {n}" for s, n in sorted(snap.items_by_source.items())) or "none"
    outbox = ", ".join(f"{s} {n}" for s, n in sorted(snap.outbox_by_status.items())) or "empty"
    sources = ", ".join(f"{s} {st}" for s, st in sorted(snap.source_status.items())) or "no crawl has run"
    typer.echo(f"items stored        {sum(snap.items_by_source.values())} ({items})")
    typer.echo(f"quarantined         {snap.quarantined}")
    typer.echo(f"inbox pending       {snap.inbox_pending}")
    typer.echo(f"alert rules pending {snap.after_store_pending} item(s)"
               + (f", {snap.after_store_given_up} given up after repeated failures" if snap.after_store_given_up else ""))
    typer.echo(f"notifications       {outbox}")
    typer.echo(f"sources             {sources}")


def main() -> None:
    fix_mmap_threshold()  # before the models and indexes are loaded: see core/memory.py
    try:
        app()
    except YuqingError as exc:
        console.print(f"[red]error[/red]: {exc.message}")
        sys.exit(2)
