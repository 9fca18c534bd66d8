"""Crawl throughput against the local demo site: pages/s and items/s per source kind, with the example's settings
(AutoThrottle on, 2 requests per domain) and unthrottled (8 per domain). Prints one JSON object.

Each figure is one full first crawl of a source (every history item), run as the service runs it: a Scrapy
subprocess writing to the inbox, then the ingest drain. `crawl_seconds` is Scrapy's own elapsed time;
`wall_seconds` includes process start-up (≈1.5–2 s) and the drain. Source names as arguments bench only those
(`python bench/bench_crawl.py demo_liuyan`: the json_api kind, one list request and one detail per message).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.config import DEMO_SITE_PLACEHOLDER, parse_config  # noqa: E402
from core.models import SHANGHAI  # noqa: E402
from demo.site import DemoSite  # noqa: E402
from yuqing.service import build_service  # noqa: E402

HISTORY = 200
SOURCES = ["demo_board", "demo_board2", "demo_mailbox", "demo_liuyan", "demo_hotline", "demo_weibo", "demo_wechat"]


def main() -> None:
    sources = sys.argv[1:] or SOURCES
    site = DemoSite(seed=11, history=HISTORY, new_item_seconds=10**7, incident_after_minutes=10**6,
                    start=datetime.now(SHANGHAI) - timedelta(minutes=1))
    base = site.start()
    example = yaml.safe_load((REPO / "yuqing.example.yaml").read_text(encoding="utf-8").replace(DEMO_SITE_PLACEHOLDER, base))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode, overrides in (("polite", {}), ("unthrottled", {"autothrottle": False, "concurrency": 8})):
            for source in sources:
                spec = example["sources"][source]
                spec = {**spec, "crawl": {**spec["crawl"], **overrides, "max_pages": 5000, "max_list_pages": 500}}
                config = parse_config({"storage": {"sqlite_path": f"{tmp}/{mode}-{source}.db"},
                                       "crawling": {"state_dir": f"{tmp}/state-{mode}", "scheduler": False},
                                       "sources": {source: spec}})
                service = build_service(config, enrich=False)
                clock = time.monotonic()
                run = service.crawl.run_source(source)
                wall = time.monotonic() - clock
                results[f"{mode}/{source}"] = {
                    "pages": run.pages, "items": run.items, "errors": run.errors, "wall_seconds": round(wall, 2),
                    "pages_per_second_wall": round(run.pages / wall, 1), "items_per_second_wall": round(run.items / wall, 1),
                    "run_seconds": round(run.duration, 2)}
                service.close()
    site.stop()
    totals = {}
    for mode in ("polite", "unthrottled"):
        rows = [v for k, v in results.items() if k.startswith(mode)]
        wall = sum(r["wall_seconds"] for r in rows)
        totals[mode] = {"pages": sum(r["pages"] for r in rows), "items": sum(r["items"] for r in rows),
                        "wall_seconds": round(wall, 2), "pages_per_second": round(sum(r["pages"] for r in rows) / wall, 1),
                        "items_per_second": round(sum(r["items"] for r in rows) / wall, 1)}
    print(json.dumps({"bench": "crawl", "history_items_per_channel": HISTORY, "totals": totals, "sources": results},
                     ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
