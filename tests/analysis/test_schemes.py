"""Monitoring schemes: the shipped 15, list form and boolean form, NEAR, clear errors, dry run over a real store."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from analysis.schemes import EXAMPLES_FILE, SchemeError, SchemeMatcher, dry_run, load_specs
from core.config_analysis import SchemeSpec
from core.errors import ConfigError
from core.models import SHANGHAI, Item
from nlp.tokenize import segment
from storage.sqlite import SqliteStore


def test_shipped_examples_are_the_fifteen_fields() -> None:
    specs = load_specs(EXAMPLES_FILE)
    names = [s.name for s in specs]
    assert len(names) == 15 and len(set(names)) == 15
    for required in ("复工复产与涉企扶持", "智慧城市与公共数据开放", "新能源汽车", "信息基础设施与5G", "产业结构调整与差别化电价",
                     "人工智能", "新材料", "民营经济", "企业服务"):
        assert required in names
    matcher = SchemeMatcher(specs)
    assert matcher.match("小区楼顶要建5G基站，居民担心辐射", segment) == ["信息基础设施与5G"]
    assert "新能源汽车" in matcher.match("小区充电桩安装被物业阻拦，新能源汽车车主无法充电", segment)
    assert matcher.match("A市经济学院强制学生实习", segment) == []


def test_list_form_with_region_and_exclusion() -> None:
    spec = SchemeSpec(name="江城供暖", region=["江城", "雨花区"], subject=["供暖", "暖气"], event=["不热", "停暖"],
                      exclude=["广告"])
    m = SchemeMatcher([spec])
    assert m.match("雨花区某小区暖气不热，老人受冻") == ["江城供暖"]
    assert m.match("暖气不热，老人受冻") == []  # no region word
    assert m.match("江城暖气不热？点击广告了解") == []  # excluded


def test_boolean_form_with_phrase_or_not_and_near() -> None:
    spec = SchemeSpec(name="欠薪", expression='("拖欠工资" OR 欠薪) AND NOT 律师 AND 工地')
    near = SchemeSpec(name="近邻", expression="工资 NEAR/3 拖欠")
    m = SchemeMatcher([spec, near])
    text = "某工地老板欠薪三个月，工人讨薪无门"
    assert m.match(text, segment(text)) == ["欠薪"]
    close = "老板拖欠我们工资"
    far = "工资条上写着很多项目，我们也不知道为什么一直被拖欠"
    assert m.match(close, segment(close)) == ["近邻"]
    assert m.match(far, segment(far)) == []
    assert m.match("律师代理工地欠薪案件") == []


@pytest.mark.parametrize(("spec", "loc", "position"), [
    ({"name": "a", "expression": "(供暖 OR"}, ["schemes", 0, "expression"], 6),
    ({"name": "a", "expression": '"未闭合'}, ["schemes", 0, "expression"], 0),
    ({"name": "a", "subject": ["供暖", " "]}, ["schemes", 0, "subject", 1], None),
    ({"name": "a", "exclude": ["广告"]}, ["schemes", 0], None),
])
def test_invalid_schemes_name_field_and_position(spec: dict, loc: list, position: int | None) -> None:
    with pytest.raises(SchemeError) as info:
        SchemeMatcher([SchemeSpec(**spec)])
    err = info.value.errors[0]
    assert err["loc"] == loc
    assert err.get("position") == position


def test_duplicate_names_and_bad_file(tmp_path) -> None:
    with pytest.raises(SchemeError, match="duplicate"):
        SchemeMatcher([SchemeSpec(name="x", subject=["a"]), SchemeSpec(name="x", subject=["b"])])
    bad = tmp_path / "s.yaml"
    bad.write_text("- name: x\n  subjects: [a]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="scheme 0: subjects"):
        load_specs(bad)


def test_dry_run_counts_stored_items_in_window(tmp_path) -> None:
    store = SqliteStore(tmp_path / "s.db", segment=segment)
    now = datetime(2026, 3, 1, 12, tzinfo=SHANGHAI)
    texts = ["工厂复工需要补贴", "企业复产遇到困难，希望减免租金", "小区噪音扰民", "工厂停产，工人被欠薪"]
    items = [Item(source="b", channel="board", source_id=str(i), content=t, published_at=now - timedelta(days=i * 3),
                  fetched_at=now) for i, t in enumerate(texts)]
    store.upsert(items)
    spec = SchemeSpec(name="复工", subject=["工厂", "企业"], event=["复工", "复产", "停产"])
    week = dry_run(store, spec, now - timedelta(days=7), now + timedelta(seconds=1))
    assert (week["matched"], week["scanned"]) == (2, 3)
    month = dry_run(store, spec, now - timedelta(days=30), now + timedelta(seconds=1))
    assert month["matched"] == 3 and len(month["example_ids"]) == 3
