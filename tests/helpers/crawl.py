"""Configs that point the example's crawl sources at a test demo site, and services built from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from core.config import DEMO_SITE_PLACEHOLDER, Config, parse_config
from core.paths import REPO_ROOT
from yuqing.service import Service, build_service

EXAMPLE = REPO_ROOT / "yuqing.example.yaml"


def example_sources(base_url: str) -> dict[str, Any]:
    """The example config's crawl sources, their `{demo_site}` URLs pointed at the test site."""
    text = EXAMPLE.read_text(encoding="utf-8").replace(DEMO_SITE_PLACEHOLDER, base_url)
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
