"""Escalation: an alert nobody acknowledged within a step's `after` (counted from when it started firing) is
re-sent to that step's receiver — e.g. the section chief after 15 minutes, the leader on duty after 30."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select

from alerts import route as routing
from alerts.dispatch import Dispatcher, audit
from alerts.notify.base import Message
from alerts.store import alert_groups, alert_members, alert_public, alerts, ts


class Escalator:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def escalate_due(self, now: datetime) -> int:
        """Send due escalations, one message per (receiver, level); returns the number of alerts escalated."""
        rt = self.dispatcher.runtime()
        moment = ts(now)
        m = alert_members.c
        escalated = 0
        with self.dispatcher.store.write() as conn:
            rows = conn.execute(
                select(alerts, m.group_key, m.escalation_level, alert_groups.c.route_path)
                .join(alert_members, m.alert_id == alerts.c.id)
                .join(alert_groups, alert_groups.c.key == m.group_key)
                .where(m.next_escalation_ts <= moment)
                .order_by(alerts.c.id).limit(5000)
            ).all()
            batches: dict[tuple[str, int], list[Any]] = defaultdict(list)
            for row in rows:
                chain = []
                node = routing.find(rt.root, row.route_path) if rt.root else None
                if node is not None:
                    chain = node.escalation
                key = and_(m.group_key == row.group_key, m.alert_id == row.id)
                if row.state != "firing" or row.escalation_level >= len(chain):
                    conn.execute(alert_members.update().where(key).values(next_escalation_ts=None))
                    continue
                level = row.escalation_level
                step = chain[level]
                following = chain[level + 1].after.total_seconds() if level + 1 < len(chain) else None
                conn.execute(alert_members.update().where(key).values(
                    escalation_level=level + 1,
                    next_escalation_ts=None if following is None else row.starts_ts + following))
                audit(conn, moment, "escalate", f"not acknowledged within {step.after}; level {level + 1} → "
                      f"receiver {step.receiver}", alert_id=row.id, group_key=row.group_key, receiver=step.receiver)
                batches[(step.receiver, level + 1)].append(row)
                escalated += 1
            for (receiver, level), members in batches.items():
                ids = sorted({r.id for r in members})
                key = hashlib.sha1(f"escalation\x1f{receiver}\x1f{level}\x1f{ids}".encode()).hexdigest()[:32]
                unique = {r.id: r for r in members}
                message = Message(kind="escalation", dedup_key=key, receiver=receiver,
                                  alerts=[alert_public(r) for r in list(unique.values())[:rt.config.max_alerts_per_message]],
                                  total=len(unique), escalation_level=level, public_url=rt.config.public_url)
                self.dispatcher.enqueue(conn, message, now)
        return escalated
