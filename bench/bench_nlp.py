"""Items per second on one core for ~150-character items: segmentation alone, classification alone (topic + emotion
+ polarity on already segmented tokens, µs per item), segmentation + classification, and the whole enrichment
(every stage from nlp.pipeline.build_enrich_stages). Prints JSON, with the machine's load average: other processes
on the 2 cores slow every figure. Targets: classification well under 30 µs/item; whole >= 10,000 items/s and >= 1/4
of the segmentation-alone rate. Run: `.venv/bin/python bench/bench_nlp.py [--items N]`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.config import Config  # noqa: E402
from core.models import Channel, Item  # noqa: E402
from flow.stages import Batch, Chain  # noqa: E402
from nlp import tokenize  # noqa: E402
from nlp.classify import get_classifier  # noqa: E402
from nlp.features import Doc  # noqa: E402
from nlp.pipeline import build_enrich_stages  # noqa: E402

SENTENCES = [
    "小区旁边的工地每天夜里施工到凌晨，噪音扰民严重，多次拨打12345热线反映，住建局和城管至今没有处理。",
    "我们公司拖欠农民工工资已经半年，社保也没有缴纳，希望人社局劳动监察大队尽快介入调查。",
    "孩子今年上小学，划片入学政策不透明，学校招生名额分配不合理，请教育局公开信息。",
    "感谢社区网格员和志愿者在疫情防控期间的辛苦付出，复工复产工作做得很好，点赞！",
    "A市某路段公交线路调整后，老人出行非常不便，希望交通运输局恢复原线路并增加班次。",
    "化工厂排放废气，晚上气味刺鼻，附近居民头疼恶心，请生态环境局立即查处。",
]


def make_items(n: int) -> list[Item]:
    now = datetime.now(UTC)
    items = []
    for i in range(n):
        a, b = SENTENCES[i % len(SENTENCES)], SENTENCES[(i * 7 + 3) % len(SENTENCES)]
        content = f"{a}{b}{a}"[:150 - 20] + f"编号{i}"
        items.append(Item(source="bench", channel=Channel.board, source_id=str(i), title=a[:12], content=content,
                          published_at=now, fetched_at=now))
    return items


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    items = make_items(args.items)
    texts = [it.text for it in items]
    tokenize.segment_many(texts[:200])  # load dictionaries outside the timing
    t = time.perf_counter()
    tokens = tokenize.segment_many(texts)
    seg_rate = len(texts) / (time.perf_counter() - t)
    titles = tokenize.segment_many([it.title for it in items])
    docs = [Doc(x, k, tt) for x, k, tt in zip(texts, tokens, titles, strict=True)]
    classifier = get_classifier(Config().nlp.models_dir)
    classifier.predict(docs[:200])
    t = time.perf_counter()
    for start in range(0, len(docs), args.batch):
        classifier.predict(docs[start:start + args.batch])
    classify_us = (time.perf_counter() - t) / len(docs) * 1e6

    def rate(stages: list) -> float:
        chain = Chain(stages)
        chain.run(Batch(items=make_items(200)))  # warm-up (model loading)
        fresh = make_items(len(items))
        t = time.perf_counter()
        for start in range(0, len(fresh), args.batch):
            chain.run(Batch(items=fresh[start:start + args.batch]))
        return len(fresh) / (time.perf_counter() - t)

    all_stages = build_enrich_stages(Config())
    chain = Chain(all_stages)
    model_rate = rate([s for s in all_stages if s.name in ("segment", "classify")])
    whole_rate = rate(all_stages)
    print(json.dumps({
        "items": len(items), "avg_chars": round(sum(map(len, texts)) / len(texts), 1),
        "segmenter": tokenize.resolve_backend(), "stages": [s.name for s in chain.stages],
        "load_average_1min": round(os.getloadavg()[0], 2),
        "segment_items_per_s": round(seg_rate), "classify_us_per_item": round(classify_us, 1),
        "segment_classify_items_per_s": round(model_rate),
        "enrich_items_per_s": round(whole_rate),
        "ratio": round(whole_rate / seg_rate, 3),
        "targets_met": whole_rate >= 10_000 and whole_rate >= seg_rate / 4,
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
