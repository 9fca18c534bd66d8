"""Ingest-to-delivery latency of alerts: item stored → SMTP message received by a real aiosmtpd on 127.0.0.1.

The service runs as `yuqing serve` would (dispatcher worker thread, wall clock), with `group_wait: 0` and one group
per item, so every stored high-risk item becomes one e-mail. Items arrive one batch at a time at a steady rate.
Prints p50/p95/p99 (seconds) as JSON. Target: p95 ≤ 2 s on a 2-core machine.

The SMTP server runs in its own process by default (this script with `--serve-smtp PORT`, printing one
"item_id receive_time" line per item it receives), so the figures measure the product rather than the GIL
contention of a server sharing its interpreter; `--smtp inprocess` runs it in a thread as the first version did.

    .venv/bin/python bench/bench_alert_latency.py [--items 300] [--interval 0.02] [--batch 1] [--smtp process]
    .venv/bin/python bench/bench_alert_latency.py --items 1000 --batch 50 --interval 0.2   # the burst row
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import subprocess
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


def item_ids(content: bytes) -> list[int]:
    """The item ids a received message carries (its X-Yuqing-Item-Ids header)."""
    headers = content.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    headers = re.sub(r"\r\n[ \t]+", " ", headers)  # unfold continuation lines
    for line in headers.splitlines():
        if line.lower().startswith("x-yuqing-item-ids:"):
            return [int(raw) for raw in line.split(":", 1)[1].split(",") if raw.strip().isdigit()]
    return []


class Received:
    """Receive times per item id, fed by the in-process handler or by the server process's output."""

    def __init__(self) -> None:
        self.at: dict[int, float] = {}
        self.lock = threading.Condition()

    def note(self, ids: list[int], now: float) -> None:
        with self.lock:
            for item_id in ids:
                self.at.setdefault(item_id, now)
            self.lock.notify_all()

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802 - aiosmtpd hook
        self.note(item_ids(envelope.content), time.time())
        return "250 OK"


class PrintReceived:
    """The server process's handler: one "item_id receive_time" line per item, flushed at once."""

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802 - aiosmtpd hook
        now = time.time()
        sys.stdout.write("".join(f"{i} {now:.6f}\n" for i in item_ids(envelope.content)))
        sys.stdout.flush()
        return "250 OK"


def serve_smtp(port: int) -> None:
    """Run in the SMTP server process until stdin closes (the bench ended or died)."""
    controller = Controller(PrintReceived(), hostname="127.0.0.1", port=port)
    controller.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        sys.stdin.read()
    finally:
        controller.stop()


class SmtpProcess:
    """aiosmtpd in a child process; a reader thread turns its output lines into receive times."""

    def __init__(self, sink: Received, port: int) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve-smtp", str(port)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the SMTP server process did not start")
        self.reader = threading.Thread(target=self._read, args=(sink,), daemon=True)
        self.reader.start()

    def _read(self, sink: Received) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            item_id, at = line.split()
            sink.note([int(item_id)], float(at))

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


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


def outbox_times(store: object) -> dict[int, float]:
    """When each item's notification entered the outbox (its one-item group's first outbox row)."""
    from sqlalchemy import func, select

    from alerts.store import alert_members, alert_outbox, alerts

    with store.read() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(select(alerts.c.item_id, func.min(alert_outbox.c.created_ts))
                            .join(alert_members, alert_members.c.alert_id == alerts.c.id)
                            .join(alert_outbox, alert_outbox.c.group_key == alert_members.c.group_key)
                            .group_by(alerts.c.item_id)).all()
    return {item_id: created for item_id, created in rows}


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
    parser.add_argument("--smtp", choices=["process", "inprocess"], default="process",
                        help="run the SMTP server in a child process (default) or in a thread of this one")
    parser.add_argument("--serve-smtp", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_smtp:
        serve_smtp(args.serve_smtp)
        return

    from alerts.service import attach
    from yuqing.service import build_service

    sink = Received()
    port = free_port()
    if args.smtp == "process":
        server = SmtpProcess(sink, port)
        stop_server = server.stop
    else:
        controller = Controller(sink, hostname="127.0.0.1", port=port)
        controller.start()
        stop_server = controller.stop
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
        attach(service)  # provides "alert_rules": the chain is final from here, so the probes go in after it
        stages = service.ingestor.chain.stages
        stored_at = StoredAt()
        store_index = next(i for i, s in enumerate(stages) if s.name == "store")
        stages.insert(store_index, RiskStage())
        stages.insert(store_index + 2, stored_at)
        service.start()
        started = time.time()
        try:
            for start in range(0, args.items, args.batch):
                records = [RawRecord(source="board_bench", payload={
                    "source_id": f"b{i}", "title": f"小区停水第{i}天无人管", "content": f"第{i}条：几十户业主聚集要求恢复供水。",
                    "published_at": datetime.now(UTC).isoformat()}) for i in range(start, min(start + args.batch, args.items))]
                service.writer.ingest(records)
                time.sleep(args.interval)
            ingest_s = time.time() - started
            deadline = time.time() + 60
            with sink.lock:
                while len(sink.at) < len(stored_at.at) and time.time() < deadline:
                    sink.lock.wait(1)
            queued_at = outbox_times(service.store)
        finally:
            service.close()
            stop_server()
    latencies = [sink.at[i] - stored_at.at[i] for i in stored_at.at if i in sink.at]
    to_queue = [queued_at[i] - stored_at.at[i] for i in stored_at.at if i in queued_at]
    to_receive = [sink.at[i] - queued_at[i] for i in stored_at.at if i in queued_at and i in sink.at]
    result = {
        "bench": "alert_latency", "metric": "item stored → SMTP message received (s)",
        "items": args.items, "batch": args.batch, "interval_s": args.interval, "smtp_server": args.smtp,
        "delivered": len(latencies), "lost": len(stored_at.at) - len(latencies),
        "p50": round(percentile(latencies, 50), 4), "p95": round(percentile(latencies, 95), 4),
        "p99": round(percentile(latencies, 99), 4), "max": round(max(latencies), 4),
        "mean": round(statistics.fmean(latencies), 4), "wall_s": round(time.time() - started, 2),
        "offered_items_per_s": round(args.items / ingest_s, 1),
        "stored_to_outbox_p95": round(percentile(to_queue, 95), 4),
        "outbox_to_received_p95": round(percentile(to_receive, 95), 4),
        "target_p95_s": 2.0,
    }
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
