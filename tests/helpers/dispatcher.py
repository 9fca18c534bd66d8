"""The alert dispatcher of a service run in a process of its own (tests/alerts/dispatcher_process.py), for tests
that kill it, and polling until a condition holds."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = REPO / "tests" / "alerts"


def start_dispatcher(config_path: Path, smtp_port: int, seconds: float) -> subprocess.Popen:
    env = {**os.environ, "TEST_SMTP_PORT": str(smtp_port), "PYTHONPATH": str(REPO)}
    log = config_path.with_suffix(f".{smtp_port}.log").open("a")  # a file, not a pipe nobody drains
    proc = subprocess.Popen([sys.executable, str(HERE / "dispatcher_process.py"), str(config_path), str(seconds)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline().strip()
    assert line == "started", config_path.with_suffix(f".{smtp_port}.log").read_text()
    return proc


def wait_until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)
