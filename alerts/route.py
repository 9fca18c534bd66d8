"""The routing tree, as pure data plus a match function (after Alertmanager's dispatch/route.go). No I/O.

A node matches when all its matchers match. Children are tried in order; the first matching child wins unless it
sets `continue`, in which case later siblings are tried too. If no child matches, the node itself is the result.
Unset settings inherit from the parent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta

from core.config_alerts import EscalationStep, Matcher, RouteConfig, all_match

DEFAULT_GROUP_WAIT = timedelta(seconds=30)
DEFAULT_GROUP_INTERVAL = timedelta(minutes=5)
DEFAULT_REPEAT_INTERVAL = timedelta(hours=4)


@dataclass
class Route:
    """A resolved node: its own matchers plus every setting after inheritance; `path` is a stable id like 0.1.0."""

    path: str
    receiver: str
    matchers: list[Matcher]
    continue_: bool
    group_by: list[str]
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    active_time_intervals: list[str]
    mute_time_intervals: list[str]
    escalation: list[EscalationStep]
    routes: list[Route] = field(default_factory=list)

    def group_labels(self, labels: dict[str, str]) -> dict[str, str]:
        """The labels that key the group; `...` groups by every label (one group per distinct alert)."""
        if "..." in self.group_by:
            return dict(sorted(labels.items()))
        return {name: labels.get(name, "") for name in sorted(self.group_by)}

    def group_key(self, labels: dict[str, str]) -> str:
        return f"{self.path}:{self.receiver}:" + json.dumps(self.group_labels(labels), ensure_ascii=False, sort_keys=True)


def build(config: RouteConfig, parent: Route | None = None, path: str = "0") -> Route:
    """Resolve inheritance once, so matching is a plain walk."""

    def pick(value, inherited, default):  # noqa: ANN001, ANN202 - any setting
        if value is not None:
            return value
        return inherited if parent is not None else default

    node = Route(
        path=path,
        receiver=pick(config.receiver, parent.receiver if parent else None, None),
        matchers=list(config.matchers),
        continue_=config.continue_,
        group_by=pick(config.group_by, parent.group_by if parent else None, []),
        group_wait=pick(config.group_wait, parent.group_wait if parent else None, DEFAULT_GROUP_WAIT),
        group_interval=pick(config.group_interval, parent.group_interval if parent else None, DEFAULT_GROUP_INTERVAL),
        repeat_interval=pick(config.repeat_interval, parent.repeat_interval if parent else None, DEFAULT_REPEAT_INTERVAL),
        active_time_intervals=config.active_time_intervals or (parent.active_time_intervals if parent else []),
        mute_time_intervals=config.mute_time_intervals or (parent.mute_time_intervals if parent else []),
        escalation=pick(config.escalation, parent.escalation if parent else None, []),
    )
    node.routes = [build(child, node, f"{path}.{i}") for i, child in enumerate(config.routes)]
    return node


def match(route: Route, labels: dict[str, str]) -> list[Route]:
    """Every route that takes these labels (at least the root, which matches all)."""
    if not all_match(route.matchers, labels):
        return []
    found: list[Route] = []
    for child in route.routes:
        matched = match(child, labels)
        if matched:
            found.extend(matched)
            if not child.continue_:
                break
    return found or [route]


def find(route: Route, path: str) -> Route | None:
    """The node with this path, or None when a reload removed it."""
    if route.path == path:
        return route
    for child in route.routes:
        if path.startswith(child.path + ".") or path == child.path:
            return find(child, path)
    return None
