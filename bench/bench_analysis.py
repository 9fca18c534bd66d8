"""Per-stage cost of the analysis stages on ~150-character real items (泰迪杯 附件3 posts), tokens pre-segmented.

Prints JSON: microseconds per item for each stage and the analysis total, and items/s on one core.
"""

from __future__ import annotations

import json
import time

import pandas as pd

from core.config import parse_config
from core.models import RawRecord
from core.paths import data_dir
from flow.intake import NormaliseStage
from flow.stages import Batch
from nlp.analysis import analysis_stages, pre_stages
from nlp.tokenize import segment_many

BATCH = 500
SEGMENT = "segment (models' stage, for reference)"


def main() -> None:
    frame = pd.read_csv(data_dir() / "tipdm2020c_hot_issue_messages" / "messages.csv")
    config = parse_config({"sources": {"b": {"channel": "board"}}})
    batches = []
    for start in range(0, len(frame), BATCH):
        chunk = frame.iloc[start:start + BATCH]
        batch = Batch(raw=[RawRecord(source="b", payload={
            "source_id": str(r.message_id), "title": r.title, "content": " ".join(str(r.body).split())[:130],
            "published_at": r.created_at, "likes": r.likes}) for r in chunk.itertuples()])
        NormaliseStage(config).run(batch)
        batches.append(batch)
    stages = pre_stages(config)
    analysis = analysis_stages(config, None)
    chars = sum(len(i.text) for b in batches for i in b.items) / sum(len(b.items) for b in batches)
    timings: dict[str, float] = {}
    n = 0
    for batch in batches:
        n += len(batch.items)
        for stage in stages:
            t = time.perf_counter()
            stage.run(batch)
            timings[stage.name] = timings.get(stage.name, 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        for item, words in zip(batch.items, segment_many([i.text for i in batch.items]), strict=True):
            batch.tokens[id(item)] = words
        timings[SEGMENT] = timings.get(SEGMENT, 0.0) + time.perf_counter() - t
        for stage in analysis:
            t = time.perf_counter()
            stage.run(batch)
            timings[stage.name] = timings.get(stage.name, 0.0) + time.perf_counter() - t
    per_item = {k: round(v / n * 1e6, 2) for k, v in timings.items()}
    own = sum(v for k, v in per_item.items() if not k.startswith("segment"))
    print(json.dumps({"items": n, "mean_chars": round(chars, 1), "us_per_item": per_item,
                      "analysis_us_per_item": round(own, 2), "analysis_items_per_s": round(1e6 / own)},
                     ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
