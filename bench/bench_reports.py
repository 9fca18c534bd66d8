"""舆情日报 and 周报 over a store of 100,000 items: how long the content takes to read and the HTML and PDF to render.

Builds the store as bench/bench_store.py does (real 泰迪杯 and Weibo texts recombined, synthesised enrichment, 90 days
from 2026-09-01, written through `SqliteStore.upsert`), or reuses one (`--db PATH --reuse`). Then, through the
service's own `ReportService` (the alerts and plans extensions attached, as `yuqing serve` has them), for the daily
report of one day in the middle (≈ 1,100 items) and the weekly report of its week (≈ 7,800): the content (store scan,
spikes at every hourly window, events), the charts, the HTML and the PDF, each the median of `--repeat` runs, wall
and CPU seconds.
Run: `.venv/bin/python bench/bench_reports.py [--items N] [--db PATH] [--reuse] [--repeat 3]`; prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_store import build  # noqa: E402 - the same store the feed benchmark measures

from core.config import parse_config  # noqa: E402
from reports.charts import report_charts  # noqa: E402
from reports.content import build_content  # noqa: E402
from reports.render import render_html, render_pdf  # noqa: E402
from yuqing.service import build_service  # noqa: E402


def timed(repeat: int, fn: Callable[[], Any]) -> tuple[dict[str, float], Any]:
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"wall_s": round(statistics.median(walls), 3), "cpu_s": round(statistics.median(cpus), 3)}, result


def measure(service: Any, kind: str, day: date, repeat: int) -> dict[str, Any]:
    reports = service.reports
    period = reports.period(kind, day.isoformat())
    s = reports.settings

    def content() -> dict[str, Any]:
        return build_content(reports.sources, period, title=s.title, top_items=s.top_items, top_events=s.top_events,
                             links=s.links_per_statement, now=reports.clock.now())

    content_time, made = timed(repeat, content)
    charts_time, charts = timed(repeat, lambda: report_charts(made))
    html_time, html = timed(repeat, lambda: render_html(made, charts=charts))
    pdf_time, pdf = timed(repeat, lambda: render_pdf(made, base="https://yuqing.example.gov.cn", charts=charts))
    total_time, _ = timed(repeat, lambda: reports.make(period, trigger="demand"))
    return {"period": period.label, "items_in_period": made["volume"]["total"], "spikes": len(made["spikes"]),
            "hot_events": len(made["hot_events"]), "content": content_time, "charts": charts_time,
            "html": html_time, "pdf": pdf_time, "html_bytes": len(html.encode()), "pdf_bytes": len(pdf),
            "make_and_keep_all": total_time,
            "html_report_s": round(content_time["wall_s"] + charts_time["wall_s"] + html_time["wall_s"], 3),
            "pdf_report_s": round(content_time["wall_s"] + charts_time["wall_s"] + pdf_time["wall_s"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--db", type=Path, help="where to build (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="measure an already built --db")
    parser.add_argument("--day", type=date.fromisoformat, default=date(2026, 10, 15), help="the daily report's day")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    db = args.db or Path(tempfile.mkdtemp(prefix="bench_reports_db_")) / "store.db"
    out: dict[str, Any] = {"items": args.items, "seed": args.seed, "db": str(db)}
    if not args.reuse:
        out.update(build(db, args.items, args.seed))
    config = parse_config({"storage": {"sqlite_path": str(db)}, "crawling": {"scheduler": False},
                           "reports": {"schedule": False}})
    service = build_service(config, enrich=False)
    try:
        out["daily"] = measure(service, "daily", args.day, args.repeat)
        out["weekly"] = measure(service, "weekly", args.day, max(1, args.repeat - 1))
    finally:
        service.close()
    print(json.dumps(out, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
