"""Grouping, muting, the durable outbox, retries with backoff, and an audit record for every decision.

Pipeline per alert (after Alertmanager's notify stages): inhibit → silence → route → group (wait) → time window →
dedup (group sequence) → outbox → send → retry/backoff. It never formats messages: notifiers do.

Durability: raising an alert, grouping it and enqueueing its notification are database writes; a notification is
marked `sending` before the network call and `sent` after it. A process that dies in between leaves `sending`
rows, which the next start puts back to `pending` — so delivery is at least once, and every re-send carries the
same dedup key (the e-mail Message-ID, the webhook Idempotency-Key) so receivers can fold the rare duplicate.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, and_, bindparam, or_, select, update

from alerts import route as routing
from alerts.archive import archived_fingerprints
from alerts.inhibit import Inhibitor
from alerts.notify.base import Message, Notifier, PartialNotifyError
from alerts.route import Route
from alerts.rules import AlertDraft, RuleEvaluator
from alerts.silence import Silencer
from alerts.store import alert_audit, alert_groups, alert_members, alert_outbox, alert_public, alerts, dumps, ts, write_labels
from alerts.timewindows import in_interval, next_change
from core.config_alerts import AlertsConfig, ReceiverConfig, TimeInterval
from core.errors import NotifyError
from core.metrics import ALERT_SEND_FAILURES, observe_alert_latency
from storage.base import StateStore

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    """One validated alerts config turned into objects; swapped whole on reload so a failed reload changes nothing."""

    config: AlertsConfig
    root: Route | None
    evaluator: RuleEvaluator
    inhibitor: Inhibitor
    intervals: dict[str, TimeInterval]
    notifiers: dict[tuple[str, str], Notifier] = field(default_factory=dict)

    def receiver(self, name: str) -> ReceiverConfig | None:
        return self.config.receiver(name)


def audit_row(now: float, decision: str, reason: str, *, alert_id: int | None = None, group_key: str | None = None,
              receiver: str | None = None, outbox_id: int | None = None, detail: dict | None = None) -> dict[str, Any]:
    return {"ts": now, "decision": decision, "reason": reason, "alert_id": alert_id, "group_key": group_key,
            "receiver": receiver, "outbox_id": outbox_id, "detail": dumps(detail) if detail is not None else None}


def audit(conn: Connection, now: float, decision: str, reason: str, **kw: Any) -> None:
    """Record one decision with its reason (the trail a manager reads in GET /api/alerts/audit)."""
    conn.execute(alert_audit.insert(), audit_row(now, decision, reason, **kw))


def resolve_rota(receiver: ReceiverConfig, now: datetime) -> str:
    """The member on duty now: shifts of `rota.shift` counted from `rota.start` at `rota.handover` (local time)."""
    from zoneinfo import ZoneInfo

    rota = receiver.rota
    assert rota is not None
    zone = ZoneInfo(rota.timezone)
    origin = datetime.combine(rota.start, rota.handover, tzinfo=zone)
    shifts = int((now - origin) // rota.shift) if now >= origin else 0
    return rota.members[shifts % len(rota.members)]


# The firing alerts of a set of groups (expanding IN), and the outbox rows holding some dedup keys: statements built
# once, so each execution skips SQLAlchemy's statement construction and cache-key work.
# The groups' members first (by their key), then each member's alert by id. The state is compared as `state || ''`
# on purpose: SQLite's planner, without statistics, takes the index on state for selective and walks every firing
# alert (tens of thousands after a burst: 8.7 s a pass at 48,000) probing the memberships, instead of the 100 groups'.
_FIRING_MEMBERS = (select(alerts, alert_members.c.notified_seq, alert_members.c.group_key)
                   .join(alert_members, alert_members.c.alert_id == alerts.c.id)
                   .where(alert_members.c.group_key.in_(bindparam("keys", expanding=True)),
                          alerts.c.state.concat("") == "firing")
                   .order_by(alert_members.c.group_key, alerts.c.id))
_OUTBOX_KEYS = select(alert_outbox.c.id, alert_outbox.c.dedup_key).where(
    alert_outbox.c.dedup_key.in_(bindparam("keys", expanding=True)))
_GROUP_UPDATE = alert_groups.update().where(alert_groups.c.key == bindparam("b_key")).values(
    seq=bindparam("seq"), last_notified_ts=bindparam("last_notified_ts"), next_flush_ts=bindparam("next_flush_ts"),
    next_repeat_ts=bindparam("next_repeat_ts"))
_MEMBER_NOTIFIED = update(alert_members).where(
    and_(alert_members.c.group_key == bindparam("b_key"), alert_members.c.alert_id == bindparam("b_alert"))
).values(notified_seq=bindparam("b_seq"))


# What one send did: the outbox row, the error (None: delivered), the parts delivered so far, and when.
Outcome = tuple[Any, NotifyError | None, int, datetime]


def group_dedup_key(group_key: str, seq: int) -> str:
    """The dedup key of a group's `seq`-th notification (each channel's outbox row appends receiver and channel)."""
    return hashlib.sha1(f"{group_key}\x1f{seq}".encode()).hexdigest()[:32]


@dataclass
class _FlushWrites:
    """What one flush pass writes, gathered per table and written with one executemany each, in one transaction."""

    audit: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    notified: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    muted: set[int] = field(default_factory=set)  # alerts muted by this pass: later groups skip them
    # Dedup keys the pass's notifications will have, looked up in one query before it (`Dispatcher._prefetch_keys`),
    # and those of them already in the outbox (key → row id): a burst of groups asked one query per group.
    checked: set[str] = field(default_factory=set)
    existing: dict[str, int] = field(default_factory=dict)

    def group(self, row: Any, **changes: Any) -> None:
        """The group's new schedule; columns not in `changes` keep the values read in this transaction."""
        self.groups.append({"b_key": row.key, "seq": row.seq, "last_notified_ts": row.last_notified_ts,
                            "next_flush_ts": row.next_flush_ts, "next_repeat_ts": row.next_repeat_ts, **changes})

    def write(self, conn: Connection) -> None:
        if self.outbox:
            conn.execute(alert_outbox.insert(), self.outbox)
        if self.notified:
            conn.execute(_MEMBER_NOTIFIED, self.notified)
        if self.groups:
            conn.execute(_GROUP_UPDATE, self.groups)
        if self.audit:
            conn.execute(alert_audit.insert(), self.audit)


_ARCHIVED = SimpleNamespace(state="resolved")  # what `raise_alerts` knows of an archived fingerprint


class Dispatcher:
    """Owns the group, member and outbox tables; the engine calls it with the current runtime and time."""

    def __init__(self, store: StateStore, silencer: Silencer, runtime: Callable[[], Runtime],
                 wake: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.silencer = silencer
        self.runtime = runtime
        self.wake = wake

    # The metrics of a send; a delivery process replaces both to report them to the service's /metrics.
    observe_latency: Callable[[str, list[dict], datetime], None] = staticmethod(observe_alert_latency)

    @staticmethod
    def count_failure(integration: str, status: str) -> None:
        ALERT_SEND_FAILURES.labels(integration=integration, status=status).inc()

    # ---- muting ------------------------------------------------------------------------------------------

    def mute_reason(self, labels: dict[str, str], now: datetime) -> str | None:
        rt = self.runtime()
        return rt.inhibitor.mutes(labels, now) or self.silencer.mutes(labels, now)

    # ---- raising and grouping ------------------------------------------------------------------------------

    def raise_alerts(self, drafts: list[AlertDraft], now: datetime) -> list[int]:
        """Store new alerts, mute or group them; known fingerprints only refresh their labels. No network.

        Statements are batched (executemany) because one burst can raise thousands of alerts at once.
        """
        rt = self.runtime()
        if not drafts or rt.root is None:
            return []
        moment = ts(now)
        with self.store.write() as conn:
            fps = list({d.fingerprint for d in drafts})
            known: dict[str, Any] = {}
            for start in range(0, len(fps), 500):
                rows = conn.execute(select(alerts.c.id, alerts.c.fingerprint, alerts.c.state)
                                    .where(alerts.c.fingerprint.in_(fps[start:start + 500]))).all()
                known.update({r.fingerprint: r for r in rows})
            # An archived alert was resolved: like a resolved one in the hot table, it is not raised again.
            known.update(dict.fromkeys(archived_fingerprints(conn, set(fps) - known.keys()), _ARCHIVED))
            refresh, fresh, reasons = [], [], {}
            refreshed_labels: dict[int, dict[str, str]] = {}
            for draft in drafts:
                existing = known.get(draft.fingerprint)
                if existing is not None:
                    if existing.state != "resolved":
                        refresh.append({"b_id": existing.id, "labels": dumps(draft.labels),
                                        "annotations": dumps(draft.annotations), "updated_ts": moment})
                        refreshed_labels[existing.id] = draft.labels
                    continue
                if draft.fingerprint in reasons:
                    continue  # the same fingerprint twice in one batch raises once
                reasons[draft.fingerprint] = self.mute_reason(draft.labels, now)
                rt.inhibitor.note_active(draft.labels)
                fresh.append(draft)
            if refresh:
                conn.execute(alerts.update().where(alerts.c.id == bindparam("b_id"))
                             .values(labels=bindparam("labels"), annotations=bindparam("annotations"),
                                     updated_ts=bindparam("updated_ts")), refresh)
                write_labels(conn, refreshed_labels, replace=True)
            if not fresh:
                return []
            conn.execute(alerts.insert(), [{
                "fingerprint": d.fingerprint, "rule": d.rule, "kind": d.kind, "severity": d.severity,
                "state": "silenced" if reasons[d.fingerprint] else "firing", "muted_by": reasons[d.fingerprint],
                "labels": dumps(d.labels), "annotations": dumps(d.annotations), "item_id": d.item_id,
                "event_id": d.event_id, "starts_ts": moment, "updated_ts": moment} for d in fresh])
            ids: dict[str, int] = {}
            new_fps = [d.fingerprint for d in fresh]
            for start in range(0, len(new_fps), 500):
                ids.update({r.fingerprint: r.id for r in conn.execute(
                    select(alerts.c.id, alerts.c.fingerprint).where(alerts.c.fingerprint.in_(new_fps[start:start + 500])))})
            write_labels(conn, {ids[d.fingerprint]: d.labels for d in fresh})
            trail: list[dict[str, Any]] = []
            members: list[dict[str, Any]] = []
            groups: dict[str, Any] = {}
            joins: list[tuple[Route, int, dict[str, str]]] = []
            for draft in fresh:
                alert_id = ids[draft.fingerprint]
                trail.append(audit_row(moment, "raise", f"rule {draft.rule} ({draft.kind}, {draft.severity})",
                                       alert_id=alert_id, detail={"item_id": draft.item_id, "event_id": draft.event_id}))
                if reason := reasons[draft.fingerprint]:
                    decision = "inhibit" if reason.startswith("inhibit") else "silence"
                    trail.append(audit_row(moment, decision, f"muted by {reason} when raised", alert_id=alert_id))
                joins.extend((matched, alert_id, draft.labels) for matched in routing.match(rt.root, draft.labels))
            self._load_groups(conn, groups, {route.group_key(labels) for route, _, labels in joins})
            for matched, alert_id, labels in joins:
                members.append(self._join_group(conn, groups, matched, alert_id, labels, moment, trail))
            self._write_groups(conn, groups)
            conn.execute(alert_members.insert(), members)
            conn.execute(alert_audit.insert(), trail)
        logger.info("alerts raised count=%d", len(fresh))
        self.wake()
        return [ids[d.fingerprint] for d in fresh]

    @staticmethod
    def _load_groups(conn: Connection, groups: dict[str, Any], keys: set[str]) -> None:
        """The stored groups among `keys`, read in a few IN queries rather than one query per alert (a burst of
        one-item groups raised thousands of single-row SELECTs)."""
        ordered = sorted(keys)
        for start in range(0, len(ordered), 500):
            for row in conn.execute(select(alert_groups).where(alert_groups.c.key.in_(ordered[start:start + 500]))):
                groups[row.key] = {"row": row, "insert": None, "flush": None, "decided": False}

    @staticmethod
    def _write_groups(conn: Connection, groups: dict[str, Any]) -> None:
        """The groups `_join_group` created or scheduled, written in two executemany statements."""
        inserts = [g["insert"] for g in groups.values() if g.get("insert")]
        if inserts:
            conn.execute(alert_groups.insert(), inserts)
        flushes = [{"b_key": key, "next_flush_ts": g["flush"]} for key, g in groups.items()
                   if g.get("flush") is not None and not g.get("insert")]
        if flushes:
            conn.execute(alert_groups.update().where(alert_groups.c.key == bindparam("b_key"))
                         .values(next_flush_ts=bindparam("next_flush_ts")), flushes)

    def _join_group(self, conn: Connection, groups: dict[str, Any], route: Route, alert_id: int,
                    labels: dict[str, str], moment: float, trail: list[dict[str, Any]]) -> dict[str, Any]:
        """Decide the alert's group (new, or scheduled anew) and return the member row to insert; `groups` holds the
        stored groups (`_load_groups`) and collects what `_write_groups` writes."""
        key = route.group_key(labels)
        entry = groups.get(key)
        if entry is not None and entry["decided"]:
            why = "joins a group already waiting to be notified"
        elif entry is None:
            groups[key] = {"row": None, "decided": True, "flush": None, "insert": {
                "key": key, "route_path": route.path, "receiver": route.receiver,
                "labels": dumps(route.group_labels(labels)), "created_ts": moment,
                "next_flush_ts": moment + route.group_wait.total_seconds(), "seq": 0}}
            why = f"new group, first notification after group_wait {route.group_wait}"
        else:
            group = entry["row"]
            entry["decided"] = True
            if group.next_flush_ts is None:
                if group.last_notified_ts is None:
                    entry["flush"] = moment + route.group_wait.total_seconds()
                else:
                    entry["flush"] = max(moment, group.last_notified_ts + route.group_interval.total_seconds())
                why = f"joins notified group, next notification after group_interval {route.group_interval}"
            else:
                why = "joins a group already waiting to be notified"
        trail.append(audit_row(moment, "group", f"route {route.path} → receiver {route.receiver}: {why}",
                               alert_id=alert_id, group_key=key, receiver=route.receiver))
        first_step = route.escalation[0].after.total_seconds() if route.escalation else None
        return {"group_key": key, "alert_id": alert_id, "notified_seq": 0, "escalation_level": 0,
                "next_escalation_ts": None if first_step is None else moment + first_step}

    def schedule_groups_of(self, conn: Connection, alert_ids: list[int], moment: float) -> None:
        """Groups holding these alerts notify at their next chance (used when alerts are un-muted)."""
        rt = self.runtime()
        keys = {r.group_key for r in conn.execute(select(alert_members.c.group_key)
                                                  .where(alert_members.c.alert_id.in_(alert_ids)))}
        for key in keys:
            group = conn.execute(select(alert_groups).where(alert_groups.c.key == key)).first()
            if group is None or group.next_flush_ts is not None:
                continue
            route = routing.find(rt.root, group.route_path) if rt.root else None
            interval = route.group_interval.total_seconds() if route else 0
            flush = moment if group.last_notified_ts is None else max(moment, group.last_notified_ts + interval)
            conn.execute(alert_groups.update().where(alert_groups.c.key == key).values(next_flush_ts=flush))

    # ---- flushing groups -----------------------------------------------------------------------------------

    def flush_due(self, now: datetime, groups_per_transaction: int = 100) -> int:
        """Turn due groups (group_wait/group_interval passed, or repeat_interval passed) into outbox rows.

        Up to `groups_per_transaction` groups share one write transaction: each group's flush is all-or-nothing
        either way, and a burst of one-item groups does not pay one commit per group. Their firing alerts are read
        in one query and what they write (outbox rows, group and member updates, audit) goes in one executemany per
        table (`_FlushWrites`): a burst of one-alert groups spent ~2 ms per group on eight single-row statements.
        """
        moment = ts(now)
        g = alert_groups.c
        # Two range reads, one per index: an OR of the two made SQLite walk every group (one per item alert after a
        # burst: 170 ms a pass at 49,000 groups). The order is that of `ORDER BY next_flush_ts`, unset first.
        with self.store.read() as conn:
            due = {r.key: r.next_flush_ts for column in (g.next_flush_ts, g.next_repeat_ts)
                   for r in conn.execute(select(g.key, g.next_flush_ts).where(column <= moment)
                                         .order_by(column).limit(1000))}
        keys = sorted(due, key=lambda k: (due[k] is not None, due[k] or 0.0))[:1000]
        sent = 0
        for start in range(0, len(keys), groups_per_transaction):
            chunk = keys[start:start + groups_per_transaction]
            with self.store.write() as conn:
                groups = conn.execute(select(alert_groups).where(g.key.in_(chunk)).order_by(g.next_flush_ts)).all()
                firing: dict[str, list[Any]] = {}
                for row in conn.execute(_FIRING_MEMBERS, {"keys": chunk}):
                    firing.setdefault(row.group_key, []).append(row)
                writes = _FlushWrites()
                self._prefetch_keys(conn, groups, writes)
                for group in groups:
                    sent += self._flush(conn, group, now, firing.get(group.key, []), writes)
                writes.write(conn)
            if writes.outbox:
                self.wake()
        return sent

    def _prefetch_keys(self, conn: Connection, groups: list[Any], writes: _FlushWrites) -> None:
        """The outbox keys the groups' next notifications will have (a rota receiver's are known only when it is
        resolved: `enqueue` looks those up itself), and which of them exist already."""
        rt = self.runtime()
        keys: list[str] = []
        for group in groups:
            receiver = rt.receiver(group.receiver)
            if receiver is not None and receiver.rota is None:
                base = group_dedup_key(group.key, group.seq + 1)
                keys.extend(f"{base}:{group.receiver}:{integration}" for integration in receiver.integrations())
        writes.checked.update(keys)
        for start in range(0, len(keys), 500):
            writes.existing.update({r.dedup_key: r.id for r in conn.execute(_OUTBOX_KEYS, {"keys": keys[start:start + 500]})})

    def _flush(self, conn: Connection, group: Any, now: datetime, rows: list[Any], writes: _FlushWrites) -> int:
        """One group's notification decision; `rows` are its firing alerts (read with the others of the pass) and
        what it writes is gathered in `writes`."""
        rt = self.runtime()
        moment = ts(now)
        trail = writes.audit
        repeat_due = group.next_repeat_ts is not None and group.next_repeat_ts <= moment
        flush_due = group.next_flush_ts is not None and group.next_flush_ts <= moment
        route = routing.find(rt.root, group.route_path) if rt.root else None
        if route is None or route.receiver != group.receiver:
            writes.group(group, next_flush_ts=None, next_repeat_ts=None)
            trail.append(audit_row(moment, "skip", f"route {group.route_path} → {group.receiver} no longer exists "
                                   "after a reload; its alerts stay listed in the API", group_key=group.key,
                                   receiver=group.receiver))
            return 0
        firing, newly_muted = [], []
        for row in rows:
            if row.id in writes.muted:  # muted by an earlier group of this pass
                continue
            reason = self.mute_reason(json.loads(row.labels), now)
            if reason:
                newly_muted.append(row.id)
                writes.muted.add(row.id)
                conn.execute(alerts.update().where(alerts.c.id == row.id).values(state="silenced", muted_by=reason,
                                                                                 updated_ts=moment))
                decision = "inhibit" if reason.startswith("inhibit") else "silence"
                trail.append(audit_row(moment, decision, f"muted by {reason} before notifying", alert_id=row.id,
                                       group_key=group.key, receiver=group.receiver))
            else:
                firing.append(row)
        if newly_muted:
            rt.inhibitor.invalidate()
        new = [r for r in firing if r.notified_seq == 0]
        if not new and not (repeat_due and firing):
            writes.group(group, next_flush_ts=None,
                         next_repeat_ts=group.next_repeat_ts if firing and not repeat_due else None)
            if flush_due or repeat_due:
                trail.append(audit_row(moment, "skip", "nothing to notify: no new firing alerts and nothing left to "
                                       "repeat (acknowledged, resolved or muted)", group_key=group.key,
                                       receiver=group.receiver))
            return 0
        window_ok, why = self.window_allows(route, now)
        critical = any(r.severity == "critical" for r in firing) and rt.config.critical_ignores_quiet_hours
        if not window_ok and not critical:
            resume = next_change(lambda t: self.window_allows(route, t)[0], now)
            held = ts(resume) if resume else None
            writes.group(group, next_flush_ts=held if new else None,
                         next_repeat_ts=held if repeat_due else group.next_repeat_ts)
            trail.append(audit_row(moment, "defer", f"{why}; held until "
                                   f"{resume.isoformat() if resume else 'never (no window ahead)'}",
                                   group_key=group.key, receiver=group.receiver, detail={"alerts": len(firing)}))
            return 0
        seq = group.seq + 1
        kind = "alert" if new else "repeat"
        ordered = new + [r for r in firing if r.notified_seq != 0]
        cap = rt.config.max_alerts_per_message
        snapshot = [alert_public(r) for r in ordered[:cap]]
        base_key = group_dedup_key(group.key, seq)
        message = Message(kind=kind, dedup_key=base_key, receiver=group.receiver, alerts=snapshot, total=len(firing),
                          new=len(new), group_key=group.key, group_labels=json.loads(group.labels),
                          public_url=rt.config.public_url)
        rows_made = self.enqueue(conn, message, now, writes=writes)
        writes.notified.extend({"b_key": group.key, "b_alert": r.id, "b_seq": seq} for r in new)
        writes.group(group, seq=seq, last_notified_ts=moment, next_flush_ts=None,
                     next_repeat_ts=moment + route.repeat_interval.total_seconds())
        override = " (critical: quiet hours ignored)" if not window_ok else ""
        trail.append(audit_row(moment, "send" if kind == "alert" else "repeat",
                               f"{len(new)} new, {len(firing)} firing in group → {rows_made} outbox row(s){override}",
                               group_key=group.key, receiver=group.receiver,
                               detail={"alert_ids": [r.id for r in ordered[:100]], "total": len(firing),
                                       "dedup_key": base_key}))
        return rows_made

    def window_allows(self, route: Route, now: datetime) -> tuple[bool, str]:
        rt = self.runtime()
        for name in route.mute_time_intervals:
            interval = rt.intervals.get(name)
            if interval and in_interval(interval, now):
                return False, f"inside mute window {name!r}"
        active = [rt.intervals[n] for n in route.active_time_intervals if n in rt.intervals]
        if route.active_time_intervals and not any(in_interval(i, now) for i in active):
            return False, f"outside active windows {route.active_time_intervals}"
        return True, ""

    # ---- outbox ----------------------------------------------------------------------------------------------

    def enqueue(self, conn: Connection, message: Message, now: datetime, receiver_name: str | None = None,
                *, writes: _FlushWrites | None = None) -> int:
        """One outbox row per channel of the receiver (a rota resolves to the member on duty). Returns rows made.
        With `writes` (a flush pass) the rows and their audit are gathered there and written by the pass."""
        rt = self.runtime()
        moment = ts(now)
        trail: list[dict[str, Any]] = writes.audit if writes is not None else []
        name = receiver_name or message.receiver
        receiver = rt.receiver(name)
        if receiver is not None and receiver.rota is not None:
            member = resolve_rota(receiver, now)
            trail.append(audit_row(moment, "route", f"rota {name!r} resolves to {member!r} on duty", receiver=name,
                                   group_key=message.group_key))
            name = member
            receiver = rt.receiver(member)
        made: list[dict[str, Any]] = []
        if receiver is None:
            trail.append(audit_row(moment, "fail", f"receiver {name!r} is not configured; notification not sent",
                                   receiver=name, group_key=message.group_key))
        else:
            message.receiver = name
            keys = {integration: f"{message.dedup_key}:{name}:{integration}" for integration in receiver.integrations()}
            if writes is not None and writes.checked.issuperset(keys.values()):
                existing = {key: writes.existing[key] for key in keys.values() if key in writes.existing}
            else:
                existing = {r.dedup_key: r.id for r in conn.execute(_OUTBOX_KEYS, {"keys": list(keys.values())})}
            payload = message.payload()
            for integration, key in keys.items():
                if key in existing:
                    trail.append(audit_row(moment, "skip", "duplicate notification (same dedup key) not enqueued again",
                                           receiver=name, outbox_id=existing[key]))
                    continue
                made.append({"dedup_key": key, "kind": message.kind, "receiver": name, "integration": integration,
                             "group_key": message.group_key, "payload": dumps({**payload, "dedup_key": key}),
                             "status": "pending", "attempts": 0, "parts_done": 0, "next_attempt_ts": moment,
                             "created_ts": moment, "last_error": None, "sent_ts": None})
        if writes is not None:
            writes.outbox.extend(made)
            return len(made)
        if made:
            conn.execute(alert_outbox.insert(), made)
        if trail:
            conn.execute(alert_audit.insert(), trail)
        if made:
            self.wake()
        return len(made)

    def resume_interrupted(self, now: datetime, alive: Callable[[str], bool] | None = None,
                           keep: set[int] | frozenset[int] = frozenset(), *, claimer: str | None = None) -> int:
        """Rows left `sending` by a process that died mid-send go back to `pending` (at-least-once).

        `alive(instance)`: with several instances, only rows claimed by an instance that is gone (or by no known one)
        are resumed; those of a live instance are still being sent. Without it every `sending` row is resumed.
        `keep`: rows this process is sending right now, never resumed. `claimer`: only the rows claimed under that
        name (a delivery process restarting resumes what its previous run left, alerts/delivery.py)."""
        moment = ts(now)
        o = alert_outbox.c
        with self.store.read() as conn:
            claimers = [r.claimed_by for r in conn.execute(select(o.claimed_by).where(o.status == "sending").distinct())]
        if claimer is not None:
            claimers = [c for c in claimers if c == claimer]
        if not claimers:
            return 0
        gone = [c for c in claimers if c is None or alive is None or not alive(c)]
        if not gone:
            return 0
        named = [c for c in gone if c is not None]
        whose = o.claimed_by.in_(named) if named else None
        if None in gone:
            whose = o.claimed_by.is_(None) if whose is None else or_(whose, o.claimed_by.is_(None))
        with self.store.write() as conn:
            rows = [r for r in conn.execute(select(o.id, o.receiver, o.claimed_by).where(o.status == "sending", whose))
                    if r.id not in keep]
            for row in rows:
                conn.execute(alert_outbox.update().where(o.id == row.id, o.status == "sending")
                             .values(status="pending", next_attempt_ts=moment, claimed_by=None))
                audit(conn, moment, "resume", "was being sent when the previous process stopped; sending again "
                      "with the same dedup key", receiver=row.receiver, outbox_id=row.id)
        return len(rows)

    def requeue(self, now: datetime, *, by: str, ids: list[int] | None = None) -> list[int]:
        """Put given-up notifications (`dead` after the retries ran out, or `failed`) back to `pending`, due now, with
        their attempts reset: after a receiver's outage is fixed, nothing is lost for good. Each is audited with who
        asked. `ids` None: every given-up row. Returns the ids re-queued."""
        o = alert_outbox.c
        moment = ts(now)
        given_up = o.status.in_(("dead", "failed"))
        with self.store.write() as conn:
            query = select(o.id, o.receiver, o.status, o.attempts).where(given_up)
            if ids is not None:
                query = query.where(o.id.in_(ids))
            rows = conn.execute(query.order_by(o.id)).all()
            for row in rows:
                conn.execute(alert_outbox.update().where(o.id == row.id, given_up).values(
                    status="pending", attempts=0, next_attempt_ts=moment))
            if rows:
                conn.execute(alert_audit.insert(), [audit_row(
                    moment, "requeue", f"re-queued by {by}: was {row.status} after {row.attempts} attempts; sent again "
                    "with the same dedup key", receiver=row.receiver, outbox_id=row.id) for row in rows])
        if rows:
            self.wake()
        return [row.id for row in rows]

    def claim_batches(self, now: datetime, *, limit: int = 100, workers: int = 4, batch_size: int = 25,
                      claimer: str | None = None, only: tuple[str, ...] | None = None,
                      skip: tuple[str, ...] = ()) -> list[list[int]]:
        """Mark due rows `sending` (committed before any network call) and split them into per-channel batches.

        Rows of one receiver's channel are spread over up to `workers` batches of at most `batch_size`, oldest first,
        so each send worker can push its batch down one reused connection. On PostgreSQL the rows are read
        `FOR UPDATE SKIP LOCKED`, so instances claiming at once each get different rows (SQLite has one writer).
        `claimer`: this instance's id, kept on the rows so only a dead instance's claims are ever resumed.
        `only` / `skip`: claim only rows of these integrations / none of these (the delivery process sends the
        network channels, the service process the in-app one).
        """
        moment = ts(now)
        o = alert_outbox.c
        with self.store.write() as conn:
            query = select(o.id, o.receiver, o.integration).where(o.status == "pending", o.next_attempt_ts <= moment)
            if only is not None:
                query = query.where(o.integration.in_(only))
            if skip:
                query = query.where(o.integration.not_in(skip))
            query = query.order_by(o.next_attempt_ts, o.id).limit(limit)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = conn.execute(query).all()
            ids = [r.id for r in rows]
            for start in range(0, len(ids), 500):
                conn.execute(alert_outbox.update().where(o.id.in_(ids[start:start + 500]), o.status == "pending")
                             .values(status="sending", claimed_by=claimer))
        channels: dict[tuple[str, str], list[int]] = {}
        for row in rows:
            channels.setdefault((row.receiver, row.integration), []).append(row.id)
        batches = []
        for channel_ids in channels.values():
            size = max(1, min(batch_size, math.ceil(len(channel_ids) / workers)))
            batches.extend(channel_ids[start:start + size] for start in range(0, len(channel_ids), size))
        return batches

    def deliver(self, outbox_id: int, clock: Callable[[], datetime]) -> str:
        """Send one claimed row and record the outcome; returns the new status."""
        return self.deliver_many([outbox_id], clock).get(outbox_id, "missing")

    def deliver_many(self, outbox_ids: list[int], clock: Callable[[], datetime], *, record_every: float = 1.0,
                     record: Callable[[list[Outcome]], None] | None = None) -> dict[int, str]:
        """Send claimed rows one after another and record their outcomes, several per write transaction.

        Outcomes are committed at least every `record_every` seconds and at the end. A row whose outcome is not
        committed yet is still `sending`: after a crash it is resumed and sent again with the same dedup key, so
        batching the records keeps delivery at least once. `record`: hand the outcomes to it instead (it writes
        them with `record_outcomes`, e.g. those of every send worker in one transaction); nothing is returned then.
        """
        rt = self.runtime()

        def write(done: list[Outcome]) -> dict[int, str]:
            if record is None:
                return self.record_outcomes(rt, done)
            record(done)
            return {}

        o = alert_outbox.c
        with self.store.read() as conn:
            rows = conn.execute(select(alert_outbox).where(o.id.in_(outbox_ids)).order_by(o.id)).all()
        statuses: dict[int, str] = {}
        done: list[Outcome] = []
        last_record = time.monotonic()
        for row in rows:
            error, parts_done = self._send(rt, row)
            done.append((row, error, parts_done, clock()))
            if time.monotonic() - last_record >= record_every:
                statuses.update(write(done))
                done = []
                last_record = time.monotonic()
        if done:
            statuses.update(write(done))
        return statuses

    def _send(self, rt: Runtime, row: Any) -> tuple[NotifyError | None, int]:
        """One network delivery of an outbox row: (error or None, parts delivered so far)."""
        notifier = rt.notifiers.get((row.receiver, row.integration))
        if notifier is None:
            return NotifyError(f"receiver {row.receiver!r} has no {row.integration} channel in the current config",
                               recoverable=False), row.parts_done
        message = Message.from_payload(json.loads(row.payload), parts_done=row.parts_done)
        try:
            notifier.send(message)
        except PartialNotifyError as exc:
            return exc, exc.parts_done
        except NotifyError as exc:
            return exc, row.parts_done
        except Exception as exc:  # noqa: BLE001 - a notifier bug must be recorded, not crash the dispatcher
            logger.exception("notifier crashed receiver=%s integration=%s", row.receiver, row.integration)
            return NotifyError(f"notifier error {exc.__class__.__name__}: {exc}", recoverable=False), row.parts_done
        if message.kind == "alert":  # repeats and notices would measure the repeat interval, not the latency
            self.observe_latency(row.integration, message.alerts[:message.new], datetime.now(UTC))
        return None, row.parts_done

    def record_outcomes(self, rt: Runtime, done: list[Outcome]) -> dict[int, str]:
        """Outcomes of sends in one write transaction: sent, pending again (backoff) or given up; each audited."""
        o = alert_outbox.c
        statuses: dict[int, str] = {}
        sent: list[dict[str, Any]] = []
        trail: list[dict[str, Any]] = []
        with self.store.write() as conn:
            for row, error, parts_done, now in done:
                moment = ts(now)
                attempts = row.attempts + 1
                if error is None:
                    sent.append({"b_id": row.id, "sent_ts": moment, "attempts": attempts})
                    trail.append(audit_row(moment, "sent", f"delivered by {row.integration} (attempt {attempts})",
                                           receiver=row.receiver, outbox_id=row.id, group_key=row.group_key))
                    logger.info("alert sent receiver=%s integration=%s outbox=%d", row.receiver, row.integration, row.id)
                    statuses[row.id] = "sent"
                    continue
                retry = rt.config.retry
                if error.recoverable and attempts < retry.max_attempts:
                    delay = min(retry.initial.total_seconds() * retry.multiplier ** (attempts - 1),
                                retry.max_delay.total_seconds())
                    conn.execute(alert_outbox.update().where(o.id == row.id).values(
                        status="pending", attempts=attempts, parts_done=parts_done, last_error=error.message,
                        next_attempt_ts=moment + delay))
                    trail.append(audit_row(moment, "retry", f"{error.message}; recoverable, attempt {attempts} of "
                                           f"{retry.max_attempts}, next in {timedelta(seconds=round(delay))}",
                                           receiver=row.receiver, outbox_id=row.id))
                    logger.warning("alert send failed, will retry receiver=%s integration=%s attempts=%d",
                                   row.receiver, row.integration, attempts)
                    statuses[row.id] = "pending"
                    self.count_failure(row.integration, "pending")
                    continue
                status = "dead" if error.recoverable else "failed"
                why = f"gave up after {attempts} attempts" if error.recoverable else "permanent failure, not retried"
                conn.execute(alert_outbox.update().where(o.id == row.id).values(
                    status=status, attempts=attempts, parts_done=parts_done, last_error=error.message))
                trail.append(audit_row(moment, "fail", f"{error.message}; {why}", receiver=row.receiver, outbox_id=row.id))
                logger.error("alert send failed for good receiver=%s integration=%s status=%s", row.receiver,
                             row.integration, status)
                statuses[row.id] = status
                self.count_failure(row.integration, status)
            if sent:
                conn.execute(alert_outbox.update().where(o.id == bindparam("b_id")).values(
                    status="sent", sent_ts=bindparam("sent_ts"), attempts=bindparam("attempts"), last_error=None), sent)
            if trail:
                conn.execute(alert_audit.insert(), trail)
        return statuses
