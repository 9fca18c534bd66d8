"""A demo site on a free 127.0.0.1 port, and configs that point the example's crawl sources at it."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config import Config, parse_config
from core.models import SHANGHAI
from core.paths import REPO_ROOT
from demo.site import DemoSite
from yuqing.service import Service, build_service

EXAMPLE = REPO_ROOT / "yuqing.example.yaml"


@pytest.fixture(scope="session")
def site() -> DemoSite:
    # Items only from history: nothing new appears and the incident lies far ahead, so counts are exact.
    demo = DemoSite(seed=7, history=40, new_item_seconds=10**7, incident_after_minutes=10**6,
                    start=datetime.now(SHANGHAI) - timedelta(minutes=1))
    demo.start("127.0.0.1", 0)
    yield demo
    demo.stop()


def example_sources(base_url: str) -> dict[str, Any]:
    """The example config's crawl sources, re-pointed from the default demo port to the test site."""
    text = EXAMPLE.read_text(encoding="utf-8").replace("http://127.0.0.1:8765", base_url)
    data = yaml.safe_load(text)
    return {k: v for k, v in data["sources"].items() if "crawl" in v}


def make_config(tmp_path: Path, sources: dict[str, Any], **crawling: Any) -> Config:
    return parse_config({"storage": {"sqlite_path": str(tmp_path / "crawl.db")},
                         "crawling": {"state_dir": str(tmp_path / "state"), "scheduler": False, **crawling},
                         "sources": sources})


def make_service(config: Config) -> Service:
    return build_service(config, enrich=False)


def board_source(url: str, **crawl: Any) -> dict[str, Any]:
    """The demo board's selectors on any list URL (fault pages, replays, the private area)."""
    spec = {"kind": "html", "html": {
        "list_url": url, "row": "li.msg-item", "link": "h3 a::attr(href)", "id_pattern": r"/thread/(\d+)",
        "detail_fields": {"title": "h1.thread-title", "content": ".thread-content", "published_at": ".thread-meta .time",
                          "likes": ".likes em"}}}
    spec.update(crawl)
    return {"channel": "board", "crawl": spec}
