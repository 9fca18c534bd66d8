"""`yuqing crawl SOURCE` (one run by hand, with progress) and `yuqing demo-site` (the imitation site alone)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

console = Console(stderr=True)
ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config (default as for `yuqing serve`)")]


def crawl_command(
    source: Annotated[str, typer.Argument(help="configured source id with a `crawl` section")],
    config: ConfigOption = None,
    full: Annotated[bool, typer.Option("--full", help="forget what was seen and crawl everything again")] = False,
    join: Annotated[bool, typer.Option("--join", help="work the shared queue (crawling.redis_url) of a crawl of SOURCE "
                                                      "going on on another machine")] = False,
) -> None:
    """Crawl one source now, show progress, ingest what it found and print the run and the source's health."""
    from core.logging import setup_logging
    from crawlers.health import source_health
    from crawlers.runner import job_dir
    from crawlers.state import forget_source
    from yuqing.config_file import load_config_or_exit
    from yuqing.service import build_service

    setup_logging("warning")
    cfg = load_config_or_exit(config)
    cfg.crawling.scheduler = False
    cfg.crawling.demo_site.enabled = False
    service = build_service(cfg)
    crawl = service.crawl
    if source not in crawl.crawl_sources():
        known = ", ".join(crawl.crawl_sources()) or "none"
        console.print(f"[red]error[/red]: {source!r} is not a crawled source; crawled sources: {known}")
        raise typer.Exit(2)
    if join and not cfg.crawling.redis_url:
        console.print("[red]error[/red]: --join works a shared queue: set crawling.redis_url")
        raise typer.Exit(2)
    if full and not join:
        with service.store.write() as conn:
            forget_source(conn, source)
        import shutil

        shutil.rmtree(job_dir(cfg, source), ignore_errors=True)
        if cfg.crawling.redis_url:  # the shared queue and duplicate filter, as the JOBDIR
            from crawlers.run import clear_shared_queue

            clear_shared_queue(cfg.crawling.redis_url, source)
    columns = [SpinnerColumn(), TextColumn("crawling {task.description}"), TextColumn("pages {task.fields[pages]}"),
               TextColumn("entries {task.fields[entries]}"), TextColumn("new items {task.fields[items]}"), TimeElapsedColumn()]
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task(source, pages=0, entries=0, items=0)

        def show(event: dict) -> None:
            progress.update(task, pages=event.get("pages", 0), entries=event.get("entries", 0), items=event.get("items", 0))

        result = crawl.join_source(source, on_progress=show) if join else crawl.run_source(source, on_progress=show)
    health = source_health(service.store).get(source)
    ingest = service.crawl.last_ingest.get(source)
    service.close()
    if result is None:
        console.print(f"{source} is already being crawled")
        raise typer.Exit(1)
    summary = {"source": source, "outcome": result.outcome, "finish_reason": result.finish_reason, "pages": result.pages,
               "entries": result.entries, "sent": result.items,
               # What the store did with them: a --full run of an unchanged site sends every entry, stores none.
               "new_items": getattr(ingest, "stored", 0), "updated_items": getattr(ingest, "updated", 0),
               "unchanged_items": getattr(ingest, "unchanged", 0), "duplicates": getattr(ingest, "duplicates", 0),
               "quarantined": getattr(ingest, "quarantined", 0), "revisited": result.revisited, "errors": result.errors,
               "seconds": round(result.duration, 2), "health": health.state if health else "unknown",
               "reason": health.reason if health else ""}
    typer.echo(json.dumps(summary, ensure_ascii=False))
    if result.outcome == "failed":
        raise typer.Exit(1)


def demo_site_command(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="default: crawling.demo_site.host")] = None,
    port: Annotated[int | None, typer.Option(help="default: crawling.demo_site.port")] = None,
    replay: Annotated[list[Path] | None, typer.Option(help="CSV export to serve as a message board at /replay/list "
                                                           "(columns as 泰迪杯 messages.csv); repeatable")] = None,
) -> None:
    """Serve the demo site imitating the five channels (12345 API, 信箱, 留言板 ×2, Weibo, WeChat) until Ctrl-C."""
    from core.listen import port_problem
    from core.logging import setup_logging
    from demo.site import site_from_config
    from yuqing.config_file import load_config_or_exit

    setup_logging("info")
    cfg = load_config_or_exit(config).crawling.demo_site
    if replay:
        from core.config_crawl import ReplaySpec

        cfg.replay = [*cfg.replay, *(ReplaySpec(path=p, path_prefix=f"replay{i or ''}") for i, p in enumerate(replay))]
    host = host or cfg.host
    port = cfg.port if port is None else port
    if problem := port_problem(host, port, "crawling.demo_site.port"):
        typer.echo(problem, err=True)
        raise typer.Exit(1)
    site = site_from_config(cfg)
    url = site.start(host, port)
    console.print(f"demo site at {url}  (robots: {url}/robots.txt)")
    for spec in cfg.replay:
        console.print(f"replaying {spec.path} at {url}/{spec.path_prefix}/list")
    try:
        assert site.thread is not None
        while site.thread.is_alive():
            site.thread.join(1)
    except KeyboardInterrupt:
        site.stop()
