"""Resolved alerts leave the hot tables some time after their resolution (`alerts.archive`).

The dispatcher's tick, inhibition and the lists of open alerts read the `alerts` table; left there, every alert ever
resolved would make them grow with history. A pass moves at most `batch` alerts resolved more than `after` ago, with
their labels, to `alerts_archive` and `alert_labels_archive` (same ids, so links and the audit trail still resolve),
and drops their group memberships (the groups stay: their sequence numbers key the notifications already sent). The
reads (`AlertReader.get`, lists without a state or with `resolved`, reports' periods) look in both tables; a
fingerprint found in the archive is not raised again, as a resolved one in the hot table is not.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, select

from alerts.store import alert_labels, alert_labels_archive, alert_members, alerts, alerts_archive
from storage.base import StateStore

CHECK_EVERY_S = 60.0  # an idle dispatcher looks for alerts to archive once a minute (one indexed query)


def archive_resolved(store: StateStore, now: float, after_s: float, batch: int) -> int:
    """Move up to `batch` alerts resolved before `now - after_s`, oldest resolution first; returns how many."""
    with store.write() as conn:
        rows = conn.execute(select(alerts).where(alerts.c.resolved_ts < now - after_s)
                            .order_by(alerts.c.resolved_ts).limit(batch)).all()
        if not rows:
            return 0
        ids = [row.id for row in rows]
        conn.execute(alerts_archive.insert(), [{**row._mapping, "archived_ts": now} for row in rows])
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            labels = [dict(r._mapping) for r in conn.execute(select(alert_labels).where(alert_labels.c.alert_id.in_(chunk)))]
            if labels:
                conn.execute(alert_labels_archive.insert(), labels)
            conn.execute(alert_labels.delete().where(alert_labels.c.alert_id.in_(chunk)))
            conn.execute(alert_members.delete().where(alert_members.c.alert_id.in_(chunk)))
            conn.execute(alerts.delete().where(alerts.c.id.in_(chunk)))
    return len(ids)


def archived_fingerprints(conn: Connection, fingerprints: Iterable[str]) -> set[str]:
    """Those of `fingerprints` that belong to archived alerts."""
    wanted = sorted(set(fingerprints))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        found.update(conn.execute(select(alerts_archive.c.fingerprint)
                                  .where(alerts_archive.c.fingerprint.in_(wanted[start:start + 500]))).scalars())
    return found
