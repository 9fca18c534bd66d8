"""Memory and speed of the near-duplicate index at scale: bytes per indexed item and µs per item to match and add.

Why: the index lives in memory, up to `dedup.max_entries` items (default 1,000,000); on one laptop its size matters
as much as its speed. Signatures are random (every band key distinct: the worst case for the key table, and what
a large index of mostly unrelated posts looks like), added in batches of 500 as the flow adds them, each batch first
matched as the flow does. Memory is what `tracemalloc` sees allocated by the index (numpy arrays and the Python dicts
of ids), measured after all items are in; `key_table_bytes` is the key table's own arrays.
Run: `.venv/bin/python bench/bench_dedup_memory.py [--items N]`; prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.dedup import NUM_PERM, NearDuplicateIndex, band_groups, band_keys  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    tracemalloc.start()
    index = NearDuplicateIndex(max_entries=args.items)
    start_bytes = tracemalloc.get_traced_memory()[0]
    match_s = add_s = 0.0
    for first in range(0, args.items, args.batch):
        n = min(args.batch, args.items - first)
        sigs = rng.integers(0, 1 << 26, size=(n, NUM_PERM), dtype=np.uint32)
        keys = band_keys(sigs, index.bands)
        codes = np.empty(keys.shape, dtype=np.int64)
        groups = band_groups(keys)
        t = time.process_time()
        index.match_batch(sigs, keys, [None] * n, codes, groups)
        t2 = time.process_time()
        index.add_many(list(range(first + 1, first + n + 1)), sigs, keys, [None] * n, codes, groups)
        match_s, add_s = match_s + t2 - t, add_s + time.process_time() - t2
    used = tracemalloc.get_traced_memory()[0] - start_bytes
    tracemalloc.stop()
    table = index._table
    print(json.dumps({
        "items": len(index), "bands": index.bands,
        "index_bytes": used, "index_bytes_per_item": round(used / max(1, len(index)), 1),
        "key_table_bytes": table.nbytes,
        "key_table_cells": table.mask + 1, "key_table_load": round(table.count / (table.mask + 1), 3),
        "match_us_per_item": round(match_s / args.items * 1e6, 2), "add_us_per_item": round(add_s / args.items * 1e6, 2),
    }))


if __name__ == "__main__":
    main()
