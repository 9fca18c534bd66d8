"""Scrapy settings built from one source's crawl spec: politeness, caps and our pipelines, in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.config_crawl import CrawlSpec

RETRY_HTTP_CODES = [408, 429, 500, 502, 503, 504, 522, 524]


def redis_keys(source: str) -> tuple[str, str]:
    """The Redis keys of a source's shared crawl queue and duplicate filter."""
    return f"yuqing:crawl:{source}:requests", f"yuqing:crawl:{source}:dupefilter"


def crawl_settings(spec: CrawlSpec, job_dir: Path | None, log_level: str = "WARNING", *, redis_url: str | None = None,
                   source: str = "", worker: str = "") -> dict[str, Any]:
    settings: dict[str, Any] = {
        "BOT_NAME": "yuqing",
        "USER_AGENT": spec.user_agent,
        "ROBOTSTXT_OBEY": spec.robots,
        "CONCURRENT_REQUESTS": max(8, spec.concurrency),
        "CONCURRENT_REQUESTS_PER_DOMAIN": spec.concurrency,
        "DOWNLOAD_DELAY": spec.download_delay,
        "AUTOTHROTTLE_ENABLED": spec.autothrottle,
        # AutoThrottle starts at this delay and adapts to the site's latency; Scrapy's 5 s default suits no one.
        "AUTOTHROTTLE_START_DELAY": max(spec.download_delay, 0.25),
        "AUTOTHROTTLE_MAX_DELAY": 60.0,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": float(spec.concurrency),
        "RETRY_ENABLED": spec.retries > 0,
        "RETRY_TIMES": spec.retries,
        "RETRY_HTTP_CODES": RETRY_HTTP_CODES,
        "DOWNLOAD_TIMEOUT": spec.timeout_seconds,
        "DOWNLOAD_MAXSIZE": spec.max_page_bytes,
        "DOWNLOAD_WARNSIZE": 0,
        "CLOSESPIDER_PAGECOUNT": spec.max_pages,
        "REDIRECT_MAX_TIMES": 5,
        "COOKIES_ENABLED": True,
        "TELNETCONSOLE_ENABLED": False,
        # Each crawl is a short-lived subprocess: no remote control server, memory watcher or feed exports,
        # and only the HTTP download handlers, which keeps start-up (imports) short.
        "REMOTE_CONTROL_ENABLED": False,
        "MEMUSAGE_ENABLED": False,
        "EXTENSIONS_BASE": {"scrapy.extensions.corestats.CoreStats": 0, "scrapy.extensions.logcount.LogCount": 0,
                            "scrapy.extensions.closespider.CloseSpider": 0, "scrapy.extensions.spiderstate.SpiderState": 0,
                            "scrapy.extensions.throttle.AutoThrottle": 0},
        "DOWNLOAD_HANDLERS_BASE": {"http": "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler",
                                   "https": "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler"},
        "LOG_LEVEL": log_level,
        "LOG_STDOUT": False,
        "DEFAULT_REQUEST_HEADERS": {"Accept": "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8",
                                    "Accept-Language": "zh-CN,zh;q=0.9", **spec.headers},
        "DOWNLOADER_MIDDLEWARES": {"scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
                                   "crawlers.middlewares.BackoffRetryMiddleware": 550},
        "ITEM_PIPELINES": {"crawlers.pipelines.ValidatePipeline": 100, "crawlers.pipelines.InboxPipeline": 900},
        "EXTENSIONS": {"crawlers.middlewares.ProgressExtension": 500},
    }
    if redis_url:
        # scrapy-redis: the pending requests and the seen-request fingerprints live in Redis, shared by every crawler
        # machine, so a run interrupted on one resumes on another, and several processes can work one source's queue
        # at once (crawlers/shared_queue.py); cleared after a clean run, as JOBDIR is.
        queue_key, dupefilter_key = redis_keys(source)
        settings["EXTENSIONS"] = {**settings["EXTENSIONS"], "crawlers.shared_queue.SharedQueueWorkers": 510}
        settings.update({"YUQING_SOURCE": source, "YUQING_WORKER_ID": worker or source,
                         "SCHEDULER": "scrapy_redis.scheduler.Scheduler",
                         "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
                         "SCHEDULER_PERSIST": True, "REDIS_URL": redis_url,
                         "SCHEDULER_QUEUE_KEY": queue_key, "SCHEDULER_DUPEFILTER_KEY": dupefilter_key,
                         "REDIS_PARAMS": {"socket_connect_timeout": 5, "socket_timeout": 10, "retry_on_timeout": True}})
    elif job_dir is not None:
        # Scrapy's own persistence: the pending request queue and seen requests survive an interrupted run.
        settings["JOBDIR"] = str(job_dir)
    return settings
