"""Extractors on the real saved responses in shared/data/page_samples (no network)."""

from __future__ import annotations

from datetime import datetime

import pytest
from parsel import Selector

from core.config_crawl import FieldRule, HotlineSpec
from core.errors import ExtractionError
from crawlers.extractors.fields import extract_field, nest
from crawlers.extractors.hotline import parse_page, work_order_payload
from crawlers.extractors.page import decode_page, login_wall
from crawlers.extractors.wechat import article_payload, parse_profile
from crawlers.extractors.weibo import LoginRequired, long_text, mblog_payload, mblogs, next_since_id, parse_json
from nlp.normalise import parse_time

pytestmark = pytest.mark.data


def test_weibo_timeline_sample(shared_data):
    body = (shared_data / "page_samples/weibo/MountainDash__nonebot-bison__weibo_ak_list_1.json").read_bytes()
    data = parse_json(body)
    posts = [mblog_payload(m, "https://m.weibo.cn") for m in mblogs(data)]
    assert len(posts) == 11
    assert next_since_id(data) == "4646131823281332"
    first = next(p for p in posts if p["source_id"] == "4649106427873349")
    assert first["content"] == "#明日方舟#\nSideStory「沃伦姆德的薄暮」复刻现已开启！"
    assert (first["reposts"], first["comments"], first["likes"]) == (272, 241, 4050)
    assert first["author"] == "明日方舟Arknights" and first["followers"] == 1363591
    assert parse_time(first["published_at"]).isoformat() == "2021-06-17T16:00:11+08:00"
    assert sum(p["is_long_text"] for p in posts) == 6


def test_weibo_longtext_and_login(shared_data):
    body = (shared_data / "page_samples/weibo/MountainDash__nonebot-bison__weibo_detail_4645748019299849.longtext.json").read_bytes()
    text = long_text(body)
    assert text.startswith("#明日方舟# #音律联觉#\n2021明日方舟音律联觉") and "<" not in text
    with pytest.raises(LoginRequired):
        parse_json(b'{"ok": -100, "url": "https://passport.weibo.cn/signin/welcome"}')
    with pytest.raises(ExtractionError):
        parse_json(b'{"ok": 1, "data": {"cards": [')


def test_wechat_article_samples(shared_data):
    folder = shared_data / "page_samples/wechat"
    one = article_payload((folder / "GeneralNewsExtractor__GeneralNewsExtractor__wechat_1.html").read_text("utf-8"), "u1")
    assert one["title"] == "三星 Galaxy S20 系列手机正式发布"
    assert one["author"] == "爱否科技" and one["source_id"] == "MjM5NzE1NTMyNg==:2650934104:1"
    assert datetime.fromtimestamp(one["published_at"]).year == 2020 and one["content"].startswith("今天凌晨，三星在美国旧金山")
    two = article_payload((folder / "airyland__we-extract__mp-link.html").read_text("utf-8"), "u2")
    assert two["title"] == "两家大行行长空缺" and two["author"] == "轻金融" and two["published_at"] == 1608818529


def test_wechat_profile_and_quota(shared_data):
    folder = shared_data / "page_samples/wechat"
    articles, more, _ = parse_profile((folder / "airyland__we-extract__profile.html").read_text("utf-8"))
    assert len(articles) > 10 and articles[0]["title"] == "袁隆平神话｜大象公会"
    assert "&amp;" not in articles[0]["url"] and articles[0]["datetime"] == 1535119147
    quota = (folder / "airyland__we-extract__quota_limit.html").read_text("utf-8")
    with pytest.raises(ExtractionError):
        parse_profile(quota)
    with pytest.raises(ExtractionError):
        article_payload(quota, "u")
    assert login_wall("https://mp.weixin.qq.com/s?x", quota, ["访问过于频繁"]) is not None


def test_decode_page_fixes_wrong_label():
    text = "<p>江城市留言板：噪音扰民</p>"
    text_back, encoding, relabelled = decode_page(text.encode("gbk"), "text/html; charset=utf-8")
    assert text_back == text and encoding == "gb18030" and relabelled
    meta = ('<meta http-equiv="Content-Type" content="text/html; charset=gb2312"><p>领导信箱</p>').encode("gbk")
    assert decode_page(meta, "text/html")[0].endswith("领导信箱</p>")
    assert decode_page("正常".encode(), "text/html; charset=utf-8")[2] is False


def test_field_rules_css_xpath_regex():
    page = Selector(text="<ul><li><p>来信日期：2024-01-28</p></li><li><p>信件内容：第一段</p></li></ul>"
                         "<dl><dt>留言内容</dt><dd><p>甲</p><p>乙</p></dd></dl>")
    assert extract_field(page, FieldRule(select="li p", regex="来信日期：([^\\n]*)")) == "2024-01-28"
    assert extract_field(page, "xpath://dt[.='留言内容']/following-sibling::dd[1]") == "甲\n乙"
    assert extract_field(page, "h1") is None
    with pytest.raises(ExtractionError):
        extract_field(page, "xpath://[")
    assert nest({"reply.text": "a", "title": "t"}) == {"reply": {"text": "a"}, "title": "t"}


def test_work_order_mapping():
    spec = HotlineSpec()
    records = parse_page(b'{"code":0,"data":{"records":[{"orderNo":"GD1","requestType":"\xe6\x8a\x95\xe8\xaf\x89",'
                         b'"content":"c","acceptTime":"2026-01-02 03:04:05","replyContent":null,"handleUnit":"u"}]}}', spec)
    payload = work_order_payload(records[0], spec)
    assert payload == {"source_id": "GD1", "content": "c", "published_at": "2026-01-02 03:04:05",
                       "request_type": "complain", "handling_unit": "u"}
    with pytest.raises(ExtractionError):
        parse_page(b'{"code": 0, "data": {"records": [{"orderNo": "GD1", "title": "\xe6\xb5', spec)
