"""Risk grading with reasons: terms with offsets, emotion, engagement, repeats, overdue replies, levels from config."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from analysis.risk import RiskContext, RiskScorer
from core.config import parse_config
from core.errors import ConfigError
from core.models import SHANGHAI, Engagement, Item, Reply

NOW = datetime(2026, 1, 10, 12, tzinfo=SHANGHAI)


def _item(text: str, channel: str = "board", days_old: float = 1, **kw) -> Item:
    return Item(source="s", channel=channel, source_id="1", content=text, published_at=NOW - timedelta(days=days_old),
                fetched_at=NOW, **kw)


def _scorer(**risk) -> RiskScorer:
    return RiskScorer(parse_config({"analysis": {"risk": risk}}).analysis.risk)


def test_grave_petition_is_grade_one_with_evidence_spans() -> None:
    text = "某建筑公司拖欠农民工工资半年，工人们准备集体上访，有人扬言要跳楼讨说法。"
    item = _item(text, days_old=2)
    item.enrichment.emotion, item.enrichment.emotion_score = "angry", 0.82
    score, level, reasons = _scorer().score(item, NOW)
    assert level == "I" and score >= 90
    by_feature = {r.feature: r for r in reasons}
    assert {"terms:group_incident", "terms:self_harm_violence", "terms:petition_protest", "emotion"} <= set(by_feature)
    jump = by_feature["terms:self_harm_violence"]
    assert jump.evidence == "跳楼" and item.text[jump.span[0]:jump.span[1]] == "跳楼"
    assert by_feature["emotion"].detail == "情绪：愤怒（置信度 0.82）" and by_feature["emotion"].weight == 12.3


def test_unanswered_petition_past_its_deadline_says_so_in_chinese() -> None:
    _, _, reasons = _scorer().score(_item("反映小区供暖不热", days_old=20), NOW)
    missing = next(r for r in reasons if r.feature == "reply_missing")
    assert missing.detail == "未答复：已超出 15 天办理时限 5 天"


def test_reasons_read_in_chinese() -> None:
    """Every reason a reader sees is Chinese; `feature` alone is an identifier."""
    item = _item("小区门口道路塌陷，多次反映无人处理，维权无门", channel="weibo", days_old=40,
                 engagement=Engagement(likes=3000, reposts=1500, comments=800))
    item.enrichment.emotion, item.enrichment.emotion_score = "fear", 0.7
    item.enrichment.polarity, item.enrichment.polarity_score = "negative", -0.8
    _, _, reasons = _scorer().score(item, NOW, RiskContext(repeats=2, event_volume=9, event_days=1))
    assert {"emotion", "polarity", "engagement", "channel", "repeated", "event_growth", "recency"} <= {
        r.feature for r in reasons}
    for r in reasons:
        assert any("\u4e00" <= ch <= "\u9fff" for ch in r.detail), r
        assert not any(word in r.detail for word in ("emotion", "channel", "likes", "items", "days", "negative")), r


def test_polite_question_gets_no_anger_points() -> None:
    """"请问公交卡在哪里办理？谢谢" was served as anger and got +15: an emotion counts only with calibrated confidence
    above the threshold, and only anger, fear and sadness count at all."""
    scorer = _scorer()
    for emotion, confidence in (("anger", 0.34), ("anger", None), ("disgust", 0.95), ("happiness", 0.9)):
        item = _item("请问公交卡在哪里办理？谢谢", channel="hotline", days_old=0.5, reply=Reply(text="您好"))
        item.enrichment.emotion, item.enrichment.emotion_score = emotion, confidence
        _, _, reasons = scorer.score(item, NOW)
        assert "emotion" not in {r.feature for r in reasons}, (emotion, confidence)


def test_history_does_not_bury_today() -> None:
    """A 2016 letter with every alarming feature scores below today's ordinary chemical-leak report: beyond the
    horizon (7 days) a score keeps half per half-life; within it nothing changes."""
    scorer = _scorer()
    old = _item("某建筑公司拖欠农民工工资半年，工人们准备集体上访，有人扬言要跳楼讨说法。", days_old=3650)
    old.enrichment.emotion, old.enrichment.emotion_score = "anger", 0.9
    today = _item("化工厂附近有刺鼻气味，疑似泄漏，居民很担心", channel="weibo", days_old=0.1)
    today.enrichment.emotion, today.enrichment.emotion_score = "fear", 0.8
    old_score, old_level, old_reasons = scorer.score(old, NOW)
    today_score, _, today_reasons = scorer.score(today, NOW)
    stale = next(r for r in old_reasons if r.feature == "recency")
    assert stale.weight < -90 and stale.detail == "时效：发布于 3650 天前，超出 7 天的时效范围"
    assert old_level == "IV" and old_score < today_score
    assert "recency" not in {r.feature for r in today_reasons}
    week = _item("反映小区供暖不热", days_old=6.9)
    assert "recency" not in {r.feature for r in scorer.score(week, NOW)[2]}
    month = scorer.score(_item("某建筑公司拖欠农民工工资，工人准备集体上访", days_old=37), NOW)
    assert month[0] == pytest.approx(scorer.score(_item("某建筑公司拖欠农民工工资，工人准备集体上访", days_old=6), NOW)[0]
                                     / 2 + 10 / 2, abs=0.05)  # 30 days beyond: half, reply_missing (10) included


def test_a_fast_growing_event_weighs_more() -> None:
    scorer = _scorer()
    item = _item("小区停水三天无人处理", days_old=0.2)
    slow = scorer.score(item, NOW, RiskContext(event_volume=6, event_days=60))[0]
    fast = scorer.score(item, NOW, RiskContext(event_volume=6, event_days=0))
    growth = next(r for r in fast[2] if r.feature == "event_growth")
    assert fast[0] > slow and growth.detail == "事件增长：1 天内 6 条，每天 6.0 条"


def test_routine_consultation_is_grade_four() -> None:
    item = _item("请问公积金提取需要哪些材料？", channel="hotline", reply=Reply(text="您好，需要身份证。"))
    score, level, reasons = _scorer().score(item, NOW)
    assert level == "IV" and score < 40
    assert [r.feature for r in reasons] == ["channel"]


def test_engagement_velocity_and_repeats_add_up() -> None:
    item = _item("小区门口道路塌陷，多次反映无人处理", channel="weibo", days_old=0.1,
                 engagement=Engagement(likes=3000, reposts=1500, comments=800))
    base, _, _ = _scorer().score(item, NOW)
    more, _, reasons = _scorer().score(item, NOW, RiskContext(repeats=4, event_volume=8))
    assert {"engagement", "velocity", "repeated", "terms:safety_accident"} <= {r.feature for r in reasons}
    assert more > base


def test_late_reply_and_thresholds_from_config() -> None:
    item = _item("反映小区供暖不热", channel="mailbox", days_old=40,
                 reply=Reply(text="已处理", replied_at=NOW - timedelta(days=2)))
    score, level, reasons = _scorer(levels={"I": 95, "II": 90, "III": 5}, horizon_days=60).score(item, NOW)
    assert any(r.feature == "reply_late" for r in reasons)
    assert level == "III" and 5 <= score < 90


def test_configured_category_adds_terms() -> None:
    scorer = _scorer(categories={"flood": {"weight": 20, "label": "汛情", "terms": ["内涝", "决堤"]}})
    _, _, reasons = scorer.score(_item("暴雨后地下车库严重内涝"), NOW)
    assert any(r.feature == "terms:flood" and r.evidence == "内涝" for r in reasons)


def test_bad_levels_and_bad_terms_file_are_clear_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="levels"):
        parse_config({"analysis": {"risk": {"levels": {"I": 30, "II": 60}}}})
    bad = tmp_path / "terms.yaml"
    bad.write_text("group: {weight: lots}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot load risk terms"):
        _scorer(terms_file=str(bad))


@pytest.mark.parametrize("text", ["", "😡😡😡", "<p>&nbsp;</p>", "ABC test mixed 中文 English", "這裡發生爆炸，有人傷亡",
                                  "扰民" * 50_000])
def test_odd_texts_score_without_error(text: str) -> None:
    score, level, _ = _scorer().score(_item(text or "-"), NOW)
    assert 0 <= score <= 100 and level in {"I", "II", "III", "IV"}


def test_remembered_reply_reason_reads_as_a_fresh_one() -> None:
    """Reasons are kept per scorer keyed on round(days overdue): every text must be the one formatting gives, also
    when neighbouring values (2.4999 and 2.6, halves) come from the scorer's memory."""
    scorer = _scorer()
    for overdue in (2.4999, 2.6, 0.5, 1.5, 2.5, 1.6, 3.5001, 3.4999, 40.5, 2.6):
        _, _, reasons = scorer.score(_item("路灯坏了", days_old=15 + overdue), NOW)
        missing = next(r for r in reasons if r.feature == "reply_missing")
        assert missing.detail == f"未答复：已超出 15 天办理时限 {overdue:.0f} 天", overdue


def test_remembered_reasons_follow_each_items_values() -> None:
    scorer = _scorer()
    low, high = _item("a"), _item("b", engagement=Engagement(likes=5000))
    # The classifier gives negative text a negative polarity_score; its magnitude is the strength.
    low.enrichment.polarity, low.enrichment.polarity_score = "negative", -0.05
    high.enrichment.polarity, high.enrichment.polarity_score = "negative", -0.9
    for _ in range(2):  # the second time from the scorer's memory
        r_low = {r.feature: r for r in scorer.score(low, NOW)[2]}
        r_high = {r.feature: r for r in scorer.score(high, NOW)[2]}
        assert "engagement" not in r_low and r_high["engagement"].detail.endswith("共 5000 次")
        assert r_low["polarity"].weight == 0.4 and r_high["polarity"].detail == "负面倾向（强度 0.90）"
        assert r_high["polarity"].weight == 7.2


def test_batch_scoring_equals_item_by_item() -> None:
    """`score_many` over a batch (with its per-value caches filled by the items before) gives exactly the scores,
    grades and reasons of each item scored alone by a fresh scorer, over items that vary every feature, twice (the
    second time from the caches) and with shared-scan hits."""
    import random

    rng = random.Random(5)
    texts = ["某建筑公司拖欠农民工工资半年，工人们准备集体上访，有人扬言要跳楼讨说法。", "请问公积金提取需要哪些材料？",
             "小区门口道路塌陷，多次反映无人处理", "反映小区供暖不热，维权无门", "化工厂偷排废水，河里的鱼死了，村民要去上访",
             "路灯坏了", "Fraud 诈骗 集资 跑路"]
    items, contexts = [], []
    for i in range(300):
        channel = rng.choice(["board", "hotline", "mailbox", "weibo", "news"])
        kw: dict = {}
        if rng.random() < 0.3:
            kw["engagement"] = Engagement(likes=rng.randrange(0, 3000), reposts=rng.randrange(0, 50), reads=rng.randrange(0, 9000))
        if rng.random() < 0.3:
            kw["reply"] = Reply(text="已处理", replied_at=NOW - timedelta(days=rng.uniform(0, 30)) if rng.random() < 0.7 else None)
        if channel == "hotline" and rng.random() < 0.5:
            kw["extra"] = {"request_type": rng.choice(["complaint", "consultation", "求助"])}
        item = _item(rng.choice(texts) + str(i % 7), channel=channel, days_old=rng.uniform(0.01, 60), **kw)
        item.enrichment.emotion = rng.choice([None, "", "angry", "fear", "neutral", "sad"])
        item.enrichment.emotion_score = rng.choice([None, 0.3, 0.55, 0.9])
        item.enrichment.polarity = rng.choice([None, "negative", "Negative", "负面", "positive"])
        item.enrichment.polarity_score = rng.choice([None, round(-rng.random(), 4), -0.5, 0.7])
        items.append(item)
        contexts.append(rng.choice([None, RiskContext(), RiskContext(repeats=rng.randrange(5), event_volume=rng.randrange(1, 9),
                                                                          event_days=rng.randrange(3))]))
    scorer = _scorer()
    now_ts = NOW.timestamp()
    hits = [scorer.term_hits(it.text) if k % 3 else None for k, it in enumerate(items)]
    expected = [_scorer().score(it, NOW, c, h) for it, c, h in zip(items, contexts, hits, strict=True)]
    assert any(r.feature == "velocity" for _, _, rs in expected for r in rs)
    assert any(r.feature.startswith("terms:") for _, _, rs in expected for r in rs)
    assert {level for _, level, _ in expected} >= {"II", "III", "IV"}
    for _ in range(2):
        assert scorer.score_many(items, now_ts, contexts, hits) == expected


def test_remembered_recency_and_totals_equal_fresh_scoring() -> None:
    """The stale reason is remembered per (points lost, whole days) and the rounded total per value: a scorer that has
    seen thousands of items scores each as a fresh scorer does, for items old and new, at ages on both sides of a
    whole day."""
    texts = ["某建筑公司拖欠农民工工资半年，工人们准备集体上访", "反映小区供暖不热", "化工厂附近有刺鼻气味，疑似泄漏"]
    items = []
    for k in range(300):
        item = _item(texts[k % 3], channel=("board", "weibo")[k % 2], days_old=8 + k * 0.37)
        item.enrichment.emotion, item.enrichment.emotion_score = ("anger", "fear")[k % 2], 0.5 + (k % 40) / 100
        items.append(item)
    warm = _scorer()
    for item in items:
        warm.score(item, NOW)
    again = [warm.score(item, NOW) for item in reversed(items)]
    assert again == [_scorer().score(item, NOW) for item in reversed(items)]
    assert sum(any(r.feature == "recency" for r in reasons) for _, _, reasons in again) == len(items)


@pytest.mark.parametrize(("weight", "evidence", "span"), [(0.37, None, None), (2, "上访", (3, 5)), (-1.5, None, None)])
def test_a_reason_made_without_validation_is_the_validated_one(weight: float, evidence: str | None,
                                                               span: tuple[int, int] | None) -> None:
    """`_new_reason` skips pydantic's validation for speed: it must give the very object validation gives (equal,
    same fields set, same JSON, same copy), or reasons would read or compare differently in alerts and the API."""
    from analysis.risk import _new_reason
    from core.models import RiskReason

    made = _new_reason("terms:petition", weight, "敏感词（上访）", evidence, span)
    validated = RiskReason(feature="terms:petition", weight=weight, detail="敏感词（上访）", evidence=evidence, span=span)
    assert made == validated
    assert made.model_fields_set == validated.model_fields_set
    assert made.model_dump_json() == validated.model_dump_json()
    assert repr(made) == repr(validated)
    assert made.model_copy(update={"weight": 1.0}) == validated.model_copy(update={"weight": 1.0})
    assert type(made.weight) is float
    assert made.__pydantic_extra__ is None and made.__pydantic_private__ is None
    assert made.model_fields_set is not _new_reason("a", 1.0, "", None, None).model_fields_set  # never shared


def test_round2_is_round_to_two_places() -> None:
    """`round2` stands in for round(x, 2) in the risk weights: the very same float (sign of zero included), on
    random values of every magnitude a weight takes, on the ties round() breaks to even, and past its fast range."""
    import math
    import random

    from analysis.risk import round2

    rng = random.Random(12)
    values = [rng.uniform(-200, 200) for _ in range(100_000)] + [rng.uniform(-1, 1) * 10 ** rng.randint(-8, 9)
                                                                 for _ in range(100_000)]
    values += [k / 1000 for k in range(-20_000, 20_001)] + [k / 200 for k in range(-4000, 4001)]  # ties, near-ties
    values += [0.125, 0.375, 2.675, 1.005, -0.001, -0.0, 0.0, 5e-3, -5e-3, 1e12, -1e12, math.inf, -math.inf]
    for x in values:
        expected, got = round(x, 2), round2(x)
        assert got == expected and math.copysign(1, got) == math.copysign(1, expected), x
    assert math.isnan(round2(math.nan))
