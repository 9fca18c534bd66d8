"""Push → alert → delivery, end to end, as an operator would try it: `yuqing serve` (full enrichment) in its own
process, records offered through POST /api/ingest at a steady rate from this process, one rule firing for every item
and one group per alert, delivered by e-mail to a real aiosmtpd server and by webhook to a real HTTP receiver (both in
a third process). Latency is from the push being sent to the message being received.

Prints one JSON object: per offered rate, the rate ingest accepted, e-mail and webhook p50/p95/p99, items lost (stored
but not delivered when the drain timeout ends), duplicates (an item received twice on one channel), drain time and the
service's RSS. Target (issue 15): 250 items/s with p95 ≤ 2 s on both channels.

    .venv/bin/python bench/bench_push_alerts.py [--rates 5,50,250] [--seconds 15] [--drain 60] [--repo DIR] [--no-rules]

`--repo DIR` runs the service from another checkout (e.g. the commit before a change) with this venv, so before and
after are measured the same way on the same machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]


# ---- receivers (their own process) ------------------------------------------------------------------------------

def _item_ids_in_mail(content: bytes) -> list[int]:
    import re

    headers = re.sub(r"\r\n[ \t]+", " ", content.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace"))
    for line in headers.splitlines():
        if line.lower().startswith("x-yuqing-item-ids:"):
            return [int(raw) for raw in line.split(":", 1)[1].split(",") if raw.strip().isdigit()]
    return []


def _item_ids_in_json(node: Any) -> list[int]:
    if isinstance(node, dict):
        found = [node["item_id"]] if isinstance(node.get("item_id"), int) else []
        return found + [i for k, v in node.items() if k != "item_id" for i in _item_ids_in_json(v)]
    if isinstance(node, list):
        return [i for v in node for i in _item_ids_in_json(v)]
    return []


def serve_receivers(smtp_port: int, webhook_port: int) -> None:
    """aiosmtpd and an HTTP webhook receiver; one "channel item_id time" line per item received, until stdin closes."""
    from aiosmtpd.controller import Controller

    out = threading.Lock()

    def note(channel: str, ids: list[int]) -> None:
        now = time.time()
        with out:
            sys.stdout.write("".join(f"{channel} {i} {now:.6f}\n" for i in ids))
            sys.stdout.flush()

    class Mail:
        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802 - aiosmtpd hook
            note("email", _item_ids_in_mail(envelope.content))
            return "250 OK"

    class Hook(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server hook
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            note("webhook", _item_ids_in_json(json.loads(body or b"null")))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    controller = Controller(Mail(), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    hooks = ThreadingHTTPServer(("127.0.0.1", webhook_port), Hook)
    hooks.daemon_threads = True
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        sys.stdin.read()
    finally:
        controller.stop()
        hooks.shutdown()


# ---- the bench ----------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(int(round(q / 100 * (len(ordered) - 1))), len(ordered) - 1)], 3)


class Receivers:
    def __init__(self) -> None:
        self.smtp_port, self.webhook_port = free_port(), free_port()
        self.proc = subprocess.Popen([sys.executable, str(HERE), "--serve-receivers", str(self.smtp_port),
                                      str(self.webhook_port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"
        self.seen: dict[str, dict[int, list[float]]] = {"email": {}, "webhook": {}}
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            channel, item_id, at = line.split()
            with self.lock:
                self.seen[channel].setdefault(int(item_id), []).append(float(at))

    def reset(self) -> None:
        with self.lock:
            self.seen = {"email": {}, "webhook": {}}

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of one process so far (its threads included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of the service and of each child it started (the delivery process), by pid."""
    found: dict[int, float] = {}
    pending = [pid]
    while pending:
        current = pending.pop()
        if (spent := cpu_seconds(current)) is not None:
            found[current] = spent
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                pending.extend(int(child) for child in task.read_text().split())
    return found


def stored_source_ids(store: Any, source_ids: list[str]) -> dict[int, str]:
    """Item id → source id of the pushed records that were stored. A store from before `known_items` is paged
    through its search (the same answer, read the slow way)."""
    if hasattr(store, "known_items"):
        known = store.known_items([("push_src", source_id) for source_id in source_ids])
        return {entry.item_id: source_id for (_source, source_id), entry in known.items()}
    from storage.base import ItemQuery

    wanted, found, cursor = set(source_ids), {}, None
    while True:
        page = store.search(ItemQuery(source="push_src", limit=500, cursor=cursor))
        found.update({item.id: item.source_id for item in page.data if item.source_id in wanted})
        cursor = page.next_cursor
        if not cursor or not page.data:
            return found


def run_rate(repo: Path, rate: int, seconds: float, drain: float, receivers: Receivers, workdir: Path,
             profile: Path | None = None, send_workers: int | None = None, sample_every: float | None = None,
             rules: bool = True) -> dict:
    """Offer `rate` items/s for `seconds`, wait up to `drain` s for delivery, and measure. `sample_every`: also
    sample the service's RSS at that interval (seconds since the push began, MB) into `rss_samples`. `rules`
    False: no alert rule, and the drain waits for the items to be stored (`stored_per_s`: pushed items over the
    time from the first push to the last one stored)."""
    port = free_port()
    db = workdir / f"push-{rate}.db"
    config_path = workdir / f"push-{rate}.yaml"
    config_path.write_text(yaml.safe_dump({
        "server": {"host": "127.0.0.1", "port": port},
        "storage": {"sqlite_path": str(db)},
        "sources": {"push_src": {"channel": "hotline", "region": "江城市"}},
        "crawling": {"scheduler": False},
        "alerts": {"rules": []} if not rules else {
                   "smtp": {"host": "127.0.0.1", "port": receivers.smtp_port, "sender": "yuqing@example.gov.cn"},
                   "rules": [{"name": "every_item", "sources": ["push_src"], "severity": "warning"}],
                   "route": {"receiver": "duty", "group_by": ["item_id"], "group_wait": 0},
                   **({"send_workers": send_workers} if send_workers else {}),
                   "receivers": [{"name": "duty", "email": {"to": ["duty@example.gov.cn"]},
                                  "webhook": {"url": f"http://127.0.0.1:{receivers.webhook_port}/hook"}}]},
    }, allow_unicode=True))
    env = {**os.environ, "PYTHONPATH": str(repo)}
    sys.path.insert(0, str(repo))
    from core.config import load_config
    from storage.sqlite import SqliteStore
    from yuqing.service import build_service

    headers = {}
    try:
        from access.app import open_access
    except ImportError:  # a checkout from before access control (issue 15's "before"): ingest needs no token
        pass
    else:
        config = load_config(config_path)
        setup = build_service(config, enrich=False, extensions=False)
        _id, token = open_access(setup.store, config).create_token("bench", "ingest", sources=["push_src"], by="bench")
        setup.close()
        headers = {"Authorization": f"Bearer {token}"}
    log = (workdir / f"serve-{rate}.log").open("w")
    service = subprocess.Popen([sys.executable, "-c", "from yuqing.cli import main; main()", "serve", "-c",
                                str(config_path), "--log-level", "warning"], cwd=repo, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or service.poll() is not None:
                raise RuntimeError(f"service did not start; see {log.name}")
            time.sleep(0.2)
        rss_start = rss_mb(service.pid)
        cpu_start = process_cpu(service.pid)
        spy = None
        if profile is not None:  # py-spy (installed separately) samples the service while records are pushed
            spy = subprocess.Popen(["py-spy", "record", "-p", str(service.pid), "-d", str(int(seconds)), "-r", "50",
                                    "--threads", "--gil", "-f", "raw", "-o", str(profile.with_suffix(f".{rate}.raw"))],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        receivers.reset()
        samples: list[tuple[float, float | None]] = []
        sampling = threading.Event()
        if sample_every:
            def sample() -> None:
                began = time.monotonic()
                while not sampling.wait(sample_every):
                    samples.append((round(time.monotonic() - began, 1), rss_mb(service.pid)))
            threading.Thread(target=sample, daemon=True).start()
        pushed_at: dict[str, float] = {}
        tick = 0.1 if rate >= 10 else 1.0 / rate
        per_tick = max(1, round(rate * tick))
        total = int(rate * seconds)
        n = 0
        started = time.monotonic()
        push_began = time.time()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as client:
            while n < total:
                chunk = list(range(n, min(n + per_tick, total)))
                records = [{"source_id": f"b{rate}-{i}", "title": f"第{i}号工单：小区路灯不亮",
                            "content": f"江城市雨花区某小区{i}号楼前路灯坏了一周，居民夜间出行不便，多次反映无人处理，"
                                       "希望尽快维修。", "published_at": "2026-12-06 09:00"} for i in chunk]
                sent = time.time()
                answer = client.post("/api/ingest/push_src", json={"records": records})
                if answer.status_code in (200, 202):  # 200: a checkout that ingested inside the request
                    for i in chunk:
                        pushed_at[f"b{rate}-{i}"] = sent
                n += len(chunk)
                next_tick = started + (n / per_tick) * tick
                time.sleep(max(0.0, next_tick - time.monotonic()))
        push_seconds = time.monotonic() - started
        if spy is not None:
            spy.wait(seconds + 30)
        drain_started = time.monotonic()
        stored_after = None
        watch = None if rules else SqliteStore(db, segment=str.split, fts=False)
        while time.monotonic() - drain_started < drain:
            if watch is not None:
                if watch.stats().items >= len(pushed_at):
                    stored_after = time.monotonic() - started
                    break
            else:
                with receivers.lock:
                    done = min(len(receivers.seen["email"]), len(receivers.seen["webhook"]))
                if done >= len(pushed_at):
                    break
            time.sleep(0.05 if watch is not None else 0.2)
        if watch is not None:
            watch.close()
        drained = time.monotonic() - drain_started
        rss_end = rss_mb(service.pid)
        cpu_end = process_cpu(service.pid)
        sampling.set()
    finally:
        service.terminate()
        try:
            service.wait(30)
        except subprocess.TimeoutExpired:
            service.kill()
        log.close()
    store = SqliteStore(db, segment=str.split, fts=False)  # read through the store's interface, as any backend
    try:
        source_of = stored_source_ids(store, list(pushed_at))
    finally:
        store.close()
    result: dict[str, Any] = {"offered_per_s": rate, "offered": total, "accepted": len(pushed_at),
                              "accepted_per_s": round(len(pushed_at) / push_seconds, 1), "stored": len(source_of),
                              "drain_s": round(drained, 1), "rss_mb_start": rss_start, "rss_mb_end": rss_end,
                              "load_avg_1m": round(os.getloadavg()[0], 1)}
    if not rules:
        result["stored_per_s"] = round(len(source_of) / stored_after, 1) if stored_after else None
    # CPU per pushed item (push and drain, so what the load took from wall-clock figures still counts): the service
    # process, and the processes it started (the delivery process).
    spent = {pid: cpu_end[pid] - cpu_start.get(pid, 0.0) for pid in cpu_end}
    per_item = 1000 / max(len(pushed_at), 1)
    result["cpu_ms_per_item"] = {"service": round(spent.pop(service.pid, 0.0) * per_item, 2),
                                 "children": round(sum(spent.values()) * per_item, 2)}
    with receivers.lock:
        seen = {channel: dict(ids) for channel, ids in receivers.seen.items()}
    for channel, ids in seen.items() if rules else ():
        latencies = [min(times) - pushed_at[source_of[i]] for i, times in ids.items()
                     if i in source_of and source_of[i] in pushed_at]
        result[channel] = {"delivered": len(latencies), "p50_s": percentile(latencies, 50),
                           "p95_s": percentile(latencies, 95), "p99_s": percentile(latencies, 99),
                           "mean_s": round(statistics.fmean(latencies), 3) if latencies else None,
                           "lost": len(set(source_of) - set(ids)),
                           "duplicates": sum(len(times) - 1 for times in ids.values())}
    if sample_every:
        result["rss_samples"] = samples
        result["latencies"] = {channel: sorted((pushed_at[source_of[i]] - push_began, min(times) - pushed_at[source_of[i]])
                                               for i, times in ids.items() if i in source_of)
                               for channel, ids in seen.items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="5,50,250")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--drain", type=float, default=60)
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument("--profile", type=Path, help="py-spy raw samples (GIL holder) of the service to FILE.RATE.raw")
    parser.add_argument("--send-workers", type=int, help="alerts.send_workers (default: the config's default)")
    parser.add_argument("--no-rules", action="store_true", help="no alert rule: push ingest alone (stored_per_s)")
    parser.add_argument("--serve-receivers", nargs=2, type=int, metavar=("SMTP", "WEBHOOK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_receivers:
        serve_receivers(*args.serve_receivers)
        return
    receivers = Receivers()
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for rate in (int(r) for r in args.rates.split(",")):
                results.append(run_rate(args.repo.resolve(), rate, args.seconds, args.drain, receivers, Path(tmp),
                                        args.profile, args.send_workers, rules=not args.no_rules))
                print(json.dumps(results[-1], ensure_ascii=False), file=sys.stderr)  # noqa: T201 - progress
    finally:
        receivers.stop()
    print(json.dumps({"bench": "push_alerts", "repo": str(args.repo), "seconds": args.seconds,  # noqa: T201
                      "rules": not args.no_rules, "results": results},
                     ensure_ascii=False))


if __name__ == "__main__":
    main()
