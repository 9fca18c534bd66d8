"""Alert config validation: every mistake is a clear error naming the field; secrets come from the environment."""

from __future__ import annotations

import pytest

from core.config import parse_config
from core.config_alerts import Matcher, parse_duration
from core.errors import ConfigError

GOOD = {
    "smtp": {"host": "127.0.0.1", "port": 2525, "sender": "yuqing@example.gov.cn"},
    "rules": [{"name": "high", "min_risk_score": 80}],
    "route": {"receiver": "duty", "routes": [{"matchers": ['region="江城市"'], "receiver": "city"}]},
    "receivers": [{"name": "duty", "email": {"to": ["duty@example.gov.cn"]}}, {"name": "city", "inapp": {}}],
}


def check(alerts: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config({"alerts": alerts})
    return info.value.message


def test_good_config_parses():
    cfg = parse_config({"alerts": GOOD}).alerts
    assert cfg.route.routes[0].matchers[0] == Matcher(name="region", op="=", value="江城市")


@pytest.mark.parametrize(("change", "expected"), [
    ({"route": {"receiver": "nobody"}}, "receiver 'nobody' is not defined"),
    ({"route": {"receiver": "duty", "continue": True}}, "root route cannot have `continue`"),
    ({"route": {"receiver": "duty", "routes": [{"matchers": ['topic=~"(unclosed"'], "receiver": "duty"}]}},
     "bad regular expression"),
    ({"route": {"receiver": "duty", "routes": [{"matchers": ["topic is 交通"], "receiver": "duty"}]}},
     "cannot read matcher"),
    ({"route": {"receiver": "duty", "group_wait": "soon"}}, "not a duration"),
    ({"route": {"receiver": "duty", "escalation": [{"after": "30m", "receiver": "ghost"}]}}, "receiver 'ghost'"),
    ({"route": {"receiver": "duty", "active_time_intervals": ["office"]}}, "time interval 'office' is not defined"),
    ({"rules": [{"name": "a"}, {"name": "a"}]}, "duplicate rule names"),
    ({"rules": [{"name": "s", "kind": "spike"}]}, "needs a `spike:` section"),
    ({"rules": [{"name": "x", "labels": {"severity": "low"}}]}, "cannot be overridden"),
    ({"rules": [{"name": "x", "min_risk_level": "V"}]}, "min_risk_level"),
    ({"receivers": [{"name": "duty"}]}, "has no channel"),
    ({"receivers": [{"name": "duty", "email": {"to": ["not-an-address"]}}]}, "not an e-mail address"),
    ({"smtp": None}, "neither it nor alerts.smtp"),
    ({"unknown_key": 1}, "Extra inputs are not permitted"),
])
def test_bad_config_is_a_clear_error(change, expected):
    message = check({**GOOD, **change})
    assert expected in message
    assert message.startswith("invalid configuration")


def test_secrets_come_from_environment(monkeypatch):
    alerts = {**GOOD, "receivers": [*GOOD["receivers"],
                                    {"name": "ding", "dingtalk": {"url": {"$env": "DING_URL"}, "secret": {"$env": "DING_SECRET"}}}]}
    with pytest.raises(ConfigError, match="DING_URL is not set"):
        parse_config({"alerts": alerts})
    monkeypatch.setenv("DING_URL", "https://oapi.dingtalk.com/robot/send?access_token=abc")
    monkeypatch.setenv("DING_SECRET", "SECxyz")
    cfg = parse_config({"alerts": alerts}).alerts
    ding = cfg.receiver("ding").dingtalk
    assert ding.secret.get_secret_value() == "SECxyz"
    assert "SECxyz" not in repr(cfg)  # secrets never print


def test_durations_and_matchers():
    assert parse_duration("90s").total_seconds() == 90
    assert parse_duration("1.5h").total_seconds() == 5400
    assert parse_duration(0).total_seconds() == 0
    m = Matcher.parse('region!~"东.*"')
    assert not m.matches({"region": "东湖区"}) and m.matches({"region": "西湖区"}) and m.matches({})
    assert Matcher.parse("team=press").matches({"team": "press"})


def test_example_config_is_valid():
    from pathlib import Path

    from core.config import load_config

    example = Path(__file__).resolve().parents[2] / "yuqing.example.yaml"
    cfg = load_config(example)
    assert [r.name for r in cfg.alerts.rules] == ["red_risk", "high_risk", "hot_event", "source_down",
                                                "plan_deadline_warning", "plan_deadline_breach"]
    assert [r.name for r in cfg.alerts.receivers] == ["duty_office", "leaders", "ops"]


def test_full_example_with_every_option_is_valid(monkeypatch):
    from pathlib import Path

    import yaml

    for name in ("YUQING_SMTP_PASSWORD", "YUQING_DINGTALK_URL", "YUQING_DINGTALK_SECRET", "YUQING_WECOM_URL",
                 "YUQING_HOUSING_WEBHOOK"):
        monkeypatch.setenv(name, "https://example.invalid/x?token=secret")
    example = Path(__file__).resolve().parents[2] / "alerts" / "example.yaml"
    cfg = parse_config(yaml.safe_load(example.read_text(encoding="utf-8"))).alerts
    assert len(cfg.rules) == 5 and cfg.receiver("leader_on_duty").rota.members == ["leader_a", "leader_b"]
    assert {r.kind for r in cfg.rules} == {"item", "event", "spike", "source_health"}
