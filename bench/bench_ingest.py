"""Ingest throughput into SQLite (items/s), with and without the FTS5 index, on the real 泰迪杯 files.

Prints one JSON object. Usage: python bench/bench_ingest.py [--enrich]
--enrich also runs the NLP enrichment stages (when installed), to show the whole flow's rate.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from core.config import parse_config
from core.paths import data_dir
from flow.importer import FileImporter
from nlp.search_tokens import index_tokens
from nlp.tokenize import segment
from yuqing.service import build_service

FILES = {
    "labeled_1111": "tipdm2020c_messages_labeled/messages.csv",
    "hot_issue_4326": "tipdm2020c_hot_issue_messages/messages.csv",
}
COLUMNS = {"message_id": "source_id", "user_id": "author", "title": "title", "created_at": "published_at",
           "body": "content", "likes": "likes", "dislikes": "dislikes"}


def run(path: Path, fts: bool, enrich: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config({"storage": {"sqlite_path": f"{tmp}/bench.db"},
                               "sources": {"board": {"channel": "board", "import": {"columns": COLUMNS}}}})
        service = build_service(config, enrich=enrich, extensions=False)
        service.store.fts = fts
        records = list(FileImporter(path, "board", config.sources["board"].import_).records())
        segment("预热")  # load dictionaries outside the timed part
        index_tokens("预热")
        start = time.perf_counter()
        report = service.writer.ingest(records)
        elapsed = time.perf_counter() - start
        service.close()
    return {"rows": len(records), "stored": report.stored, "duplicates": report.duplicates,
            "quarantined": report.quarantined, "seconds": round(elapsed, 3),
            "items_per_s": round(len(records) / elapsed, 1)}


def main() -> None:
    enrich = "--enrich" in sys.argv
    root = data_dir()
    results: dict = {"benchmark": "ingest", "enrich": enrich}
    for name, rel in FILES.items():
        path = root / rel
        if not path.exists():
            results[name] = {"error": f"missing {path}"}
            continue
        with_fts = run(path, fts=True, enrich=enrich)
        without = run(path, fts=False, enrich=enrich)
        results[name] = {"with_fts": with_fts, "without_fts": without,
                         "fts_cost_ratio": round(without["items_per_s"] / with_fts["items_per_s"], 2)}
    print(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
