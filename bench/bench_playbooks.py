"""Plan runs at 12345 volume: start runs for N work orders through the after-store path (PlaybookService.on_items,
batches of 500 as the ingest chain delivers them), then evaluate every clock.

Prints JSON: runs/s for starting, the first clock tick (many warnings and breaches due at once: received times are
spread over the past 20 days) and a steady tick (nothing new due: the indexed read costs what is due, not what is
open), the cost of a full scan computing `time_left` for every open step, and deadline computations/s.

    .venv/bin/python bench/bench_playbooks.py [--orders 100000] [--batch 500]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select  # noqa: E402

from alerts.clock import ManualClock  # noqa: E402
from core.calendar import WorkCalendar  # noqa: E402
from core.config_playbooks import PlaybooksConfig  # noqa: E402
from core.models import Item  # noqa: E402
from playbooks.plans import load_playbooks  # noqa: E402
from playbooks.service import PlaybookService  # noqa: E402
from playbooks.store import plan_steps  # noqa: E402
from storage.migrations import migrate  # noqa: E402
from storage.sqlite import SqliteStore  # noqa: E402

TYPES = ["consult", "help", "suggest", "complain", "report"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    rng = random.Random(7)
    now = datetime(2026, 3, 20, 2, 0, tzinfo=UTC)
    clock = ManualClock(now)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.db", segment=str.split)
        with store.write() as conn:
            migrate(conn)
        config = PlaybooksConfig()
        calendar = WorkCalendar()
        plans = PlaybookService(store, load_playbooks(roles=config.roles, rules=None), config, calendar, clock=clock)
        items = []
        for i in range(args.orders):
            received = now - timedelta(seconds=rng.randint(0, 20 * 86400))
            replied = received + timedelta(days=rng.randint(1, 20)) if rng.random() < 0.3 else None
            payload = {"id": i + 1, "source": "hotline_bench", "channel": "hotline", "source_id": f"wo{i}",
                       "title": f"工单{i}", "content": "诉求内容", "published_at": received, "fetched_at": received,
                       "region": rng.choice(["东湖区", "西湖区", "临港新区"]),
                       "extra": {"request_type": rng.choice(TYPES), "handling_unit": "住建局"}}
            if replied is not None and replied < now:
                payload["reply"] = {"text": "已办结", "replied_at": replied}
            items.append(Item.model_validate(payload))
        start = time.perf_counter()
        started = 0
        for k in range(0, len(items), args.batch):
            started += len(plans.on_items(items[k:k + args.batch]))
        start_seconds = time.perf_counter() - start
        with store.read() as conn:
            steps = conn.execute(select(func.count()).select_from(plan_steps)).scalar_one()
            open_steps = conn.execute(select(func.count()).select_from(plan_steps)
                                      .where(plan_steps.c.state.in_(("pending", "in_progress")))).scalar_one()
        noticed = []
        t = time.perf_counter()
        first = plans.tracker.tick(now, noticed.extend)
        first_seconds = time.perf_counter() - t
        clock.advance(60)
        t = time.perf_counter()
        steady = plans.tracker.tick(clock.now(), noticed.extend)
        steady_seconds = time.perf_counter() - t
        t = time.perf_counter()
        with store.read() as conn:
            rows = conn.execute(select(plan_steps.c.due_ts).where(plan_steps.c.state.in_(("pending", "in_progress")),
                                                                  plan_steps.c.due_ts.is_not(None))).all()
        moment = clock.now().timestamp()
        overdue = sum(1 for r in rows if r.due_ts - moment < 0)
        scan_seconds = time.perf_counter() - t
        t = time.perf_counter()
        n = 20_000
        for i in range(n):
            calendar.deadline(now - timedelta(minutes=37 * i), "15wd")
        deadline_seconds = time.perf_counter() - t
        store.close()
    print(json.dumps({
        "orders": args.orders, "runs_started": started, "steps": steps, "open_steps": open_steps,
        "start_seconds": round(start_seconds, 2), "runs_per_second": round(started / start_seconds),
        "first_tick": {**first, "seconds": round(first_seconds, 2),
                       "notices_per_second": round((first["warning"] + first["breach"]) / first_seconds)},
        "steady_tick": {**steady, "ms": round(steady_seconds * 1000, 2)},
        "full_time_left_scan": {"open_steps_with_clock": len(rows), "overdue": overdue, "ms": round(scan_seconds * 1000, 1)},
        "deadlines_per_second": round(n / deadline_seconds),
    }))


if __name__ == "__main__":
    main()
