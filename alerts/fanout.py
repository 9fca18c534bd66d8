"""The live stream across instances: with `crawling.redis_url`, every instance's in-app events go through one Redis
pub/sub channel, so a browser connected to any instance behind the load balancer sees every notification and alert
state change, numbered the same everywhere (a reconnect to another instance resumes from its Last-Event-ID).

Without Redis but with the state on PostgreSQL (`storage.state_url`), the same fan-out goes through PostgreSQL's
LISTEN/NOTIFY (`PgBroadcaster`). With neither, each instance streams what it publishes itself (one instance:
everything).
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


PG_CHANNEL = "yuqing_stream"
PG_CHUNK = 7900  # characters of the event's ASCII JSON per NOTIFY payload (PostgreSQL's limit is 8,000 bytes)


class PgBroadcaster(Broadcaster):
    """A Broadcaster whose events travel through PostgreSQL: `publish` numbers the event from a sequence
    (`yuqing_stream_id`, in the state database's schema) and sends it with NOTIFY as ASCII JSON, in parts of
    `PG_CHUNK` characters (`ID PART TOTAL text`) in one transaction (PostgreSQL delivers a transaction's
    notifications together and in order); a listener thread on its own connection (LISTEN) reassembles every event
    of the channel, this instance's too, and hands it to the local subscribers. Events published while a listener is
    disconnected are not replayed to it (as with Redis pub/sub); a browser that reconnects gets the instance's
    history from its Last-Event-ID."""

    def __init__(self, url: str, *, history: int = 500, queue_size: int = 1000, channel: str = PG_CHANNEL) -> None:
        super().__init__(history=history, queue_size=queue_size)
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        self.where = parsed.render_as_string(hide_password=True)
        self.conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        self.channel = channel
        self._publish_lock = threading.Lock()
        self._conn: Any = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="stream-fanout-pg", daemon=True)
        self._thread.start()
        self._ready.wait(5)  # listening (or given up for now) before the first publish

    def _connect(self) -> Any:  # noqa: ANN401 - a psycopg connection
        import psycopg

        conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)
        conn.execute("CREATE SEQUENCE IF NOT EXISTS yuqing_stream_id")
        return conn

    def publish(self, event: str, data: dict[str, Any]) -> StreamEvent:
        """Raises NotifyError when PostgreSQL cannot be reached: the outbox then retries the in-app delivery with
        backoff (nothing is lost); the event is not shown anywhere until it goes through."""
        import psycopg

        body = json.dumps({"event": event, "data": data}, default=str)  # ASCII: a character is a byte
        parts = [body[i:i + PG_CHUNK] for i in range(0, len(body), PG_CHUNK)] or [""]
        with self._publish_lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                with self._conn.transaction():
                    event_id = int(self._conn.execute("SELECT nextval('yuqing_stream_id')").fetchone()[0])
                    for n, part in enumerate(parts):
                        self._conn.execute("SELECT pg_notify(%s, %s)", (self.channel, f"{event_id} {n} {len(parts)} {part}"))
            except psycopg.Error as exc:
                with contextlib.suppress(psycopg.Error):
                    if self._conn is not None:
                        self._conn.close()
                self._conn = None
                raise NotifyError(f"live stream: PostgreSQL at {self.where} unreachable: {exc}", recoverable=True) from exc
        return StreamEvent(event_id, event, data)

    def _listen(self) -> None:
        import psycopg

        delay = 0.5
        while not self._stop.is_set():
            conn = None
            try:
                conn = self._connect()
                conn.execute(f'LISTEN "{self.channel}"')
                self._ready.set()
                delay = 0.5
                pending: dict[int, list[str]] = {}
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=1.0):
                        self._part(note.payload, pending)
                    if conn.broken or conn.closed:
                        raise psycopg.OperationalError("the listening connection was lost")
            except psycopg.Error as exc:
                self._ready.set()
                logger.warning("live stream: PostgreSQL at %s unreachable (%s); retrying in %.1f s", self.where, exc,
                               delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        conn.close()

    def _part(self, payload: str, pending: dict[int, list[str]]) -> None:
        try:
            head_id, head_n, head_total, text = payload.split(" ", 3)
            event_id, n, total = int(head_id), int(head_n), int(head_total)
            parts = pending.setdefault(event_id, [])
            if n != len(parts):  # a part missing (cannot happen within one transaction): drop the event
                raise ValueError(f"part {n} of event {event_id} after {len(parts)}")
            parts.append(text)
            if len(parts) < total:
                return
            del pending[event_id]
            body = json.loads("".join(parts))
            item = StreamEvent(event_id, str(body["event"]), dict(body["data"]))
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("live stream: ignored a malformed notification on %s: %s", self.channel, exc)
            return
        self.deliver_local(item)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._publish_lock:
            if self._conn is not None:
                self._conn.close()


def stream_broadcaster(config: Any) -> Broadcaster:
    """The broadcaster the config asks for: Redis fan-out with `crawling.redis_url`, else PostgreSQL LISTEN/NOTIFY
    with the state there (`storage.state_url`), else this process only."""
    url = getattr(getattr(config, "crawling", None), "redis_url", None)
    if url:
        return RedisBroadcaster(url)
    state_url = getattr(getattr(config, "storage", None), "state_url", None)
    if state_url and state_url.startswith("postgresql"):
        return PgBroadcaster(state_url)
    return Broadcaster()


def wait_for(condition: Any, timeout: float = 5.0) -> bool:
    """Poll `condition()` until true or `timeout` (tests and start-up checks)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())
