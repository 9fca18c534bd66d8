"""What the feed page needs besides the items list: the choices of its filters, and a live signal when items are
stored (SSE `items` events carrying counts only, so no text escapes a caller's region scope: the page re-reads the
scoped list)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sse_starlette.sse import EventSourceResponse

from access.guard import require
from access.roles import FEED
from api.deps import ConfigDep, StoreDep
from core.config import Config
from core.errors import InputError
from core.models import SHANGHAI, Channel, Item

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/feed", tags=["items"], dependencies=[require(FEED)])
EMOTIONS = ("anger", "fear", "sadness", "disgust", "happiness", "surprise", "neutral")


class ItemSignal:
    """Fans a "these items were stored" signal out from the ingest writer thread to asyncio SSE handlers."""

    def __init__(self, queue_size: int = 100) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = []
        self.queue_size = queue_size

    def __call__(self, items: list[Item]) -> None:
        """The ingestor's listener: called on the writer thread after each batch that stored something."""
        payload = {"stored": len(items), "max_risk": max((i.enrichment.risk_score or 0 for i in items), default=0)}
        with self._lock:
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            try:
                loop.call_soon_threadsafe(self._offer, queue, payload)
            except RuntimeError:  # that subscriber's loop has closed
                self.unsubscribe(queue)

    @staticmethod
    def _offer(queue: asyncio.Queue, payload: dict[str, Any]) -> None:
        if queue.full():
            queue.get_nowait()
        queue.put_nowait(payload)

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=self.queue_size)
        with self._lock:
            self._subscribers.append((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        with self._lock:
            self._subscribers = [(lp, q) for lp, q in self._subscribers if q is not queue]


@cache
def _topics(models_dir: str) -> tuple[str, ...]:
    path = Path(models_dir) / "topic" / "model.json"
    try:
        return tuple(json.loads(path.read_text(encoding="utf-8")).get("classes", []))
    except (OSError, ValueError):
        return ()


_FACETS: dict[int, tuple[Config, dict[str, Any]]] = {}


def facets(config: Config) -> dict[str, Any]:
    """Computed once per config (reading the scheme files is most of it); the config of a process does not change."""
    known = _FACETS.get(id(config))
    if known is not None and known[0] is config:
        return known[1]
    from analysis.stages import analysis_config, scheme_specs

    regions = sorted(set(config.analysis.keywords.places) | {s.region for s in config.sources.values() if s.region})
    answer = {
        "channels": [c.value for c in Channel],
        "sources": [{"id": sid, "name": s.name or sid} for sid, s in config.sources.items()],
        "topics": list(_topics(str(config.nlp.models_dir))),
        "emotions": list(EMOTIONS),
        "schemes": [{"name": s.name, "label": s.name} for s in scheme_specs(analysis_config(config))],
        "regions": regions,
    }
    _FACETS[id(config)] = (config, answer)
    return answer


@router.get("/facets")
def feed_facets(config: ConfigDep) -> dict[str, Any]:
    """The choices of the feed's filters: channels, sources, topics, emotions, schemes and configured regions."""
    return facets(config)


@router.get("/stream")
async def feed_stream(request: Request) -> EventSourceResponse:
    """Server-sent events for the feed page, on one connection (a browser allows six per host): `items`
    (`{"stored": n, "max_risk": x}`) after each ingest batch that stored items, and `alerts` (no data: a signal to
    re-read the scoped list) when an in-app notification or an alert's state change goes out."""
    signal: ItemSignal = request.app.state.item_signal
    engine = request.app.state.service.alerts
    items = signal.subscribe()
    alerts = engine.broadcaster.subscribe() if engine is not None else None

    async def events():  # noqa: ANN202 - async generator of SSE dicts
        waiting: dict[str, asyncio.Future] = {}
        try:
            while not await request.is_disconnected():
                waiting.setdefault("items", asyncio.ensure_future(items.get()))
                if alerts is not None:
                    waiting.setdefault("alerts", asyncio.ensure_future(alerts.get()))
                done, _ = await asyncio.wait(waiting.values(), timeout=15, return_when=asyncio.FIRST_COMPLETED)
                for name in [n for n, future in waiting.items() if future in done]:
                    value = waiting.pop(name).result()
                    yield {"event": "items", "data": json.dumps(value)} if name == "items" else \
                        {"event": "alerts", "data": json.dumps({"kind": value.event})}
        finally:
            for future in waiting.values():
                future.cancel()
            signal.unsubscribe(items)
            if alerts is not None:
                engine.broadcaster.unsubscribe(alerts)

    return EventSourceResponse(events(), ping=10)


VOLUME_GROUPS = ("topic", "source", "region", "scheme")


@router.get("/volume")
def feed_volume(store: StoreDep, by: str = "topic", days: Annotated[int, Query(ge=1, le=90)] = 14,
                top: Annotated[int, Query(ge=1, le=20)] = 6) -> dict[str, Any]:
    """Items per day (Asia/Shanghai) of the `top` largest groups by `by` over the last `days`: the trends chart."""
    if by not in VOLUME_GROUPS:
        raise InputError(f"by must be one of {', '.join(VOLUME_GROUPS)}", errors=[{"loc": ["query", "by"], "msg": "unknown"}])
    now = datetime.now(SHANGHAI)
    first = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    labels = [(first + timedelta(days=n)).strftime("%Y-%m-%d") for n in range(days)]
    counts: dict[str, list[int]] = {}
    for f in store.item_facets(first, now + timedelta(seconds=1)):
        day = (datetime.fromtimestamp(f.published_ts, SHANGHAI).date() - first.date()).days
        groups = f.schemes if by == "scheme" else [getattr(f, by) or ""]
        for group in groups:
            counts.setdefault(group, [0] * days)[day] += 1
    largest = sorted(counts.items(), key=lambda kv: -sum(kv[1]))[:top]
    return {"by": by, "days": labels, "series": [{"name": name, "counts": c} for name, c in largest]}
