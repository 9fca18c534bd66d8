"""The real PostgreSQL and Redis on 127.0.0.1 for tests: a database schema of a test's own, a Redis database prefix.

Without the server a test skips with the reason (loudly: `-ra` lists it); under CI=true it fails instead, since CI
starts both (`make services`)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_URL = os.environ.get("YUQING_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("YUQING_TEST_REDIS", "redis://127.0.0.1:6379/0")


def unavailable(message: str) -> None:
    """Skip, or fail under CI=true."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def pg_reachable() -> str | None:
    """None when PostgreSQL answers, else why not."""
    engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not here"
        return f"PostgreSQL not reachable at {PG_URL}: {getattr(exc, 'orig', exc)}"
    finally:
        engine.dispose()


def schema_url(schema: str) -> str:
    """PG_URL with every connection's search_path set to `schema` (psycopg's `options` query parameter)."""
    url = make_url(PG_URL)
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


@contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh schema for one test, dropped after it; yields an SQLAlchemy URL that works inside it."""
    problem = pg_reachable()
    if problem:
        unavailable(problem)
    name = f"yq_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        yield schema_url(name)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def redis_client():  # noqa: ANN201 - redis.Redis
    """A client of the test Redis, or a skip (a failure under CI=true) when it does not answer."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis not reachable at {REDIS_URL}: {exc}")
    return client
