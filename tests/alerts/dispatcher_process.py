"""Runs the alert dispatcher of a service in its own process (for the crash test): `python dispatcher_process.py
CONFIG SECONDS` starts the workers, prints "started", and stops cleanly after SECONDS unless killed first."""

from __future__ import annotations

import sys
import time

from alerts.service import attach
from core.config import load_config
from yuqing.service import build_service


def main() -> None:
    config = load_config(sys.argv[1])
    service = build_service(config, enrich=False, extensions=False)
    attach(service)
    service.start()
    sys.stdout.write("started\n")
    sys.stdout.flush()
    time.sleep(float(sys.argv[2]))
    service.close()


if __name__ == "__main__":
    main()
