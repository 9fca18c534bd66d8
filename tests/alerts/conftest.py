"""Real receivers on 127.0.0.1 (an aiosmtpd SMTP server, a threaded HTTP webhook server), a service with the alert
extension attached, a manual clock, and a test enrich stage that sets risk fields the way the NLP stages will."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from alerts.clock import ManualClock
from alerts.engine import AlertEngine
from core.config import Config, parse_config
from core.models import RawRecord
from tests.helpers.enrich import EnrichmentFromPayload
from tests.helpers.smtp import SmtpSink, running_sink

# A Tuesday (a working day) at 10:00 Beijing time.
T0 = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)

SOURCES = {
    "board_a": {"channel": "board", "region": "江城市"},
    "weibo_a": {"channel": "weibo"},
    "hotline_a": {"channel": "hotline", "region": "东湖区"},
}


# ---- SMTP -----------------------------------------------------------------------------------------------------


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    with running_sink() as sink:
        yield sink


# ---- webhook --------------------------------------------------------------------------------------------------


@dataclass
class WebhookSink:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    # Each entry answers one request: (status, json body, delay seconds); afterwards `default` answers.
    script: list[tuple[int, dict, float]] = field(default_factory=list)
    default: tuple[int, dict, float] = (200, {"errcode": 0, "errmsg": "ok"}, 0.0)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} webhook requests, got {len(self.requests)}")
                self.arrived.wait(left)
        return list(self.requests)


@pytest.fixture
def webhook_server() -> Iterator[WebhookSink]:
    sink = WebhookSink(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server hook
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            with sink.arrived:
                answer = sink.script.pop(0) if sink.script else sink.default
                sink.requests.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body or b"null"),
                                      "bytes": len(body)})
                sink.arrived.notify_all()
            status, payload, delay = answer
            if delay:
                time.sleep(delay)
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sink.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield sink
    server.shutdown()
    server.server_close()


# ---- service --------------------------------------------------------------------------------------------------


RiskFromPayload = EnrichmentFromPayload  # copies `test_enrichment` from the payload into item.enrichment


def alerts_config(db_path: Path, alerts: dict[str, Any]) -> Config:
    return parse_config({"sources": SOURCES, "storage": {"sqlite_path": str(db_path)}, "alerts": alerts})


@dataclass
class Harness:
    service: Any
    engine: AlertEngine
    clock: ManualClock
    _n: int = 0

    def ingest(self, *payloads: dict[str, Any], source: str = "board_a") -> list[int]:
        records = [RawRecord(source=source, payload=p) for p in payloads]
        report = self.service.writer.ingest(records)
        return report.item_ids

    def item(self, risk: float = 90, level: str = "I", **extra: Any) -> dict[str, Any]:
        """A payload whose enrichment carries the given risk; unique text each call."""
        self._n += 1
        enrichment = {"risk_score": risk, "risk_level": level, "topic": extra.pop("topic", "城乡建设"),
                      "emotion": extra.pop("emotion", "愤怒"), "schemes": extra.pop("schemes", []),
                      "event_id": extra.pop("event_id", None),
                      "risk_reasons": [{"feature": "群体性", "weight": 30, "detail": "多人聚集", "evidence": "几十户业主"}]}
        return {"source_id": f"t{self._n}", "title": f"小区停水第{self._n}天无人管",
                "content": f"第{self._n}条：几十户业主聚集在物业门口，要求尽快恢复供水。",
                "published_at": self.clock.now().isoformat(), "test_enrichment": enrichment, **extra}

    def tick(self, seconds: float = 0) -> dict[str, int]:
        if seconds:
            self.clock.advance(seconds)
        return self.engine.tick()


@pytest.fixture
def make_harness(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], Harness]]:
    made: list[Any] = []

    def build(alerts: dict[str, Any], start: datetime = T0, db_path: Path | None = None) -> Harness:
        from alerts.service import attach
        from yuqing.service import build_service

        config = alerts_config(db_path or tmp_path / f"h{len(made)}" / "alerts.db", alerts)
        service = build_service(config, enrich=False, extensions=False)
        service.provide_stages("enrich", {"risk": RiskFromPayload()})
        engine: AlertEngine = attach(service)
        made.append(service)
        clock = ManualClock(start)
        engine.clock = clock
        return Harness(service, engine, clock)

    yield build
    for service in made:
        service.close()


@pytest.fixture
def smtp_cfg(smtp_server: SmtpSink) -> dict[str, Any]:
    """The alerts.smtp block pointing at the local SMTP server."""
    return {"host": smtp_server.host, "port": smtp_server.port, "sender": "yuqing@example.gov.cn", "timeout": 5}
