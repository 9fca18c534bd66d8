"""The `reports:` section is strict: a bad key, zone, time, URL or receiver stops start-up naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import load_config, parse_config
from core.errors import ConfigError

RECEIVERS = {"smtp": {"host": "127.0.0.1", "port": 2525, "sender": "yuqing@example.gov.cn"},
             "receivers": [{"name": "leaders", "email": {"to": ["leader@example.gov.cn"]}},
                           {"name": "duty", "inapp": {}}]}


def reports(section: dict) -> object:
    return parse_config({"alerts": RECEIVERS, "reports": section}).reports


def test_defaults_and_a_full_section() -> None:
    default = parse_config({}).reports
    assert default.timezone == "Asia/Shanghai" and default.daily.at.hour == 8 and default.weekly.weekday == "mon"
    full = reports({"title": "江城市舆情", "timezone": "Asia/Shanghai", "daily": {"at": "07:30"},
                    "weekly": {"weekday": "fri", "at": "17:00"}, "receivers": ["leaders"],
                    "base_url": "https://yq.example.cn/", "top_items": 20})
    assert full.daily.at.minute == 30 and full.weekly.weekday == "fri" and full.base_url == "https://yq.example.cn"


@pytest.mark.parametrize(("section", "field", "reason"), [
    ({"dayly": {}}, "reports.dayly", "Extra inputs"),
    ({"timezone": "Mars/Olympus"}, "reports.timezone", "unknown time zone"),
    ({"daily": {"at": "25:00"}}, "reports.daily.at", ""),
    ({"weekly": {"weekday": "someday"}}, "reports.weekly.weekday", ""),
    ({"base_url": "yq.example.cn"}, "reports.base_url", "http"),
    ({"top_items": 0}, "reports.top_items", ""),
    ({"receivers": ["leaders", "leaders"]}, "reports.receivers", "twice"),
    ({"receivers": ["nobody"]}, "reports.receivers[0]", "not an alerts receiver"),
    ({"receivers": ["duty"]}, "reports.receivers[0]", "no e-mail"),
])
def test_bad_values_name_the_field(section: dict, field: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"alerts": RECEIVERS, "reports": section})
    assert field in caught.value.message and reason in caught.value.message


def test_the_example_config_has_a_valid_reports_section() -> None:
    example = load_config(Path(__file__).resolve().parents[2] / "yuqing.example.yaml")
    assert example.reports.enabled and example.reports.daily.enabled
