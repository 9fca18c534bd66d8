"""`yuqing reindex --from sqlite:PATH --to elasticsearch:URL`: ids kept, resumable after a stop, counts verified."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from core.config_storage import ElasticsearchConfig
from core.models import SHANGHAI, Enrichment, Item
from nlp.search_tokens import index_tokens
from nlp.tokenize import segment
from storage.base import ItemQuery, UpsertOutcome
from storage.elasticsearch import ElasticsearchStore
from storage.reindex import reindex
from storage.sqlite import SqliteStore, create_sqlite_engine
from tests.helpers.elastic import drop_indices, new_prefix

NOW = datetime(2026, 11, 25, 12, tzinfo=SHANGHAI)


def make(source_id: str, title: str, content: str, hours_ago: float, *, source: str = "board_a", channel: str = "board",
         risk: float | None = None, topic: str | None = None) -> Item:
    return Item(source=source, channel=channel, source_id=source_id, title=title, content=content,
                published_at=NOW - timedelta(hours=hours_ago), fetched_at=NOW,
                enrichment=Enrichment(risk_score=risk, topic=topic))


def corpus() -> list[Item]:
    return [make("1", "小区油烟扰民", "楼下烧烤店油烟扰民严重", 96, risk=80, topic="环境保护"),
            make("2", "工地夜间施工噪音", "工地夜间施工噪音扰民", 72, risk=55),
            make("3", "公交线路调整", "公交线路调整后出行不便", 48, source="weibo_a", channel="weibo", risk=30),
            make("4", "拖欠农民工工资", "包工头拖欠工资两万元", 24, source="hotline_a", channel="hotline", risk=80),
            make("5", "烧烤摊占道经营", "夜市烧烤摊占道经营，油烟很大", 12, source="weibo_a", channel="weibo")]


@pytest.fixture
def prefix(elasticsearch_url: str) -> Iterator[str]:
    name = new_prefix()
    yield name
    drop_indices(elasticsearch_url, name)


def sqlite_with_items(path: Path) -> SqliteStore:
    store = SqliteStore(path, segment=segment, index_segment=index_tokens)
    store.upsert(corpus() + [make(f"n{n}", f"第{n}条", f"小区第{n}栋楼道灯不亮", 30 + n) for n in range(20)])
    store.record_duplicates([(1, make("copy", "", "转发的同一内容", 1, source="weibo_b", channel="weibo"))])
    return store


def es_store(url: str, prefix: str, state: Path) -> ElasticsearchStore:
    config = ElasticsearchConfig(url=url, index_prefix=prefix, compatible_with=False, replicas=0)
    return ElasticsearchStore(config, create_sqlite_engine(state), segment=segment, index_segment=index_tokens,
                              single_writer=True)


def test_reindex_resumes_after_a_stop_and_keeps_ids(tmp_path, elasticsearch_url, prefix):
    source = sqlite_with_items(tmp_path / "items.db")
    target = es_store(elasticsearch_url, prefix, tmp_path / "items.db")  # the state stays in the same file
    seen: list[tuple[int, int]] = []

    def stop_after_two_batches(done: int, total: int) -> None:
        seen.append((done, total))
        if len(seen) == 3:
            raise KeyboardInterrupt  # the operator's Ctrl-C

    with pytest.raises(KeyboardInterrupt):
        reindex(source, target, "items.db", batch_size=10, progress=stop_after_two_batches)
    assert seen == [(0, 25), (10, 25), (20, 25)]
    report = reindex(source, target, "items.db", batch_size=10, progress=lambda d, t: seen.append((d, t)))
    assert seen[3:] == [(20, 25), (25, 25)]
    assert (report.resumed_after_id, report.copied_now, report.verified) == (20, 5, True)
    assert (report.source_items, report.target_identities, report.target_documents) == (25, 25, 25)
    for query in (ItemQuery(limit=500), ItemQuery(q="油烟"), ItemQuery(sort="risk", limit=7), ItemQuery(channel="weibo")):
        assert [(i.id, i) for i in target.search(query).data] == [(i.id, i) for i in source.search(query).data]
    assert target.duplicates_of(1) == source.duplicates_of(1)
    fresh = target.upsert([make("new", "", "新的一条留言", 1)])[0]
    assert fresh.outcome is UpsertOutcome.inserted and fresh.item_id == 26  # ids continue after the copied ones
    source.close()
    target.close()


def test_reindex_command_prints_verified_counts(tmp_path, elasticsearch_url, prefix):
    sqlite_with_items(tmp_path / "items.db").close()
    done = subprocess.run([sys.executable, "-m", "yuqing", "reindex", "--from", f"sqlite:{tmp_path / 'items.db'}",
                           "--to", f"elasticsearch:{elasticsearch_url}", "--prefix", prefix, "--batch", "7", "--no-compatible-with",
                           "--state", str(tmp_path / "state.db")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"source_items": 25, "copied_now": 25, "resumed_after_id": 0, "target_identities": 25,
                      "target_documents": 25, "verified": True}
    again = subprocess.run([sys.executable, "-m", "yuqing", "reindex", "--from", f"sqlite:{tmp_path / 'items.db'}",
                            "--to", "elasticsearch:not-a-url", "--prefix", prefix], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 2 and "not an http(s)://host:port URL" in again.stderr
