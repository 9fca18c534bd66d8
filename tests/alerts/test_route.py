"""The routing tree: YAML → labels → receivers, table-driven; inheritance and `continue` as in Alertmanager."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from alerts.route import build, find, match
from core.config_alerts import RouteConfig

TREE = yaml.safe_load("""
receiver: duty_office
group_by: [rule]
group_wait: 30s
routes:
  - matchers: ['severity="critical"']
    receiver: leaders
    continue: true
    repeat_interval: 1h
  - matchers: ['region=~"东湖区|西湖区"']
    receiver: east_team
    group_by: [region, rule]
    routes:
      - matchers: {department: 住建局}
        receiver: housing
  - matchers: ['channel="weibo"', 'topic!=""']
    receiver: press
  - matchers: ['category="operations"']
    receiver: ops
    group_wait: 0s
""")

CASES = [
    ({"severity": "warning"}, ["duty_office"]),
    ({"severity": "critical"}, ["leaders"]),
    ({"severity": "critical", "region": "东湖区"}, ["leaders", "east_team"]),
    ({"severity": "warning", "region": "东湖区", "department": "住建局"}, ["housing"]),
    ({"severity": "critical", "region": "西湖区", "department": "住建局"}, ["leaders", "housing"]),
    ({"severity": "warning", "region": "东湖区东"}, ["duty_office"]),  # regexes are anchored
    ({"channel": "weibo", "topic": "交通"}, ["press"]),
    ({"channel": "weibo"}, ["duty_office"]),  # a missing label is "", so topic!="" fails
    ({"region": "东湖区", "channel": "weibo", "topic": "交通"}, ["east_team"]),  # first match wins without continue
    ({"category": "operations", "source": "weibo_a"}, ["ops"]),
]


@pytest.mark.parametrize(("labels", "receivers"), CASES)
def test_match(labels, receivers):
    root = build(RouteConfig.model_validate(TREE))
    assert [r.receiver for r in match(root, labels)] == receivers


def test_settings_inherit_and_override():
    root = build(RouteConfig.model_validate(TREE))
    leaders, east, press, ops = root.routes
    housing = east.routes[0]
    assert leaders.group_by == ["rule"] and leaders.repeat_interval == timedelta(hours=1)
    assert leaders.group_wait == timedelta(seconds=30)
    assert housing.group_by == ["region", "rule"]  # inherited from east_team, not root
    assert ops.group_wait == timedelta(0)
    assert root.repeat_interval == timedelta(hours=4)  # default
    assert find(root, housing.path) is housing and find(root, "0.9") is None


def test_group_key_uses_group_by_labels_only():
    root = build(RouteConfig.model_validate(TREE))
    east = root.routes[1]
    a = east.group_key({"region": "东湖区", "rule": "r1", "item_id": "1"})
    b = east.group_key({"region": "东湖区", "rule": "r1", "item_id": "2"})
    c = east.group_key({"region": "西湖区", "rule": "r1", "item_id": "1"})
    assert a == b != c
