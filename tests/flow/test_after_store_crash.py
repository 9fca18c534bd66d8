"""No alert lost between the store commit and the alert rules, across crashes (flow/after_store.py).

The first test stops the chain right after the store commit, as a `kill -9` would, and restarts on the same file;
the second runs `yuqing serve` in a subprocess, pushes at ~50 items/s through the API and kills it with SIGKILL at
random points, then checks that every stored item has exactly one alert.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import yaml

from core.config import load_config
from core.models import RawRecord
from flow.after_store import pending_after_store
from flow.stages import Batch
from tests.helpers.clock import recent
from tests.helpers.serve import free_port, start_service

RULE = "every_item"
ALERTS = {"rules": [{"name": RULE, "sources": ["push_src"]}],
          "route": {"receiver": "duty", "group_wait": "1h"},  # alerts are raised; nothing needs sending here
          "receivers": [{"name": "duty", "inapp": {}}],
          "poll_interval": "1s"}


def write_config(tmp_path: Path, port: int = 8000) -> Path:
    path = tmp_path / "crash.yaml"
    path.write_text(yaml.safe_dump({
        "server": {"host": "127.0.0.1", "port": port},
        "storage": {"sqlite_path": str(tmp_path / "crash.db")},
        "sources": {"push_src": {"channel": "hotline", "region": "江城市"}},
        "crawling": {"scheduler": False},
        "alerts": ALERTS,
    }, allow_unicode=True))
    return path


def record(n: int) -> dict:
    return {"source_id": f"wo-{n}", "title": f"第{n}号工单 路灯不亮", "content": f"小区{n}号楼前路灯坏了一周，晚上出行不便。",
            "published_at": recent()}


def alert_counts(db: Path) -> tuple[set[int], dict[int, int], int]:
    """(ids of stored push items, alerts per item id, rows still pending) read straight from the file."""
    with sqlite3.connect(db, timeout=30) as conn:
        items = {r[0] for r in conn.execute("SELECT id FROM items WHERE source = 'push_src'")}
        alerts: dict[int, int] = {}
        for (item_id,) in conn.execute("SELECT item_id FROM alerts WHERE rule = ?", (RULE,)):
            alerts[item_id] = alerts.get(item_id, 0) + 1
        pending = conn.execute(f"SELECT count(*) FROM {pending_after_store.name}").fetchone()[0]
    return items, alerts, pending


def pending_now(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return conn.execute(f"SELECT count(*) FROM {pending_after_store.name}").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_a_crash_after_the_store_commit_is_alerted_on_restart(tmp_path):
    from yuqing.service import build_service

    config = load_config(write_config(tmp_path))
    service = build_service(config, enrich=False)
    records = [RawRecord(source="push_src", payload=record(n)) for n in range(3)]
    # What a kill -9 between the two transactions leaves: the items stored, the rules never run.
    batch = service.ingestor.up_to_store.run(Batch(raw=records))
    assert len(batch.stored) == 3
    service.close()
    items, alerts, pending = alert_counts(tmp_path / "crash.db")
    assert (len(items), alerts, pending) == (3, {}, 3)

    restarted = build_service(config, enrich=False)
    try:
        assert restarted.writer.ingest(records).unchanged == 3  # the client's retry: nothing new to store
        assert restarted.writer.redrive_soon().result() == 3  # what the redrive worker does at start
        items, alerts, pending = alert_counts(tmp_path / "crash.db")
        assert alerts == {i: 1 for i in items} and pending == 0
        assert restarted.writer.redrive_soon().result() == 0
    finally:
        restarted.close()


def test_an_update_runs_the_rules_again(tmp_path):
    from yuqing.service import build_service

    service = build_service(load_config(write_config(tmp_path)), enrich=False)
    try:
        service.writer.ingest([RawRecord(source="push_src", payload=record(1))])
        changed = {**record(1), "content": "路灯修好了又坏了，已经两周。"}
        assert service.writer.ingest([RawRecord(source="push_src", payload=changed)]).updated == 1
        with service.store.read() as conn:
            assert conn.execute(pending_after_store.select()).all() == []
        audit = service.alerts.reader.audit(decision="raise")[0]
        assert len(audit) == 1  # the same item's alert is refreshed, not raised twice
    finally:
        service.close()


def push(port: int, token: str, numbers: list[int], stop: threading.Event, accepted: set[int]) -> None:
    """Offer 5 records every 0.1 s (50 items/s) until `stop` or the end; what got a 202 is in `accepted`."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=5) as client:
        for start in range(0, len(numbers), 5):
            if stop.is_set():
                return
            chunk = numbers[start:start + 5]
            try:
                answer = client.post("/api/ingest/push_src", json={"records": [record(n) for n in chunk]})
            except httpx.HTTPError:
                return  # killed: the client retries these after the restart
            if answer.status_code == 202:
                accepted.update(chunk)
            time.sleep(0.1)


def test_kill_9_at_random_points_of_a_push_loses_no_alert(tmp_path):
    from access.app import open_access
    from yuqing.service import build_service

    port = free_port()
    config_path = write_config(tmp_path, port)
    config = load_config(config_path)
    setup = build_service(config, enrich=False, extensions=False)
    _id, token = open_access(setup.store, config).create_token("crash-test", "ingest", sources=["push_src"], by="test")
    setup.close()
    log = tmp_path / "serve.log"
    rng = random.Random(15)
    accepted: set[int] = set()
    offered = list(range(400))
    for _kill in range(2):
        proc = start_service(config_path, port, log)
        stop = threading.Event()
        todo = [n for n in offered if n not in accepted]  # the client retries what was not acknowledged
        pusher = threading.Thread(target=push, args=(port, token, todo, stop, accepted))
        pusher.start()
        # Kill as soon as an item is seen stored with its rules not yet run (the window this is about), else at a
        # random moment.
        kill_at = time.monotonic() + rng.uniform(1.5, 4.0)
        time.sleep(1.0)
        while time.monotonic() < kill_at and pending_now(tmp_path / "crash.db") == 0:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        stop.set()
        pusher.join(10)
    proc = start_service(config_path, port, log)
    try:
        stop = threading.Event()
        push(port, token, [n for n in offered if n not in accepted], stop, accepted)
        db = tmp_path / "crash.db"
        deadline = time.monotonic() + 40
        while True:
            items, alerts, pending = alert_counts(db)
            if len(items) >= len(accepted) and pending == 0 and set(alerts) >= items:
                break
            assert time.monotonic() < deadline, json.dumps({"items": len(items), "accepted": len(accepted),
                                                             "alerted": len(alerts), "pending": pending})
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    redriven = log.read_text().count("after-store stages re-driven for items left pending")
    print(f"kills=2 restarts with re-driven items={redriven}")  # noqa: T201 - shown with -s: did a kill hit the window
    assert len(accepted) == len(offered)
    assert len(items) == len(offered)
    assert {i: n for i, n in alerts.items() if i in items} == {i: 1 for i in items}
