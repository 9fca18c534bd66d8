"""HTTP clients for the benchmarks, each in a process of its own, as separate browsers are.

Why processes: clients run as threads of one Python process share its GIL, so their own per-request CPU (httpx,
the socket, the body) is serialised and counted as the service's latency once 8 of them run at once. Each client
here is a spawned process with its own `httpx.Client` (one kept-alive connection), started and warmed before any
timing; per request it only sends, reads the body and checks the status (no JSON parsing), and returns its
latencies in ms. The module imports nothing but httpx at the top, so a spawned client starts quickly.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from multiprocessing.connection import Connection
from typing import Any


def _client(conn: Connection, base: str, headers: dict[str, str], start: Any) -> None:
    """One client's loop: warm up on `("warm", path, params)`, then for each `("run", path, params, rounds)` wait at
    the shared barrier with the other clients and time `rounds` GETs; `None` ends it."""
    import httpx

    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        while (task := conn.recv()) is not None:
            if task[0] == "warm":
                conn.send(http.get(task[1], params=task[2]).status_code)
                continue
            _, path, params, rounds = task
            times, errors = [], 0
            start.wait()  # every client starts its rounds together
            for _ in range(rounds):
                started = time.perf_counter()
                response = http.get(path, params=params)
                times.append((time.perf_counter() - started) * 1000)
                errors += response.status_code != 200
            conn.send((times, errors))


class Clients:
    """`count` client processes against `base`; use as a context manager (the processes end with it)."""

    def __init__(self, base: str, count: int, *, headers: dict[str, str] | None = None) -> None:
        context = multiprocessing.get_context("spawn")
        self._start = context.Barrier(count)
        self._conns: list[Connection] = []
        self._processes = []
        for _ in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(target=_client, args=(theirs, base, headers or {}, self._start), daemon=True)
            process.start()
            theirs.close()
            self._conns.append(ours)
            self._processes.append(process)

    def warm(self, path: str, params: dict[str, str] | None = None) -> list[int]:
        """One request per client (connection, first-use costs); the statuses."""
        for conn in self._conns:
            conn.send(("warm", path, params or {}))
        return [conn.recv() for conn in self._conns]

    def run(self, path: str, params: dict[str, str], rounds: int) -> tuple[list[float], int]:
        """Every client sends `rounds` GETs at once: all latencies (ms) and the number of non-200 answers."""
        for conn in self._conns:
            conn.send(("run", path, params, rounds))
        outcomes = [conn.recv() for conn in self._conns]
        return [t for times, _ in outcomes for t in times], sum(errors for _, errors in outcomes)

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError):  # a client that already ended
                conn.send(None)
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
