"""The live stream across instances: with `crawling.redis_url`, every instance's in-app events go through one Redis
pub/sub channel, so a browser connected to any instance behind the load balancer sees every notification and alert
state change, numbered the same everywhere (a reconnect to another instance resumes from its Last-Event-ID).

Without Redis each instance streams what it publishes itself (one instance: everything).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from typing import Any

from alerts.notify.base import NotifyError
from alerts.notify.inapp import Broadcaster, StreamEvent
from core.redact import redact_url

logger = logging.getLogger(__name__)

CHANNEL = "yuqing:stream"
COUNTER = "yuqing:stream:id"


class RedisBroadcaster(Broadcaster):
    """A Broadcaster whose events travel through Redis: `publish` numbers the event (INCR) and PUBLISHes it; a
    listener thread hands every event of the channel, this instance's too, to the local subscribers."""

    def __init__(self, url: str, *, history: int = 500, queue_size: int = 1000, channel: str = CHANNEL) -> None:
        super().__init__(history=history, queue_size=queue_size)
        import redis

        self.url = url
        self.channel = channel
        self.counter = f"{channel}:id" if channel != CHANNEL else COUNTER
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5, health_check_interval=15)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="stream-fanout", daemon=True)
        self._thread.start()
        self._ready.wait(5)  # subscribed (or given up for now) before the first publish

    def publish(self, event: str, data: dict[str, Any]) -> StreamEvent:
        """Raises NotifyError when Redis cannot be reached: the outbox then retries the in-app delivery with backoff
        (nothing is lost); the event is not shown anywhere until it goes through."""
        import redis

        try:
            event_id = int(self._redis.incr(self.counter))
            self._redis.publish(self.channel, json.dumps({"id": event_id, "event": event, "data": data},
                                                         ensure_ascii=False, default=str))
        except redis.RedisError as exc:
            raise NotifyError(f"live stream: Redis at {self._where()} unreachable: {exc}", recoverable=True) from exc
        return StreamEvent(event_id, event, data)

    def _where(self) -> str:
        return redact_url(self.url)

    def _listen(self) -> None:
        import redis

        delay = 0.5
        while not self._stop.is_set():
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                self._ready.set()
                delay = 0.5
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._deliver(message["data"])
            except redis.RedisError as exc:
                self._ready.set()
                logger.warning("live stream: Redis at %s unreachable (%s); retrying in %.1f s", self._where(), exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)
            finally:
                with contextlib.suppress(redis.RedisError):
                    pubsub.close()

    def _deliver(self, raw: bytes | str) -> None:
        try:
            body = json.loads(raw)
            item = StreamEvent(int(body["id"]), str(body["event"]), dict(body["data"]))
        except (ValueError, KeyError, TypeError):
            logger.warning("live stream: ignored a malformed message on %s", self.channel)
            return
        self.deliver_local(item)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._redis.close()


def stream_broadcaster(config: Any) -> Broadcaster:
    """The broadcaster the config asks for: Redis fan-out with `crawling.redis_url`, else this process only."""
    url = getattr(getattr(config, "crawling", None), "redis_url", None)
    return RedisBroadcaster(url) if url else Broadcaster()


def wait_for(condition: Any, timeout: float = 5.0) -> bool:
    """Poll `condition()` until true or `timeout` (tests and start-up checks)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())
