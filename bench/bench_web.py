"""Server time of the web workspace's page loads at 100,000 stored items (issue 17): the feed page and the manager
review page, each as the page itself plus every request its scripts make on load, in the order a browser makes them.

The store is built by bench_store.py's builder (real texts recombined, synthesised enrichment, 90 days ending
2026-11-30); `yuqing serve` runs on it with the example's alert rules, and 300 response-plan runs are started by hand
(hotline_12345 on random work orders, a third with their first step done) so the review has runs to review. Timed
from another process over 127.0.0.1 with one client: p50 / p95 / max ms of the whole load (the requests one after
another, so the sum is an upper bound of what a browser that runs them in parallel waits) and of each request, and
the server process's CPU time per load (robust to the other work on a shared machine; the load average is reported).

The feed is measured as a browser opens it (`since=7天前`: the last 7 days of the bench clock, which has no data
after 2026-11-30, so also with the window moved onto the data's last 7 days, and with all history).
Run: `.venv/bin/python bench/bench_web.py [--items 100000] [--db PATH] [--reuse] [--rounds 30]`; prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_store import REPO, build, free_port, percentile, proc_cpu_seconds, wait_healthy, write_config  # noqa: E402
from core.models import SHANGHAI  # noqa: E402

STATIC = ["/static/app.css", "/static/common.js"]


def feed_load(since: str) -> list[str]:
    """What GET / makes a browser fetch: the shell, its CSS and scripts, then the facets, the feed, the side panels."""
    return ["/", *STATIC, "/static/pages/feed.js", "/api/feed/facets",
            f"/api/items?since={since}&sort=risk&limit=30", "/api/alerts?state=firing&limit=5",
            "/api/events/hot?days=7&limit=5"]


def review_load() -> list[str]:
    now = datetime.now(SHANGHAI)
    since = (now - timedelta(days=30)).isoformat()
    return ["/review", *STATIC, "/static/vendor/echarts.min.js", "/static/pages/review.js",
            f"/api/review/summary?since={quote(since)}&until={quote(now.isoformat())}"]


def time_load(http: httpx.Client, paths: list[str], rounds: int, pid: int) -> dict[str, object]:
    """Wall time per load and per request from this process, and the server's CPU time per load (/proc: what the
    load costs the server whatever else the machine runs)."""
    cpu_before = proc_cpu_seconds(pid)
    totals: list[float] = []
    each: dict[str, list[float]] = {p: [] for p in paths}
    statuses: dict[str, int] = {}
    for _ in range(rounds):
        total = 0.0
        for path in paths:
            started = time.perf_counter()
            response = http.get(path)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"GET {path} answered {response.status_code}: {response.text[:300]}")
            statuses[path] = response.status_code
            each[path].append(elapsed)
            total += elapsed
        totals.append(total)
    cpu_ms = (proc_cpu_seconds(pid) - cpu_before) * 1000 / rounds
    return {"load_ms": {"p50": percentile(totals, 50), "p95": percentile(totals, 95), "max": round(max(totals), 1)},
            "server_cpu_ms_per_load": round(cpu_ms, 1),
            "requests": {p: {"p50": percentile(t, 50), "p95": percentile(t, 95), "status": statuses[p]}
                         for p, t in each.items()}}


def start_runs(http: httpx.Client, count: int, seed: int) -> int:
    """Plan runs on random work orders, a third with the first step done (evidence given), through the API."""
    existing = http.get("/api/plans/runs", params={"limit": 1}).json()["count"]
    if existing >= count:  # --reuse of a database that has them already
        return existing
    rng = random.Random(seed)
    page = http.get("/api/items", params={"channel": "hotline", "limit": 500}).json()["data"]
    started = 0
    for item in rng.sample(page, min(count, len(page))):
        run = http.post("/api/plans/runs", json={"playbook_id": "hotline_12345", "item_id": item["id"],
                                                 "title": item["title"][:40]})
        if run.status_code != 201:
            raise RuntimeError(f"starting a run failed: {run.status_code} {run.text[:300]}")
        started += 1
        if started % 3 == 0:
            body = run.json()
            step = body["steps"][0]["step_id"]
            base = f"/api/plans/runs/{body['id']}/steps/{step}"
            http.post(f"{base}/transition", json={"to": "in_progress"}).raise_for_status()
            http.post(f"{base}/evidence", json={"kind": "text", "value": "已签收"}).raise_for_status()
            http.post(f"{base}/transition", json={"to": "done"}).raise_for_status()
    return started


def serve_and_measure(db: Path, rounds: int, runs: int) -> dict[str, object]:
    folder = Path(tempfile.mkdtemp(prefix="bench_web_"))
    port = free_port()
    config = write_config(folder, db, port)
    yuqing = [sys.executable, "-m", "yuqing"]
    created = subprocess.run([*yuqing, "token", "create", "--role", "admin", "--name", "bench-web", "-c", str(config)],
                             capture_output=True, text=True, check=True, cwd=REPO)
    token = created.stdout.strip().splitlines()[-1]
    server = subprocess.Popen([*yuqing, "serve", "-c", str(config)], stdout=subprocess.DEVNULL,
                              stderr=open(folder / "serve.log", "w"), cwd=REPO)  # noqa: SIM115 - lives with the server
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(port, server, time.perf_counter(), folder / "serve.log")
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}", "Accept": "text/html,*/*"},
                          timeout=120) as http:
            made = start_runs(http, runs, seed=17)
            for path in feed_load("7天前") + review_load():  # warm: first-request imports, page caches
                http.get(path)
            return {"plan_runs": made,
                    "feed_page (since=7天前, as a browser opens it)": time_load(http, feed_load("7天前"), rounds, server.pid),
                    "feed_page (the data's last 7 days)": time_load(http, feed_load("2026-11-23"), rounds, server.pid),
                    "feed_page (all history)": time_load(http, feed_load(""), rounds, server.pid),
                    "review_page (last 30 days)": time_load(http, review_load(), rounds, server.pid)}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--db", type=Path, help="where to build (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="measure an already built --db")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    db = args.db or Path(tempfile.mkdtemp(prefix="bench_web_db_")) / "store.db"
    report: dict[str, object] = {"items": args.items, "db": str(db), "target_ms": 300}
    if not args.reuse:
        report.update(build(db, args.items, args.seed))
    report.update(serve_and_measure(db, args.rounds, args.runs))
    report["load_average_1m"] = round(os.getloadavg()[0], 1)
    print(json.dumps(report, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
