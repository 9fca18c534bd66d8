"""Reply quality on the 2,816 real 泰迪杯 replies (data) and on small constructed cases (no data needed)."""

from __future__ import annotations

from datetime import datetime

import pytest

from playbooks.reply_quality import ReplyScorer, points, strip_formulas

MESSAGE = "A7县星沙大道路灯坏了一个月\n星沙大道路灯坏了一个月没人修，晚上很危险。希望尽快维修路灯。请问什么时候能修好？"
GOOD = ("网友您好！经核实，星沙大道路灯因线路老化损坏，已责成城管局于2019年5月3日完成维修，"
        "路灯已恢复照明。根据《城市道路照明设施管理规定》，今后将加强巡查。感谢您的关注！")
EMPTY = "网友：您好！留言已收悉。"


@pytest.fixture(scope="module")
def scorer() -> ReplyScorer:
    return ReplyScorer().fit([MESSAGE, GOOD, EMPTY, "小区停车收费太高", "学校食堂卫生问题"])


def test_a_specific_answer_scores_higher_than_an_acknowledgement(scorer: ReplyScorer) -> None:
    good, empty = scorer.score(MESSAGE, GOOD), scorer.score(MESSAGE, EMPTY)
    assert good.relevance > 0.2 > empty.relevance
    assert good.completeness > empty.completeness == 0
    assert good.interpretability == 1.0 and empty.interpretability == 0.0
    assert good.detail["cues"]["rule"] == "《城市道路照明设施管理规定》"


def test_points_and_formulas() -> None:
    assert len(points(MESSAGE)) == 2  # the wish and the question
    assert points("路灯坏了。") == ["路灯坏了"]
    assert "您好" not in strip_formulas(EMPTY) and "感谢" not in strip_formulas(GOOD)


def test_timeliness_in_working_days(scorer: ReplyScorer) -> None:
    # Message on Thursday 2023-09-28, reply Monday 2023-10-09: Sep 29–Oct 6 off, Oct 7 and 8 make-up days, Oct 9.
    s = scorer.score(MESSAGE, GOOD, datetime(2023, 9, 28, 10), datetime(2023, 10, 9, 9))
    assert (s.working_days, s.within_15wd, s.calendar) == (3, True, "official")
    late = scorer.score(MESSAGE, GOOD, datetime(2019, 4, 1, 10), datetime(2019, 5, 10, 9))
    assert late.within_15wd is False


@pytest.mark.data
def test_reply_quality_on_the_shared_replies(shared_data) -> None:  # noqa: ANN001
    from playbooks.reply_quality import evaluate

    report = evaluate(shared_data)
    assert report["rows"] == 2816
    t = report["timeliness"]
    assert t["with_dates"] == 2816 and t["calendar"] == ["official"]
    assert sum(t["histogram"].values()) == 2816 - t["negative_delay"]
    assert 0.6 < t["share_within_15wd"] < 0.9  # measured: 0.7468
    assert 5 <= t["working_days"]["p50"] <= 12  # measured: 8
    agreement = report["weak_labels"]["agreement"]
    assert report["weak_labels"]["joined"] == 2253
    assert agreement["interpretability~interpretability_syu"]["spearman"] > 0.3  # measured: 0.44 (AUC 0.90)
    assert agreement["completeness~completeness_rb"]["spearman"] > 0.1  # measured: 0.30 on 80 rows
