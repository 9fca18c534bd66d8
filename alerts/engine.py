"""The alert engine: one object the service, the API and the dispatcher worker talk to.

It holds the current `Runtime` (swapped whole on reload), the silencer, the dispatcher and the escalator, and runs
one `tick(now)` of time-driven work: un-mute, source health, silence notices, group flushes, escalations, sends.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select

from alerts.archive import CHECK_EVERY_S as ARCHIVE_CHECK_EVERY_S
from alerts.archive import archive_resolved
from alerts.clock import Clock, SystemClock
from alerts.dispatch import Dispatcher, Runtime, audit
from alerts.escalation import Escalator
from alerts.inhibit import Inhibitor
from alerts.notify.base import Message, Notifier
from alerts.notify.dingtalk import DingTalkNotifier
from alerts.notify.email import EmailNotifier
from alerts.notify.inapp import Broadcaster, InAppNotifier
from alerts.notify.webhook import WebhookNotifier
from alerts.notify.wecom import WeComNotifier
from alerts.route import build
from alerts.rules import AlertDraft, DeadlineNotice, RuleEvaluator
from alerts.silence import Silencer, silence_notice_text
from alerts.store import AlertReader, alert_labels, alert_public, alert_silences, alerts, ts
from core.config_alerts import AlertsConfig, RuleConfig
from core.errors import ConfigError, InputError, NotFound, NotifyError
from core.models import SourceStatus
from core.ports import EventHeat, SourceHealthProvider
from storage.base import Store

logger = logging.getLogger(__name__)


class AlertStateError(InputError):
    """The alert cannot move to the requested state (e.g. acknowledging a resolved alert)."""

    status = 409


def close_notifiers(runtime: Runtime) -> None:
    """Channels holding connections (e-mail) close their idle ones; sends still running finish normally."""
    for notifier in runtime.notifiers.values():
        close = getattr(notifier, "close", None)
        if callable(close):
            close()


def build_notifiers(config: AlertsConfig, broadcaster: Broadcaster | None) -> dict[tuple[str, str], Notifier]:
    """A notifier per receiver channel; the in-app ones only with a `broadcaster` (the delivery process has none)."""
    notifiers: dict[tuple[str, str], Notifier] = {}
    for receiver in config.receivers:
        if receiver.email:
            smtp = receiver.email.smtp or config.smtp
            assert smtp is not None  # guaranteed by AlertsConfig validation
            notifiers[(receiver.name, "email")] = EmailNotifier(receiver.email, smtp, pool_size=config.send_workers)
        if receiver.webhook:
            notifiers[(receiver.name, "webhook")] = WebhookNotifier(receiver.webhook, pool_size=config.send_workers)
        if receiver.wecom:
            notifiers[(receiver.name, "wecom")] = WeComNotifier(receiver.wecom)
        if receiver.dingtalk:
            notifiers[(receiver.name, "dingtalk")] = DingTalkNotifier(receiver.dingtalk)
        if receiver.inapp and broadcaster is not None:
            notifiers[(receiver.name, "inapp")] = InAppNotifier(receiver.inapp, broadcaster)
    return notifiers


class AlertEngine:
    def __init__(self, config: AlertsConfig, store: Store, *, clock: Clock | None = None,
                 broadcaster: Broadcaster | None = None,
                 source_health: SourceHealthProvider | None = None,
                 event_heat: EventHeat | None = None) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.broadcaster = broadcaster or Broadcaster()
        self.source_health = source_health  # hook: the crawler's per-source health; None until it is wired
        self.event_heat = event_heat
        self.source_health_interval = timedelta(minutes=1)
        self._last_health_check: datetime | None = None
        self.wakeup = threading.Event()
        self._runtime = self.build_runtime(config)
        self.silencer = Silencer(store)
        self.dispatcher = Dispatcher(store, self.silencer, lambda: self._runtime, wake=self.wakeup.set)
        self.escalator = Escalator(self.dispatcher)
        self.reader = AlertReader(store)
        self._tick_lock = threading.Lock()
        # Called with the newly raised alerts (id, rule, kind, labels, item_id, event_id, starts_ts) after they are
        # stored, e.g. to start response plans. A failing callback is logged and never undoes the alerts.
        self.on_raised: list[Callable[[list[dict[str, Any]]], None]] = []
        self._next_archive_ts: float | None = None  # when archive_due next looks (None: at the next tick)
        self._unmute_checked: Inhibitor | None = None  # the inhibitor whose lost sources were last looked at
        # Several instances (storage/cluster.py): a mark every instance bumps when alerts or silences change, so the
        # others drop their cached silences and inhibiting alerts before they next mute or raise.
        self._shared: Any = None
        self._seen_change: str | None = None
        self._syncing = False
        self._hook_invalidation()

    # ---- several instances -------------------------------------------------------------------------------------

    CHANGE_MARK = "alerts:changed"

    def share_with(self, cluster: Any) -> None:
        """Keep the caches in step with other instances sharing the state database (`cluster`: ClusterLocks; None
        alone, where no read is added to an idle tick)."""
        self._shared = cluster
        if cluster is not None:
            with self.store.read() as conn:
                self._seen_change = cluster.read_mark(conn, self.CHANGE_MARK)

    def _hook_invalidation(self) -> None:
        self.silencer.on_invalidate = self._changed
        self._runtime.inhibitor.on_invalidate = self._changed

    def _changed(self) -> None:
        """A local cache was invalidated because something changed: tell the other instances."""
        if self._shared is None or self._syncing:
            return
        import uuid

        mark = uuid.uuid4().hex
        with self.store.write() as conn:  # joins the transaction that made the change, when one is open
            self._shared.write_mark(conn, self.CHANGE_MARK, mark)
        self._seen_change = mark

    def _sync(self) -> None:
        """Drop cached silences and inhibiting alerts when another instance changed them."""
        if self._shared is None:
            return
        with self.store.read() as conn:
            current = self._shared.read_mark(conn, self.CHANGE_MARK)
        if current == self._seen_change:
            return
        self._seen_change = current
        self._syncing = True
        try:
            self.silencer.invalidate()
            self._runtime.inhibitor.invalidate()
        finally:
            self._syncing = False

    # ---- config --------------------------------------------------------------------------------------------

    @property
    def runtime(self) -> Runtime:
        return self._runtime

    @property
    def config(self) -> AlertsConfig:
        return self._runtime.config

    def build_runtime(self, config: AlertsConfig) -> Runtime:
        """Objects for a validated config; anything that cannot be built is a ConfigError (and nothing changes)."""
        notifiers = build_notifiers(config, self.broadcaster)
        return Runtime(
            config=config,
            root=build(config.route) if config.route else None,
            evaluator=RuleEvaluator(config.rules, public_url=config.public_url, store=self.store,
                                    event_heat=self.event_heat),
            inhibitor=Inhibitor(config.inhibit_rules, self.store),
            intervals={t.name: t for t in config.time_intervals},
            notifiers=notifiers,
        )

    def reload(self, config: AlertsConfig | dict) -> dict[str, Any]:
        """Swap in a new config; on any error the old rules, routes and receivers stay in force."""
        from pydantic import ValidationError

        from core.config import format_validation_error

        try:
            validated = config if isinstance(config, AlertsConfig) else AlertsConfig.model_validate(config)
            runtime = self.build_runtime(validated)
        except ValidationError as exc:
            error = format_validation_error("alerts", exc)
            self._audit("reload", f"rejected, old config kept: {error.message}")
            raise error from exc
        except ConfigError as exc:
            self._audit("reload", f"rejected, old config kept: {exc.message}")
            raise
        replaced, self._runtime = self._runtime, runtime
        self._hook_invalidation()
        close_notifiers(replaced)
        self._audit("reload", f"applied: {len(validated.rules)} rules, {len(validated.receivers)} receivers")
        self.wakeup.set()
        return {"rules": len(validated.rules), "receivers": len(validated.receivers)}

    def _audit(self, decision: str, reason: str, **kw: Any) -> None:
        with self.store.write() as conn:
            audit(conn, ts(self.clock.now()), decision, reason, **kw)

    # ---- raising ---------------------------------------------------------------------------------------------

    def evaluate(self, items: list) -> list[int]:
        """Rules over stored items → alerts in the store (grouped, muted or queued). No network."""
        if not self.config.enabled:
            return []
        now = self.clock.now()
        drafts = self._runtime.evaluator.evaluate(items, now)
        self._sync()
        return self._raised(self.dispatcher.raise_alerts(drafts, now))

    def raise_drafts(self, drafts: list[AlertDraft]) -> list[int]:
        self._sync()
        return self._raised(self.dispatcher.raise_alerts(drafts, self.clock.now()))

    def raise_deadlines(self, notices: list[DeadlineNotice]) -> list[int]:
        """Plan clock notices → alerts through the `deadline` rules and the usual routing (no rule, no alert)."""
        if not self.config.enabled:
            return []
        return self.raise_drafts(self._runtime.evaluator.evaluate_deadlines(notices))

    def _raised(self, ids: list[int]) -> list[int]:
        if ids:
            self._changed()  # new firing alerts may inhibit others
        if ids and self.on_raised:
            rows: list[dict[str, Any]] = []
            # write(), not read(): the after-store stage raises inside the store's transaction (flow/after_store.py),
            # and only that transaction's connection sees the alerts before it commits.
            with self.store.write() as conn:
                for start in range(0, len(ids), 500):
                    rows.extend({"id": r.id, "rule": r.rule, "kind": r.kind, "severity": r.severity,
                                 "labels": json.loads(r.labels), "annotations": json.loads(r.annotations),
                                 "item_id": r.item_id, "event_id": r.event_id, "starts_ts": r.starts_ts}
                                for r in conn.execute(select(alerts).where(alerts.c.id.in_(ids[start:start + 500]))))
            for callback in list(self.on_raised):
                try:
                    callback(rows)
                except Exception:  # noqa: BLE001 - the alerts are stored and routed whatever a listener does
                    logger.exception("on_raised callback failed callback=%s", getattr(callback, "__name__", callback))
        return ids

    def check_sources(self, health: list[SourceStatus]) -> None:
        """Operations alerts for unhealthy sources; alerts of sources healthy again are resolved."""
        drafts, healthy = self._runtime.evaluator.evaluate_sources(health)
        self.raise_drafts(drafts)
        if healthy:
            now = self.clock.now()
            with self.store.write() as conn:
                rows = conn.execute(select(alerts.c.id).where(alerts.c.fingerprint.in_(healthy),
                                                              alerts.c.state != "resolved")).all()
                for row in rows:
                    conn.execute(alerts.update().where(alerts.c.id == row.id).values(
                        state="resolved", resolved_by="yuqing", resolved_ts=ts(now), updated_ts=ts(now)))
                    audit(conn, ts(now), "resolve", "source healthy again", alert_id=row.id)

    # ---- the time-driven work ----------------------------------------------------------------------------------

    def tick(self, *, deliver: bool = True) -> dict[str, int]:
        """One pass of everything that depends on time; `deliver` sends due outbox rows inline (tests, CLI)."""
        with self._tick_lock:
            self._sync()
            now = self.clock.now()
            counts = {"unmuted": self.unmute_expired(now)}
            if self.source_health and (self._last_health_check is None
                                       or now - self._last_health_check >= self.source_health_interval):
                self._last_health_check = now
                try:
                    self.check_sources(self.source_health())
                except Exception:  # noqa: BLE001 - a broken health hook must not stop alert delivery
                    logger.exception("source health check failed")
            counts["archived"] = self.archive_due(now)
            counts["notices"] = self.send_silence_notices(now)
            counts["queued"] = self.dispatcher.flush_due(now)
            counts["escalated"] = self.escalator.escalate_due(now)
            counts["sent"] = self.deliver_due() if deliver else 0
            return counts

    def archive_due(self, now: datetime) -> int:
        """Resolved alerts past `alerts.archive.after` leave the hot tables, a batch per pass (alerts/archive.py):
        looked for once a minute, and at once again while the last pass filled its batch."""
        moment = ts(now)
        if self._next_archive_ts is not None and moment < self._next_archive_ts:
            return 0
        cfg = self.config.archive
        moved = archive_resolved(self.store, moment, cfg.after.total_seconds(), cfg.batch)
        self._next_archive_ts = None if moved == cfg.batch else moment + ARCHIVE_CHECK_EVERY_S
        return moved

    def deliver_due(self) -> int:
        """Send due rows inline, claiming one batch at a time so a crash re-sends at most that batch."""
        sent = 0
        while batches := self.dispatcher.claim_batches(self.clock.now(), limit=100, workers=1, batch_size=100):
            for batch in batches:
                sent += sum(s == "sent" for s in self.dispatcher.deliver_many(batch, self.clock.now).values())
        return sent

    def close_channels(self) -> None:
        """Close the current channels' idle connections (on stop; reloads close the replaced ones)."""
        close_notifiers(self._runtime)

    def unmute_expired(self, now: datetime) -> int:
        """Silenced alerts whose silence ended or whose inhibiting alert went away fire again.

        Only alerts that may have changed are read: those of silences that ended since the last tick and those
        inhibited under `equal` values that lost their last source (every silenced alert once, after a start or a
        reload), so a tick with nothing ended reads no alert at all, however many are silenced."""
        inhibitor = self._runtime.inhibitor
        ended = self.silencer.take_ended(now)
        lost = inhibitor.take_lost()
        everything = self._unmute_checked is not inhibitor
        self._unmute_checked = inhibitor
        if not (everything or ended or lost):
            return 0
        silenced = alerts.c.state == "silenced"
        with self.store.read() as conn:
            if everything:
                rows = conn.execute(select(alerts.c.id, alerts.c.labels, alerts.c.muted_by).where(silenced)).all()
            else:
                rows = conn.execute(select(alerts.c.id, alerts.c.labels, alerts.c.muted_by).where(
                    silenced, or_(alerts.c.muted_by.in_([f"silence:{i}" for i in ended]),
                                  *[self._inhibited_under(rule, key) for rule, key in lost]))).all()
        freed, moved = [], []
        for row in rows:
            reason = self.dispatcher.mute_reason(json.loads(row.labels), now)
            if reason is None:
                freed.append(row)
            elif reason != row.muted_by:  # still muted, for another reason: that reason's end is what frees it
                moved.append((row.id, reason))
        if not freed and not moved:
            return 0
        moment = ts(now)
        with self.store.write() as conn:
            for alert_id, reason in moved:
                conn.execute(alerts.update().where(alerts.c.id == alert_id, alerts.c.state == "silenced")
                             .values(muted_by=reason, updated_ts=moment))
            for row in freed:
                conn.execute(alerts.update().where(alerts.c.id == row.id, alerts.c.state == "silenced")
                             .values(state="firing", muted_by=None, updated_ts=moment))
                audit(conn, moment, "unmute", f"{row.muted_by} no longer applies; the alert fires again", alert_id=row.id)
            if freed:
                self.dispatcher.schedule_groups_of(conn, [r.id for r in freed], moment)
        if freed:
            inhibitor.invalidate()
        return len(freed)

    def _inhibited_under(self, rule: int, key: tuple[str, ...]) -> Any:
        """Alerts muted by inhibit rule `rule` whose `equal` labels have the values `key` (through alert_labels)."""
        cond = alerts.c.muted_by == f"inhibit:{rule}"
        names = self._runtime.inhibitor.rules[rule].equal
        present = [(name, value) for name, value in zip(names, key, strict=True) if value != ""]
        for name, value in present:  # a missing label (value "") has no row: those alerts are all re-checked
            cond = cond & alerts.c.id.in_(select(alert_labels.c.alert_id).where(alert_labels.c.name == name,
                                                                                alert_labels.c.value == value))
        return cond

    def send_silence_notices(self, now: datetime) -> int:
        cfg = self.config.silence_notice
        rows = self.silencer.expiring(now, cfg.before.total_seconds())
        if not rows:
            return 0
        moment = ts(now)
        with self.store.write() as conn:
            for row in rows:
                targets = [r for r in {cfg.receiver, row.owner} if r and self.config.receiver(r)]
                message_text = silence_notice_text(row)
                for target in sorted(targets):
                    message = Message(kind="silence_notice", dedup_key=f"silence-{row.id}-notice", receiver=target,
                                      text=message_text, public_url=self.config.public_url)
                    self.dispatcher.enqueue(conn, message, now)
                conn.execute(alert_silences.update().where(alert_silences.c.id == row.id).values(notice_sent_ts=moment))
                reason = (f"silence #{row.id} ends at {datetime.fromtimestamp(row.ends_ts).isoformat()}; notice to "
                          f"{', '.join(sorted(targets)) or 'nobody (no notice receiver and the owner is not a receiver)'}")
                audit(conn, moment, "notice", reason, detail={"silence_id": row.id})
        return len(rows)

    # ---- acknowledge, resolve --------------------------------------------------------------------------------

    def acknowledge(self, alert_id: int, owner: str, comment: str = "") -> dict[str, Any]:
        if not owner.strip():
            raise InputError("acknowledging needs an owner: who takes the alert on")
        return self._transition(alert_id, "acknowledged", owner.strip(), comment, allowed=("firing", "silenced"))

    def resolve(self, alert_id: int, owner: str, comment: str = "") -> dict[str, Any]:
        if not owner.strip():
            raise InputError("resolving needs an owner")
        return self._transition(alert_id, "resolved", owner.strip(), comment,
                                allowed=("firing", "acknowledged", "silenced"))

    def _transition(self, alert_id: int, target: str, owner: str, comment: str, allowed: tuple[str, ...]) -> dict:
        now = self.clock.now()
        moment = ts(now)
        with self.store.write() as conn:
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
            if row is None:
                self.reader.get(alert_id)  # NotFound unless archived, and an archived alert is resolved:
                raise AlertStateError(f"alert {alert_id} is resolved (archived); it cannot become {target}")
            if row.state not in allowed:
                raise AlertStateError(f"alert {alert_id} is {row.state}; it cannot become {target}")
            values: dict[str, Any] = {"state": target, "updated_ts": moment, "muted_by": None}
            if comment:
                values["comment"] = comment
            if target == "acknowledged":
                values.update(acked_by=owner, acked_ts=moment)
            else:
                values.update(resolved_by=owner, resolved_ts=moment)
            conn.execute(alerts.update().where(alerts.c.id == alert_id).values(**values))
            audit(conn, moment, "ack" if target == "acknowledged" else "resolve",
                  f"{owner}: {comment}" if comment else owner, alert_id=alert_id)
            updated = alert_public(conn.execute(select(alerts).where(alerts.c.id == alert_id)).first())
        self._runtime.inhibitor.invalidate()
        try:
            self.broadcaster.publish("alert_state", {"id": alert_id, "state": target, "by": owner})
        except NotifyError as exc:  # the change is stored; only the live view of it is missing (Redis away)
            logger.warning("alert %s %s by %s not streamed: %s", alert_id, target, owner, exc)
        return updated

    # ---- silences ----------------------------------------------------------------------------------------------

    def create_silence(self, *, matchers: Any, reason: str, owner: str, ends_at: datetime,
                       starts_at: datetime | None = None) -> dict[str, Any]:
        now = self.clock.now()
        silence = self.silencer.create(matchers=matchers, reason=reason, owner=owner, starts_at=starts_at,
                                       ends_at=ends_at, now=now)
        self._audit("silence", f"silence #{silence['id']} created by {owner} until {silence['ends_at']}: {reason}",
                    detail={"silence_id": silence["id"], "matchers": silence["matchers"]})
        self._mute_firing(now)
        return silence

    def expire_silence(self, silence_id: int, by: str = "") -> dict[str, Any]:
        silence = self.silencer.expire(silence_id, self.clock.now())
        self._audit("silence", f"silence #{silence_id} ended early{' by ' + by if by else ''}",
                    detail={"silence_id": silence_id})
        self.wakeup.set()
        return silence

    def _mute_firing(self, now: datetime) -> None:
        """Firing alerts a new silence covers become silenced at once (and stop repeating and escalating)."""
        with self.store.read() as conn:
            rows = conn.execute(select(alerts.c.id, alerts.c.labels).where(alerts.c.state == "firing")).all()
        muted = [(r.id, reason) for r in rows if (reason := self.silencer.mutes(json.loads(r.labels), now))]
        if not muted:
            return
        moment = ts(now)
        with self.store.write() as conn:
            for alert_id, reason in muted:
                conn.execute(alerts.update().where(alerts.c.id == alert_id).values(state="silenced", muted_by=reason,
                                                                                   updated_ts=moment))
                audit(conn, moment, "silence", f"muted by {reason}", alert_id=alert_id)
        self._runtime.inhibitor.invalidate()

    # ---- receivers and rules -------------------------------------------------------------------------------------

    def test_receiver(self, name: str, by: str = "") -> dict[str, Any]:
        """Send a test message through every channel of a receiver now; report each channel's outcome."""
        rt = self._runtime
        receiver = rt.receiver(name)
        if receiver is None:
            known = ", ".join(r.name for r in rt.config.receivers) or "none"
            raise NotFound(f"receiver {name!r} is not configured; configured receivers: {known}")
        results = {}
        now = self.clock.now()
        stamp = int(ts(now) * 1000)
        for integration in receiver.integrations():
            message = Message(kind="test", dedup_key=f"test-{name}-{integration}-{stamp}", receiver=name,
                              text=f"这是一条来自 yuqing 舆情系统的测试消息（接收人 {name}，渠道 {integration}）。"
                                   f"{'发起人：' + by if by else ''}", public_url=rt.config.public_url)
            try:
                rt.notifiers[(name, integration)].send(message)
                results[integration] = {"ok": True}
                self._audit("test", f"test message delivered by {integration}", receiver=name)
            except NotifyError as exc:
                results[integration] = {"ok": False, "error": exc.message, "recoverable": exc.recoverable}
                self._audit("test", f"test message failed on {integration}: {exc.message}", receiver=name)
        if receiver.rota is not None:
            from alerts.dispatch import resolve_rota

            results["rota"] = {"ok": True, "on_duty": resolve_rota(receiver, now)}
        return {"receiver": name, "results": results, "ok": all(r.get("ok") for r in results.values())}

    def dry_run(self, rule: str | dict, since: datetime, until: datetime) -> dict[str, Any]:
        """How many alerts a configured (by name) or proposed (inline) rule would have raised in [since, until)."""
        from pydantic import ValidationError

        if isinstance(rule, str):
            found = next((r for r in self.config.rules if r.name == rule), None)
            if found is None:
                raise NotFound(f"rule {rule!r} is not configured")
            parsed = found
        else:
            try:
                parsed = RuleConfig.model_validate(rule)
            except ValidationError as exc:
                raise InputError(f"invalid rule: {exc.errors()[0]['msg']}",
                                 errors=[{"loc": list(map(str, e["loc"])), "msg": e["msg"]} for e in exc.errors()]) from None
        if until <= since:
            raise InputError("until must be after since")
        return self._runtime.evaluator.dry_run(parsed, since, until)
