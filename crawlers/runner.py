"""Runs one crawl in a subprocess and turns its report (or its crash) into a RunResult."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from core.config import Config
from core.errors import SourceError
from core.paths import REPO_ROOT
from crawlers.health import RunResult

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[dict[str, Any]], None]


def _reveal(value: Any) -> Any:
    """A config dump with secrets in clear, for the child's stdin only (never logged, never on a command line)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reveal(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "value") and not isinstance(value, str | int | float | bool):
        return value.value
    return value


def job_dir(config: Config, source: str) -> Path:
    base = config.crawling.state_dir
    return (base if base.is_absolute() else Path.cwd() / base) / source / "job"


def crawl_job(config: Config, source: str, db_path: Path | str | None = None, log_level: str = "WARNING",
              join: bool = False) -> dict[str, Any]:
    source_config = config.source(source)
    if source_config.crawl is None:
        raise SourceError(f"source {source!r} has no crawl section; nothing to crawl")
    db = Path(db_path or config.storage.sqlite_path)
    return {"source": source, "config": _reveal(source_config.model_dump(by_alias=True)),
            "db": str(db if db.is_absolute() else Path.cwd() / db), "state_url": config.storage.state_url,
            "items_backend": config.storage.backend,
            "redis_url": config.crawling.redis_url, "job_dir": str(job_dir(config, source)),
            "log_level": log_level, "join": join}


def run_crawl(config: Config, source: str, *, db_path: Path | str | None = None, on_progress: ProgressCallback | None = None,
              timeout: float | None = None, log_level: str = "WARNING", join: bool = False) -> RunResult:
    """Run `python -m crawlers.run` for one source and wait; a crash or a timeout is a failed run, not an exception.
    `join`: work the shared queue (`crawling.redis_url`) of a run going on elsewhere, without start requests."""
    job = crawl_job(config, source, db_path, log_level, join)
    started = datetime.now(UTC)
    clock = time.monotonic()
    timeout = timeout or config.crawling.run_timeout_seconds
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    final: dict[str, Any] | None = None
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "crawlers.run"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=stderr, text=True, encoding="utf-8", env=env)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(job, ensure_ascii=False))
            proc.stdin.close()
            for line in proc.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == "finished":
                    final = event
                elif on_progress is not None:
                    on_progress(event)
            code = proc.wait()
        finally:
            timer.cancel()
        stderr.seek(0)
        tail = stderr.read()[-3000:]
    finished = datetime.now(UTC)
    duration = time.monotonic() - clock
    if final is None:
        reason = "timeout" if duration >= timeout else f"crawler exited with code {code}"
        last = [line for line in tail.strip().splitlines() if line.strip()][-1:] or [""]
        return RunResult(source=source, started_at=started.isoformat(), finished_at=finished.isoformat(), duration=duration,
                         finish_reason=reason, errors={"crash": 1}, message=f"{reason}: {last[0][:500]}", exit_code=code or 1)
    if final.get("errors") and tail.strip():  # the crawl's own log says more than the counts: keep it visible
        logger.warning("crawl problems source=%s errors=%s log tail:\n%s", source, final["errors"], tail[-1500:])
    return RunResult(source=source, started_at=started.isoformat(), finished_at=finished.isoformat(), duration=duration,
                     finish_reason=final.get("finish_reason", ""), message=final.get("message", ""),
                     fields=final.get("fields", {}), pages=final.get("pages", 0), pages_ok=final.get("pages_ok", 0),
                     entries=final.get("entries", 0), entries_seen=final.get("entries_seen", 0), items=final.get("items", 0),
                     revisited=final.get("revisited", 0), revisit_changed=final.get("revisit_changed", 0),
                     errors=final.get("errors", {}), resumed=final.get("resumed", False),
                     incremental=final.get("incremental", False), exit_code=code)
