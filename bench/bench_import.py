"""`yuqing import` throughput with full enrichment (issue 16: ≥ 2,000 items/s), serial and with the enrichment pool.

Writes N items (default 50,000) as a JSON-lines export built from the shared real texts exactly as
`bench/bench_store.py` recombines them (泰迪杯 posts and replies, the Weibo sample; seeded; five channels, 90 days),
then imports the file into a fresh database with `yuqing import` as a subprocess, once per `--workers` value:
wall-clock items/s, the CPU seconds of the import and of its pool workers (getrusage of the children), the
start-up (process start until the first batch is read) and the load average before and after each run. With
`--stages` it first measures in this process where the CPU goes: process time per item of each ingest stage on the
same items (serial chain, no pool).
Run: `.venv/bin/python bench/bench_import.py [--items N] [--workers 1,2] [--commit-items 500,5000] [--stages]`;
prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_store import load_texts, make_item  # noqa: E402
from core.paths import data_dir  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SOURCE = "import_bench"
# `ingest` settings of every config this benchmark makes (--batch-size); the in-process profiles run their workers'
# stages in this process, which must not lower its own priority as a pool worker does (`ingest.worker_niceness`).
INGEST: dict = {"worker_niceness": 0}


def payload(n: int, rng: random.Random, texts: dict) -> dict:
    """Item n of bench_store's recombination, as a row of an export (no enrichment: the import computes it)."""
    item = make_item(n, rng, texts, events=1)
    row = {"source_id": item.source_id, "channel": item.channel.value, "title": item.title, "content": item.content,
           "published_at": item.published_at.isoformat(), "likes": item.engagement.likes,
           "reposts": item.engagement.reposts, "comments": item.engagement.comments}
    if item.region and rng.random() < 0.5:  # half leave the region to the text's first place
        row["region"] = item.region
    if item.reply is not None:
        row["reply_text"] = item.reply.text
    return row


def write_export(path: Path, count: int, seed: int, first: int = 0) -> None:
    """`count` rows numbered from `first` (ids `source-n`), drawn with `seed`."""
    texts = load_texts(data_dir())
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for n in range(first, first + count):
            fh.write(json.dumps(payload(n, rng, texts), ensure_ascii=False) + "\n")


def write_config(folder: Path, db: Path, workers: int, commit_items: int | None = None) -> Path:
    path = folder / f"yuqing-{workers}.yaml"
    example = (REPO / "yuqing.example.yaml").read_text(encoding="utf-8")
    import yaml

    config = yaml.safe_load(example)
    config["storage"] = {"sqlite_path": str(db)}
    config["data_dir"] = str(data_dir())
    config["sources"] = {SOURCE: {"channel": "board", "import": {}}}
    config["ingest"] = {**config.get("ingest", {}), **INGEST, "workers": workers}
    config["ingest"].pop("worker_niceness")  # the import's own default
    if commit_items is not None:
        config["ingest"]["import_commit_items"] = commit_items
    for key in ("crawling", "demo"):
        config.pop(key, None)
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_import(export: Path, folder: Path, workers: int, base: Path | None = None, keep: Path | None = None,
               commit_items: int | None = None) -> dict:
    """One `yuqing import` of `export` into a fresh database, or into a copy of `base` (a store built before);
    `commit_items`: the import's `ingest.import_commit_items` (default the config's)."""
    db = (keep or folder) / f"import-{workers}.db"
    for suffix in ("", "-wal", "-shm"):  # a database left by the run before (another --commit-items)
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    if base is not None:
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{base}{suffix}").exists():
                shutil.copyfile(f"{base}{suffix}", f"{db}{suffix}")
    config = write_config(folder, db, workers, commit_items)
    load_before = os.getloadavg()
    cpu_before = children_cpu()
    started = time.perf_counter()
    done = subprocess.run([str(REPO / ".venv/bin/yuqing"), "import", str(export), "--source", SOURCE,
                           "--config", str(config)], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "YUQING_IMPORT_TIMING": "1"})
    seconds = time.perf_counter() - started
    cpu = children_cpu() - cpu_before
    if done.returncode != 0:
        return {"workers": workers, "error": done.stderr[-2000:]}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    report = json.loads(lines[-1])
    rows = report["received"]
    out = {"workers": workers, "commit_items": commit_items, "rows": rows, "stored": report["stored"],
           "quarantined": report["quarantined"],
           "wall_seconds": round(seconds, 1), "items_per_s": round(rows / seconds),
           "cpu_seconds": round(cpu, 1), "cpu_ms_per_item": round(cpu * 1000 / rows, 2),
           "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()]}
    importing = report["seconds"]["import"]
    out.update({"batches_enriched_by_workers": report.get("batches_enriched_by_workers"),
                "writer_startup_cpu_seconds": report["seconds"]["startup_cpu"],
                "writer_import_cpu_ms_per_item": round((report["seconds"]["cpu"] - report["seconds"]["startup_cpu"])
                                                       * 1000 / rows, 3),
                "writer_cpu_seconds": report["seconds"]["cpu"], "workers_cpu_seconds": report["seconds"]["workers_cpu"],
                "writer_cpu_ms_per_item": round(report["seconds"]["cpu"] * 1000 / rows, 3),
                "startup_seconds": round(seconds - importing, 1), "import_seconds": importing,
                "items_per_s_after_startup": round(rows / importing),
                "index_rebuild_seconds": report["seconds"].get("index_rebuild"),  # feed indexes deferred (bulk_load)
                "db_bytes": db.stat().st_size})
    return out


def time_stages(stages: list, spent: dict[str, float]) -> None:
    """Wrap each stage's `run` to add its process time to `spent[name]`."""
    for stage in stages:
        original = stage.run

        def timed(batch, original=original, name=stage.name):  # noqa: ANN001
            start = time.process_time()
            try:
                return original(batch)
            finally:
                spent[name] += time.process_time() - start

        stage.run = timed


def per_item_figures(spent: dict[str, float], total: float, count: int) -> dict:
    """Seconds per stage and in all → milliseconds per item, and what the stages do not account for."""
    per_item = {name: round(seconds * 1000 / count, 3) for name, seconds in spent.items()}
    return {"items": count, "cpu_ms_per_item": per_item, "cpu_ms_per_item_total": round(total * 1000 / count, 3),
            "cpu_ms_per_item_outside_stages": round((total - sum(spent.values())) * 1000 / count, 3)}


def stage_profile(export: Path, folder: Path, limit: int) -> dict:
    """Process time per item of each stage, on the serial chain in this process."""
    from core.config import parse_config
    from flow.importer import FileImporter
    from flow.ingest import chunks
    from yuqing.service import build_service

    config = parse_config({"storage": {"sqlite_path": str(folder / "stages.db")}, "ingest": INGEST,
                           "sources": {SOURCE: {"channel": "board", "import": {}}}})
    service = build_service(config)
    spent: dict[str, float] = defaultdict(float)
    time_stages(service.ingestor.chain.stages, spent)
    records = list(FileImporter(export, SOURCE).records())[:limit]
    start = time.process_time()
    for chunk in chunks(records, config.ingest.batch_size):
        for record in chunk:
            record.payload["backfill"] = True
        service.writer.ingest(chunk)
    total = time.process_time() - start
    service.close()
    return per_item_figures(spent, total, len(records))


def writer_profile(export: Path, folder: Path, limit: int) -> dict:
    """Process time per item of each stage the writer runs for batches a pool worker enriched, in this process:
    every batch is enriched first (by the worker's own function, its result pickled and unpickled as the pool does),
    then the writer ingests them in one commit group, timed. Deterministic (no pool timing decides which batches are
    enriched by workers), so it also runs under callgrind: what `import ≥ 2,000 items/s` asks of the one writer."""
    import pickle
    from concurrent.futures import Future

    from core.config import parse_config
    from flow import pool
    from flow.importer import FileImporter
    from flow.ingest import chunks
    from yuqing.service import build_service, pooled_stages

    config = parse_config({"storage": {"sqlite_path": str(folder / "writer.db")}, "ingest": INGEST,
                           "sources": {SOURCE: {"channel": "board", "import": {}}}})
    service = build_service(config)
    pool._start_worker(config, pooled_stages)
    records = list(FileImporter(export, SOURCE).records())[:limit]
    for record in records:
        record.payload["backfill"] = True
    batches = []
    for chunk in chunks(records, config.ingest.batch_size):
        done: Future = Future()
        done.set_result(pickle.loads(pickle.dumps(pool.enrich(chunk))))
        batches.append((chunk, done))
    spent: dict[str, float] = defaultdict(float)
    time_stages([*service.ingestor.up_to_store.stages, *service.ingestor.after_store.stages], spent)
    start = time.process_time()
    service.writer.begin_group().result()
    for chunk, done in batches:
        service.writer.ingest_enriched(chunk, done).result()
    service.writer.end_group().result()
    total = time.process_time() - start
    service.close()
    return per_item_figures(spent, total, len(records))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--workers", default="1,2", help="comma-separated pool sizes to run (1: no pool)")
    parser.add_argument("--commit-items", default="", help="comma-separated ingest.import_commit_items to run each "
                        "pool size with (default: the config's; the batch size, 500: a commit per batch)")
    parser.add_argument("--stages", action="store_true", help="also profile CPU per stage (serial, in process)")
    parser.add_argument("--stage-items", type=int, default=10_000)
    parser.add_argument("--writer-stages", action="store_true", help="also profile the writer's CPU per stage for "
                        "pool-enriched batches (in process, one commit group; --stage-items of them)")
    parser.add_argument("--no-runs", action="store_true", help="only the in-process profiles, no `yuqing import`")
    parser.add_argument("--export", type=Path, help="reuse this export instead of writing one")
    parser.add_argument("--write-export", type=Path, help="only write the export (--items rows from --first) here")
    parser.add_argument("--first", type=int, default=0, help="number of the export's first row (its ids)")
    parser.add_argument("--base-db", type=Path, help="import into a copy of this database (start-up at its size)")
    parser.add_argument("--keep", type=Path, help="keep the databases in this folder")
    parser.add_argument("--batch-size", type=int, help="ingest.batch_size of the profiles and the imports")
    args = parser.parse_args()
    if args.batch_size:
        INGEST["batch_size"] = args.batch_size
    if args.write_export:
        write_export(args.write_export, args.items, args.seed, args.first)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        export = args.export or folder / "export.jsonl"
        if args.export is None:
            write_export(export, args.items, args.seed)
        result: dict = {"benchmark": "import", "items": args.items, "seed": args.seed, "cpus": os.cpu_count()}
        if args.stages:
            result["stages"] = stage_profile(export, folder, args.stage_items)
        if args.writer_stages:
            result["writer_stages"] = writer_profile(export, folder, args.stage_items)
        commits = [int(c) for c in args.commit_items.split(",") if c] or [None]
        result["runs"] = [run_import(export, folder, int(w), args.base_db, args.keep, c)
                          for w in args.workers.split(",") for c in commits] if not args.no_runs else []
        if args.base_db is not None:
            result["base_db_bytes"] = args.base_db.stat().st_size
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
