"""The json_api kind beyond the example board: GET lists by offset or cursor, with or without a detail per entry,
against the demo site's gov.cn 找错-shaped platform (list rows as in page_samples, a JSON detail per report)."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import pytest

from core.models import SHANGHAI
from crawlers.health import source_health
from demo.site import DemoSite, reply_of, zhaocuo_site
from storage.base import ItemQuery
from tests.helpers.crawl import make_config, make_service

DETAIL_FIELDS = {"title": "wtbt", "content": "wtms", "published_at": "bgsj", "reply.text": "hfnr",
                 "reply.department": "hfdw", "reply.replied_at": "hfsj", "site": "wzmc"}


def _source(base: str, paging: dict[str, Any], detail: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {"list_url": f"{base}/zfwzzc/check_web/errorInfo_querySearch.action?length=5",
                            "paging": paging, "records": "data", "id": "id"}
    if detail:
        spec.update(detail_url=f"{base}/zfwzzc/check_web/errorInfo_getErrorInfoList2.action?id={{id}}",
                    detail_record="errorInfo", fields=DETAIL_FIELDS)
    else:  # the list alone: the site, the date and the state are all there is
        spec.update(fields={"title": "wzmc", "published_at": "bgdate", "state": "blzt"}, required=["title", "published_at"])
    return {"channel": "board", "crawl": {"kind": "json_api", "json": spec}}


@pytest.fixture(scope="module")
def zhaocuo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    site = DemoSite(seed=5, history=12, new_item_seconds=10**7, incident_after_minutes=10**6)
    base = site.start("127.0.0.1", 0)
    with_key = _source(base, {"mode": "offset", "param": "start", "step": 5})
    with_key["crawl"]["json"]["headers"] = {"X-Api-Key": {"$env": "ZHAOCUO_TEST_KEY"}}
    with_key["crawl"]["json"]["list_url"] += "&client=keyed"
    os.environ["ZHAOCUO_TEST_KEY"] = "s3cret-key"
    sources = {"by_offset": with_key,
               "by_cursor": _source(base, {"mode": "cursor", "path": "nextCursor", "param": "cursor"}),
               "list_only": _source(base, {"mode": "offset", "step": 5}, detail=False)}
    config = make_config(tmp_path_factory.mktemp("zhaocuo"), sources)
    service = make_service(config)
    out: dict[str, Any] = {"site": site, "config_dump": str(config.sources["by_offset"].model_dump())}
    for name in sources:
        first = service.crawl.run_source(name)
        if name == "list_only":  # a report gets its answer: its list row's state changes, so it is sent again
            now = datetime.now(SHANGHAI)
            out["answered"] = next(i.key for i in site.feed.visible("zhaocuo") if not reply_of(i, now) or "reply" not in
                                   i.payload)
            site.feed.add_reply("zhaocuo", out["answered"])
        second = service.crawl.run_source(name)
        out[name] = {"first": first, "second": second, "health": source_health(service.store)[name],
                     "items": {i.source_id: i for i in service.store.search(ItemQuery(source=name, limit=100)).data}}
    service.close()
    site.stop()
    del os.environ["ZHAOCUO_TEST_KEY"]
    return out


@pytest.mark.parametrize("name", ["by_offset", "by_cursor"])
def test_offset_and_cursor_lists_with_a_detail_per_entry(zhaocuo, name):
    result, site = zhaocuo[name], zhaocuo["site"]
    assert result["first"].errors == {} and result["first"].items == 12 and result["second"].items == 0
    assert result["health"].state == "ok"
    now = datetime.now(SHANGHAI)
    for site_item in site.feed.visible("zhaocuo"):
        if site_item.key == zhaocuo["answered"]:
            continue  # answered after these sources were crawled (see the list-only test)
        item, p = result["items"][site_item.key], site_item.payload
        assert (item.title, item.content, item.extra["site"]) == (p["title"], p["content"], zhaocuo_site(site_item))
        assert item.published_at == site_item.published_at
        reply = reply_of(site_item, now) if "reply" in p else None
        assert (item.reply and item.reply.text) == (reply and reply["text"])
        assert item.url.endswith(f"errorInfo_getErrorInfoList2.action?id={site_item.key}")


def test_secret_headers_come_from_the_environment_and_are_sent_but_never_shown(zhaocuo):
    sent = [{k.lower(): v for k, v in h.items()} for path, h in zhaocuo["site"].last_headers.items() if "client=keyed" in path]
    assert sent and all(h.get("x-api-key") == "s3cret-key" for h in sent)
    assert "s3cret-key" not in zhaocuo["config_dump"]


def test_list_only_entries_and_a_changed_entry_comes_again(zhaocuo):
    result, site = zhaocuo["list_only"], zhaocuo["site"]
    assert result["first"].errors == {} and result["first"].items == 12 and result["second"].items == 1
    answered = next(i for i in site.feed.visible("zhaocuo") if i.key == zhaocuo["answered"])
    item = result["items"][answered.key]
    assert item.title == zhaocuo_site(answered) and item.extra["state"] == "22"
