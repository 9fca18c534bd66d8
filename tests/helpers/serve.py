"""`yuqing serve` as a real process for tests: a free port, start and wait until /health answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(config_path: Path, port: int, log: Path, *, log_level: str = "warning",
                  timeout: float = 60) -> subprocess.Popen:
    """Run `yuqing serve -c config_path` with its output appended to `log`; returns once /health answers 200."""
    proc = subprocess.Popen([sys.executable, "-c", "from yuqing.cli import main; main()", "serve", "-c", str(config_path),
                             "--log-level", log_level], cwd=REPO, stdout=log.open("a"), stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("service did not start: " + log.read_text()[-3000:])
