"""Enrichment stages: order, one segmentation per item, batched classification into item.enrichment."""

from __future__ import annotations

from datetime import UTC, datetime

from analysis.stages import build_enrich_stages
from core.config import Config
from core.models import Channel, Item
from flow.stages import Batch, Chain
from nlp.pipeline import ClassifyStage, SegmentStage


def item(title: str, content: str) -> Item:
    now = datetime.now(UTC)
    return Item(source="test", channel=Channel.board, source_id=title or content[:20] or "empty", title=title, content=content,
                published_at=now, fetched_at=now)


def test_build_order_and_enrichment():
    stages = build_enrich_stages(Config())
    names = [s.name for s in stages]
    assert names.index("segment") < names.index("classify")
    seg_at = names.index("segment")
    assert all(n != "classify" for n in names[:seg_at])
    items = [item("小区房屋漏水", "商品房交房后墙体开裂漏水，开发商拒不维修，住建局不作为，居民非常愤怒"), item("", "感谢社区工作人员，点赞！"), item("", "")]
    batch = Chain(stages).run(Batch(items=list(items)))
    assert len(batch.items) == 3 and not batch.quarantined
    first = items[0].enrichment
    assert first.topic == "城乡建设" and first.polarity == "negative" and first.polarity_score < 0
    assert items[1].enrichment.polarity == "positive"
    assert items[2].enrichment.emotion == "neutral"
    assert set(batch.tokens) == {id(i) for i in items}


def test_segment_stage_segments_once():
    it = item("标题", "内容正文")
    batch = Batch(items=[it], tokens={id(it): ["预先", "分好"]})
    SegmentStage().run(batch)
    assert batch.tokens[id(it)] == ["预先", "分好"]


def test_classify_stage_segments_when_no_segment_stage_ran():
    it = item("学校乱收费", "教育局请查处学校违规收取补课费")
    stage = next(s for s in build_enrich_stages(Config()) if isinstance(s, ClassifyStage))
    batch = Batch(items=[it])
    stage.run(batch)
    assert it.enrichment.topic == "教育文体" and id(it) in batch.tokens


def test_build_enrich_stages_tunes_gc_and_batches_titles():
    import gc

    stages = build_enrich_stages(Config())
    assert gc.get_threshold()[0] >= 50_000 and gc.get_freeze_count() > 0
    classify = next(s for s in stages if isinstance(s, ClassifyStage))
    items = [item("学校乱收费", "教育局请查处学校违规收取补课费"), item("学校乱收费", "另一所学校也收补课费"), item("", "无标题")]
    docs = classify.docs(Batch(items=items))
    assert docs[0].title_tokens == docs[1].title_tokens and "学校" in docs[0].title_tokens and docs[2].title_tokens == []


REAL_STYLE = [("A市经济学院强制实习", "学院与企业合作收取中介费，学生不去就不给毕业证，请教育厅查处"),
              ("", "【雨花区魅力之城小区】小区旁工地夜间施工噪音扰民，多次拨打12345没有回复[怒][怒]"),
              ("WiFi信号差", "wifi信号太差，WIFI不满意也不愤怒，İstanbul旅客😀😀"),
              ("好好好好好好", "好好好好好好好好"), ("", "")]


def test_classify_with_the_shared_encoding_equals_classify_alone():
    """The chain's classify stage reads word hashes off the analysis state's encoding (mixed-case spellings share
    one lexicon id); a classify stage on its own hashes the tokens itself. Same predictions, and the keyword stage
    after it reuses that encoding."""
    stages = build_enrich_stages(Config())
    chained = next(s for s in stages if isinstance(s, ClassifyStage))
    assert chained.word_ids is not None
    alone = ClassifyStage(chained.classifier)
    shared, own = [item(t, c) for t, c in REAL_STYLE], [item(t, c) for t, c in REAL_STYLE]
    batch = Chain(stages).run(Batch(items=shared))
    assert not batch.quarantined
    alone.run(Batch(items=own))
    fields = ("topic", "topic_score", "emotion", "polarity", "polarity_score")
    assert [[getattr(i.enrichment, f) for f in fields] for i in shared] == [[getattr(i.enrichment, f) for f in fields] for i in own]
    assert shared[2].enrichment.keywords and "wifi" in shared[2].enrichment.keywords
