"""Issue 18: configuration errors found at check time, drift that never hides, and nothing silently lost.

Each test reproduces one numbered defect of the issue (it failed before the fix) against real Scrapy crawls of the
demo site on 127.0.0.1, with the example config's sources.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from core.config_crawl import FieldRule
from crawlers.extractors.page import login_wall
from crawlers.health import source_health
from demo.site import DemoSite
from storage.base import ItemQuery
from tests.helpers.crawl import board_source, example_sources, make_config, make_service
from yuqing.cli import app


def test_check_config_compiles_every_selector_xpath_regex_and_jmespath(tmp_path: Path) -> None:
    """Defect 3: check-config accepted a bad selector, XPath or regex; it surfaced only at crawl time."""
    examples = example_sources("http://127.0.0.1:8765")
    mailbox = copy.deepcopy(examples["demo_mailbox"])
    fields = mailbox["crawl"]["html"]["detail_fields"]
    fields["title"] = "li h6["  # CSS
    fields["content"] = {"select": "xpath://li/p[", "regex": "信件内容：(.*)"}  # XPath
    fields["reply.text"] = {"select": "li p", "regex": "回复内容：([^\\n]+"}  # regex
    mailbox["crawl"]["html"]["row_fields"] = {"agency": "xpath://td[2]"}  # absolute inside a row
    liuyan = copy.deepcopy(examples["demo_liuyan"])
    liuyan["crawl"]["json"]["fields"]["reply.text"] = "answers[-1.content"  # JMESPath
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"sources": {"m": mailbox, "j": liuyan}}, allow_unicode=True), encoding="utf-8")
    result = CliRunner().invoke(app, ["check-config", "-c", str(path)])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    for field, reason in [("sources.m.crawl.html.detail_fields.title.select", "bad CSS selector 'li h6['"),
                          ("sources.m.crawl.html.detail_fields.content.select", "bad XPath 'xpath://li/p['"),
                          ("sources.m.crawl.html.detail_fields.reply.text.regex", "bad regex"),
                          ("sources.m.crawl.html.row_fields.agency.select", "is absolute"),
                          ("sources.j.crawl.json.fields.reply.text", "bad JMESPath")]:
        assert f"{path}: {field}: " in out and reason in out.split(f"{field}: ", 1)[1][:200], (field, out)


def test_login_markers_never_match_a_letter_that_quotes_them() -> None:
    """Defect 4: a reply saying "请登录一网通办办理" made the letter a login wall (source degraded, letter dropped).

    Spiders ask about a page's structure only when it gave none of its fields; the crawl of letters whose replies
    all say so is in the next test."""
    markers = yaml.safe_load("[请登录, 登录后, 用户登录, 访问过于频繁, 验证身份, passport.weibo, /login, /signin]")
    reply = "您好：您反映的社保转移问题，请登录一网通办办理，登录后选择“社保卡”栏目。" * 3
    letter = (f"<html><head><title>社保转移</title></head><body>"
              f"<ul><li><h6>社保转移</h6></li><li><p><span>信件内容：</span>{'社保转移办不了' * 40}</p></li>"
              f"<li><p><span>回复内容：</span>{reply}</p></li></ul>"
              f"<form><input type='text' name='u'><input type='password' name='p'></form></body></html>")
    assert login_wall("https://xfb.example.gov.cn/feedbackshow?id=1", letter, markers) is None
    login = "<html><head><title>用户登录</title></head><body><form><input name=u><input type=password></form></body></html>"
    assert login_wall("https://www.example.gov.cn/portal", login, markers) is not None
    assert login_wall("https://www.example.gov.cn/login?next=/x", "", markers) is not None
    quota = "<html><body><div class='weui-msg'><p>访问过于频繁，请用微信扫描二维码进行访问</p></div></body></html>"
    assert login_wall("https://mp.weixin.qq.com/s?x", quota, markers) is not None


@pytest.fixture(scope="module")
def small_site() -> DemoSite:
    """A site of its own: the tests below change its replies."""
    demo = DemoSite(seed=11, history=12, new_item_seconds=10**7, incident_after_minutes=10**6)
    demo.start("127.0.0.1", 0)
    yield demo
    demo.stop()


def _mailbox(site: DemoSite) -> dict:
    return copy.deepcopy(example_sources(site.base_url)["demo_mailbox"])


def test_broken_optional_selector_degrades_keeps_stored_replies_and_fixing_it_brings_them_back(small_site, tmp_path):
    """Defect 1: a broken `reply.text` selector wiped the stored replies and the source stayed "ok"; after fixing
    it a normal crawl did not bring the replies back."""
    for item in small_site.feed.visible("mailbox"):  # every letter answered: the reply field is filled everywhere
        small_site.feed.add_reply("mailbox", item.key, text=f"{item.key[:6]}：请登录一网通办办理，登录后选择社保栏目。")
    config = make_config(tmp_path, {"demo_mailbox": _mailbox(small_site)})
    service = make_service(config)
    spec = config.sources["demo_mailbox"].crawl.html
    assert service.crawl.run_source("demo_mailbox").items == 12

    def replies() -> int:
        return sum(i.reply is not None for i in service.store.search(ItemQuery(source="demo_mailbox")).data)

    assert replies() == 12  # and no "login wall" (defect 4): the replies say 请登录 and 登录后
    assert source_health(service.store)["demo_mailbox"].state == "ok"
    good = spec.detail_fields["reply.text"]
    spec.detail_fields["reply.text"] = FieldRule(select="li p.gone", regex="回复内容：([^\\n]+)")  # a redesign, say
    broken = service.crawl.run_source("demo_mailbox")
    health = source_health(service.store)["demo_mailbox"]
    assert broken.fields["reply.text"] == [0, 12]  # the changed config re-fetched every letter
    assert health.state == "degraded" and "reply.text" in health.reason, health.reason
    assert replies() == 12  # nothing wiped...
    kept = [q for q in service.store.list_quarantine(limit=50).data if q.stage == "dedup:kept_stored"]
    assert len(kept) == 12 and all("reply" in q.reason for q in kept)  # ...and each kept value recorded
    spec.detail_fields["reply.text"] = good
    fixed = service.crawl.run_source("demo_mailbox")
    assert fixed.fields["reply.text"] == [12, 12] and source_health(service.store)["demo_mailbox"].state == "ok"
    service.close()


def test_bad_regex_at_crawl_time_is_a_configuration_error_and_the_source_failing(small_site, tmp_path):
    """Defect 2: an invalid regex lost every item with no trace: 0 items, health "ok", exit 0."""
    config = make_config(tmp_path, {"demo_mailbox": _mailbox(small_site)})
    service = make_service(config)
    rule = config.sources["demo_mailbox"].crawl.html.detail_fields["content"]
    rule.regex = "信件内容：(.*"  # what check-config rejects; here it slips past, as an edited config at run time would
    run = service.crawl.run_source("demo_mailbox")
    health = source_health(service.store)["demo_mailbox"]
    assert run.errors.get("config_error") and run.items == 0
    assert health.state == "failing" and "configuration error" in health.reason and "regex" in health.reason
    service.close()


def test_link_selector_miss_names_the_link_selector(small_site, tmp_path):
    """Defect 8: when the link selector missed, the reason blamed the row selector although rows matched."""
    source = board_source(f"{small_site.base_url}/board/list")
    source["crawl"]["html"]["link"] = "h3 b::attr(href)"
    service = make_service(make_config(tmp_path, {"b": source}))
    service.crawl.run_source("b")
    reasons = [q.reason for q in service.store.list_quarantine(limit=10).data]
    assert any("rows match row selector 'li.msg-item' but none has a link matching 'h3 b::attr(href)'" in r
               for r in reasons), reasons
    service.close()


def test_crawl_cli_counts_what_was_stored_and_a_full_recrawl_changes_nothing(small_site, tmp_path):
    """Defects 6 and 7: `--full` of an unchanged site printed every entry as new, and items as updated."""
    sources = {"demo_board": example_sources(small_site.base_url)["demo_board"]}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"storage": {"sqlite_path": str(tmp_path / "c.db")},
                                    "crawling": {"state_dir": str(tmp_path / "state")}, "sources": sources},
                                   allow_unicode=True), encoding="utf-8")
    runner = CliRunner()
    first = runner.invoke(app, ["crawl", "demo_board", "-c", str(path)])
    again = runner.invoke(app, ["crawl", "demo_board", "--full", "-c", str(path)])
    first_summary, full_summary = (yaml.safe_load(r.stdout.strip().splitlines()[-1]) for r in (first, again))
    assert first_summary["new_items"] == 12 and first_summary["sent"] == 12
    assert (full_summary["sent"], full_summary["new_items"], full_summary["updated_items"]) == (12, 0, 0)
    assert full_summary["unchanged_items"] == 12


def test_the_worked_examples_in_the_docs_are_the_tested_example_sources() -> None:
    """docs/crawling.md's examples must work unchanged against the demo site: they are the example config's sources,
    which test_channels crawls field by field (README points to both)."""
    from core.paths import REPO_ROOT

    text = (REPO_ROOT / "docs" / "crawling.md").read_text(encoding="utf-8")
    blocks = [yaml.safe_load(b.split("```", 1)[0]) for b in text.split("```yaml\n")[1:]]
    sources = {name: spec for b in blocks if isinstance(b, dict) and "sources" in b for name, spec in b["sources"].items()}
    assert set(sources) == {"demo_mailbox", "demo_liuyan"}
    examples = example_sources("{demo_site}")
    for name, spec in sources.items():
        assert spec == examples[name], name
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/crawling.md" in readme
