"""A demo site on a free 127.0.0.1 port for the crawler tests (configs pointing at it: tests/helpers/crawl.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from core.models import SHANGHAI
from demo.site import DemoSite


@pytest.fixture(scope="session")
def site() -> DemoSite:
    # Items only from history: nothing new appears and the incident lies far ahead, so counts are exact.
    demo = DemoSite(seed=7, history=40, new_item_seconds=10**7, incident_after_minutes=10**6,
                    start=datetime.now(SHANGHAI) - timedelta(minutes=1))
    demo.start("127.0.0.1", 0)
    yield demo
    demo.stop()
