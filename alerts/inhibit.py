"""Inhibition: an active alert matching a rule's source matchers mutes alerts matching its target matchers that
share the `equal` labels — typically an event-level alert muting the item-level alerts of the same event."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select

from alerts.store import alerts
from core.config_alerts import InhibitRule, all_match
from storage.base import StateStore


class Inhibitor:
    """Implements `Muter`; reads the active (firing or acknowledged) alerts that can act as sources."""

    def __init__(self, rules: list[InhibitRule], store: StateStore) -> None:
        self.rules = rules
        self.store = store
        self._sources: list[list[dict[str, str]]] | None = None

    def invalidate(self) -> None:
        """Forget cached sources (call when alerts are raised, acknowledged or resolved)."""
        self._sources = None

    def _load(self) -> list[list[dict[str, str]]]:
        if self._sources is None:
            sources: list[list[dict[str, str]]] = [[] for _ in self.rules]
            if self.rules:
                with self.store.read() as conn:
                    rows = conn.execute(select(alerts.c.labels).where(alerts.c.state.in_(("firing", "acknowledged")))).all()
                for row in rows:
                    labels = json.loads(row.labels)
                    for i, rule in enumerate(self.rules):
                        if all_match(rule.source_matchers, labels):
                            sources[i].append(labels)
            self._sources = sources
        return self._sources

    def note_active(self, labels: dict[str, str]) -> None:
        """A just-raised alert (not yet committed) can already inhibit the rest of its batch."""
        sources = self._load()
        for i, rule in enumerate(self.rules):
            if all_match(rule.source_matchers, labels):
                sources[i].append(labels)

    def mutes(self, labels: dict[str, str], now: datetime) -> str | None:  # noqa: ARG002 - Muter signature
        if not self.rules:
            return None
        for i, (rule, sources) in enumerate(zip(self.rules, self._load(), strict=True)):
            if not all_match(rule.target_matchers, labels):
                continue
            for source in sources:
                # An alert never inhibits itself, even if it matches both sides.
                if source == labels:
                    continue
                if all(source.get(name, "") == labels.get(name, "") for name in rule.equal):
                    return f"inhibit:{i}"
        return None
