"""Relational state must move to PostgreSQL unchanged: every component's migrations run there too."""

from __future__ import annotations

import importlib
import os
import uuid

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import OperationalError

from storage.migrations import migrate

PG_URL = os.environ.get("YUQING_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# Importing these registers each component's migrations, as opening the service does.
COMPONENT_MODULES = ["crawlers.state", "alerts.store", "analysis.event_store"]


@pytest.fixture
def pg_schema():
    engine = create_engine(PG_URL)
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        message = f"PostgreSQL not reachable at {PG_URL}: {exc.orig}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    name = f"yq_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    scoped = create_engine(PG_URL, connect_args={"options": f"-csearch_path={name}"})
    yield scoped, name
    scoped.dispose()
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    engine.dispose()


def test_all_migrations_run_on_postgres_and_are_idempotent(pg_schema) -> None:
    engine, name = pg_schema
    for module in COMPONENT_MODULES:
        importlib.import_module(module)
    with engine.begin() as conn:
        versions = migrate(conn)
    assert {"core", "crawl", "alerts", "events"} <= set(versions)
    with engine.begin() as conn:
        assert migrate(conn) == versions
    tables = set(inspect(engine).get_table_names(schema=name))
    assert {"items", "quarantine", "inbox", "schema_version"} <= tables


def test_event_store_upsert_runs_on_postgres(pg_schema) -> None:
    """The event store's writes go through storage.dialect: insert, update on conflict, ignore known signatures."""
    from collections import Counter

    import numpy as np
    from sqlalchemy import select

    from analysis.cluster import EventState
    from analysis.dedup import NUM_PERM
    from analysis.event_store import dedup_signatures, events, public, write_state

    engine, _ = pg_schema
    with engine.begin() as conn:
        migrate(conn)

    def event(event_id: str, volume: int) -> EventState:
        return EventState(id=event_id, title=f"事件{event_id}", first_seen=1_764_000_000.0, last_seen=1_764_003_600.0,
                          centroid={"停水": 0.9}, volume=volume, engagement=4, sources=Counter({"board_a": volume}),
                          channels=Counter({"board": volume}), regions=Counter({"江城区": volume}))

    signature = np.arange(NUM_PERM, dtype=np.uint32)
    with engine.begin() as conn:
        write_state(conn, [event("e1", 1), event("e2", 1)], [(1, 1, signature)])
    with engine.begin() as conn:
        write_state(conn, [event("e1", 3)], [(1, 1, signature + 7), (2, 1, signature)], absorbed=["e2"])
    with engine.connect() as conn:
        rows = conn.execute(select(events)).all()
        stored = conn.execute(select(dedup_signatures).order_by(dedup_signatures.c.item_id)).all()
    assert [(public(r)["id"], public(r)["volume"], public(r)["sources"]) for r in rows] == [("e1", 3, {"board_a": 3})]
    assert [(r.item_id, r.root_id, bytes(r.signature)) for r in stored] == [(1, 1, signature.tobytes()),
                                                                          (2, 1, signature.tobytes())]
