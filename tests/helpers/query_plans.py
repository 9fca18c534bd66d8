"""The statements code actually runs on a store, and SQLite's plans for them: index checks on the real SQL, with its
real parameters, rather than on SQL rebuilt by hand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, event

from storage.state import SqlState

R = TypeVar("R")


@contextmanager
def executed(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Each statement run on `engine` inside the block, with its parameters, in order."""
    statements: list[tuple[str, Any]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:  # noqa: ANN001 - SQLAlchemy hook
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def plans_during(store: SqlState, call: Callable[[], R]) -> tuple[list[tuple[str, list[str]]], R]:
    """Each SELECT `call` ran on the store (a SQLite one), with its query plan, and what `call` returned."""
    with executed(store.engine) as statements:
        result = call()
    plans = []
    with store.read() as conn:
        for statement, parameters in statements:
            if statement.lstrip().upper().startswith("SELECT"):
                rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
                plans.append((statement, [row[3] for row in rows]))
    return plans, result
