"""Relational state must move to PostgreSQL unchanged: every component's migrations run there too."""

from __future__ import annotations

import importlib

import pytest
from sqlalchemy import inspect

from storage.migrations import migrate
from tests.helpers.postgres import pg_schema as pg_schema_engine

# Importing these registers each component's migrations, as opening the service does.
COMPONENT_MODULES = ["crawlers.state", "alerts.store", "analysis.event_store", "storage.originals", "reports.store"]


@pytest.fixture
def pg_schema():
    with pg_schema_engine() as scoped:
        yield scoped


def test_all_migrations_run_on_postgres_and_are_idempotent(pg_schema) -> None:
    engine, name = pg_schema
    for module in COMPONENT_MODULES:
        importlib.import_module(module)
    with engine.begin() as conn:
        versions = migrate(conn)
    assert {"core", "crawl", "alerts", "events", "originals", "reports"} <= set(versions)
    with engine.begin() as conn:
        assert migrate(conn) == versions
    tables = set(inspect(engine).get_table_names(schema=name))
    assert {"items", "quarantine", "inbox", "schema_version"} <= tables



def test_event_store_upsert_runs_on_postgres(pg_schema) -> None:
    """The event store's writes go through storage.dialect (insert, update on conflict, ignore known signatures) and
    its reads through SqlState, the state side of the Store Protocol on any engine."""
    from collections import Counter

    import numpy as np

    from analysis.cluster import EventClusterer, EventState
    from analysis.dedup import NUM_PERM, NearDuplicateIndex
    from analysis.event_store import get_event, list_events, load, write_state
    from core.config_analysis import EventsConfig
    from storage.state import SqlState

    engine, _ = pg_schema
    state = SqlState(engine)
    assert {"core", "events"} <= set(state.versions)

    def event(event_id: str, volume: int) -> EventState:
        return EventState(id=event_id, title=f"事件{event_id}", first_seen=1_764_000_000.0, last_seen=1_764_003_600.0,
                          centroid={"停水": 0.9}, volume=volume, engagement=4, sources=Counter({"board_a": volume}),
                          channels=Counter({"board": volume}), regions=Counter({"江城区": volume}))

    signature = np.arange(NUM_PERM, dtype=np.uint32)
    with state.write() as conn:
        write_state(conn, [event("e1", 1), event("e2", 1)], [(1, 1, signature)])
    assert list_events(state)[1] == 2
    with state.write() as conn:
        write_state(conn, [event("e1", 3)], [(1, 1, signature + 7), (2, 1, signature)], absorbed=["e2"])
    ranked, count = list_events(state)
    assert count == 1 and (ranked[0]["id"], ranked[0]["volume"], ranked[0]["sources"]) == ("e1", 3, {"board_a": 3})
    assert get_event(state, "e1")["regions"] == {"江城区": 3}
    clusterer, index = EventClusterer(EventsConfig()), NearDuplicateIndex()
    load(state, clusterer, index)
    assert set(clusterer.events) == {"e1"}
    assert 1 in index and 2 in index and index.root(2) == 1  # the first signature of item 1 was kept, not replaced


def test_source_health_runs_on_postgres(pg_schema) -> None:
    from core.config_crawl import HealthSpec
    from crawlers.health import RunResult, health_changes, record_run, source_health
    from storage.state import SqlState

    engine, _ = pg_schema
    state = SqlState(engine)
    run = RunResult(source="s", started_at="2026-11-25T01:00:00+00:00", finished_at="2026-11-25T01:01:00+00:00",
                    finish_reason="finished", pages=2, pages_ok=2, entries=9, items=4)
    health = record_run(state, run, HealthSpec())
    assert source_health(state) == {"s": health} and health.state == "ok"
    assert [(c["from_state"], c["to_state"]) for c in health_changes(state)] == [("unknown", "ok")]
