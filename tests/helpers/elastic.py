"""A real OpenSearch-API server for tests: osmem-server (PyPI, in memory) on 127.0.0.1.

Started once per session with the flags the environment notes give; each test uses its own index prefix and deletes
its indices afterwards (osmem keeps everything in memory). Missing binary: skip loudly, fail under CI=true.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def osmem(port: int | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run osmem-server until the block ends; yields (url, process)."""
    try:
        from osmem_server import OsmemError, resolve_binary
        binary = resolve_binary()
    except (ImportError, OsmemError) as exc:  # the test extra is not installed, or no binary for this platform
        unavailable(f"osmem-server not available ({exc}): Elasticsearch backend tests cannot run; pip install -e '.[test]'")
    port = port or free_port()
    process = subprocess.Popen([binary, "--addr", f"127.0.0.1:{port}", "--no-ja", "--no-stdin-watch"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                json.loads(response.read())
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                unavailable(f"osmem-server did not start on {url}: {process.stderr.read().decode()[-500:]}")
            time.sleep(0.05)
    try:
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_SHARED: dict[str, object] = {}


def shared_server() -> str:
    """The URL of one osmem-server for this test process, started on first use and stopped at exit."""
    if "url" not in _SHARED:
        running = osmem()
        url, _process = running.__enter__()
        atexit.register(running.__exit__, None, None, None)
        _SHARED["url"] = url
    return str(_SHARED["url"])


def new_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def drop_indices(url: str, prefix: str) -> None:
    """Delete a test's indices and template (osmem's memory grows with every document)."""
    for path in (f"/{prefix}-items-*", f"/_index_template/{prefix}-items"):
        request = urllib.request.Request(url + path, method="DELETE")
        with suppress(OSError):
            urllib.request.urlopen(request, timeout=10).close()
