"""Several crawler processes on one source's shared queue (`crawling.redis_url`), at the same time.

scrapy-redis gives every process the same request queue (a sorted set: a pop takes a request out in one
transaction, so exactly one process fetches it) and the same duplicate filter (a request any process scheduled is
not scheduled again). Two things it leaves to us, both here:

- **when to stop.** A process whose queue runs dry while another is still fetching would close, although the pages
  that other one is reading may add requests. Each process publishes, every second, whether it is busy in the hash
  `yuqing:crawl:SOURCE:workers` (`{"seen": epoch seconds, "idle": bool}`); an idle process stays open while another
  one is busy (and was heard from in the last `STALE_S` seconds), and picks up what that one adds.
- **when to clear.** A clean run deletes the queue and the duplicate filter, so the next run starts from the list
  pages again; with several processes only the last one out does, or a process still working would find its
  duplicate filter gone and fetch pages again.

A process that starts with `join` issues no start requests of its own: it works the queue a running crawl of the
source (on any machine) fills. The one that started the run fetches the list pages.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from crawlers.settings import redis_keys

logger = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
STALE_S = 30.0  # a process not heard from for this long is gone (killed, its machine down): nobody waits for it


def workers_key(source: str) -> str:
    return f"yuqing:crawl:{source}:workers"


def _client(redis_url: str) -> Any:  # noqa: ANN401 - redis.Redis
    import redis

    return redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=10)


def live_workers(client: Any, source: str, *, but: str = "", now: float | None = None) -> dict[str, dict]:  # noqa: ANN401
    """The other processes working the source's queue, as they last said (stale ones left out)."""
    now = time.time() if now is None else now
    out = {}
    for worker, raw in client.hgetall(workers_key(source)).items():
        name = worker.decode() if isinstance(worker, bytes) else worker
        state = json.loads(raw)
        if name != but and now - float(state["seen"]) < STALE_S:
            out[name] = state
    return out


def leave(redis_url: str, source: str, worker: str, *, clean: bool) -> bool:
    """This process stops working the queue; after a clean run, the last one out clears the queue and the duplicate
    filter (returns whether it did)."""
    client = _client(redis_url)
    try:
        client.hdel(workers_key(source), worker)
        if not clean or live_workers(client, source):
            return False
        client.delete(*redis_keys(source), workers_key(source))
        return True
    finally:
        client.close()


class SharedQueueWorkers:
    """Scrapy extension (on with `crawling.redis_url`): publishes this process's state, keeps it open while another
    process of the same queue is busy."""

    def __init__(self, crawler: Any, redis_url: str, source: str, worker: str) -> None:  # noqa: ANN401
        self.crawler = crawler
        self.source = source
        self.worker = worker
        self.client = _client(redis_url)
        self.loop: Any = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> SharedQueueWorkers:  # noqa: ANN401
        from scrapy import signals
        from scrapy.exceptions import NotConfigured

        settings = crawler.settings
        if not settings.get("YUQING_WORKER_ID"):
            raise NotConfigured
        ext = cls(crawler, settings.get("REDIS_URL"), settings.get("YUQING_SOURCE"), settings.get("YUQING_WORKER_ID"))
        crawler.signals.connect(ext.opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.idle, signal=signals.spider_idle)
        crawler.signals.connect(ext.closed, signal=signals.spider_closed)
        return ext

    def publish(self, idle: bool) -> None:
        self.client.hset(workers_key(self.source), self.worker, json.dumps({"seen": time.time(), "idle": idle}))

    def opened(self, spider: Any) -> None:  # noqa: ANN401
        from twisted.internet.task import LoopingCall

        self.publish(False)
        self.loop = LoopingCall(self.beat)
        self.loop.start(HEARTBEAT_S, now=False)

    def beat(self) -> None:
        try:
            self.publish(self.crawler.engine.spider_is_idle())
        except Exception as exc:  # noqa: BLE001 - Redis away for a moment: the scheduler itself will say so
            logger.warning("shared crawl queue: cannot publish this worker's state: %s", exc)

    def idle(self, spider: Any) -> None:  # noqa: ANN401
        from scrapy.exceptions import DontCloseSpider

        self.publish(True)
        busy = [name for name, state in live_workers(self.client, self.source, but=self.worker).items()
                if not state.get("idle")]
        if busy:
            logger.info("shared crawl queue of %s is empty; waiting for %d busy worker(s)", self.source, len(busy))
            raise DontCloseSpider

    def closed(self, spider: Any, reason: str) -> None:  # noqa: ANN401
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        try:  # nobody waits for a process that stopped; whether to clear the queue is `leave`'s, with the outcome
            self.client.hdel(workers_key(self.source), self.worker)
        finally:
            self.client.close()
