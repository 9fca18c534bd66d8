"""Logging set up once, in entry points, as key=value lines; modules only call logging.getLogger(__name__).

Log lines carry ids and counts, never a citizen's text; the handler redacts URLs' credentials and registered
secrets (core.redact) whatever logger a line comes from."""

from __future__ import annotations

import logging
import sys

from core.redact import install_log_redaction


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s"))
    install_log_redaction(handler)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
