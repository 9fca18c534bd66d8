"""A service with alerts and playbooks attached on a temporary SQLite store, one manual clock for both, and a test
enrich stage that sets risk and event fields the way the analysis stages will."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from alerts.clock import ManualClock
from core.config import parse_config
from core.models import Enrichment, RawRecord
from flow.stages import Batch

# Tuesday 2026-03-10 10:00 Beijing time: a working day.
from tests.helpers.plans import T0  # noqa: E402

FIXTURES = Path(__file__).with_name("fixtures")

SOURCES = {"board_a": {"channel": "board", "region": "江城市"}, "weibo_a": {"channel": "weibo"},
           "hotline_a": {"channel": "hotline", "region": "东湖区"}, "mailbox_a": {"channel": "mailbox"}}

ALERTS = {
    "rules": [
        {"name": "red_risk", "min_risk_level": "I", "severity": "critical"},
        {"name": "hot_event", "kind": "event", "min_event_items": 3, "severity": "critical"},
        {"name": "mid_risk", "min_risk_level": "III", "channels": ["weibo"], "severity": "warning"},
        {"name": "plan_warning", "kind": "deadline", "deadline_stages": ["warning"], "severity": "warning"},
        {"name": "plan_breach", "kind": "deadline", "deadline_stages": ["breach"], "severity": "critical"},
    ],
    "route": {"receiver": "duty_office", "group_by": ["rule"], "group_wait": "0s", "group_interval": "1m",
              "repeat_interval": "4h", "escalation": [{"after": "30m", "receiver": "leaders"}],
              "routes": [{"matchers": ['kind="deadline"', 'plan_receiver="press"'], "receiver": "press"}]},
    "receivers": [{"name": "duty_office", "inapp": {}}, {"name": "leaders", "inapp": {}}, {"name": "press", "inapp": {}}],
}

ROLES = {
    "duty_office": {"name": "值班室"},
    "press_office": {"name": "新闻办", "receiver": "press", "members": ["press_a", "press_b"]},
    "responsible_department": {"name": "涉事责任部门"},
    "handling_unit": {"name": "承办单位"},
    "hotline_center": {"name": "12345 热线中心", "members": ["center_a"]},
    "disclosure_office": {"name": "公开办"},
    "petition_office": {"name": "信访办"},
    "drafter": {"members": ["drafter_a", "press_a"]},
    "reviewer": {"members": ["reviewer_a", "press_a"]},
    "leader": {"members": ["leader_a", "leader_b"]},
}


class EnrichFromPayload:
    """Test stage in the place of the risk stage: copies `test_enrichment` from the payload into item.enrichment."""

    name = "risk"

    def run(self, batch: Batch) -> None:
        for item in batch.items:
            data = item.extra.pop("test_enrichment", None)
            if data:
                item.enrichment = Enrichment(**data)


@dataclass
class Harness:
    service: Any
    plans: Any
    engine: Any
    clock: ManualClock
    n: int = 0

    def ingest(self, *payloads: dict[str, Any], source: str = "board_a") -> list[int]:
        return self.service.ingestor.ingest([RawRecord(source=source, payload=p) for p in payloads]).item_ids

    def payload(self, level: str | None = None, event_id: str | None = None, **extra: Any) -> dict[str, Any]:
        self.n += 1
        enrichment = {"risk_score": {"I": 90, "II": 70, "III": 50, None: 10}[level], "risk_level": level or "IV",
                      "topic": "环境保护", "event_id": event_id}
        return {"source_id": f"t{self.n}", "title": f"化工厂气味第{self.n}条", "content": f"第{self.n}条：工业园区化工厂附近刺鼻气味。",
                "published_at": extra.pop("published_at", self.clock.now().isoformat()), "test_enrichment": enrichment, **extra}

    def alerts(self, **filters: Any) -> list[dict[str, Any]]:
        return self.engine.reader.list(limit=500, **filters)[0]

    def runs(self, **filters: Any) -> list[dict[str, Any]]:
        return self.plans.runs.list(limit=500, **filters)[0]


def make_config(db_path: Path, **playbooks: Any) -> Any:
    return parse_config({"sources": SOURCES, "storage": {"sqlite_path": str(db_path)}, "alerts": ALERTS,
                         "playbooks": {"roles": {**ROLES, **playbooks.pop("roles", {})}, **playbooks},
                         "calendar": {"overrides": []}})


@pytest.fixture
def make_harness(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    made: list[Any] = []

    def build(start: datetime = T0, **options: Any) -> Harness:
        from alerts.service import attach as attach_alerts
        from playbooks.service import attach as attach_playbooks
        from yuqing.service import build_service

        config = make_config(tmp_path / f"h{len(made)}.db", **options)
        service = build_service(config, enrich=False, extensions=False)
        service.provide_stages("enrich", {"risk": EnrichFromPayload()})
        clock = ManualClock(start)
        engine = attach_alerts(service)
        engine.clock = clock
        plans = attach_playbooks(service, alerts=engine)
        plans.clock = clock
        made.append(service)
        return Harness(service, plans, engine, clock)

    yield build
    for service in made:
        service.close()


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()
