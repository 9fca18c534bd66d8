"""The embedded store at scale (issue 16): query latency from another process, idle CPU, RSS and DB size per item.

Builds N items (default 1,000,000) from the shared real texts: 泰迪杯 posts, posts with their official replies and
the Weibo sample, recombined sentence by sentence (seeded) so no two are alike, over five channels (two sources
each) and 90 days, published in random order. They are written through `SqliteStore.upsert` in batches, with the
real full-text segmentation; the enrichment is synthesised (full NLP runs at a few thousand items/s, too slow for a
million here): the topic is the real 一级标签 when a text comes from the labelled set, else drawn with that set's
class frequencies; emotion, risk score (risk level from the example's thresholds), region, event and schemes are
drawn from fixed distributions. No alert rules run, so the service starts with no alerts.

Then `yuqing serve` runs on the built database (no crawling, no demo site, the example's alert rules) and
client processes query GET /api/items, 1 and then 8 at once (each its own process and connection, as browsers are:
bench/load_clients.py): p50/p95/p99 ms of each query kind, and errors. The idle
CPU of the service is sampled over 30 s (/proc), its RSS idle and under load; each query kind also reports the
service's CPU per request (/proc), which other work on the machine does not change, with the load average.
With `--muted-alerts N` the service starts holding N muted alerts (inhibited under firing event alerts, or silenced),
raised through the alert engine, so the idle CPU says whether the dispatcher's tick grows with them.
The service runs with `server.read_workers: 2` unless `--read-workers` says otherwise; its CPU and RSS include its read
workers'. Run: `.venv/bin/python bench/bench_store.py [--items N] [--db PATH] [--reuse] [--muted-alerts N]
[--read-workers N]`; prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load_clients import Clients  # noqa: E402
from core.models import SHANGHAI, Channel, Engagement, Enrichment, Item, Reply  # noqa: E402
from core.paths import data_dir  # noqa: E402
from nlp.search_tokens import index_tokens  # noqa: E402
from nlp.tokenize import segment  # noqa: E402
from storage.sqlite import SqliteStore  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
START = datetime(2026, 9, 1, tzinfo=SHANGHAI)
DAYS = 90
SOURCES = {Channel.hotline: ["hotline_city", "hotline_district"], Channel.mailbox: ["mailbox_mayor", "mailbox_party"],
           Channel.board: ["board_tipdm", "board_people"], Channel.weibo: ["weibo_keywords", "weibo_accounts"],
           Channel.wechat: ["wechat_city", "wechat_media"]}
EMOTIONS = (["neutral"] * 40 + ["angry"] * 25 + ["sad"] * 12 + ["fear"] * 8 + ["happy"] * 10 + ["surprise"] * 5)
REGIONS = [f"A市A{n}区" for n in range(1, 10)] + ["江城市雨花区", "江城市江城区", "江城市高新区", None]
SCHEMES = ["油烟", "噪音", "欠薪", "供水", "物业", "拆迁", "教育收费"]
# The query kinds of the table (plus the other feed filters), as GET /api/items parameters.
QUERIES: dict[str, dict[str, str]] = {
    "default feed": {},
    "channel=weibo": {"channel": "weibo"},
    "topic=": {"topic": "城乡建设"},
    "risk_level=I": {"risk_level": "I"},
    "sort=risk": {"sort": "risk"},
    "region=": {"region": "A市A3区"},
    "q=小区 (common word)": {"q": "小区"},
    "phrase": {"q": '"物业公司"'},
    "boolean": {"q": "(停水 OR 停电) 小区 NOT 物业"},
    "NEAR": {"q": "噪音 NEAR/5 扰民"},
}


def clean(text: object) -> str:
    return re.sub(r"\s+", "", str(text)) if isinstance(text, str) else ""


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[。！？!?；])", text) if len(s) >= 4]


def load_texts(folder: Path) -> dict[str, object]:
    """Titles and sentences per origin, the labelled posts' topics, and the replies."""
    hot = pd.read_csv(folder / "tipdm2020c_hot_issue_messages" / "messages.csv")
    replies = pd.read_csv(folder / "tipdm2020c_replies" / "replies.csv")
    labelled = pd.read_csv(folder / "tipdm2020c_messages_labeled" / "messages.csv")
    weibo = pd.read_csv(folder / "weibo_covid19_unlabeled_sample" / "posts.csv")
    posts = [(clean(r.title), clean(r.body), None) for r in hot.itertuples()]
    posts += [(clean(r.title), clean(r.body), None) for r in replies.itertuples()]
    posts += [(clean(r.title), clean(r.body), str(r.label_l1)) for r in labelled.itertuples()]
    posts = [p for p in posts if p[0] and p[1]]
    return {
        "posts": posts,
        "post_sentences": [s for _t, body, _l in posts for s in sentences(body)],
        "weibo": [t for t in (clean(x) for x in weibo.text) if len(t) >= 8],
        "replies": [r for r in (clean(x) for x in replies.reply) if r],
        "topics": [str(x) for x in labelled.label_l1],
    }


def make_item(n: int, rng: random.Random, texts: dict, events: int) -> Item:
    """Item n: a real title with a few real sentences recombined around its own body's start."""
    channel = rng.choice(list(SOURCES))
    source = rng.choice(SOURCES[channel])
    if channel == Channel.weibo:
        base = rng.choice(texts["weibo"])
        title, content, topic = base[:20], base + "".join(rng.sample(texts["weibo"], rng.randint(0, 2))), None
    else:
        title, body, topic = rng.choice(texts["posts"])
        own = sentences(body)[:2] or [body[:80]]
        content = "".join(own + rng.sample(texts["post_sentences"], rng.randint(1, 3)))
    content = content[:600]
    score = min(100.0, round(rng.lognormvariate(3.3, 0.45), 1))
    level = "I" if score >= 80 else "II" if score >= 60 else "III" if score >= 40 else "IV"
    event = f"ev{int(events * rng.random() ** 2)}" if rng.random() < 0.4 else None
    published = START + timedelta(seconds=rng.uniform(0, DAYS * 86400))
    reply = Reply(text=rng.choice(texts["replies"])[:300]) if channel != Channel.weibo and rng.random() < 0.3 else None
    return Item(source=source, channel=channel, source_id=f"{source}-{n}", title=title, content=content,
                published_at=published, fetched_at=published + timedelta(minutes=rng.randint(1, 600)),
                region=rng.choice(REGIONS), reply=reply,
                engagement=Engagement(likes=int(rng.expovariate(0.2)), reposts=int(rng.expovariate(0.5)),
                                      comments=int(rng.expovariate(0.3))),
                enrichment=Enrichment(topic=topic or rng.choice(texts["topics"]), emotion=rng.choice(EMOTIONS),
                                      risk_score=score, risk_level=level, event_id=event,
                                      schemes=[rng.choice(SCHEMES)] if rng.random() < 0.1 else []))


def build(db: Path, count: int, seed: int, batch: int = 2000) -> dict[str, float]:
    texts = load_texts(data_dir())
    rng = random.Random(seed)
    store = SqliteStore(db, segment=segment, index_segment=index_tokens)
    started = time.perf_counter()
    stored = 0
    try:
        for first in range(0, count, batch):
            items = [make_item(n, rng, texts, events=max(1, count // 50)) for n in range(first, min(count, first + batch))]
            stored += sum(r.outcome == "inserted" for r in store.upsert(items))
    finally:
        store.close()
    seconds = time.perf_counter() - started
    return {"items_built": count, "items_stored": stored, "build_seconds": round(seconds, 1),
            "build_items_per_s": round(count / seconds)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder: Path, db: Path, port: int, read_workers: int = 0) -> Path:
    example = (REPO / "yuqing.example.yaml").read_text(encoding="utf-8")
    alerts = example[example.index("\nalerts:"):example.index("\nreports:")]  # the example's alert rules, routes, receivers
    # No report schedule: its catch-up 30 s after start would fall in the idle CPU sample.
    alerts += "\nreports: {schedule: false}\n"
    config = folder / "bench.yaml"
    config.write_text(f"server: {{port: {port}, read_workers: {read_workers}}}\nstorage: {{sqlite_path: {db}}}\n"
                      f"data_dir: {data_dir()}\n"
                      f"sources: {{}}\ncrawling: {{scheduler: false, state_dir: {folder / 'crawl'}, "
                      f"demo_site: {{enabled: false}}}}\n" + alerts, encoding="utf-8")
    return config


def seed_muted_alerts(config: Path, db: Path, muted: int) -> dict[str, object]:
    """`muted` item alerts that stay muted, raised through the alert engine as the service raises them: four in five
    under a firing event alert of their event (inhibited by the example's rule), one in five under a silence. Raised
    two hours ago and flushed, so that what the service does about them at start (notify, escalate) is done before
    the idle sample; the idle service then holds them all."""
    import alerts.store  # noqa: F401 - the alert tables
    from alerts.clock import ManualClock
    from alerts.engine import AlertEngine
    from alerts.rules import AlertDraft
    from core.config import load_config
    from storage.opening import open_store

    cfg = load_config(config)
    store = open_store(db, segment=segment, index_segment=index_tokens)
    started = time.perf_counter()
    try:
        store.migrate()
        clock = ManualClock(datetime.now(SHANGHAI) - timedelta(hours=2))
        engine = AlertEngine(cfg.alerts, store, clock=clock)
        engine.create_silence(matchers=['rule="red_risk"', 'kind="item"'], reason="bench: known", owner="bench",
                              ends_at=clock.now() + timedelta(days=30))
        per_event = 20
        inhibited = muted * 4 // 5
        drafts = []
        for event in range(max(1, inhibited // per_event)):
            labels = {"rule": "hot_event", "kind": "event", "severity": "critical", "event_id": f"ev{event}"}
            drafts.append(AlertDraft(f"bench-ev{event}", "hot_event", "event", "critical", labels, event_id=f"ev{event}"))
        for n in range(inhibited):
            event = f"ev{n // per_event}"
            labels = {"rule": "high_risk", "kind": "item", "severity": "warning", "event_id": event, "item": str(n)}
            drafts.append(AlertDraft(f"bench-item{n}", "high_risk", "item", "warning", labels, item_id=n + 1,
                                     event_id=event))
        for n in range(inhibited, muted):
            labels = {"rule": "red_risk", "kind": "item", "severity": "critical", "item": str(n)}
            drafts.append(AlertDraft(f"bench-item{n}", "red_risk", "item", "critical", labels, item_id=n + 1))
        for first in range(0, len(drafts), 5000):
            engine.raise_drafts(drafts[first:first + 5000])
        clock.advance(timedelta(minutes=1))
        engine.tick(deliver=False)  # groups flushed into the outbox: the service sends them at start
        silenced = engine.reader.list(state="silenced", limit=1)[1]
    finally:
        store.close()
    return {"muted_alerts": silenced, "event_alerts_firing": max(1, inhibited // per_event),
            "seed_seconds": round(time.perf_counter() - started, 1)}


def service_pids(pid: int) -> list[int]:
    """The service process and its descendants (its read workers)."""
    found, frontier = [pid], [pid]
    while frontier:
        children = []
        for parent in frontier:
            for task in Path(f"/proc/{parent}/task").glob("*/children"):
                children += [int(c) for c in task.read_text().split()]
        found += children
        frontier = children
    return found


def proc_cpu_seconds(pid: int, *, tree: bool = True) -> float:
    """CPU seconds of the service and of its read workers (`tree`), or of the service process alone."""
    total = 0
    for one in service_pids(pid) if tree else [pid]:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of the service and its read workers (summed: pages they share are counted twice)."""
    total = 0
    for one in service_pids(pid):
        try:
            lines = Path(f"/proc/{one}/status").read_text().splitlines()
        except FileNotFoundError:
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith("VmRSS:"))
    return round(total / 1024, 1)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 1)


def measure(base: str, token: str, clients: int, rounds: int, pid: int) -> tuple[dict, float]:
    """Each query kind `rounds` times per client, the clients at once; latency in ms as each client saw it.

    The clients are processes of their own (bench/load_clients.py), started and warmed before any timing: threads of
    this process would serialise their own per-request CPU on its GIL and count it as the service's latency."""
    results: dict[str, dict] = {}
    peak = 0.0
    with Clients(base, clients, headers={"Authorization": f"Bearer {token}"}) as pool:
        warm = pool.warm("/api/items", {"limit": "50"})
        if any(status != 200 for status in warm):
            raise RuntimeError(f"clients could not read the feed: statuses {warm}")
        for name, params in QUERIES.items():
            cpu_before, main_before = proc_cpu_seconds(pid), proc_cpu_seconds(pid, tree=False)
            times, errors = pool.run("/api/items", {**params, "limit": "50"}, rounds)
            peak = max(peak, rss_mb(pid))
            # The service's CPU per request does not depend on what else the machine runs, unlike the latencies.
            # The service process's own share is what one core serialises (its GIL); the read workers' runs in parallel.
            cpu_ms = (proc_cpu_seconds(pid) - cpu_before) * 1000 / len(times)
            main_ms = (proc_cpu_seconds(pid, tree=False) - main_before) * 1000 / len(times)
            results[name] = {"p50": percentile(times, 50), "p95": percentile(times, 95), "p99": percentile(times, 99),
                             "errors": errors, "service_cpu_ms": round(cpu_ms, 2),
                             "service_process_cpu_ms": round(main_ms, 2)}
    return results, peak


def wait_healthy(port: int, server: subprocess.Popen, started: float, log: Path) -> None:
    """Until the served process answers /health (at most 300 s from `started`, or until it exits)."""
    import httpx

    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.perf_counter() - started > 300:
            raise RuntimeError(f"yuqing serve did not start; see {log}")
        time.sleep(0.5)


def serve_and_measure(db: Path, rounds: int, idle_seconds: float, muted: int = 0, read_workers: int = 0,
                      settle_seconds: float = 5) -> dict[str, object]:
    folder = Path(tempfile.mkdtemp(prefix="bench_store_"))
    port = free_port()
    config = write_config(folder, db, port, read_workers)
    seeded = seed_muted_alerts(config, db, muted) if muted else {}
    yuqing = [sys.executable, "-m", "yuqing"]  # from the checkout, whatever the installed package lists
    created = subprocess.run([*yuqing, "token", "create", "--role", "press_office", "--name", "bench", "-c", str(config)],
                             capture_output=True, text=True, check=True, cwd=REPO)
    token = created.stdout.strip().splitlines()[-1]
    started = time.perf_counter()
    server = subprocess.Popen([*yuqing, "serve", "-c", str(config)], stdout=subprocess.DEVNULL,
                              stderr=open(folder / "serve.log", "w"), cwd=REPO)  # noqa: SIM115 - lives with the server
    try:
        wait_healthy(port, server, started, folder / "serve.log")
        startup = time.perf_counter() - started
        time.sleep(settle_seconds)  # let start-up work (read workers' imports, alerts' catch-up) settle first
        cpu_before, wall_before = proc_cpu_seconds(server.pid), time.perf_counter()
        main_before = proc_cpu_seconds(server.pid, tree=False)
        time.sleep(idle_seconds)
        idle_cpu = (proc_cpu_seconds(server.pid) - cpu_before) / (time.perf_counter() - wall_before) * 100
        idle_main = (proc_cpu_seconds(server.pid, tree=False) - main_before) / (time.perf_counter() - wall_before) * 100
        idle_rss = rss_mb(server.pid)
        base = f"http://127.0.0.1:{port}"
        load_before = os.getloadavg()[0]
        one, peak_one = measure(base, token, 1, rounds, server.pid)
        eight, peak_eight = measure(base, token, 8, max(3, rounds // 4), server.pid)
        load_after = os.getloadavg()[0]
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {**seeded, "read_workers": read_workers, "service_startup_s": round(startup, 1),
            "idle_cpu_percent": round(idle_cpu, 2), "idle_cpu_percent_service_process": round(idle_main, 2),
            "settle_seconds": settle_seconds,
            "idle_sample_seconds": idle_seconds, "rss_idle_mb": idle_rss,
            "rss_under_load_mb": max(peak_one, peak_eight), "cpus": os.cpu_count(),
            "load_average_1min": [round(load_before, 1), round(load_after, 1)],  # before and after the queries
            "clients_1": one, "clients_8": eight}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--db", type=Path, help="where to build (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="measure an already built --db (its build figures, kept "
                        "beside it, are reported again)")
    parser.add_argument("--build-only", action="store_true", help="build --db and stop (then measure it with --reuse)")
    parser.add_argument("--rounds", type=int, default=40, help="requests per query kind per client (1 client)")
    parser.add_argument("--idle-seconds", type=float, default=30)
    parser.add_argument("--settle-seconds", type=float, default=5, help="after start-up, before the idle sample")
    parser.add_argument("--read-workers", type=int, default=2,
                        help="server.read_workers: processes that search feed pages (0: the service process)")
    parser.add_argument("--muted-alerts", type=int, default=0,
                        help="raise this many alerts that stay muted (inhibited or silenced) before serving")
    args = parser.parse_args()
    db = args.db or Path(tempfile.mkdtemp(prefix="bench_store_db_")) / "store.db"
    report: dict[str, object] = {"items": args.items, "seed": args.seed, "db": str(db)}
    built = db.with_name(db.name + ".build.json")
    if not args.reuse:
        report.update(build(db, args.items, args.seed))
        built.write_text(json.dumps(report))
        if args.build_only:
            print(json.dumps(report, ensure_ascii=False, indent=1))
            return
    elif built.exists():  # a long build is made once and measured again: keep its figures with the measurement
        report.update({k: v for k, v in json.loads(built.read_text()).items() if k.startswith("build")})
    store = SqliteStore(db, segment=segment, index_segment=index_tokens)
    try:  # what is stored (a reused database may hold another number), through the store's interface
        report["items"] = stored = store.stats().items
    finally:
        store.close()
    size = sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())
    report["db_bytes_per_item"] = round(size / stored)
    report.update(serve_and_measure(db, args.rounds, args.idle_seconds, args.muted_alerts, args.read_workers,
                                    args.settle_seconds))
    print(json.dumps(report, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
