"""Shared by the reports tests: a day of items with known enrichment, the config of a service with alerts, plans and
reports, and the system tools the PDF checks need (pdftotext, a CJK font)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.clock import ManualClock
from core.config import parse_config
from core.models import RawRecord

# Monday 2026-03-09 in Beijing: the day the items are published; reports are made on Tuesday at 10:00.
DAY = "2026-03-09"
DAY_START = datetime(2026, 3, 8, 16, 0, tzinfo=UTC)  # 2026-03-09 00:00 +08:00
REPORT_TIME = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # 2026-03-10 10:00 +08:00
SOURCES = {"board_a": {"channel": "board", "region": "江城市雨花区"}, "weibo_a": {"channel": "weibo"},
           "hotline_a": {"channel": "hotline", "region": "江城市东湖区"}}
HOSTILE_TITLE = "<script>alert('t')</script><img src=x onerror=alert(1)>油烟扰民"
HOSTILE_REASON = "敏感词：<b onmouseover=alert(2)>聚集</b><svg/onload=alert(3)>"


def require_tool(name: str) -> str:
    """The path of a system tool the report tests need: skipped when missing, failed under CI=true."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: `make test` installs it (Debian package poppler-utils) when run as root"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_cjk_font() -> None:
    from core.errors import ReportError
    from reports.charts import cjk_font

    try:
        cjk_font(None)
    except ReportError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(exc.message)
        pytest.skip(exc.message)


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    """What pdftotext reads from a PDF (UTF-8)."""
    tool = require_tool("pdftotext")
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    return subprocess.run([tool, "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True, timeout=60).stdout.decode()


def day_items() -> list[RawRecord]:
    """One Monday of items: a red-grade 停水 event on the board, a hostile title, a 交通 burst at 14:00 after a few
    items in the morning, and calm 微博 chatter."""
    records: list[RawRecord] = []

    def add(source: str, n: int, hour: float, title: str, content: str, **enrichment: Any) -> None:
        published = DAY_START + timedelta(hours=hour)
        records.append(RawRecord(source=source, payload={
            "source_id": f"{source}-{n}", "title": title, "content": content, "published_at": published.isoformat(),
            "test_enrichment": enrichment}))

    water = [{"feature": "group", "weight": 30, "detail": "群体性：几十户业主聚集", "evidence": "几十户业主"},
             {"feature": "emotion", "weight": 15, "detail": "情绪：愤怒（置信度 0.82）"}]
    for n in range(4):
        add("board_a", n, 8 + n, f"雨花小区停水第{n + 1}天无人管", f"第{n}条：几十户业主聚集在物业门口，要求尽快恢复供水。",
            topic="城乡建设", emotion="anger", risk_score=92 - n, risk_level="I", event_id="ev-water", risk_reasons=water)
    add("board_a", 10, 9.5, HOSTILE_TITLE, "楼下烧烤店油烟扰民<img src=x onerror=alert(4)>", topic="环境保护",
        emotion="anger", risk_score=65, risk_level="II", event_id="ev-smoke",
        risk_reasons=[{"feature": "term", "weight": 20, "detail": HOSTILE_REASON}])
    add("hotline_a", 11, 10, "油烟扰民再次投诉", "烧烤店油烟问题又来了", topic="环境保护", emotion="anger", risk_score=45,
        risk_level="III", event_id="ev-smoke", risk_reasons=[{"feature": "repeat", "weight": 10, "detail": "重复诉求：第 2 次"}])
    for n in range(4):  # the 交通 baseline: a few items through the morning
        add("hotline_a", 20 + n, 1 + 2.5 * n, f"公交晚点{n}", f"公交车晚点第{n}次", topic="交通运输", emotion="neutral",
            risk_score=10, risk_level="IV")
    for n in range(9):  # …then a burst between 14:00 and 15:00
        add("weibo_a", 40 + n, 14 + n / 10, f"地铁故障停运{n}", f"地铁二号线故障停运，乘客被困第{n}条", topic="交通运输",
            emotion="fear", risk_score=35, risk_level="IV")
    for n in range(5):
        add("weibo_a", 60 + n, 18 + n / 2, f"江城美食{n}", f"江城夜市小吃推荐{n}", topic="文化旅游", emotion="happiness",
            risk_score=2, risk_level="IV")
    return records


@dataclass
class Harness:
    service: Any
    clock: ManualClock

    @property
    def reports(self) -> Any:
        return self.service.reports


def reports_config(db: Path, *, smtp: dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
                   sections: dict[str, Any] | None = None) -> Any:
    receivers: list[dict[str, Any]] = [{"name": "duty_office", "inapp": {}}]
    if smtp is not None:
        receivers += [{"name": "leaders", "email": {"to": ["leader@example.gov.cn", "mayor@example.gov.cn"]}},
                      {"name": "press", "email": {"to": ["press@example.gov.cn"]}}]
    alerts = {"rules": [{"name": "red_risk", "min_risk_level": "I", "severity": "critical"}],
              "route": {"receiver": "duty_office", "group_by": ["rule"]}, "receivers": receivers,
              **({"smtp": smtp} if smtp else {}), "public_url": "https://yuqing.example.gov.cn"}
    return parse_config({"storage": {"sqlite_path": str(db)}, "sources": SOURCES, "alerts": alerts,
                         "reports": {"schedule": False, **(settings or {})}, **(sections or {})})
