"""A pool worker's start (flow/pool.py): what it imports to build its stages is only what those stages need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Packages of the composition root that no pooled stage uses: importing them cost each worker about a second of CPU.
NOT_FOR_WORKERS = ("yuqing.service", "alerts.service", "crawlers.service", "reports.service", "playbooks.service",
                   "analysis.service", "jieba")


def test_building_the_pooled_stages_imports_no_composition_root() -> None:
    code = ("import json, sys; from yuqing.pooled import pooled_stages; from core.config import Config; "
            "pooled_stages(Config()); print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                          env={"PYTHONPATH": str(REPO), "PATH": ""})
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert not loaded & set(NOT_FOR_WORKERS)


def test_the_service_still_provides_pooled_stages() -> None:
    from yuqing import pooled, service

    assert service.pooled_stages is pooled.pooled_stages
    assert pooled.pooled_stages.__module__ == "yuqing.pooled"  # what a worker imports to unpickle it


def test_pool_workers_run_below_the_writer_by_the_configured_niceness() -> None:
    """The writer limits an import: its workers yield the cores to it (`ingest.worker_niceness`)."""
    import os

    from core.config import parse_config
    from flow.pool import EnrichPool
    from yuqing.pooled import pooled_stages

    ours = os.nice(0)
    for niceness, expected in ((5, min(19, ours + 5)), (0, ours)):
        pool = EnrichPool(parse_config({"ingest": {"worker_niceness": niceness}}), 1, pooled_stages)
        try:
            assert pool._executor.submit(os.nice, 0).result(timeout=120) == expected
        finally:
            pool.close()


def test_workers_are_forked_from_a_process_with_one_thread_and_spawned_beside_threads() -> None:
    """fork copies the locks other threads hold (`flow.pool.start_method`): only a one-thread process forks."""
    import threading

    from flow.pool import start_method

    if not sys.platform.startswith("linux") or threading.active_count() > 1:
        assert start_method() == "spawn"
        return
    assert start_method() == "fork"
    release = threading.Event()
    waiting = threading.Thread(target=release.wait)
    waiting.start()
    try:
        assert start_method() == "spawn"
    finally:
        release.set()
        waiting.join()
