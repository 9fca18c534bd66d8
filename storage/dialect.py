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
from sqlalchemy.sql.sqltypes import _Binary

from core.errors import StorageError

_NONE = type(None)
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
# the positions whose values a bind processor converts (with the processor and the type of value it leaves as the
# driver would bind it anyway, or None) and the row keys in parameter order. Conflict handling: None for a plain
# INSERT, else (conflict keys, columns updated; none: do nothing).
_Converter = tuple[int, Callable[[Any], Any], frozenset[type]]
_Plan = tuple[str, Callable[[Mapping[str, Any]], Any], tuple[_Converter, ...], tuple[str, ...]]
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
    types = [compiled.binds[name].type for name in order]
    procs = [t.bind_processor(conn.dialect) for t in types]
    getter = operator.itemgetter(*order) if len(order) > 1 else (lambda row, key=order[0]: (row[key],))
    return (compiled.string, getter,
            tuple((i, p, _left_as_is(conn, t, p)) for i, (t, p) in enumerate(zip(types, procs, strict=True))
                  if p is not None), order)


_FLOATS = frozenset({float})
_BUFFERS = frozenset({bytes, bytearray})


def _left_as_is(conn: Connection, column_type: Any, process: Callable[[Any], Any]) -> frozenset[type]:
    """The types of value whose conversion by `process` the driver binds as it binds the value itself (none: every
    value is converted): float for Float's `float(value)`; bytes and bytearray for LargeBinary on sqlite3, whose
    `Binary` is `memoryview` (all three bound as the same BLOB, through the buffer protocol)."""
    if process is to_float:
        return _FLOATS
    dbapi = conn.dialect.dbapi
    if isinstance(column_type, _Binary) and conn.dialect.name == "sqlite" and getattr(dbapi, "Binary", None) is memoryview:
        return _BUFFERS
    return frozenset()


def _execute(conn: Connection, plan: _Plan, rows: Sequence[Any], ordered: bool = False) -> None:
    """One executemany of the driver with each row's values in the plan's order (`ordered`: the rows are already
    such tuples), converted as SQLAlchemy would.

    A column whose processor leaves its values' type as the driver binds it (`_left_as_is`: floats in Float columns,
    bytes in LargeBinary ones on SQLite) needs no call per value: when every converted column of the batch holds only
    such values or None (the usual case: items, events, signatures and the outbox each have such columns), the rows go
    as they are, checked one column at a time from C (the loop per row and column it replaced, with a call of
    SQLAlchemy's binary processor per signature: ≈ 1,300 instructions an item of an import, event-path replay)."""
    sql, values, converted, _ = plan
    params = list(rows) if ordered else [values(row) for row in rows]
    if converted and not _unconverted(converted, params):
        for n, row_values in enumerate(params):
            for i, _, kept in converted:
                value = row_values[i]
                if not kept or (value is not None and type(value) not in kept):
                    break
            else:
                continue
            changed = list(row_values)
            for i, process, _ in converted:
                changed[i] = process(changed[i])
            params[n] = tuple(changed)
    conn.exec_driver_sql(sql, params)


def _unconverted(converted: tuple[_Converter, ...], params: list[Any]) -> bool:
    """Whether every converted column of `params` holds only values its processor leaves as they are, or None."""
    for i, _, kept in converted:
        if not kept:
            return False
        found = set(map(type, map(operator.itemgetter(i), params)))
        found.discard(_NONE)
        if not found <= kept:
            return False
    return True


def _execute_ordered(conn: Connection, table: Table, columns: tuple[str, ...], conflict: _Conflict,
                     rows: Sequence[tuple[Any, ...]]) -> bool:
    """Run the rows (tuples of `columns`' values) as they are when the statement takes its parameters in that order;
    False when it does not (the caller falls back to mappings)."""
    plan = _plan(conn, table, columns, conflict)
    if plan is None or plan[3] != columns:
        return False
    _execute(conn, plan, rows, ordered=True)
    return True


def upsert_values(conn: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]],
                  keys: Sequence[str], update: Sequence[str] | None = None) -> None:
    """`upsert` for rows given as tuples of `columns`' values: with the columns in the statement's parameter order
    (table order), the rows go to the driver as they are, with no mapping built and read back per row."""
    if not rows:
        return
    conflict = (tuple(keys), tuple(c for c in columns if c not in keys) if update is None else tuple(update))
    if _execute_ordered(conn, table, columns, conflict, rows):
        return
    upsert(conn, table, [dict(zip(columns, row, strict=True)) for row in rows], keys, update)


def insert_values(conn: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]],
                  missing_only: bool = False) -> None:
    """`insert_many` (or with `missing_only`, `insert_missing` with the table's primary key) for rows given as tuples
    of `columns`' values, passed to the driver as they are when the columns are in the statement's parameter order."""
    if not rows:
        return
    keys = tuple(c.key for c in table.primary_key)
    conflict = (keys, ()) if missing_only else None
    if _execute_ordered(conn, table, columns, conflict, rows):
        return
    dicts = [dict(zip(columns, row, strict=True)) for row in rows]
    if missing_only:
        insert_missing(conn, table, dicts, keys)
    else:
        insert_many(conn, table, dicts)


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
