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
COMPONENT_MODULES = ["crawlers.state", "alerts.store", "analysis.event_store", "storage.originals"]


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
    assert {"core", "crawl", "alerts", "events", "originals"} <= set(versions)
    with engine.begin() as conn:
        assert migrate(conn) == versions
    tables = set(inspect(engine).get_table_names(schema=name))
    assert {"items", "quarantine", "inbox", "schema_version"} <= tables
