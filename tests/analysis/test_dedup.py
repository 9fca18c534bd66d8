"""Near-duplicates: the threshold is checked on the real near-duplicate groups of the shared Weibo set; the stage
links repeats to the first stored item, within a batch and across batches and restarts."""

from __future__ import annotations

import itertools
import random
from unittest.mock import patch

import numpy as np
import pandas as pd
import pytest

from analysis.dedup import _MAX_CHECKS, NearDuplicateIndex, band_groups, band_keys, signatures, similarity
from analysis.stages import analysis_stages, analysis_state
from core.config import parse_config
from core.models import RawRecord
from flow.ingest import Ingestor
from nlp.tokenize import segment, segment_many
from storage.sqlite import SqliteStore


@pytest.mark.data
def test_threshold_on_real_near_duplicate_groups(shared_data) -> None:
    frames = []
    for name in ("weibo_covid19_emotion7", "smp2020_ewect_virus_weibo"):
        part = pd.read_csv(shared_data / name / "data.csv")
        frames.append(pd.DataFrame({"text": part.text, "near_dup_group": name + part.near_dup_group.astype(str)}))
    frame = pd.concat(frames, ignore_index=True)
    frame = frame[frame.text.str.len() >= 30].reset_index(drop=True)
    sigs = signatures(segment_many(frame.text.tolist()))
    groups = [list(v) for v in frame.groupby("near_dup_group").indices.values() if len(v) > 1]
    pairs = [p for g in groups for p in itertools.combinations(g, 2)][:3000]
    assert len(pairs) > 1000
    threshold = parse_config({}).analysis.dedup.threshold
    recall = np.mean([similarity(sigs[a], sigs[b]) >= threshold for a, b in pairs])
    rng = random.Random(7)
    gid = frame.near_dup_group.tolist()
    negatives = [(a, b) for a, b in (rng.sample(range(len(frame)), 2) for _ in range(20_000)) if gid[a] != gid[b]]
    false_rate = np.mean([similarity(sigs[a], sigs[b]) >= threshold for a, b in negatives])
    assert recall >= 0.75, recall
    assert false_rate <= 0.001, false_rate


def test_index_finds_edited_copy_and_not_other_text() -> None:
    original = "关于A市经济学院强制学生外出实习的问题，学校要求学生必须去学校安排的几个点实习，不去就不能毕业，请领导关注。"
    edited = "关于A市经济学院强制学生外出实习的问题！学校要求学生必须去学校安排的几个点实习，不去就不能毕业，请领导尽快关注。"
    other = "小区楼下烧烤店深夜经营，噪音和油烟扰民，多次投诉无果，请相关部门处理。"
    a, b, c = signatures([segment(original), segment(edited), segment(other)])
    index = NearDuplicateIndex(threshold=0.6)
    index.add(1, a)
    assert index.query(b).item_id == 1
    assert index.query(c) is None
    assert index.query(signatures([[]])[0]) is None


def _records(texts: list[str], start: int = 0) -> list[RawRecord]:
    return [RawRecord(source="weibo_a", payload={"source_id": str(start + i), "content": t,
                                                 "published_at": "2026-01-05 10:00:00"}) for i, t in enumerate(texts)]


def test_stage_links_repeats_in_batch_and_after_restart(tmp_path) -> None:
    config = parse_config({"sources": {"weibo_a": {"channel": "weibo"}}})
    base = "转发：A市某化工厂夜间偷排废水，河里的鱼大量死亡，附近村民多次反映没人管，希望环保部门彻查此事"
    texts = [base, base + "！！", "【扩散】" + base, "今天天气很好，去公园散步看到很多人在跳广场舞。"]

    def ingestor(store: SqliteStore) -> Ingestor:
        return Ingestor(config, store, analysis_stages(config, analysis_state(config, store)))

    store = SqliteStore(tmp_path / "d.db", segment=segment)
    report = ingestor(store).ingest(_records(texts))
    first = report.item_ids[0]
    got = [store.get(i).enrichment.near_duplicate_of for i in report.item_ids]
    assert got == [None, first, first, None]
    store.close()
    reopened = SqliteStore(tmp_path / "d.db", segment=segment)
    later = ingestor(reopened).ingest(_records(["扩散！" + base + "。"], start=10))
    assert reopened.get(later.item_ids[0]).enrichment.near_duplicate_of == first



def test_a_repeat_of_an_item_quarantined_after_the_index_saw_it_points_at_nothing(tmp_path) -> None:
    """The original got a temporary id in the index, then failed a later stage: a repeat in a later batch must not
    be stored pointing at that temporary (negative) id."""
    config = parse_config({"sources": {"weibo_a": {"channel": "weibo"}}})
    base = "转发：A市某化工厂夜间偷排废水，河里的鱼大量死亡，附近村民多次反映没人管，希望环保部门彻查此事"

    class FailsOnOriginal:
        name = "risk"

        def run(self, batch) -> None:  # noqa: ANN001
            if any(item.source_id == "0" for item in batch.items):
                raise RuntimeError("risk model failed")

    store = SqliteStore(tmp_path / "q.db", segment=segment)
    stages = {**analysis_stages(config, analysis_state(config, store)), "risk": FailsOnOriginal()}
    ingest = Ingestor(config, store, stages)
    assert ingest.ingest(_records([base])).quarantined == 1
    later = ingest.ingest(_records(["【扩散】" + base], start=1))
    assert later.stored == 1
    assert store.get(later.item_ids[0]).enrichment.near_duplicate_of is None
    store.close()

def test_batch_matching_and_eviction_keep_the_latest() -> None:
    texts = [f"第{i}号工地夜间施工噪音扰民，附近{i}栋居民无法休息，多次投诉无果，希望城管部门处理编号{i}" for i in range(12)]
    others = [f"这是一段完全不同的话题{i}：公园里的樱花开了，周末去拍照的人很多，交通有点拥堵{i * 7}" for i in range(12)]
    sigs = signatures([segment(t) for t in texts + others])
    index = NearDuplicateIndex(threshold=0.6, max_entries=10)
    keys = band_keys(sigs, index.bands)
    # In one batch: the second half repeats nothing in the index, but each 'others' text is new and distinct.
    matches = index.match_batch(sigs, keys, [None] * len(sigs))
    assert all(m is None or m[0] == "batch" for m in matches)
    index.add_many(list(range(1, 25)), sigs, keys, [None] * 24)
    assert len(index) <= 10 and 24 in index and 1 not in index  # the oldest were forgotten
    copy = signatures([segment("转发：" + others[11])])
    found = index.query(copy[0])
    assert found is not None and found.item_id == 24


def _reference_matches(batches: list[tuple[np.ndarray, np.ndarray]], threshold: float) -> tuple[list[list], int]:
    """What `match_batch` + `add_many` must answer, item by item in plain Python: band buckets holding the earliest
    _BUCKET_CAP ids, candidates oldest first (at most _MAX_CHECKS), ties to the oldest; a repeat inside the batch is
    looked for among the earliest _MAX_CHECKS earlier items of the batch sharing a band key, before the index. Also
    returns the longest list of candidates met (before the cut)."""
    from analysis.dedup import _BUCKET_CAP, _MAX_CHECKS, NUM_PERM, is_empty

    buckets: list[dict[int, list[int]]] = [{} for _ in range(16)]
    stored: dict[int, np.ndarray] = {}
    next_id, out, longest = 0, [], 0
    for sigs, keys in batches:
        found: list = []
        for i, (sig, row) in enumerate(zip(sigs, keys.tolist(), strict=True)):
            if is_empty(sig):
                found.append(None)
                continue
            earlier = [j for j in range(i) if any(a == b for a, b in zip(keys[j].tolist(), row, strict=True))]
            if earlier:
                sims = [int(np.count_nonzero(sigs[j] == sig)) for j in earlier[:_MAX_CHECKS]]
                best = max(sims)
                if best / NUM_PERM >= threshold:
                    found.append(("batch", earlier[:_MAX_CHECKS][sims.index(best)], best / NUM_PERM))
                    continue
            candidates = sorted({c for band, key in zip(buckets, row, strict=True) for c in band.get(key, [])})
            longest = max(longest, len(candidates), len(earlier))
            sims = [int(np.count_nonzero(stored[c] == sig)) for c in candidates[:_MAX_CHECKS]]
            best = max(sims, default=0)
            found.append(("index", candidates[sims.index(best)], best / NUM_PERM) if best >= threshold * NUM_PERM
                         else None)
        out.append(found)
        for sig, row in zip(sigs, keys.tolist(), strict=True):
            next_id += 1
            if not is_empty(sig):
                stored[next_id] = sig
                for band, key in zip(buckets, row, strict=True):
                    held = band.setdefault(key, [])
                    if len(held) < _BUCKET_CAP:
                        held.append(next_id)
    return out, longest


@pytest.mark.parametrize("share_groups", [False, True])
def test_batch_matching_equals_item_by_item_reference(share_groups: bool) -> None:
    """The array-based index against the plain one on edited reposts of real-looking complaints, with a flood of one
    text (fills buckets past _BUCKET_CAP and candidates past _MAX_CHECKS) and empty texts; with the stage's shared
    key grouping (`band_groups` passed to match_batch and add_many; the batch holding the empty texts falls back to
    its own) and without."""
    rng = random.Random(11)
    bases = ["小区旁边的工地每天夜里施工到凌晨，噪音扰民严重，多次拨打12345热线反映，住建局和城管至今没有处理。",
             "我们公司拖欠农民工工资已经半年，社保也没有缴纳，希望人社局劳动监察大队尽快介入调查。",
             "孩子今年上小学，划片入学政策不透明，学校招生名额分配不合理，请教育局公开信息。",
             "化工厂排放废气，晚上气味刺鼻，附近居民头疼恶心，请生态环境局立即查处。",
             "A市某路段公交线路调整后，老人出行非常不便，希望交通运输局恢复原线路并增加班次。"]
    edits = ["转发：", "【扩散】", "！！", "，求关注", "大家帮帮忙", "#热点#", "请领导重视", "附图"]

    def variant() -> str:
        text = rng.choice(bases)
        for _ in range(rng.randrange(4)):
            cut = rng.randrange(len(text))
            text = text[:cut] + rng.choice(edits) + text[cut:]
        return text

    texts = [variant() if rng.random() < 0.8 else bases[0] for _ in range(900)] + ["", "。"]
    rng.shuffle(texts)
    sigs = signatures(segment_many(texts))
    keys = band_keys(sigs, 16)
    batches = [(sigs[s:s + 150], keys[s:s + 150]) for s in range(0, len(texts), 150)]
    index = NearDuplicateIndex(threshold=0.6)
    got, next_id = [], 0
    for batch_sigs, batch_keys in batches:
        codes = np.empty(batch_keys.shape, dtype=np.int64)
        groups = band_groups(batch_keys) if share_groups else None
        got.append(index.match_batch(batch_sigs, batch_keys, [None] * len(batch_sigs), codes, groups))
        ids = list(range(next_id + 1, next_id + 1 + len(batch_sigs)))
        next_id += len(batch_sigs)
        index.add_many(ids, batch_sigs, batch_keys, [None] * len(ids), codes, groups)
    expected, longest = _reference_matches(batches, 0.6)
    assert got == expected
    assert longest > _MAX_CHECKS  # the cut on candidates was exercised
    assert sum(m is not None and m[0] == "batch" for b in got for m in b) > 500
    assert sum(m is not None and m[0] == "index" for b in got for m in b) > 50


def test_densify_equals_bin_by_bin_filling() -> None:
    """Empty bins take the next filled bin's value plus 2^26 per step (circularly), on real short and long posts and
    on rows with a single filled bin; the vectorised fill must equal the plain loop."""
    from analysis.dedup import _densify

    texts = ["好", "路灯坏了", "小区门口道路塌陷，多次反映无人处理", "",
             "化工厂排放废气，晚上气味刺鼻，附近居民头疼恶心，请生态环境局立即查处。" * 3]
    from analysis.dedup import signatures_from_hashes, word_hashes

    tokens = segment_many(texts)
    hashes = np.array([h for t in tokens for h in word_hashes(t)], dtype=np.uint32)
    owner = np.repeat(np.arange(len(tokens)), [len(t) for t in tokens])
    position = np.concatenate([np.arange(len(t)) for t in tokens])
    raw = np.full((len(texts), 64), 0xFFFFFFFF, dtype=np.uint32)
    raw[0, 63] = 5  # one filled bin, at the end: every hole wraps round
    with patch("analysis.dedup._densify"):  # the bins as hashing leaves them
        sparse = signatures_from_hashes(hashes, owner, position, len(texts))
    assert (sparse == 0xFFFFFFFF).any(axis=1).all()
    for sig in (raw, sparse):
        expected = sig.copy()
        for row in expected:
            filled = [b for b in range(64) if row[b] != 0xFFFFFFFF]
            if filled and len(filled) < 64:
                source = row.copy()
                for b in range(64):
                    step = next(s for s in range(64) if source[(b + s) % 64] != 0xFFFFFFFF)
                    row[b] = (int(source[(b + step) % 64]) + step * (1 << 26)) % (1 << 32)
        got = sig.copy()
        _densify(got)
        assert np.array_equal(got, expected)


def test_key_table_keeps_band_and_key_apart_through_growth() -> None:
    """The table folds the band into the key: the same key in two bands is two entries, every entry survives the
    table's growth (at most half full), absent pairs read as absent, and a key that folds to 0 (free) still works."""
    from analysis.dedup import _BAND_SALT, _NO_CODE, _KeyTable

    rng = np.random.default_rng(3)
    table = _KeyTable(capacity=1 << 4)
    keys = rng.integers(0, 2**63, size=40_000, dtype=np.uint64)
    bands = rng.integers(0, 16, size=len(keys)).astype(np.int8)
    keys[0], bands[0] = _BAND_SALT, 0  # key XOR (band + 1)·salt == 0: the free-cell marker
    for start in range(0, len(keys), 5000):  # batch by batch, as the index adds them
        part = slice(start, start + 5000)
        table.add(keys[part], bands[part], np.arange(len(keys), dtype=np.int64)[part])
    assert table.count == len(keys) and table.count * 2 <= table.mask + 1
    assert np.array_equal(table.get(keys, bands), np.arange(len(keys)))
    other_band = ((bands.astype(np.int64) + 1) % 16).astype(np.int8)  # same keys, another band: absent
    assert (table.get(keys, other_band) == _NO_CODE).all()
    table.set(keys[:3], bands[:3], np.array([-7, -8, -9]))
    assert table.get(keys[:4], bands[:4]).tolist() == [-7, -8, -9, 3]


def test_batch_renames_equal_one_rekey_each() -> None:
    """PersistStage renames a batch's temporary ids (`rename`, then one `finish_renames`): the index must end up as
    one `rekey` per item leaves it (ids, ages, roots, matches) and hand back the same signatures."""
    texts = [f"小区{i % 7}号楼夜间施工噪音扰民严重，多次反映无人处理，第{i}次投诉" for i in range(40)]
    sigs = signatures(segment_many(texts))
    one, batch = NearDuplicateIndex(), NearDuplicateIndex()
    for index in (one, batch):
        for i, sig in enumerate(sigs):
            index.add(-(i + 2), sig, duplicate_of=-2 if i % 3 == 0 and i else None)
    pairs = [(-(i + 2), 1000 + i) for i in range(len(sigs)) if i != 5]  # one left temporary
    pairs.append((-999, 5000))  # never indexed
    expected = [one.rekey(old, new) for old, new in pairs]
    slots = [batch.rename(old, new) for old, new in pairs]
    renamed = [(s, new) for s, (_, new) in zip(slots, pairs, strict=True) if s is not None]
    got = iter(batch.finish_renames([s for s, _ in renamed], [n for _, n in renamed]))
    for want, slot in zip(expected, slots, strict=True):
        assert (want is None) == (slot is None)
        if slot is not None:
            assert np.array_equal(next(got), want)
    used = max(one._slot_of.values()) + 1  # the arrays' rows past the last slot are uninitialised
    assert np.array_equal(one._slot_id[:used], batch._slot_id[:used])
    assert np.array_equal(one._slot_age[:used], batch._slot_age[:used])
    assert one._roots == batch._roots and one._slot_of == batch._slot_of
    assert [one.query(s) for s in sigs] == [batch.query(s) for s in sigs]
