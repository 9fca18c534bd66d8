"""Dump the whole enrichment of the bench_nlp items, to prove that a speed-up changes no output.

Runs the chain of `analysis.stages.build_enrich_stages` over the same items as bench/bench_nlp.py (real posts from
the shared data folder, batches of 500) and writes one JSON line per item: the item as masked and enriched (every
enrichment field, region, title, content, extra with its pii_masked counts) and the near-duplicate index's match for
it. A stand-in for the store gives each batch's items ids 1..N before `analysis_persist`, as the writer's store stage
does, so near-duplicate roots become real ids; event ids are random, so they are renumbered in order of first
appearance. The clock the risk stage reads is pinned. Prints the SHA-256 of the dump; compare it before and after a change.
Run: `.venv/bin/python bench/enrich_dump.py [--items N] [--out FILE]`."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from datetime import UTC, datetime  # noqa: E402

from bench_nlp import item_source, make_items  # noqa: E402

from analysis.stages import analysis_state, enrich_stages  # noqa: E402
from core.config import Config  # noqa: E402
from flow.ingest import order_stages  # noqa: E402
from flow.stages import Batch, Chain  # noqa: E402


class FakeStore:
    """What the store stage does for the analysis stages: each item gets an id and is listed as stored."""

    name = "store"

    def __init__(self) -> None:
        self.next_id = 0

    def run(self, batch: Batch) -> None:
        for item in batch.items:
            self.next_id += 1
            item.id = self.next_id
        batch.stored.extend(batch.items)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    _, posts = item_source()
    items = make_items(args.items, posts)
    config = Config()
    now = datetime(2026, 12, 6, tzinfo=UTC)  # risk reads the clock (days without a reply): pinned, so runs compare
    stages = order_stages(enrich_stages(config, analysis_state(config, now=lambda: now)))
    state = next(s for s in stages if s.name == "near_duplicates").state
    matched: list = []  # per item, in order: the index's match (normalised: an index root or a batch position)
    match_batch = state.dedup.match_batch

    def recording(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        found = match_batch(*args, **kwargs)
        matched.extend(None if m is None else [m[0], state.dedup.root(m[1]) if m[0] == "index" else m[1], m[2]]
                       for m in found)
        return found

    state.dedup.match_batch = recording
    at = next(i for i, s in enumerate(stages) if s.name == "analysis_persist")
    chain = Chain([*stages[:at], FakeStore(), *stages[at:]])
    for start in range(0, len(items), args.batch):
        chain.run(Batch(items=items[start:start + args.batch]))
    events: dict[str, int] = {}
    digest = hashlib.sha256()
    out = args.out.open("w", encoding="utf-8") if args.out else None
    for item, match in zip(items, matched, strict=True):
        data = item.model_dump(mode="json")
        data["near_duplicate_match"] = match
        e = data["enrichment"]
        if e["event_id"] is not None:
            e["event_id"] = events.setdefault(e["event_id"], len(events))
        line = json.dumps(data, ensure_ascii=False, sort_keys=True) + "\n"
        digest.update(line.encode())
        if out:
            out.write(line)
    if out:
        out.close()
    print(json.dumps({"items": len(items), "events": len(events),
                      "near_duplicates": sum(it.enrichment.near_duplicate_of is not None for it in items),
                      "sha256": digest.hexdigest(), **events_digest(state.events, events)}))


def events_digest(clusterer, numbers: dict[str, int]) -> dict:  # noqa: ANN001 - analysis.cluster.EventClusterer
    """SHA-256 of the clusterer's live events after the run (what is persisted: volume, times, names, centroid and the
    issue each belongs to), event and issue ids renumbered as in the item dump, so that merges and issue links are
    compared too."""
    issues: dict[str, int] = {}
    rows = []
    for number, event in sorted((numbers.setdefault(e.id, len(numbers)), e) for e in clusterer.events.values()):
        public = event.public()
        public.update(id=number, issue_id=issues.setdefault(event.issue_id, len(issues)),
                      centroid=sorted((t, round(w, 9)) for t, w in event.centroid.items()))
        rows.append(public)
    return {"live_events": len(rows), "issues": len(issues),
            "events_sha256": hashlib.sha256(json.dumps(rows, ensure_ascii=False, sort_keys=True).encode()).hexdigest()}


if __name__ == "__main__":
    main()
