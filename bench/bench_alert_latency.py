"""Ingest-to-delivery latency of alerts: item stored → SMTP message received by a real aiosmtpd on 127.0.0.1.

The service runs as `yuqing serve` would (dispatcher worker thread, wall clock), with `group_wait: 0` and one group
per item, so every stored high-risk item becomes one e-mail. Items arrive one batch at a time at a steady rate.
Prints p50/p95/p99 (seconds) as JSON. Target: p95 ≤ 2 s on a 2-core machine.

    .venv/bin/python bench/bench_alert_latency.py [--items 300] [--interval 0.02] [--batch 1]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiosmtpd.controller import Controller  # noqa: E402

from core.config import parse_config  # noqa: E402
from core.models import Enrichment, RawRecord, RiskReason  # noqa: E402
from flow.stages import Batch  # noqa: E402


class Received:
    def __init__(self) -> None:
        self.at: dict[int, float] = {}
        self.lock = threading.Condition()

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802 - aiosmtpd hook
        now = time.time()
        headers = envelope.content.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        for line in headers.splitlines():
            if line.lower().startswith("x-yuqing-item-ids:"):
                with self.lock:
                    for raw in line.split(":", 1)[1].split(","):
                        if raw.strip().isdigit():
                            self.at.setdefault(int(raw), now)
                    self.lock.notify_all()
        return "250 OK"


class RiskStage:
    """Stands in for the NLP risk stage: every bench item is high risk."""

    name = "bench_risk"

    def run(self, batch: Batch) -> None:
        for item in batch.items:
            item.enrichment = Enrichment(risk_score=90, risk_level="I", topic="城乡建设", emotion="愤怒",
                                         risk_reasons=[RiskReason(feature="群体性", weight=30, detail="多人聚集")])


class StoredAt:
    """Records when each item was stored (runs right after the store stage)."""

    name = "bench_stored_at"

    def __init__(self) -> None:
        self.at: dict[int, float] = {}

    def run(self, batch: Batch) -> None:
        now = time.time()
        for item in batch.stored:
            self.at[item.id] = now


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(int(round(q / 100 * (len(ordered) - 1))), len(ordered) - 1)
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between batches")
    parser.add_argument("--batch", type=int, default=1, help="items per ingest batch")
    args = parser.parse_args()

    from alerts.service import attach
    from yuqing.service import build_service

    sink = Received()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config({
            "sources": {"board_bench": {"channel": "board", "region": "江城市"}},
            "storage": {"sqlite_path": str(Path(tmp) / "bench.db")},
            "alerts": {"smtp": {"host": "127.0.0.1", "port": port, "sender": "yuqing@example.gov.cn"},
                       "rules": [{"name": "high_risk", "min_risk_score": 80, "severity": "critical"}],
                       "route": {"receiver": "duty", "group_by": ["item_id"], "group_wait": 0},
                       "receivers": [{"name": "duty", "email": {"to": ["duty@example.gov.cn"]}}]},
        })
        service = build_service(config, enrich=False, extensions=False)
        stages = service.ingestor.chain.stages
        stored_at = StoredAt()
        store_index = next(i for i, s in enumerate(stages) if s.name == "store")
        stages.insert(store_index, RiskStage())
        stages.insert(store_index + 2, stored_at)
        attach(service)
        service.start()
        started = time.time()
        try:
            for start in range(0, args.items, args.batch):
                records = [RawRecord(source="board_bench", payload={
                    "source_id": f"b{i}", "title": f"小区停水第{i}天无人管", "content": f"第{i}条：几十户业主聚集要求恢复供水。",
                    "published_at": datetime.now(UTC).isoformat()}) for i in range(start, min(start + args.batch, args.items))]
                service.ingestor.ingest(records)
                time.sleep(args.interval)
            deadline = time.time() + 60
            with sink.lock:
                while len(sink.at) < len(stored_at.at) and time.time() < deadline:
                    sink.lock.wait(1)
        finally:
            service.close()
            controller.stop()
    latencies = [sink.at[i] - stored_at.at[i] for i in stored_at.at if i in sink.at]
    result = {
        "bench": "alert_latency", "metric": "item stored → SMTP message received (s)",
        "items": args.items, "batch": args.batch, "interval_s": args.interval,
        "delivered": len(latencies), "lost": len(stored_at.at) - len(latencies),
        "p50": round(percentile(latencies, 50), 4), "p95": round(percentile(latencies, 95), 4),
        "p99": round(percentile(latencies, 99), 4), "max": round(max(latencies), 4),
        "mean": round(statistics.fmean(latencies), 4), "wall_s": round(time.time() - started, 2),
        "target_p95_s": 2.0,
    }
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
