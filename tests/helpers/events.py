"""A small cross-channel corpus (one grievance told three times, two unrelated items) and its config, for the event
tests and the tests that wire alerts to events."""

from __future__ import annotations

from core.config import parse_config
from core.models import RawRecord

CONFIG = parse_config({"sources": {"hotline_a": {"channel": "hotline"}, "mailbox_a": {"channel": "mailbox"},
                                   "weibo_a": {"channel": "weibo"}, "b": {"channel": "board"}}})

GRIEVANCE = [
    ("hotline_a", "市民来电反映：江城区幸福里小区楼下烧烤店每天营业到凌晨三点，油烟和噪音扰民，要求相关部门处理。"),
    ("mailbox_a", "尊敬的领导：幸福里小区临街烧烤店深夜经营，油烟直排进居民家中，噪音让老人孩子无法休息，请求整治。"),
    ("weibo_a", "#江城# 幸福里小区楼下的烧烤店又开到凌晨了，油烟呛得窗户都不敢开，噪音扰民谁来管管？"),
]
OTHER = [
    ("weibo_a", "江城地铁3号线今天开通试运营，早高峰乘客很多，车站秩序良好。"),
    ("hotline_a", "市民咨询：新生儿医保怎么办理，需要带哪些材料到社区服务中心？"),
]


def raw_records(pairs: list[tuple[str, str]], start: int = 0) -> list[RawRecord]:
    """One raw record per (source, text), ids counting from `start`, all published 2026-01-05 10:00."""
    return [RawRecord(source=s, payload={"source_id": str(start + i), "content": t, "published_at": "2026-01-05 10:00"})
            for i, (s, t) in enumerate(pairs)]
