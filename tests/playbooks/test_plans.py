"""Playbooks as data: the shipped ones load; bad ones fail with the field named."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from core.config_playbooks import PlaybooksConfig
from core.errors import PlaybookError
from playbooks.plans import load_playbooks, parse_playbook

ROLES = PlaybooksConfig().roles
GOOD: dict[str, Any] = {
    "id": "t", "name": "测试", "basis": "test rule",
    "triggers": [{"kind": "alert", "rules": ["red_risk"]}],
    "steps": [
        {"id": "a", "title": "A", "role": "duty_office", "due": "5h", "anchor": "detected"},
        {"id": "b", "title": "B", "role": "press_office", "due": "24h", "anchor": "step:a",
         "approval": ["drafter", "reviewer", "leader"], "statement": True, "evidence": ["link"]},
    ],
}


def parse(data: dict[str, Any]) -> Any:
    return parse_playbook(data, "t.yaml", roles=ROLES, rules={"red_risk"}, receivers={"duty_office"})


def broken(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    node: Any = data
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if k.isdigit() else node[k]
    last = keys[-1]
    if value is KeyError:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return data


def test_shipped_playbooks_load_and_cite_their_rules() -> None:
    found = load_playbooks(roles=ROLES, rules=set())
    assert set(found) == {"major_incident", "government_opinion", "hotline_12345", "disclosure_request", "petition_letter"}
    assert all(p.basis for p in found.values())
    major = found["major_incident"]
    assert "80号" in major.basis
    assert str(major.step("statement").due) == "5h" and str(major.step("press_conference").due) == "24h"
    assert str(found["government_opinion"].step("respond").due) == "48h"
    close = found["hotline_12345"].step("close")
    assert [str(close.due_for({"request_type": t})) for t in ("consult", "help", "suggest", "complain", "report")] == \
        ["2wd", "10wd", "10wd", "15wd", "15wd"]
    assert str(close.due_for({"request_type": "咨询"})) == "2wd"
    assert {s.id for s in found["hotline_12345"].steps} >= {"accept", "close", "follow_up"}
    disclosure = found["disclosure_request"]
    assert str(disclosure.step("reply").due) == "20wd" and disclosure.step("reply").extension == "20wd"
    assert str(disclosure.step("correction").due) == "7wd"
    petition = found["petition_letter"]
    assert str(petition.step("accept").due) == "15d" and str(petition.step("reply").due) == "60d"


@pytest.mark.parametrize(("path", "value", "loc", "message"), [
    ("steps.0.anchor", "step:b", "steps.0.anchor", "cycle"),
    ("steps.1.anchor", "step:zzz", "steps.1.anchor", "does not exist"),
    ("steps.1.anchor", "step:b", "steps.1.anchor", "itself"),
    ("steps.0.anchor", "yesterday", "steps.0.anchor", "unknown anchor"),
    ("steps.0.role", "janitor", "steps.0.role", "unknown role"),
    ("steps.1.approval", ["drafter", "boss"], "steps.1.approval.1", "unknown role"),
    ("triggers.0.rules", ["nope"], "triggers.0.rules.0", "unknown alert rule"),
    ("steps.0.due", "5 hours", "steps.0.due", "cannot read due time"),
    ("steps.0.due", "0h", "steps.0.due", "cannot read due time"),
    ("steps.0.colour", "red", "steps.0.colour", "Extra inputs"),
    ("steps.1.approval", ["drafter"], "steps.1", "approval chain"),
    ("steps.0.receiver", "nobody", "steps.0.receiver", "not an alerts receiver"),
    ("steps.0.evidence", ["video"], "steps.0.evidence.0", "Input should be"),
    ("basis", KeyError, "basis", "Field required"),
    ("triggers.0", {"kind": "item"}, "triggers.0", "needs rules or matchers"),
    ("steps.0.extension", "2d", "steps.0", "unit"),
])
def test_bad_playbooks_name_the_field(path: str, value: Any, loc: str, message: str) -> None:
    with pytest.raises(PlaybookError) as err:
        parse(broken(path, value))
    locs = [".".join(e["loc"][1:]) for e in err.value.errors]
    assert any(x.startswith(loc) for x in locs), (locs, err.value.message)
    assert message in err.value.message
    assert "t.yaml" in err.value.message


def test_a_longer_cycle_is_found() -> None:
    data = copy.deepcopy(GOOD)
    data["steps"].append({"id": "c", "title": "C", "due": "1h", "anchor": "step:b"})
    data["steps"][0]["anchor"] = "step:c"
    with pytest.raises(PlaybookError, match="a → c → b → a|cycle"):
        parse(data)


def test_duplicate_ids_in_a_directory(tmp_path: Path) -> None:
    import yaml

    for name in ("one.yaml", "two.yaml"):
        (tmp_path / name).write_text(yaml.safe_dump(GOOD, allow_unicode=True), encoding="utf-8")
    with pytest.raises(PlaybookError, match="already used"):
        load_playbooks(tmp_path, roles=ROLES, rules={"red_risk"})


def test_config_refuses_an_unknown_key_in_the_playbooks_section() -> None:
    from core.config import parse_config
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="playbooks.wrong"):
        parse_config({"playbooks": {"wrong": 1}})
