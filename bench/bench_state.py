"""What keeping the state in PostgreSQL costs the ingest flow: the same records through the whole chain (NLP,
events, alert rules) with the state in the items' SQLite file and in PostgreSQL (`storage.state_url`), interleaved in
one run; plus the cluster lock's per-batch cost (an ingest turn with nothing to do).

Prints one JSON object. Usage: python bench/bench_state.py [--records N] [--rounds R]
Needs PostgreSQL at $YUQING_TEST_POSTGRES (default postgresql+psycopg://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from core.config import parse_config
from core.models import RawRecord
from demo.generator import DemoGenerator
from yuqing.service import DEMO_SOURCES, build_service

PG_URL = os.environ.get("YUQING_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ALERTS = {"rules": [{"name": "risky", "min_risk_score": 60}], "route": {"receiver": "duty", "group_wait": "1h"},
          "receivers": [{"name": "duty", "inapp": {}}]}


def records(count: int, seed: int) -> list[RawRecord]:
    return [RawRecord(source=DEMO_SOURCES[d.channel], payload={**d.payload, "channel": d.channel}, origin="bench")
            for d in DemoGenerator(seed).items(count)]


def run(state_url: str | None, batch: list[RawRecord]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        storage = {"sqlite_path": f"{tmp}/items.db", **({"state_url": state_url} if state_url else {})}
        config = parse_config({"storage": storage, "alerts": ALERTS,
                               "sources": {s: {"channel": c} for c, s in DEMO_SOURCES.items()}})
        service = build_service(config)
        service.writer.ingest(records(50, 1))  # warm: models, dictionaries, connections
        start, cpu = time.perf_counter(), time.process_time()
        report = service.writer.ingest(batch)
        elapsed, cpu_used = time.perf_counter() - start, time.process_time() - cpu
        turns = []
        for _ in range(200):
            t = time.perf_counter()
            with service.writer.gate.turn():
                pass
            turns.append((time.perf_counter() - t) * 1000)
        service.close()
    return {"records": len(batch), "stored": report.stored, "seconds": round(elapsed, 2),
            "items_per_s": round(len(batch) / elapsed, 1), "cpu_s": round(cpu_used, 2),
            "empty_turn_ms_p50": round(statistics.median(turns), 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    admin = create_engine(PG_URL)
    out: dict = {"benchmark": "state_on_postgres", "records": args.records, "rounds": []}
    batch = records(args.records, 2026)
    for _ in range(args.rounds):
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
        try:
            out["rounds"].append({"sqlite_state": run(None, batch), "postgres_state": run(url, batch)})
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    rates = [(r["sqlite_state"]["items_per_s"], r["postgres_state"]["items_per_s"]) for r in out["rounds"]]
    out["postgres_over_sqlite"] = round(statistics.median(p / s for s, p in rates), 3)
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
