"""One crawl of one source, in its own process: `python -m crawlers.run` with the job as JSON on stdin.

Twisted's reactor cannot be restarted within a process, so the service runs every crawl as a subprocess.
The job (including resolved secrets) comes on stdin, never on the command line. Stdout carries JSON lines:
progress while running, then one `finished` line with the run's statistics.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import shutil
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.config import SourceConfig
from core.config_crawl import CrawlSpec
from crawlers import state as _state  # noqa: F401 - registers the `crawl` migration before the store opens
from crawlers.settings import crawl_settings, redis_keys
from crawlers.shared_queue import leave, workers_key
from crawlers.spiders.hotline import HotlineSpider
from crawlers.spiders.html import HtmlSpider
from crawlers.spiders.jsonapi import JsonApiSpider
from crawlers.spiders.wechat import WechatSpider
from crawlers.spiders.weibo import WeiboSpider
from crawlers.state import CrawlState, forget_source

SPIDERS = {"html": HtmlSpider, "json_api": JsonApiSpider, "hotline_api": HotlineSpider, "weibo_api": WeiboSpider,
           "wechat": WechatSpider}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def _import_download_handler() -> None:
    """Import Scrapy's HTTP handler with a cheap `inspect.stack`.

    Its TLS modules build deprecated class aliases whose helper calls `inspect.stack()` only to name their module:
    that reads every frame's source and scans sys.modules per frame, 0.3-1 s of each crawl's start-up.
    Frames alone are enough for that helper (it reads `stack()[1][0]`).
    """
    real = inspect.stack

    def frames_only(context: int = 1) -> list[tuple[Any]]:
        out, frame = [], sys._getframe(1)
        while frame is not None:
            out.append((frame,))
            frame = frame.f_back
        return out

    inspect.stack = frames_only  # type: ignore[assignment]
    try:
        import scrapy.core.downloader.handlers.http11  # noqa: F401
    finally:
        inspect.stack = real


def crawl(job: dict[str, Any]) -> dict[str, Any]:
    _import_download_handler()
    from scrapy.crawler import CrawlerProcess

    source = job["source"]
    try:
        source_config = SourceConfig.model_validate(job["config"])
    except ValidationError as exc:  # normally caught when the config loads; never a crash that looks like a site problem
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return {"event": "finished", "source": source, "finish_reason": "config_error", "errors": {"config_error": 1},
                "message": f"sources.{source}.{where}: {first['msg']}"[:1000]}
    spec = source_config.crawl
    if spec is None:
        raise SystemExit(f"source {source} has no crawl section")
    redis_url = job.get("redis_url")
    queued = 0
    if redis_url:
        try:
            queued = shared_queue_length(redis_url, source)
        except Exception as exc:  # noqa: BLE001 - any failure to reach Redis is this run's outcome, said plainly
            from core.redact import redact_url

            where = redact_url(redis_url)
            return {"event": "finished", "source": source, "finish_reason": "redis_unreachable",
                    "errors": {"redis_unreachable": 1},
                    "message": f"crawling.redis_url={where}: the shared crawl queue is unreachable: {exc}"[:1000]}
    store = open_crawl_store(job)
    refetch = refetch_after_config_change(store, source, spec)
    crawl_state = CrawlState(store, source)
    job_dir = Path(job["job_dir"]) if job.get("job_dir") else None
    resumed = bool(queued) if redis_url else bool(job_dir and job_dir.exists() and any(job_dir.iterdir()))
    worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    joining = bool(redis_url and job.get("join"))
    process = CrawlerProcess(crawl_settings(spec, job_dir, job.get("log_level", "WARNING"), redis_url=redis_url,
                                            source=source, worker=worker), install_root_handler=True)
    spider_class = SPIDERS[spec.kind]
    if joining:  # the run that started fetches the list pages; this process works the queue it fills
        spider_class = type(f"Joining{spider_class.__name__}", (spider_class,), {"start": _no_start})
    crawler = process.create_crawler(spider_class)
    process.crawl(crawler, source=source, spec=spec, crawl_state=crawl_state, store=store)
    process.start()
    stats = {k: _jsonable(v) for k, v in crawler.stats.get_stats().items()}
    spider = crawler.spider
    if spider is not None and spider.problems:  # failures recorded after the pipeline's last flush
        store.quarantine(spider.problems)
    finish_reason = stats.get("finish_reason", "")
    errors = {k.removeprefix("yuqing/errors/"): v for k, v in stats.items() if k.startswith("yuqing/errors/")}
    fields = field_yields(stats)
    first = getattr(spider, "first_problem", {})
    message = first.get("config_error") or next(iter(first.values()), "")
    if redis_url:  # the last process out of a clean run clears the shared queue, another may still be working it
        try:
            leave(redis_url, source, worker, clean=finish_reason == "finished")
        except Exception as exc:  # noqa: BLE001 - the run's outcome stands; the next clean run clears the queue
            logging.getLogger(__name__).warning("shared crawl queue of %s: cannot leave it: %s", source, exc)
    if finish_reason == "finished":
        if not redis_url and job_dir is not None:
            shutil.rmtree(job_dir, ignore_errors=True)
        updated_max = getattr(spider, "updated_max", None)
        # Advance the work-order cursor only after a clean run: a failed page must be fetched again next time. A
        # joining process saw part of the run only: the run it joined advances the cursor.
        if updated_max and not errors and not joining:
            with store.write() as conn:
                crawl_state.set_cursor(conn, "updated_since", updated_max)
    store.close()
    return {"event": "finished", "source": source, "finish_reason": finish_reason, "resumed": resumed,
            "pages": stats.get("response_received_count", 0), "pages_ok": stats.get("yuqing/pages_ok", 0),
            "entries": stats.get("yuqing/entries", 0), "entries_seen": stats.get("yuqing/entries_seen", 0),
            "joined": joining, "items": stats.get("item_scraped_count", 0), "errors": errors,
            "incremental": bool(stats.get("yuqing/incremental")),
            "encoding_fixed": stats.get("yuqing/encoding_fixed", 0), "backoffs": stats.get("yuqing/backoffs", 0),
            "robots_forbidden": stats.get("robotstxt/forbidden", 0), "elapsed": stats.get("elapsed_time_seconds", 0),
            "revisited": stats.get("yuqing/revisit_due", 0), "revisit_changed": stats.get("yuqing/revisit_changed", 0),
            "fields": fields, "message": message[:1000], "refetch": refetch}


async def _no_start(self: Any) -> AsyncIterator[Any]:  # noqa: ANN401
    """No start requests: a joining process works the shared queue only."""
    return
    yield


def open_crawl_store(job: dict[str, Any]) -> Any:  # noqa: ANN401 - a Store, or the state alone
    """What a crawl writes to: the inbox, quarantine and crawl state, never items (the service ingests them). With the
    items on Elasticsearch that is the state database alone (`state_url`, or the SQLite file `db`): no items store
    is opened, so a crawl process makes no SQLite items file nor a cluster connection."""
    if job.get("items_backend") == "elasticsearch":
        from storage.state import SqlState, create_sqlite_engine, create_state_engine

        state_url = job.get("state_url")
        return SqlState(create_state_engine(state_url) if state_url else create_sqlite_engine(job["db"]))
    from storage.opening import open_store

    return open_store(job["db"], job.get("state_url"), segment=str.split, fts=False)


def shared_queue_length(redis_url: str, source: str) -> int:
    """Requests a previous, interrupted run of `source` left in the shared queue (raises when Redis is away)."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5)
    try:
        return int(client.zcard(redis_keys(source)[0]))
    finally:
        client.close()


def clear_shared_queue(redis_url: str, source: str) -> None:
    """After a clean run: the next run starts afresh (its list pages are not "seen"), as a removed JOBDIR does."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.delete(*redis_keys(source), workers_key(source))
    finally:
        client.close()


def extraction_digest(spec: CrawlSpec) -> str:
    """What decides how pages become items (the kind's section: URLs, selectors, field maps), as a short hash."""
    section = {"html": spec.html, "json_api": spec.json_api, "hotline_api": spec.hotline, "weibo_api": spec.weibo,
               "wechat": spec.wechat}[spec.kind]
    text = json.dumps([spec.kind, spec.encoding, section.model_dump(mode="json") if section else None], sort_keys=True,
                      ensure_ascii=False, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def refetch_after_config_change(store: Any, source: str, spec: CrawlSpec) -> bool:
    """After the source's extraction config changed, forget what was seen, so this run (and the next ones, within
    `max_pages`) fetch every page again and fixed selectors bring their fields back; returns whether it did.

    Harmless for the store: an unchanged item is reported unchanged, and an empty field never replaces a stored value.
    """
    digest = extraction_digest(spec)
    previous = CrawlState.read_cursor(store, source, "extraction_digest")
    with store.write() as conn:
        if previous is not None and previous != digest:
            forget_source(conn, source)
        CrawlState.write_cursor(conn, source, "extraction_digest", digest)
    return previous is not None and previous != digest


def field_yields(stats: dict[str, Any]) -> dict[str, list[int]]:
    """Per configured field: [pages where it had a value, pages read] (from the spiders' `fields/...` counters)."""
    out: dict[str, list[int]] = {}
    for key, value in stats.items():
        if key.startswith("yuqing/fields/"):
            name, _, what = key.removeprefix("yuqing/fields/").rpartition("/")
            pair = out.setdefault(name, [0, 0])
            pair[0 if what == "filled" else 1] = int(value)
    return out


def main() -> None:
    job = json.loads(sys.stdin.read())
    logging.basicConfig(level=job.get("log_level", "WARNING"), stream=sys.stderr)
    result = crawl(job)
    sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
