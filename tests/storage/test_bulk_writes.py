"""The driver-level bulk writes of storage/dialect.py store what SQLAlchemy's own executemany stores, and the inbox ids
they hand out stay right when several writers put records into one SQLite file at once; `SqlState.bulk` groups a
thread's writes into one transaction in which each write still fails alone."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Column, Float, Integer, LargeBinary, MetaData, String, Table, select

from core.errors import StorageError
from core.models import RawRecord
from storage.dialect import (
    delete_ids,
    insert_many,
    insert_missing,
    insert_returning_ids,
    insert_values,
    upsert,
    upsert_values,
)
from storage.state import SqlState, create_sqlite_engine


def _table() -> Table:
    return Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("name", String(20)),
                 Column("score", Float), Column("kind", String(10), default="plain"))


def test_insert_many_stores_what_sqlalchemy_stores(tmp_path) -> None:
    table = _table()
    engine = create_sqlite_engine(tmp_path / "a.db")
    table.metadata.create_all(engine)
    rows = [{"id": i, "name": f"n{i}", "score": i, "kind": "k"} for i in range(1, 6)]  # ints for a Float column
    with engine.begin() as conn:
        insert_many(conn, table, rows)
        insert_many(conn, table, [{"id": 10, "name": "defaulted", "score": 0.5}])  # a Python default: SQLAlchemy's path
        got = conn.execute(select(table).order_by(table.c.id)).all()
        expected_engine = create_sqlite_engine(tmp_path / "b.db")
    table.metadata.create_all(expected_engine)
    with expected_engine.begin() as conn:
        conn.execute(table.insert(), rows)
        conn.execute(table.insert(), [{"id": 10, "name": "defaulted", "score": 0.5}])
        expected = conn.execute(select(table).order_by(table.c.id)).all()
    assert got == expected
    assert [type(r.score) for r in got] == [float] * 6
    assert got[-1].kind == "plain"


def test_delete_ids_deletes_exactly_those(tmp_path) -> None:
    table = _table()
    engine = create_sqlite_engine(tmp_path / "a.db")
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        ids = insert_returning_ids(conn, table, [{"name": f"n{i}", "score": 1.0} for i in range(8)])
        assert ids == list(range(1, 9))
        delete_ids(conn, table, table.c.id, [2, 5, 99])
        assert [r.id for r in conn.execute(select(table.c.id).order_by(table.c.id))] == [1, 3, 4, 6, 7, 8]
        assert insert_returning_ids(conn, table, []) == []


def test_concurrent_inbox_puts_get_their_own_ids(tmp_path) -> None:
    """Four writers (each its own engine, as separate processes would be) put batches at once; every id returned must
    hold the record that was put under it."""
    path = tmp_path / "inbox.db"
    SqlState(create_sqlite_engine(path)).close()
    returned: dict[int, str] = {}
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        state = SqlState(create_sqlite_engine(path))
        try:
            for batch in range(15):
                records = [RawRecord(source="s", payload={"key": f"{name}-{batch}-{i}"}) for i in range(40)]
                ids = state.put(records)
                returned.update({i: r.payload["key"] for i, r in zip(ids, records, strict=True)})
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            state.close()

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    state = SqlState(create_sqlite_engine(path))
    stored = {i: r.payload["key"] for i, r in state.take(10_000)}
    state.close()
    assert len(stored) == 4 * 15 * 40
    assert stored == returned


def _state_with_table(tmp_path) -> tuple[SqlState, Table]:
    table = _table()
    state = SqlState(create_sqlite_engine(tmp_path / "bulk.db"))
    table.metadata.create_all(state.engine)
    return state, table


def _names(engine, table: Table) -> list[str]:
    with engine.connect() as conn:  # another connection: sees only what is committed
        return [r.name for r in conn.execute(select(table.c.name).order_by(table.c.id))]


def test_bulk_commits_its_writes_at_its_end_and_each_write_fails_alone(tmp_path) -> None:
    state, table = _state_with_table(tmp_path)
    with state.bulk():
        with state.write() as conn:  # the first statement of the group is a savepoint: its release must not commit
            conn.execute(table.insert(), [{"id": 1, "name": "first"}])
        assert _names(state.engine, table) == []
        with pytest.raises(StorageError), state.write() as conn:  # fails: its own rows go, the group's stay
            conn.execute(table.insert(), [{"id": 2, "name": "lost"}])
            conn.execute(table.insert(), [{"id": 1, "name": "clash"}])
        with pytest.raises(ValueError), state.write() as conn:
            conn.execute(table.insert(), [{"id": 3, "name": "lost too"}])
            raise ValueError("a stage bug")
        with state.write() as outer, state.write() as inner:  # a write inside a write joins it, as outside a bulk
            assert inner is outer
            inner.execute(table.insert(), [{"id": 4, "name": "second"}])
        with state.read() as conn:  # this thread reads what the group wrote so far
            assert [r.name for r in conn.execute(select(table.c.name).order_by(table.c.id))] == ["first", "second"]
        assert _names(state.engine, table) == []
    assert _names(state.engine, table) == ["first", "second"]
    state.close()


def test_an_error_out_of_a_bulk_rolls_back_all_of_it(tmp_path) -> None:
    state, table = _state_with_table(tmp_path)
    with pytest.raises(RuntimeError), state.bulk():
        for n in range(3):
            with state.write() as conn:
                conn.execute(table.insert(), [{"id": n + 1, "name": f"n{n}"}])
        raise RuntimeError("the import stopped")
    assert _names(state.engine, table) == []
    with state.write() as conn:  # the lock and the thread's state were given back
        conn.execute(table.insert(), [{"id": 9, "name": "after"}])
    assert _names(state.engine, table) == ["after"]
    state.close()


def test_other_threads_write_after_the_bulk(tmp_path) -> None:
    state, table = _state_with_table(tmp_path)
    done = threading.Event()

    def other() -> None:
        with state.write() as conn:
            conn.execute(table.insert(), [{"id": 2, "name": "other"}])
        done.set()

    with state.bulk():
        with state.write() as conn:
            conn.execute(table.insert(), [{"id": 1, "name": "mine"}])
        thread = threading.Thread(target=other)
        thread.start()
        assert not done.wait(0.3)  # waits for the group's lock, not joining it
    thread.join(10)
    assert _names(state.engine, table) == ["mine", "other"]
    state.close()


def test_rows_as_tuples_store_what_rows_as_dicts_store(tmp_path) -> None:
    table = Table("b", MetaData(), Column("id", Integer, primary_key=True), Column("score", Float),
                  Column("blob", LargeBinary), Column("name", String(20)))
    columns = ("id", "score", "blob", "name")
    first = [(1, 0.5, b"\x00\x01", "a"), (2, None, None, "b"), (3, 2, b"x", "c")]  # an int for a Float column
    again = [(1, 1.5, b"y", "a2"), (4, 4.0, memoryview(b"z"), "d")]
    stored = []
    for name, write in [("dicts", False), ("tuples", True)]:
        engine = create_sqlite_engine(tmp_path / f"{name}.db")
        table.metadata.create_all(engine)
        with engine.begin() as conn:
            if write:
                insert_values(conn, table, columns, first)
                upsert_values(conn, table, columns, again, keys=["id"])
                insert_values(conn, table, columns, [(4, 9.0, b"kept", "e"), (5, 5.0, b"new", "f")], missing_only=True)
            else:
                insert_many(conn, table, [dict(zip(columns, row, strict=True)) for row in first])
                upsert(conn, table, [dict(zip(columns, row, strict=True)) for row in again], keys=["id"])
                insert_missing(conn, table, [dict(zip(columns, row, strict=True))
                                             for row in [(4, 9.0, b"kept", "e"), (5, 5.0, b"new", "f")]], keys=["id"])
            stored.append(conn.exec_driver_sql("SELECT id, score, typeof(score), blob, typeof(blob), name FROM b "
                                               "ORDER BY id").all())
    assert stored[0] == stored[1]
    assert [r[2] for r in stored[1]] == ["real", "null", "real", "real", "real"]
    assert [r[4] for r in stored[1]] == ["blob", "null", "blob", "blob", "blob"]
