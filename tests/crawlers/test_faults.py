"""Bad input from sites: every fault is recorded with its reason, shows in the source's health, and the crawl goes on."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from crawlers.health import source_health
from demo.site import DemoSite
from storage.base import ItemQuery
from tests.helpers.crawl import board_source, example_sources, make_config, make_service


def _run(tmp: Path, source: str, spec: dict[str, Any], runs: int = 1) -> dict[str, Any]:
    service = make_service(make_config(tmp / source, {source: spec}))
    results = [service.crawl.run_source(source) for _ in range(runs)]
    out = {"runs": results, "health": source_health(service.store)[source],
           "items": service.store.search(ItemQuery(source=source, limit=100)).data,
           "quarantine": service.store.list_quarantine(limit=100).data}
    service.close()
    return out


@pytest.fixture(scope="module")
def faults(site: DemoSite, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    base = site.base_url
    examples = example_sources(base)
    weibo_bad_cookie = {**examples["demo_weibo"], "crawl": {**examples["demo_weibo"]["crawl"], "cookies": {"SUB": "expired"}}}
    hotline_bad_token = {**examples["demo_hotline"], "crawl": {**examples["demo_hotline"]["crawl"], "token": "wrong"}}
    cases = {
        "fault_pages": board_source(f"{base}/faults/list", timeout_seconds=1.5, max_page_bytes=1_000_000, retries=1),
        "endless": board_source(f"{base}/faults/endless", max_list_pages=5),
        "mislabelled": board_source(f"{base}/faults/mislabelled"),
        "broken_html": board_source(f"{base}/faults/broken"),
        "bad_json": {"channel": "hotline", "crawl": {"kind": "hotline_api", "start_url": f"{base}/faults/bad.json"}},
        "weibo_login": weibo_bad_cookie,
        "hotline_token": hotline_bad_token,
        "wechat_quota": {"channel": "wechat", "crawl": {"kind": "wechat", "wechat": {"profile_urls": [f"{base}/wechat/mp/quota"]}}},
        "robots": board_source(f"{base}/private/list"),
        "first_page_403": board_source(f"{base}/faults/status/403"),
    }
    tmp = tmp_path_factory.mktemp("faults")
    with ThreadPoolExecutor(3) as pool:
        futures = {name: pool.submit(_run, tmp, name, spec) for name, spec in cases.items()}
        return {name: f.result() for name, f in futures.items()}


def test_every_fault_page_is_recorded_and_good_entries_still_collected(faults):
    result = faults["fault_pages"]
    run = result["runs"][0]
    assert run.outcome == "ok" and run.finish_reason == "finished"
    for kind in ("http_403", "http_418", "http_429", "http_500", "http_404", "timeout", "too_large", "login_wall"):
        assert run.errors.get(kind, 0) >= 1, (kind, run.errors)
    assert len(result["items"]) == 2  # the two good entries on the same list
    stages = {q.stage for q in result["quarantine"]}
    assert {"crawl:http_403", "crawl:timeout", "crawl:too_large", "crawl:login_wall"} <= stages
    too_large = next(q for q in result["quarantine"] if q.stage == "crawl:too_large")
    assert "/faults/huge" in too_large.payload["url"]
    health = result["health"]
    assert health.state == "degraded" and "login" in health.reason  # a login wall is the loudest of these faults
    assert {"http_403", "http_429", "http_500", "timeout", "too_large"} <= set(health.errors_total)


def test_endless_pagination_is_capped(faults):
    run = faults["endless"]["runs"][0]
    assert run.finish_reason == "finished" and run.errors.get("list_page_cap") == 1
    assert run.entries == 5 and len(faults["endless"]["items"]) == 5


def test_wrong_charset_label_is_detected(faults, site):
    titles = {i.payload["title"] for i in site.feed.visible("board")[:5]}
    stored = {i.title for i in faults["mislabelled"]["items"]}
    assert stored == titles and faults["mislabelled"]["runs"][0].errors == {}


def test_malformed_html_still_yields_readable_rows(faults):
    assert len(faults["broken_html"]["items"]) == 3


def test_malformed_json_degrades_the_source(faults):
    result = faults["bad_json"]
    assert result["runs"][0].errors == {"parse_error": 1}
    assert result["health"].state == "degraded" and "parse errors" in result["health"].reason
    assert any("malformed JSON" in q.reason for q in result["quarantine"])


@pytest.mark.parametrize("case", ["weibo_login", "hotline_token"])
def test_rejected_credentials_degrade_the_source(faults, case):
    result = faults[case]
    assert result["runs"][0].errors.get("credentials_rejected", 0) >= 1  # Weibo: once per keyword or account
    assert result["health"].state == "degraded" and "credentials" in result["health"].reason
    assert result["items"] == []


def test_anti_crawl_page_is_a_login_wall(faults):
    result = faults["wechat_quota"]
    assert result["runs"][0].errors.get("login_wall") == 1
    assert result["health"].state == "degraded"


def test_robots_txt_is_obeyed(faults):
    result = faults["robots"]
    run = result["runs"][0]
    assert run.errors.get("robots_forbidden") == 1 and run.outcome == "failed" and result["items"] == []


def test_banned_first_page_fails_the_run(faults):
    result = faults["first_page_403"]
    assert result["runs"][0].outcome == "failed" and result["runs"][0].errors == {"http_403": 1}
    assert result["health"].state == "degraded" and result["health"].consecutive_failures == 1
