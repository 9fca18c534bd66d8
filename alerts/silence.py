"""Silences: matchers, a reason, an owner and an expiry; a notice goes out before one expires.

`Muter` is the one interface silences and inhibition share (after Alertmanager's notify/mute.go); it returns the
reason an alert is muted, so the audit trail can say why.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select

from alerts.store import alert_silences, dumps, from_ts, silence_public, ts
from core.config_alerts import Matcher, all_match
from core.errors import InputError, NotFound
from storage.base import StateStore


class Muter(Protocol):
    def mutes(self, labels: dict[str, str], now: datetime) -> str | None:
        """Why these labels are muted right now (e.g. "silence:3"), or None."""
        ...


@dataclass
class Silence:
    id: int
    matchers: list[Matcher]
    reason: str
    owner: str
    starts_ts: float
    ends_ts: float

    def active(self, now: float) -> bool:
        return self.starts_ts <= now < self.ends_ts


def parse_matchers(raw: Any) -> list[Matcher]:
    """Matchers from an API body, with an InputError naming the bad one."""
    from pydantic import TypeAdapter, ValidationError

    from core.config_alerts import Matchers

    try:
        matchers = TypeAdapter(Matchers).validate_python(raw)
    except ValidationError as exc:
        raise InputError(f"invalid matchers: {exc.errors()[0]['msg']}") from None
    if not matchers:
        raise InputError("a silence needs at least one matcher (an empty silence would mute everything)")
    return matchers


class Silencer:
    """Silences kept in the store; those not yet ended are cached and reloaded when they change.

    Ended silences leave the cache and are reported once by `take_ended`, so the alerts they muted are re-checked
    then, and only then: muting costs the number of current silences, whatever the history."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._cache: list[Silence] | None = None
        self._watched: set[int] = set()  # ids cached before the last invalidate: those missing on reload have ended
        self._ended: set[int] = set()

    on_invalidate: Callable[[], None] | None = None  # told of every invalidation (other instances follow, alerts/engine.py)

    def invalidate(self) -> None:
        if self._cache is not None:
            self._watched.update(s.id for s in self._cache)
        self._cache = None
        if self.on_invalidate is not None:
            self.on_invalidate()

    def _silences(self, moment: float) -> list[Silence]:
        if self._cache is None:
            s = alert_silences.c
            with self.store.read() as conn:
                rows = conn.execute(select(alert_silences).where(s.deleted_ts.is_(None), s.ends_ts > moment)).all()
            self._cache = [Silence(r.id, [Matcher.model_validate(m) for m in json.loads(r.matchers)], r.reason, r.owner,
                                   r.starts_ts, r.ends_ts) for r in rows]
            self._ended.update(self._watched - {silence.id for silence in self._cache})
            self._watched.clear()
        return self._cache

    def take_ended(self, now: datetime) -> list[int]:
        """Ids of the silences that ended (or were expired) since the last call."""
        moment = ts(now)
        current = self._silences(moment)
        ended = {silence.id for silence in current if silence.ends_ts <= moment}
        if ended:
            self._cache = [silence for silence in current if silence.id not in ended]
        ended |= self._ended
        self._ended = set()
        return sorted(ended)

    def mutes(self, labels: dict[str, str], now: datetime) -> str | None:
        moment = ts(now)
        for silence in self._silences(moment):
            if silence.active(moment) and all_match(silence.matchers, labels):
                return f"silence:{silence.id}"
        return None

    def create(self, *, matchers: Any, reason: str, owner: str, starts_at: datetime | None, ends_at: datetime,
               now: datetime) -> dict[str, Any]:
        parsed = parse_matchers(matchers)
        if not reason.strip():
            raise InputError("a silence needs a reason, so others know why alerts are quiet")
        if not owner.strip():
            raise InputError("a silence needs an owner, who is told before it expires")
        start = starts_at or now
        if ends_at <= start:
            raise InputError("ends_at must be after starts_at")
        if ends_at <= now:
            raise InputError("ends_at is in the past")
        row = {"matchers": dumps([m.model_dump() for m in parsed]), "reason": reason.strip(), "owner": owner.strip(),
               "starts_ts": ts(start), "ends_ts": ts(ends_at), "created_ts": ts(now)}
        with self.store.write() as conn:
            new_id = conn.execute(alert_silences.insert().values(**row)).inserted_primary_key[0]
        self.invalidate()
        return self.get(new_id, now)

    def get(self, silence_id: int, now: datetime) -> dict[str, Any]:
        with self.store.read() as conn:
            row = conn.execute(select(alert_silences).where(alert_silences.c.id == silence_id)).first()
        if row is None:
            raise NotFound(f"silence {silence_id} not found")
        return silence_public(row, ts(now))

    def list(self, now: datetime, include_expired: bool = False) -> list[dict[str, Any]]:
        moment = ts(now)
        with self.store.read() as conn:
            rows = conn.execute(select(alert_silences).order_by(alert_silences.c.id.desc())).all()
        out = [silence_public(r, moment) for r in rows]
        return out if include_expired else [s for s in out if s["status"] in ("active", "pending")]

    def expire(self, silence_id: int, now: datetime) -> dict[str, Any]:
        """End a silence now (kept for the record, not deleted)."""
        current = self.get(silence_id, now)
        if current["status"] in ("expired", "deleted"):
            raise InputError(f"silence {silence_id} has already ended")
        with self.store.write() as conn:
            conn.execute(alert_silences.update().where(alert_silences.c.id == silence_id)
                         .values(ends_ts=ts(now), expired_ts=ts(now)))
        self.invalidate()
        return self.get(silence_id, now)

    def expiring(self, now: datetime, before_seconds: float) -> list[Any]:
        """Active silences ending within the notice period whose owner was not yet told."""
        moment = ts(now)
        s = alert_silences.c
        with self.store.read() as conn:
            return conn.execute(select(alert_silences).where(
                s.deleted_ts.is_(None), s.notice_sent_ts.is_(None), s.starts_ts <= moment, s.ends_ts > moment,
                s.ends_ts <= moment + before_seconds)).all()


def silence_notice_text(row: Any) -> str:
    return (f"静默 #{row.id} 将于 {from_ts(row.ends_ts)} 到期；到期后匹配的预警会重新通知。"
            f"原因：{row.reason}；负责人：{row.owner}。如需延长请在系统中新建静默。")
