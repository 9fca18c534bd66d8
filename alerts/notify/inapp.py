"""In-app delivery: a live stream (SSE) the web page and any client subscribe to; recent events are replayable.

The broadcaster is thread-safe: the dispatcher thread publishes, asyncio SSE handlers consume through
`loop.call_soon_threadsafe`, so a slow browser never blocks sending.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from alerts.notify.base import Message, intro, title
from core.config_alerts import InAppIntegration


@dataclass
class StreamEvent:
    id: int
    event: str
    data: dict[str, Any]


class Broadcaster:
    """Fan-out to subscribers with a bounded history so a reconnecting client can resume from Last-Event-ID."""

    def __init__(self, history: int = 500, queue_size: int = 1000) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._history: deque[StreamEvent] = deque(maxlen=history)
        self._subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = []
        self.queue_size = queue_size

    def publish(self, event: str, data: dict[str, Any]) -> StreamEvent:
        with self._lock:
            item = StreamEvent(next(self._ids), event, data)
        self.deliver_local(item)
        return item

    def deliver_local(self, item: StreamEvent) -> None:
        """Keep the event in the history and hand it to this process's subscribers."""
        with self._lock:
            self._history.append(item)
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            try:
                loop.call_soon_threadsafe(self._offer, queue, item)
            except RuntimeError:  # the subscriber's loop has closed
                self.unsubscribe(queue)

    @staticmethod
    def _offer(queue: asyncio.Queue, item: StreamEvent) -> None:
        if queue.full():
            queue.get_nowait()  # a stuck client loses its oldest event, never blocks the others
        queue.put_nowait(item)

    def subscribe(self, last_event_id: int | None = None) -> asyncio.Queue:
        """A queue for the calling event loop, pre-filled with history newer than `last_event_id`."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=self.queue_size)
        with self._lock:
            if last_event_id is not None:
                for item in self._history:
                    if item.id > last_event_id:
                        self._offer(queue, item)
            self._subscribers.append((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        with self._lock:
            self._subscribers = [(lp, q) for lp, q in self._subscribers if q is not queue]

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def close(self) -> None:
        """Nothing to release in one process (the Redis fan-out stops its listener)."""


class InAppNotifier:
    """Publishes the notification on the stream; it cannot fail, so it never needs a retry."""

    def __init__(self, integration: InAppIntegration, broadcaster: Broadcaster) -> None:
        self.integration = integration
        self.broadcaster = broadcaster

    def send(self, message: Message) -> None:
        self.broadcaster.publish("notification", {
            "kind": message.kind, "dedup_key": message.dedup_key, "receiver": message.receiver,
            "audience": self.integration.audience, "title": title(message), "summary": intro(message),
            "severity": message.severity, "total": message.total, "alerts": message.alerts[:100],
        })
