"""The demo site's port is one setting: the demo sources' `{demo_site}` URLs follow `crawling.demo_site.port`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.config import parse_config
from core.errors import ConfigError
from demo.site import DemoSite
from tests.helpers.crawl import EXAMPLE, make_service


def example_with_demo_port(tmp_path: Path, port: int) -> dict:
    """yuqing.example.yaml as a user would change it: only crawling.demo_site.port differs (and paths under tmp)."""
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["crawling"].update(scheduler=False, state_dir=str(tmp_path / "state"))
    data["crawling"]["demo_site"]["port"] = port
    data["storage"]["sqlite_path"] = str(tmp_path / "demo-port.db")
    return data


def crawl_urls(config) -> list[str]:  # noqa: ANN001 - Config
    urls = []
    for source in config.sources.values():
        spec = source.crawl
        if spec is None:
            continue
        urls += [u for u in (spec.start_url, spec.html and spec.html.list_url, spec.weibo and spec.weibo.base_url) if u]
        urls += spec.wechat.profile_urls if spec.wechat else []
    return urls


def test_every_demo_source_follows_the_one_port_setting(tmp_path: Path) -> None:
    urls = crawl_urls(parse_config(example_with_demo_port(tmp_path, 9123)))
    assert len(urls) == 7
    assert all(u.startswith("http://127.0.0.1:9123/") for u in urls), urls
    default = crawl_urls(parse_config(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))))
    assert all(u.startswith("http://127.0.0.1:8765/") for u in default), default


def test_changing_the_port_setting_makes_the_crawls_hit_the_new_port(tmp_path: Path, site: DemoSite) -> None:
    """The session's demo site listens on a random port; setting only that port, the example's sources crawl it."""
    port = site.server.server_address[1]
    service = make_service(parse_config(example_with_demo_port(tmp_path, port)))
    try:
        for source, path in (("demo_hotline", "/hotline/api/workorders"), ("demo_board", "/board/list")):
            hits_before = site.hits.get(path, 0)
            run = service.crawl.run_source(source)
            assert run.items > 0 and not run.errors, (source, run)
            assert site.hits.get(path, 0) > hits_before  # this site served them, not whatever holds port 8765
    finally:
        service.close()


def test_the_placeholder_needs_a_fixed_port(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sources\.demo_hotline\.crawl\.start_url: \{demo_site\} needs a fixed"):
        parse_config(example_with_demo_port(tmp_path, 0))
