"""What the demo site shows: per-channel item streams from the seeded generator, growing while the site runs.

Each feed has its own generator so the same seed gives the same items whatever order pages are requested in.
An incident (the generator's chemical-plant smell) starts a few minutes after start-up and escalates within
`incident_minutes` (default 6): a few first reports, then a burst across channels, as a real one does.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from core.models import SHANGHAI
from demo.generator import DemoGenerator

# Feed name → the generator channel that fills it; board2 is a second message board with another HTML structure.
# liuyan is a JSON message board (人民网 领导留言板 shapes), zhaocuo the gov.cn 找错 platform's JSON list; new feeds go
# last, so the others keep their items.
FEEDS = {"hotline": "hotline", "mailbox": "mailbox", "board": "board", "board2": "board", "weibo": "weibo", "wechat": "wechat",
         "liuyan": "board", "zhaocuo": "board"}
WEIBO_ACCOUNTS = {"6279793937": "江城发布", "1907518591": "江城生态环境"}
WECHAT_ACCOUNTS = {"MzA5NzE1NTMyNg==": "江城发布", "MjM5NzE1NTMyNg==": "江城生态环境"}


@dataclass
class SiteItem:
    """One item as the site holds it: generator payload plus the site's own id and account."""

    feed: str
    seq: int
    key: str
    published_at: datetime
    payload: dict[str, Any]
    account: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _site_key(feed: str, seq: int, seed: int, at: datetime) -> str:
    digest = hashlib.md5(f"{seed}-{feed}-{seq}".encode()).hexdigest()  # noqa: S324 - an id, not security
    if feed == "hotline":
        return f"GD{at:%Y%m%d}{seq:06d}"
    if feed == "mailbox":
        return digest.upper()
    if feed == "board":
        return str(100_000 + seq)
    if feed == "weibo":
        return str(4_900_000_000_000_000 + seq * 7919)
    if feed == "wechat":
        return f"{2_650_000_000 + seq}"
    if feed == "zhaocuo":
        return str(314_000 + seq)  # gov.cn 找错 report ids are 6-digit numbers
    if feed == "liuyan":
        return str(18_200_000 + seq * 37)  # 人民网 thread ids (`tid`) are 8-digit numbers
    return str(seq)


class SiteFeed:
    """Items per feed, oldest first; `visible(feed)` returns what has been published by now, newest first."""

    def __init__(self, seed: int = 2026, history: int = 60, new_item_seconds: float = 30.0,
                 incident_after_minutes: float = 2.0, start: datetime | None = None,
                 reply_after_minutes: float | None = None, incident_minutes: float = 6.0) -> None:
        self.seed = seed
        self.reply_after_minutes = reply_after_minutes
        self.start = start or datetime.now(SHANGHAI)
        self.new_item_seconds = new_item_seconds
        self._lock = threading.Lock()
        self._generators = {name: DemoGenerator(seed + 1000 * i) for i, name in enumerate(FEEDS)}
        self._items: dict[str, list[SiteItem]] = {name: [] for name in FEEDS}
        self._times: dict[str, list[float]] = {name: [] for name in FEEDS}
        self._grown: dict[str, int] = dict.fromkeys(FEEDS, 0)
        self._seq: dict[str, int] = dict.fromkeys(FEEDS, 0)
        for name, channel in FEEDS.items():
            gen = self._generators[name]
            for _ in range(history):
                at = self.start - timedelta(seconds=gen.rng.randint(60, 7 * 86400))
                self._add(name, at, gen.one(channel, at).payload)
        incident_start = self.start + timedelta(minutes=incident_after_minutes)
        for demo_item in DemoGenerator(seed + 99).incident(incident_start, minutes=incident_minutes):
            at = datetime.fromisoformat(demo_item.payload["published_at"])
            self._add(demo_item.channel, at, demo_item.payload)

    def _add(self, name: str, at: datetime, payload: dict[str, Any]) -> SiteItem:
        self._seq[name] += 1
        seq = self._seq[name]
        at = at.replace(microsecond=0)
        item = SiteItem(feed=name, seq=seq, key=_site_key(name, seq, self.seed, at), published_at=at, payload=payload)
        if name == "weibo":
            item.account = list(WEIBO_ACCOUNTS)[seq % len(WEIBO_ACCOUNTS)]
        elif name == "wechat":
            item.account = list(WECHAT_ACCOUNTS)[seq % len(WECHAT_ACCOUNTS)]
        stamp = at.timestamp()
        index = bisect.bisect_right(self._times[name], stamp)
        self._times[name].insert(index, stamp)
        self._items[name].insert(index, item)
        return item

    def _grow(self, name: str, now: datetime) -> None:
        """Publish the items due since start-up: one per feed every `new_item_seconds`."""
        due = int((now - self.start).total_seconds() // self.new_item_seconds)
        gen = self._generators[name]
        while self._grown[name] < due:
            self._grown[name] += 1
            at = self.start + timedelta(seconds=self._grown[name] * self.new_item_seconds)
            payload = gen.one(FEEDS[name], at).payload
            if self.reply_after_minutes is not None and "reply" in payload:
                payload["reply"]["replied_at"] = (at + timedelta(minutes=self.reply_after_minutes)).isoformat()
            self._add(name, at, payload)

    def visible(self, name: str, now: datetime | None = None) -> list[SiteItem]:
        now = now or datetime.now(SHANGHAI)
        with self._lock:
            self._grow(name, now)
            count = bisect.bisect_right(self._times[name], now.timestamp())
            return self._items[name][:count][::-1]

    def find(self, name: str, key: str) -> SiteItem | None:
        for item in self.visible(name):
            if item.key == key:
                return item
        return None

    def add_reply(self, name: str, key: str, at: datetime | None = None, text: str | None = None,
                  department: str = "市政府办公室") -> SiteItem | None:
        """The office answers an existing letter now (or at `at`): what a revisit has to pick up."""
        item = self.find(name, key)
        if item is None:
            return None
        with self._lock:
            item.payload["reply"] = {
                "text": text or "您好！您反映的问题已转交相关部门办理，现已处理完毕，感谢您的来信。",
                "department": department,
                "replied_at": (at or datetime.now(SHANGHAI)).replace(microsecond=0).isoformat(),
            }
        return item

    def engage(self, name: str, key: str, **more: int) -> SiteItem | None:
        """Add to an item's counts (likes=, reposts=, comments=, dislikes=), as readers do over the days after."""
        item = self.find(name, key)
        if item is None:
            return None
        with self._lock:
            for count, amount in more.items():
                item.payload[count] = (item.payload.get(count) or 0) + amount
        return item


class ReplayFeed:
    """A real CSV export (e.g. 泰迪杯 hot-issue messages) served as a message board, newest first."""

    def __init__(self, path: Path, columns: dict[str, str], limit: int) -> None:
        self.items: list[SiteItem] = []
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for seq, row in enumerate(csv.DictReader(handle), start=1):
                if seq > limit:
                    break
                payload = {target: (row.get(column) or "").strip() for column, target in columns.items()}
                try:
                    at = datetime.fromisoformat(payload.get("published_at", "")).replace(tzinfo=SHANGHAI)
                except ValueError:
                    continue  # a row without a readable time cannot be placed on a dated list page
                key = payload.get("source_id") or str(seq)
                self.items.append(SiteItem(feed="replay", seq=seq, key=key, published_at=at, payload=payload))
        self.items.sort(key=lambda i: (i.published_at, i.seq), reverse=True)
        self._by_key = {i.key: i for i in self.items}

    def visible(self) -> list[SiteItem]:
        return self.items

    def find(self, key: str) -> SiteItem | None:
        return self._by_key.get(key)
