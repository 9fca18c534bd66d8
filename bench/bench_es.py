"""Items on Elasticsearch against the embedded store (issue 20): bulk items/s, feed and search p50/p95, and the
server's own ceiling measured in the same run.

Builds N items (default 100,000) as bench/bench_store.py does (real 泰迪杯 and Weibo texts recombined, seeded,
synthesised enrichment), then, batch by batch and interleaved so that the shared machine's load falls on all three
alike:
  - `SqliteStore.upsert` into a fresh file (segmentation for the full-text index included);
  - `ElasticsearchStore.upsert` on osmem-server (state in a SQLite file; segmentation, identity rows, bulk);
  - a raw `_bulk` loop on the same server: the same documents, already built and serialised, sent with the same
    client in the same request size into monthly indices of the same layout under another prefix: what the server
    and the client library take at best.
yuqing's bulk rate is given as a ratio of the raw loop's (target ≥ 0.9). Then each query kind of bench_store runs
`rounds` times through each store's `search` in this process (limit 50), p50/p95 ms.

osmem-server keeps everything in memory (≈ 140 KB per document in a small index, 75 KB at 200,000 documents, with
our mapping, measured; the raw loop's copies are kept until the end, as its indices must grow as the store's do), and
before each batch the run checks that osmem's resident memory plus that batch's projected growth stays under
`--osmem-max-mb` (default 17,000: 100,000 items on both sides took 14.6 GB) and that the machine keeps 2 GB
available; if not, the Elasticsearch side stops there, cleanly, and the result says how many items it holds
(`es_stopped`).
Run: `.venv/bin/python bench/bench_es.py [--items N] [--es-items M] [--batch 2000] [--bulk 500] [--rounds 40]
[--osmem-max-mb 17000]`; prints JSON.
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
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_store import QUERIES, free_port, load_texts, make_item, percentile, rss_mb  # noqa: E402

from core.config_storage import ElasticsearchConfig  # noqa: E402
from core.paths import data_dir  # noqa: E402
from nlp.search_tokens import index_tokens  # noqa: E402
from nlp.tokenize import segment  # noqa: E402
from storage.base import ItemQuery  # noqa: E402
from storage.elasticsearch import ElasticsearchStore, doc_key  # noqa: E402
from storage.sqlite import SqliteStore, create_sqlite_engine  # noqa: E402


def start_osmem() -> tuple[subprocess.Popen, str]:
    from osmem_server import resolve_binary

    port = free_port()
    process = subprocess.Popen([resolve_binary(), "--addr", f"127.0.0.1:{port}", "--no-ja", "--no-stdin-watch"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return process, url
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit(f"osmem-server did not start on {url}")




def query_of(params: dict[str, str]) -> ItemQuery:
    return ItemQuery(limit=50, **params)


def latencies(store: object, rounds: int) -> dict[str, dict[str, float]]:
    out = {}
    for name, params in QUERIES.items():
        query = query_of(params)
        store.search(query)  # warm
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            page = store.search(query)
            times.append((time.perf_counter() - started) * 1000)
        out[name] = {"p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95), "count": page.count}
    return out


def raw_actions(store: ElasticsearchStore, items: list, first_id: int, prefix: str, created: set[str]) -> list[str]:
    """The bulk lines yuqing would send for these items, built and serialised beforehand, into monthly indices of
    the same layout (`prefix`-items-YYYY-MM) as the store's."""
    lines = []
    for offset, item in enumerate(items):
        index = store.index_for(item).replace(store.alias, f"{prefix}-items", 1)
        if index not in created:
            store.client.indices.create(index=index, settings={"number_of_shards": 1, "number_of_replicas": 0,
                                                               "analysis": es_analysis(store)}, mappings=mappings())
            created.add(index)
        doc = item.model_dump_json(exclude={"id"})
        body = store._document(first_id + offset, item, doc, 0)  # noqa: SLF001 - the very documents, for a fair ceiling
        lines.append(json.dumps({"index": {"_index": index, "_id": doc_key(item.source, item.source_id)}}))
        lines.append(json.dumps(body, ensure_ascii=False))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--es-items", type=int, default=100_000,
                        help="how many of the items also go to Elasticsearch (osmem memory: ≈ 75 KB per document at 200,000)")
    parser.add_argument("--osmem-max-mb", type=float, default=17000,
                        help="stop the Elasticsearch side before osmem would hold more than this")
    parser.add_argument("--batch", type=int, default=2000, help="items per upsert")
    parser.add_argument("--bulk", type=int, default=500, help="documents per _bulk request (store and raw loop)")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args()
    texts = load_texts(data_dir())
    rng = random.Random(args.seed)
    items = [make_item(n, rng, texts, events=max(1, args.items // 50)) for n in range(args.items)]
    process, url = start_osmem()
    folder = Path(tempfile.mkdtemp(prefix="bench-es-"))
    try:
        config = ElasticsearchConfig(url=url, index_prefix="bench", compatible_with=False, replicas=0,
                                     bulk_batch=args.bulk, timeout_s=300)
        sqlite = SqliteStore(folder / "items.db", segment=segment, index_segment=index_tokens)
        es = ElasticsearchStore(config, create_sqlite_engine(folder / "state.db"), segment=segment,
                                index_segment=index_tokens, single_writer=True)
        seconds = {"sqlite": 0.0, "elasticsearch": 0.0, "raw_bulk": 0.0, "sqlite_alone": 0.0}
        es_items = min(args.es_items, len(items))
        es_sent = 0
        es_stopped = None
        raw_prefix, created = "raw", set()
        base_rss = rss_mb(process.pid)
        for first in range(0, len(items), args.batch):
            chunk = items[first:first + args.batch]
            to_es = first < es_items and es_stopped is None
            if to_es:
                es_stopped = memory_short(process.pid, base_rss, es_sent, len(chunk), args.osmem_max_mb)
                to_es = es_stopped is None
            if to_es:
                es_sent += len(chunk)
                # The raw loop's indices grow with the store's (osmem's indexing slows as an index grows: a raw loop
                # on small fresh indices would not be the same server's ceiling); deleted at the end.
                lines = raw_actions(es, chunk, first + 1, raw_prefix, created)
                started = time.perf_counter()
                for start in range(0, len(lines), 2 * args.bulk):  # the same request size as the store's
                    response = es.client.bulk(operations=lines[start:start + 2 * args.bulk])
                    assert not response["errors"], "the raw loop must index everything"
                seconds["raw_bulk"] += time.perf_counter() - started
            for name, store in (("sqlite", sqlite), ("elasticsearch", es)):
                if name == "elasticsearch" and not to_es:
                    continue
                batch = [item.model_copy(deep=True) for item in chunk]
                started = time.perf_counter()
                store.upsert(batch)
                elapsed = time.perf_counter() - started
                seconds[name if to_es else "sqlite_alone"] += elapsed
        osmem_rss = rss_mb(process.pid)  # the store's documents and the raw loop's
        es.client.indices.delete(index=f"{raw_prefix}-items-*")
        es.refresh()
        counts = {"sqlite": sqlite.stats().items, "elasticsearch": es.stats().items}
        rates = {name: round(es_sent / seconds[name]) for name in ("sqlite", "elasticsearch", "raw_bulk")}
        rates["sqlite_all_items"] = round(len(items) / (seconds["sqlite"] + seconds["sqlite_alone"]))
        result = {
            "items_sqlite": len(items), "items_elasticsearch": es_sent, "es_stopped": es_stopped,
            "upsert_batch": args.batch,
            "bulk_request_docs": args.bulk, "stored": counts,
            "bulk_items_per_s": rates,
            "elasticsearch_vs_raw_bulk": round(rates["elasticsearch"] / rates["raw_bulk"], 3),
            "sqlite_vs_raw_bulk": round(rates["sqlite"] / rates["raw_bulk"], 3),
            "osmem_rss_mb": osmem_rss, "osmem_kb_per_item": round(osmem_rss * 1024 / max(1, 2 * es_sent), 1),
            "query_ms": {"sqlite": latencies(sqlite, args.rounds), "elasticsearch": latencies(es, args.rounds)},
            "load_average": os.getloadavg()[0],
        }
        sqlite.close()
        es.close()
    finally:
        process.terminate()
        process.wait(10)
    print(json.dumps(result, ensure_ascii=False))


def memory_short(pid: int, base_rss: float, sent: int, batch: int, max_mb: float) -> str | None:
    """Why the next batch must not go to osmem (None when it fits): its projected resident memory after the batch
    (the store's documents and the raw loop's, both kept) above `max_mb`, or the machine left with less than 2 GB
    available."""
    rss = rss_mb(pid)
    per_item = (rss - base_rss) / sent if sent else 0.4  # MB per item sent, both copies; 400 KB before measuring
    projected = rss + batch * max(per_item, 0.1)
    available = next(int(line.split()[1]) / 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemAvailable:"))
    if projected > max_mb:
        return f"osmem at {rss:.0f} MB after {sent} items would pass {max_mb:.0f} MB (≈ {projected:.0f} MB)"
    if available - batch * max(per_item, 0.1) < 2048:
        return f"the machine has {available:.0f} MB available: another batch would leave less than 2 GB"
    return None


def es_analysis(store: ElasticsearchStore) -> dict:
    from storage.elasticsearch import index_settings

    return index_settings(store.config)["analysis"]


def mappings() -> dict:
    from storage.elasticsearch import MAPPINGS

    return MAPPINGS


if __name__ == "__main__":
    main()
