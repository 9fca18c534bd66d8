"""The one place that knows SQL dialects: portable upserts for relational state on SQLite and PostgreSQL.

Everything else writes plain SQLAlchemy Core, so the same state tables (crawl state, alerts, outbox, silences, events,
near-duplicate signatures) run on either database unchanged.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Column, Connection, Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.processors import to_float

from core.errors import StorageError

_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def _insert(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT that understands ON CONFLICT (both SQLite and PostgreSQL spell it the same way)."""
    try:
        return _INSERTS[conn.dialect.name](table)
    except KeyError:
        raise StorageError(f"no upsert for the {conn.dialect.name} dialect; supported: {', '.join(_INSERTS)}") from None


def upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str],
           update: Sequence[str] | None = None) -> None:
    """Insert `rows`; a row whose `keys` already exist updates the `update` columns (default: every column of the row
    that is not a key) to the new values."""
    if not rows:
        return
    columns = tuple(c for c in rows[0] if c not in keys) if update is None else tuple(update)
    conflict = (tuple(keys), columns)
    plan = _plan(conn, table, tuple(rows[0]), conflict)
    if plan is not None:
        _execute(conn, plan, rows)
        return
    conn.execute(_upsert_statement(conn, table, conflict), list(rows))


def _upsert_statement(conn: Connection, table: Table, conflict: tuple[tuple[str, ...], tuple[str, ...]]) -> Any:
    keys, columns = conflict
    stmt = _insert(conn, table)
    if not columns:
        return stmt.on_conflict_do_nothing(index_elements=list(keys))
    return stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns})


def insert_missing(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert the rows whose `keys` are not stored yet and leave the stored ones as they are."""
    upsert(conn, table, rows, keys, update=())


# ---- bulk writes through the driver ---------------------------------------------------------------------------------
# (table, row keys, conflict handling, dialect) → the statement's SQL, a getter of a row's values in parameter order,
# and the positions whose values a bind processor converts (with the processor). Conflict handling: None for a plain
# INSERT, else (conflict keys, columns updated; none: do nothing).
_Plan = tuple[str, Callable[[Mapping[str, Any]], Any], tuple[tuple[int, Callable[[Any], Any]], ...]]
_Conflict = tuple[tuple[str, ...], tuple[str, ...]] | None
_PLANS: dict[tuple[Table, tuple[str, ...], _Conflict, str], _Plan | None] = {}


def _plan(conn: Connection, table: Table, keys: tuple[str, ...], conflict: _Conflict = None) -> _Plan | None:
    """The compiled INSERT (an upsert with `conflict`) for rows with these keys, or None when the driver cannot be
    handed plain tuples (a dialect with named parameters, or a column default SQLAlchemy would have to compute for a
    key the rows lack)."""
    cache_key = (table, keys, conflict, conn.dialect.name)
    if cache_key not in _PLANS:
        stmt = table.insert() if conflict is None else _upsert_statement(conn, table, conflict)
        _PLANS[cache_key] = _compiled_plan(conn, stmt, keys, list(keys))
    return _PLANS[cache_key]


def _compiled_plan(conn: Connection, stmt: Any, keys: tuple[str, ...], column_keys: list[str]) -> _Plan | None:
    """`stmt` compiled for rows with `keys` (setting `column_keys`) as a plan, or None (see `_plan`)."""
    compiled = stmt.compile(dialect=conn.dialect, column_keys=column_keys)
    order = tuple(compiled.positiontup or ())
    if not (compiled.positional and order and set(order) <= set(keys)):
        return None
    procs = [compiled.binds[name].type.bind_processor(conn.dialect) for name in order]
    getter = operator.itemgetter(*order) if len(order) > 1 else (lambda row, key=order[0]: (row[key],))
    return compiled.string, getter, tuple((i, p) for i, p in enumerate(procs) if p is not None)


def _execute(conn: Connection, plan: _Plan, rows: Sequence[Mapping[str, Any]]) -> None:
    """One executemany of the driver with each row's values in the plan's order, converted as SQLAlchemy would.

    Float columns convert with `float(value)`, which leaves a float (or None) as it is: a row whose values there are
    already floats or None (the usual case: items, events and the outbox each have such columns) is passed as is."""
    sql, values, converted = plan
    _run_converted(conn, sql, converted, [values(row) for row in rows])


def _run_converted(conn: Connection, sql: str, converted: tuple[tuple[int, Callable[[Any], Any]], ...],
                   params: list[tuple[Any, ...]]) -> None:
    """`conn.exec_driver_sql(sql, params)` with the values at the `converted` positions processed (see `_execute`)."""
    if converted:
        floats = tuple(i for i, process in converted if process is to_float)
        others = len(floats) < len(converted)
        for n, row_values in enumerate(params):
            if not others:
                for i in floats:
                    value = row_values[i]
                    if value is not None and type(value) is not float:
                        break
                else:
                    continue
            changed = list(row_values)
            for i, process in converted:
                changed[i] = process(changed[i])
            params[n] = tuple(changed)
    conn.exec_driver_sql(sql, params)


def insert_many(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT rows (mappings with the keys of the first row) in one executemany of the driver, compiled once.

    Why: `conn.execute(table.insert(), rows)` processes every row's parameters in Python; for a 500-row batch of items
    that is ≈ 16 of the 28 µs each row costs. The same bind processors still apply, so what is stored is the same."""
    if not rows:
        return
    plan = _plan(conn, table, tuple(rows[0]))
    if plan is None:
        conn.execute(table.insert(), list(rows))
        return
    _execute(conn, plan, rows)


def insert_tuples(conn: Connection, table: Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """INSERT rows given as tuples of the `columns`' values, in one executemany of the driver, compiled once.

    Why: a caller that makes a row only to insert it (an item) can build the tuple the driver takes instead of a dict
    that `insert_many` then reads back key by key. When the compiled statement does not take the values in the
    order of `columns` (named parameters, or SQLAlchemy orders them otherwise), the rows go through `insert_many`."""
    if not rows:
        return
    cache_key = (table, columns, ("tuples",), conn.dialect.name)
    if cache_key not in _PLANS:
        plan = _compiled_plan(conn, table.insert(), columns, list(columns))
        compiled_order = tuple(table.insert().compile(dialect=conn.dialect, column_keys=list(columns)).positiontup or ())
        _PLANS[cache_key] = plan if plan is not None and compiled_order == columns else None
    plan = _PLANS[cache_key]
    if plan is None:
        insert_many(conn, table, [dict(zip(columns, row, strict=True)) for row in rows])
        return
    _run_converted(conn, plan[0], plan[2], list(rows))  # a list of its own: converted rows are replaced in it


def insert_returning_ids(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert rows into a table with an integer primary key `id` chosen by the database; their ids, in row order.

    On SQLite, INSERT … RETURNING in parameter order runs one statement per row. There the first row is inserted
    alone (its id read back), which takes the database's write lock until commit, so no other writer can take the
    ids that follow: the rest are inserted with those ids in one executemany. Elsewhere: one INSERT … RETURNING."""
    if not rows:
        return []
    if conn.dialect.name != "sqlite":
        id_column: Column = table.c.id
        return list(conn.execute(table.insert().returning(id_column, sort_by_parameter_order=True), list(rows)).scalars())
    first = conn.execute(table.insert(), dict(rows[0])).inserted_primary_key[0]
    ids = list(range(first, first + len(rows)))
    insert_many(conn, table, [{**row, "id": new_id} for row, new_id in zip(rows[1:], ids[1:], strict=True)])
    return ids


_IN_LISTS: dict[tuple[str, int], str] = {}


def in_list(sql: str, count: int) -> str:
    """`sql` (a statement for a driver with qmark parameters) with `count` placeholders in its IN list, written "{}",
    made once per (statement, count): SQLAlchemy renders an expanding IN list of hundreds of values anew on every
    execution, which costs more than the look-up costs SQLite."""
    key = (sql, count)
    text = _IN_LISTS.get(key)
    if text is None:
        text = _IN_LISTS[key] = sql.format(", ".join("?" * count))
    return text


def update_by_id(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], key: str = "_id") -> None:
    """UPDATE each row of `table` whose `id` is the row's `key` value to the row's other values (mappings with the
    keys of the first row), in one executemany of the driver, compiled once per set of keys as `insert_many` is."""
    if not rows:
        return
    keys = tuple(rows[0])
    cache_key = (table, keys, ("update", key), conn.dialect.name)
    if cache_key not in _PLANS:
        stmt = table.update().where(table.c.id == bindparam(key))
        _PLANS[cache_key] = _compiled_plan(conn, stmt, keys, [k for k in keys if k != key])
    plan = _PLANS[cache_key]
    if plan is None:
        conn.execute(table.update().where(table.c.id == bindparam(key)), [dict(row) for row in rows])
        return
    _execute(conn, plan, rows)


# (table, column, dialect) → the compiled `DELETE … WHERE column = ?` and whether it takes positional parameters
_DELETES: dict[tuple[Table, str, str], tuple[str, bool]] = {}


def delete_ids(conn: Connection, table: Table, column: Column, ids: Sequence[Any]) -> None:
    """DELETE the rows whose `column` is one of `ids`, in one executemany of the driver (an IN list of hundreds of
    parameters costs SQLAlchemy more than the deletes cost SQLite), compiled once per table and column."""
    if not ids:
        return
    cache_key = (table, column.key, conn.dialect.name)
    found = _DELETES.get(cache_key)
    if found is None:
        compiled = table.delete().where(column == 0).compile(dialect=conn.dialect)
        found = _DELETES[cache_key] = (compiled.string, bool(compiled.positional))
    sql, positional = found
    if not positional:
        for start in range(0, len(ids), 500):
            conn.execute(table.delete().where(column.in_(ids[start:start + 500])))
        return
    conn.exec_driver_sql(sql, [(i,) for i in ids])
