"""Migration alerts v4 on an SQLite database made before it: the alerts table is rebuilt with AUTOINCREMENT (its rows,
indexes and labels kept), so the id of an archived alert is never given to a new one."""

from __future__ import annotations

from sqlalchemy import MetaData, create_engine, select, text

from alerts.archive import archive_resolved
from alerts.store import _alerts_v1, _alerts_v2, _alerts_v4, alerts, alerts_archive
from tests.helpers.alert_rows import LABELS, EngineStore, alert_row


def test_v4_rebuilds_an_old_sqlite_alerts_table_so_archived_ids_are_never_reused(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    old = alerts.to_metadata(MetaData())
    old.dialect_options["sqlite"]["autoincrement"] = False  # the table as v1 created it before v4
    with engine.begin() as conn:
        _alerts_v1(conn)
        conn.execute(text("DROP TABLE alerts"))
        old.create(conn)
        assert "AUTOINCREMENT" not in conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'alerts'")).scalar()
        conn.execute(alerts.insert(), [alert_row(n, labels) for n, labels in enumerate(LABELS)])
        _alerts_v2(conn)
        _alerts_v4(conn)
        assert "AUTOINCREMENT" in conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'alerts'")).scalar()
        indexes = set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'alerts'"))
                      .scalars())
        assert {i.name for i in alerts.indexes} <= indexes
        assert [r.fingerprint for r in conn.execute(select(alerts).order_by(alerts.c.id))] == ["fp0", "fp1", "fp2"]
        newest = conn.execute(select(alerts.c.id).order_by(alerts.c.id.desc())).scalar()
        conn.execute(alerts.update().where(alerts.c.id == newest).values(state="resolved", resolved_ts=1.0))
    assert archive_resolved(EngineStore(engine), 100.0, 10.0, 10) == 1
    with engine.begin() as conn:
        assert conn.execute(select(alerts_archive.c.id)).scalars().all() == [newest]
        fresh = conn.execute(alerts.insert().values(**alert_row(9, {}))).inserted_primary_key[0]
    assert fresh > newest
