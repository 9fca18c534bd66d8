"""Inhibition: an active alert matching a rule's source matchers mutes alerts matching its target matchers that
share the `equal` labels — typically an event-level alert muting the item-level alerts of the same event.

As Alertmanager's inhibitor does, the sources of each rule are indexed by the values of their `equal` labels, so
deciding whether one alert is muted is a dictionary look-up, not a comparison with every active alert."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from alerts.store import alerts
from core.config_alerts import InhibitRule, all_match
from storage.base import StateStore

EqualKey = tuple[str, ...]  # the values of a rule's `equal` labels, in the rule's order ("" for a missing label)


class Inhibitor:
    """Implements `Muter`; reads the active (firing or acknowledged) alerts that can act as sources.

    When the sources are reloaded, the `equal` values that lost their last source are kept (`take_lost`): only the
    alerts those inhibited can fire again, so nothing else needs looking at."""

    def __init__(self, rules: list[InhibitRule], store: StateStore) -> None:
        self.rules = rules
        self.store = store
        self._sources: list[dict[EqualKey, list[dict[str, str]]]] | None = None
        self._previous: list[dict[EqualKey, list[dict[str, str]]]] | None = None
        self._lost: set[tuple[int, EqualKey]] = set()

    on_invalidate: Callable[[], None] | None = None  # told of every invalidation (other instances follow, alerts/engine.py)

    def invalidate(self) -> None:
        """Forget cached sources (call when alerts are raised, acknowledged, resolved, muted or unmuted)."""
        if self._sources is not None and self._previous is None:
            self._previous = self._sources
        self._sources = None
        if self.on_invalidate is not None:
            self.on_invalidate()

    def take_lost(self) -> set[tuple[int, EqualKey]]:
        """(rule index, equal values) that had a source and have none since the last call."""
        self._load()
        lost, self._lost = self._lost, set()
        return lost

    @staticmethod
    def _key(rule: InhibitRule, labels: dict[str, str]) -> EqualKey:
        return tuple(labels.get(name, "") for name in rule.equal)

    def _add(self, sources: list[dict[EqualKey, list[dict[str, str]]]], labels: dict[str, str]) -> None:
        for rule, by_key in zip(self.rules, sources, strict=True):
            if all_match(rule.source_matchers, labels):
                by_key.setdefault(self._key(rule, labels), []).append(labels)

    def _load(self) -> list[dict[EqualKey, list[dict[str, str]]]]:
        if self._sources is None:
            sources: list[dict[EqualKey, list[dict[str, str]]]] = [{} for _ in self.rules]
            if self.rules:
                with self.store.read() as conn:
                    rows = conn.execute(select(alerts.c.labels).where(alerts.c.state.in_(("firing", "acknowledged")))).all()
                for row in rows:
                    self._add(sources, json.loads(row.labels))
            if self._previous is not None:
                for i, (before, now) in enumerate(zip(self._previous, sources, strict=True)):
                    self._lost.update((i, key) for key in before if key not in now)
                self._previous = None
            self._sources = sources
        return self._sources

    def note_active(self, labels: dict[str, str]) -> None:
        """A just-raised alert (not yet committed) can already inhibit the rest of its batch."""
        if self.rules:
            self._add(self._load(), labels)

    def mutes(self, labels: dict[str, str], now: datetime) -> str | None:  # noqa: ARG002 - Muter signature
        if not self.rules:
            return None
        for i, (rule, by_key) in enumerate(zip(self.rules, self._load(), strict=True)):
            if not all_match(rule.target_matchers, labels):
                continue
            # An alert never inhibits itself, even if it matches both sides.
            if any(source != labels for source in by_key.get(self._key(rule, labels), ())):
                return f"inhibit:{i}"
        return None
