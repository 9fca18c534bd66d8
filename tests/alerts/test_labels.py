"""Filtering alerts by label works the same on SQLite and PostgreSQL (the alert_labels table, no JSON functions),
and migration v2 gives alerts stored before it their label rows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine

from alerts.store import AlertReader, _alerts_v1, _alerts_v2, _alerts_v4, alert_labels, alerts, write_labels
from storage.migrations import migrate
from tests.helpers.alert_rows import LABELS, EngineStore, alert_row
from tests.helpers.postgres import pg_schema


def check_filters(store: EngineStore) -> None:
    with store.write() as conn:
        ids = [conn.execute(alerts.insert().values(**alert_row(n, labels))).inserted_primary_key[0]
               for n, labels in enumerate(LABELS)]
        write_labels(conn, dict(zip(ids, LABELS, strict=True)))
    reader = AlertReader(store)

    def found(**labels: str) -> list[int]:
        rows, count = reader.list(labels=labels)
        assert count == len(rows)
        return sorted(r["id"] for r in rows)

    assert found(region="江城市") == [ids[0], ids[2]]
    assert found(region="江城市", topic="城乡建设") == [ids[0]]
    assert found(topic="城乡建设") == [ids[0], ids[1]]
    assert found(**{"name with space": 'a"b'}) == [ids[2]]
    assert found(region="北京") == []
    with store.write() as conn:  # refreshed labels replace the old rows
        write_labels(conn, {ids[1]: {"region": "江城市", "topic": "城乡建设"}}, replace=True)
    assert found(region="江城市", topic="城乡建设") == [ids[0], ids[1]]


def test_label_filter_on_sqlite(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'labels.db'}")
    with engine.begin() as conn:
        migrate(conn)
    check_filters(EngineStore(engine))


def test_migration_v2_backfills_labels_of_existing_alerts(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        _alerts_v1(conn)
        conn.execute(alerts.insert(), [alert_row(n, labels) for n, labels in enumerate(LABELS)])
        _alerts_v2(conn)
        _alerts_v4(conn)  # the archive the reader also looks in
        rows = conn.execute(alert_labels.select()).all()
    assert len(rows) == sum(len(labels) for labels in LABELS)
    rows, count = AlertReader(EngineStore(engine)).list(labels={"topic": "教育"})
    assert count == 1 and rows[0]["labels"]["topic"] == "教育"


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    with pg_schema() as (scoped, _name):
        yield scoped


def test_label_filter_on_postgres(pg_engine):
    with pg_engine.begin() as conn:
        migrate(conn)
    check_filters(EngineStore(pg_engine))
