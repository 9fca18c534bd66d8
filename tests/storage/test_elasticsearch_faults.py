"""The service with items on Elasticsearch (osmem-server), healthy and through a cluster that misbehaves.

Faults come from a real HTTP proxy in front of the real server (tests/helpers/flaky_proxy.py): the cluster down at
start, gone in the middle of a bulk (the answer lost after the cluster indexed), answering 429, rejecting a mapping
or a document. In every case: a clear error naming the cluster, retries with backoff, the records kept in the inbox
until stored (or quarantined with the cluster's reason), nothing lost, each stored item alerted on exactly once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from core.config import load_config
from core.errors import StorageError
from core.models import RawRecord
from flow.after_store import pending_after_store
from flow.stages import Batch
from storage.base import ItemQuery
from tests.helpers.clock import recent
from tests.helpers.elastic import drop_indices, free_port, new_prefix
from tests.helpers.flaky_proxy import Fault, FlakyProxy, fail_documents

RULE = "every_item"


@pytest.fixture
def prefix(elasticsearch_url: str) -> Iterator[str]:
    name = new_prefix()
    yield name
    drop_indices(elasticsearch_url, name)


@pytest.fixture
def proxy(elasticsearch_url: str) -> Iterator[FlakyProxy]:
    flaky = FlakyProxy(elasticsearch_url)
    yield flaky
    flaky.close()


def write_config(tmp_path: Path, url: str, prefix: str, **es: object) -> Path:
    path = tmp_path / "es.yaml"
    path.write_text(yaml.safe_dump({
        "storage": {"backend": "elasticsearch", "sqlite_path": str(tmp_path / "state.db"),
                    "elasticsearch": {"url": url, "index_prefix": prefix, "compatible_with": False, "replicas": 0,
                                      "retries": 3, "retry_backoff_s": 0.01, "timeout_s": 5, **es}},
        "sources": {"push_src": {"channel": "hotline", "region": "江城市"}},
        "crawling": {"scheduler": False},
        "alerts": {"rules": [{"name": RULE, "sources": ["push_src"]}], "route": {"receiver": "duty", "group_wait": "1h"},
                   "receivers": [{"name": "duty", "inapp": {}}], "poll_interval": "1s"},
    }, allow_unicode=True))
    return path


def record(n: int, content: str | None = None) -> RawRecord:
    return RawRecord(source="push_src", payload={
        "source_id": f"wo-{n}", "title": f"第{n}号工单 路灯不亮",
        "content": content or f"小区{n}号楼前路灯坏了一周，晚上出行不便。", "published_at": recent()})


def alerts_per_item(db: Path) -> dict[int, int]:
    with sqlite3.connect(db) as conn:
        counts: dict[int, int] = {}
        for (item_id,) in conn.execute("SELECT item_id FROM alerts WHERE rule = ?", (RULE,)):
            counts[item_id] = counts.get(item_id, 0) + 1
        return counts


def stored_ids(service) -> list[int]:  # noqa: ANN001 - a yuqing Service
    return sorted(i.id for i in service.store.search(ItemQuery(source="push_src", limit=500)).data)


def assert_each_stored_once_with_one_alert(service, db: Path, count: int) -> None:  # noqa: ANN001
    ids = stored_ids(service)
    assert len(ids) == count and service.store.stats().items == count  # no orphan of a failed attempt either
    assert alerts_per_item(db) == {i: 1 for i in ids}
    with service.store.read() as conn:
        assert conn.execute(pending_after_store.select()).all() == []
    assert service.store.pending() == 0


def test_the_service_stores_searches_and_alerts_on_elasticsearch(tmp_path, elasticsearch_url, prefix):
    from yuqing.service import build_service

    service = build_service(load_config(write_config(tmp_path, elasticsearch_url, prefix)), enrich=False)
    try:
        report = service.writer.ingest([record(n) for n in range(4)])
        assert report.stored == 4
        assert service.writer.ingest([record(1)]).unchanged == 1  # a re-push is seen without a search
        assert_each_stored_once_with_one_alert(service, tmp_path / "state.db", 4)
        assert [i.source_id for i in service.store.search(ItemQuery(q="路灯 NEAR/3 坏了", limit=2)).data] == ["wo-3", "wo-2"]
    finally:
        service.close()


def test_a_crash_after_the_store_commit_is_alerted_on_restart(tmp_path, elasticsearch_url, prefix):
    """The outbox holds with items on the cluster: the identity and pending rows commit together, after indexing."""
    from yuqing.service import build_service

    config = load_config(write_config(tmp_path, elasticsearch_url, prefix))
    service = build_service(config, enrich=False)
    records = [record(n) for n in range(3)]
    batch = service.ingestor.up_to_store.run(Batch(raw=records))  # what a kill -9 before the rules leaves
    assert len(batch.stored) == 3
    service.close()
    restarted = build_service(config, enrich=False)
    try:
        assert restarted.writer.ingest(records).unchanged == 3
        assert restarted.writer.redrive_soon().result() == 3
        assert_each_stored_once_with_one_alert(restarted, tmp_path / "state.db", 3)
    finally:
        restarted.close()


def test_cluster_down_at_start_is_a_clear_error_after_retries(tmp_path, prefix):
    from yuqing.service import build_service

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(StorageError) as failure:
        build_service(load_config(write_config(tmp_path, url, prefix)), enrich=False)
    assert url in str(failure.value) and "connect failed after 4 attempt(s)" in str(failure.value)


def test_cluster_gone_keeps_records_in_the_inbox_until_it_is_back(tmp_path, proxy, prefix):
    from yuqing.service import build_service

    service = build_service(load_config(write_config(tmp_path, proxy.url, prefix)), enrich=False)
    try:
        service.writer.ingest([record(0)])
        proxy.add(Fault("PUT", r"_bulk", "drop"))  # every bulk: the connection closes without an answer
        with pytest.raises(StorageError, match=rf"{proxy.url}.*not indexed after 4 attempt"):
            service.writer.submit([record(n) for n in range(1, 4)]).outcome.result()
        assert service.store.pending() == 3  # kept
        assert sum(1 for _, _, what in proxy.log if what == "dropped") == 4  # the first try and 3 retries
        proxy.clear()
        assert service.writer.drain().stored == 3
        assert_each_stored_once_with_one_alert(service, tmp_path / "state.db", 4)
    finally:
        service.close()


def test_cluster_gone_mid_bulk_loses_nothing_and_duplicates_nothing(tmp_path, proxy, prefix):
    """Batches of 2: the first is indexed, the second reaches the cluster but its answer never comes back. The state
    rolls back; the retry indexes the same documents under the same ids (no orphan, no twin)."""
    from yuqing.service import build_service

    service = build_service(load_config(write_config(tmp_path, proxy.url, prefix, bulk_batch=2)), enrich=False)
    try:
        proxy.add(Fault("PUT", r"_bulk", "lost", body_pattern="wo-3"))
        with pytest.raises(StorageError):
            service.writer.submit([record(n) for n in range(5)]).outcome.result()
        assert service.store.pending() == 5
        assert ("PUT", "/_bulk", "forwarded 200") in proxy.log  # the first batch went through
        proxy.clear()
        assert service.writer.drain().stored == 5
        assert_each_stored_once_with_one_alert(service, tmp_path / "state.db", 5)
    finally:
        service.close()


def test_429_is_retried_with_backoff_whole_requests_and_single_documents(tmp_path, proxy, prefix):
    from yuqing.service import build_service

    service = build_service(load_config(write_config(tmp_path, proxy.url, prefix)), enrich=False)
    try:
        busy = {"error": {"type": "es_rejected_execution_exception", "reason": "rejected execution (queue full)"},
                "status": 429}
        proxy.add(Fault("PUT", r"_bulk", "status", times=2, status=429, body=busy))
        proxy.add(Fault("PUT", r"_bulk", "rewrite", times=1, rewrite=fail_documents(
            429, "es_rejected_execution_exception", "queue full", matching="wo-2")))
        assert service.writer.ingest([record(n) for n in range(4)]).stored == 4
        bulks = [what for method, path, what in proxy.log if path.startswith("/_bulk")]
        assert bulks == ["answered 429", "answered 429", "rewritten", "forwarded 200"]
        assert_each_stored_once_with_one_alert(service, tmp_path / "state.db", 4)
    finally:
        service.close()


def test_a_rejected_document_is_quarantined_with_the_clusters_reason(tmp_path, proxy, prefix):
    from yuqing.service import build_service

    service = build_service(load_config(write_config(tmp_path, proxy.url, prefix)), enrich=False)
    try:
        proxy.add(Fault("PUT", r"_bulk", "rewrite", rewrite=fail_documents(
            400, "mapper_parsing_exception", "failed to parse field [text]", matching="坏数据")))
        report = service.writer.ingest([record(0), record(1, "这是一条坏数据，集群拒收"), record(2)])
        assert (report.stored, report.quarantined) == (2, 1)
        kept = service.store.list_quarantine("push_src", 10, None).data
        assert len(kept) == 1 and kept[0].payload["source_id"] == "wo-1" and kept[0].stage == "store"
        assert "mapper_parsing_exception: failed to parse field [text]" in kept[0].reason
        assert_each_stored_once_with_one_alert(service, tmp_path / "state.db", 2)
    finally:
        service.close()


def test_a_rejected_mapping_stops_the_start_naming_the_template(tmp_path, proxy, prefix):
    from yuqing.service import build_service

    proxy.add(Fault("PUT", r"_index_template", "status", status=400, body={
        "error": {"type": "mapper_parsing_exception", "reason": "unknown analyzer [yuqing_bigram]"}, "status": 400}))
    with pytest.raises(StorageError) as failure:
        build_service(load_config(write_config(tmp_path, proxy.url, prefix)), enrich=False)
    message = str(failure.value)
    assert proxy.url in message and f"{prefix}-items" in message and "unknown analyzer [yuqing_bigram]" in message


def test_a_server_refusing_the_compatible_with_media_type_names_the_setting(tmp_path, elasticsearch_url, prefix):
    from yuqing.service import build_service

    with pytest.raises(StorageError, match="compatible_with: false"):
        build_service(load_config(write_config(tmp_path, elasticsearch_url, prefix, compatible_with=True)), enrich=False)
