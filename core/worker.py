"""A background job that runs one pass every few seconds in a daemon thread, for as long as the service runs.

Why one class: the after-store re-drive and the plan clock (and whatever comes next) need the same start/stop and
the same rule that one failing pass is logged and never ends the loop.
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger(__name__)


class PeriodicWorker:
    """Subclasses set `name`, give `interval()` in seconds and implement `run_once()`; returning False stops the loop."""

    name = "periodic-worker"
    join_timeout = 30.0

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def interval(self) -> float:
        raise NotImplementedError

    def run_once(self) -> bool | None:
        raise NotImplementedError

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.join_timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.run_once() is False:
                    return
            except Exception:  # noqa: BLE001 - one failing pass must not end the job; the next one tries again
                logger.exception("%s pass failed; retrying next interval", self.name)
            self._stop.wait(self.interval())
