"""The driver-level bulk writes of storage/dialect.py store what SQLAlchemy's own executemany stores, and the inbox ids
they hand out stay right when several writers put records into one SQLite file at once."""

from __future__ import annotations

import threading

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, select

from core.models import RawRecord
from storage.dialect import delete_ids, insert_many, insert_returning_ids
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
