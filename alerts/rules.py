"""Rules: a stored item (its event, its topic's volume, its source's health) → labelled alert drafts. Sends nothing.

Labels are plain strings so routing, silences and inhibition use one matcher language. They come from the item
and the NLP enrichment as it lands (risk_level I–IV, risk_score 0–100, topic, emotion, schemes, event_id), so
real values plug in unchanged once the classifiers fill them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.config_alerts import RISK_LEVELS, RuleConfig, all_match
from core.config_analysis import SpikesConfig
from core.models import Item, SourceStatus
from core.ports import EventHeat
from storage.base import EventTotals, ItemReads

logger = logging.getLogger(__name__)

# The dimensions analysis.spikes tests (its DIMENSIONS), and how a message names them.
SPIKE_DIMENSIONS = ("topic", "scheme", "region", "source")
SPIKE_DIMENSION_ZH = {"topic": "主题", "scheme": "方案", "region": "属地", "source": "来源"}


def spike_values(item: Item, dimension: str) -> list[str]:
    """The item's values on a spike dimension, as analysis.spikes groups them (schemes: one per scheme)."""
    if dimension == "scheme":
        return sorted(set(item.enrichment.schemes))
    value = {"topic": item.enrichment.topic, "region": item.region, "source": item.source}[dimension]
    return [value] if value else []


@dataclass
class AlertDraft:
    """An alert a rule wants raised; the fingerprint makes raising it again a no-op."""

    fingerprint: str
    rule: str
    kind: str
    severity: str
    labels: dict[str, str]
    annotations: dict[str, Any] = field(default_factory=dict)
    item_id: int | None = None
    event_id: str | None = None


class EventStats(EventTotals):
    """The size and reach of an event (a cluster of items about one matter), as the store sums its items."""


@dataclass
class DeadlineNotice:
    """A response-plan step at its warning time or past its deadline, as the plan clock reports it to alerts."""

    stage: str  # warning | breach
    key: str  # stable id of the step's clock (run and step), so a notice raised twice is one alert
    due_at: str
    labels: dict[str, str]
    title: str
    summary: str
    link: str = ""
    item_id: int | None = None
    event_id: str | None = None


def fingerprint(*parts: object) -> str:
    return hashlib.sha1("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()


def item_labels(item: Item) -> dict[str, str]:
    """The labels every rule, route and silence sees for an item; absent values are empty strings."""
    e = item.enrichment
    department = item.extra.get("handling_unit") or (item.reply.department if item.reply else None) or ""
    return {
        "item_id": str(item.id or ""),
        "source": item.source,
        "channel": str(item.channel),
        "region": item.region or "",
        "department": str(department),
        "request_type": str(item.extra.get("request_type") or ""),
        "topic": e.topic or "",
        "emotion": e.emotion or "",
        "polarity": e.polarity or "",
        "risk_level": e.risk_level or "",
        "risk_score": "" if e.risk_score is None else str(int(round(e.risk_score))),
        "schemes": ",".join(sorted(set(e.schemes))),
        "event_id": e.event_id or "",
    }


def fresh(items: list[Item], rule: RuleConfig, now: datetime) -> list[Item]:
    """The items published within the rule's `max_age` of `now`."""
    oldest = now - rule.max_age
    return [i for i in items if i.published_at >= oldest]


def _level_at_least(actual: str | None, minimum: str) -> bool:
    """I is the most severe: at least II means I or II."""
    if actual not in RISK_LEVELS:
        return False
    return RISK_LEVELS.index(actual) <= RISK_LEVELS.index(minimum)


def item_matches(rule: RuleConfig, item: Item, labels: dict[str, str]) -> bool:
    """Every condition the rule gives holds for the item (list conditions mean any of)."""
    e = item.enrichment
    if rule.min_risk_score is not None and (e.risk_score is None or e.risk_score < rule.min_risk_score):
        return False
    if rule.min_risk_level is not None and not _level_at_least(e.risk_level, rule.min_risk_level):
        return False
    checks = ((rule.topics, e.topic), (rule.emotions, e.emotion), (rule.channels, str(item.channel)),
              (rule.sources, item.source), (rule.regions, item.region))
    if any(allowed is not None and value not in allowed for allowed, value in checks):
        return False
    if rule.schemes is not None and not set(rule.schemes) & set(e.schemes):
        return False
    return all_match(rule.matchers, labels)


def item_annotations(item: Item, public_url: str) -> dict[str, Any]:
    """What a person needs to judge the alert: the title, an excerpt, the link and the reasons behind the risk."""
    e = item.enrichment
    excerpt = " ".join(item.content.split())
    return {
        "title": item.title or excerpt[:40],
        "summary": excerpt[:200] + ("…" if len(excerpt) > 200 else ""),
        "link": f"{public_url.rstrip('/')}/items/{item.id}",
        "url": item.url or "",
        "published_at": item.published_at.isoformat(),
        "risk_score": e.risk_score,
        "risk_level": e.risk_level,
        "reasons": [{"feature": r.feature, "weight": r.weight, "detail": r.detail, "evidence": r.evidence}
                    for r in sorted(e.risk_reasons, key=lambda r: -abs(r.weight))[:8]],
    }


class RuleEvaluator:
    """Evaluates the configured rules; event, spike and dry-run queries read stored items through the store."""

    def __init__(self, rules: list[RuleConfig], *, public_url: str, store: ItemReads | None = None,
                 event_heat: EventHeat | None = None) -> None:
        self.rules = rules
        self.public_url = public_url
        self.store = store
        # Heat has one definition, the analysis package's (given by the composition root). Without it (a service
        # built without enrichment has no events) a rule that asks for a minimum heat cannot hold.
        self.event_heat = event_heat
        self._spike_checked: dict[str, datetime] = {}  # rule name → when analysis.spikes last ran for it

    # ---- items and events ------------------------------------------------------------------------------

    def evaluate(self, items: Iterable[Item], now: datetime) -> list[AlertDraft]:
        """Drafts for stored items: event-level first, so inhibition already sees them when item alerts arrive.
        Backfill (imported history) raises nothing, and each rule sees only items younger than its `max_age`."""
        items = [i for i in items if i.id is not None and not i.backfill]
        drafts: list[AlertDraft] = []
        event_cache: dict[str, EventStats | None] = {}
        for rule in self.rules:
            if rule.kind == "event":
                drafts.extend(self._event_drafts(rule, fresh(items, rule, now), event_cache))
        for rule in self.rules:
            if rule.kind == "item":
                for item in fresh(items, rule, now):
                    labels = item_labels(item)
                    if item_matches(rule, item, labels):
                        drafts.append(self._item_draft(rule, item, labels))
        for rule in self.rules:
            if rule.kind == "spike":
                drafts.extend(self._spike_drafts(rule, fresh(items, rule, now), now))
        return drafts

    def _item_draft(self, rule: RuleConfig, item: Item, labels: dict[str, str]) -> AlertDraft:
        full = {**labels, **rule.labels, "rule": rule.name, "severity": rule.severity, "kind": "item"}
        return AlertDraft(fingerprint=fingerprint(rule.name, "item", item.id), rule=rule.name, kind="item",
                          severity=rule.severity, labels=full, annotations=item_annotations(item, self.public_url),
                          item_id=item.id, event_id=item.enrichment.event_id)

    def event_stats(self, event_id: str) -> EventStats | None:
        if self.store is None:
            return None
        totals = self.store.event_totals(event_id)
        return None if totals is None else EventStats(**vars(totals))

    def _event_drafts(self, rule: RuleConfig, items: list[Item], cache: dict[str, EventStats | None]) -> list[AlertDraft]:
        drafts = []
        seen: set[str] = set()
        for item in items:
            event_id = item.enrichment.event_id
            if not event_id or event_id in seen:
                continue
            labels = item_labels(item)
            # The item's own conditions (topic, region, scheme...) say which events the rule is about.
            if not item_matches(rule, item, labels):
                continue
            seen.add(event_id)
            if event_id not in cache:
                cache[event_id] = self.event_stats(event_id)
            stats = cache[event_id]
            if stats is None:
                continue
            heat = self.event_heat(event_id) if self.event_heat else None
            if rule.min_event_items is not None and stats.items < rule.min_event_items:
                continue
            if rule.min_event_heat is not None and (heat is None or heat < rule.min_event_heat):
                continue
            event_labels = {k: labels[k] for k in ("source", "channel", "region", "department", "topic", "event_id")}
            full = {**event_labels, **rule.labels, "rule": rule.name, "severity": rule.severity, "kind": "event",
                    "event_items": str(stats.items), "event_heat": "" if heat is None else str(int(heat))}
            spread = f"{stats.items} 条 / {stats.channels} 个渠道"
            annotations = {
                "title": f"事件 {event_id}：{item.title or item.content[:30]}",
                "summary": f"同一事件已有 {stats.items} 条信息，涉及 {stats.channels} 个渠道，互动量 {stats.engagement}，"
                           + ("" if heat is None else f"热度 {heat:g}，") + f"最高风险分 {stats.max_risk:g}",
                "link": f"{self.public_url.rstrip('/')}/events/{event_id}",
                "reasons": [{"feature": "event_heat", "weight": heat, "detail": spread, "evidence": None}
                            if heat is not None else
                            {"feature": "event_items", "weight": stats.items, "detail": spread, "evidence": None}],
            }
            drafts.append(AlertDraft(fingerprint=fingerprint(rule.name, "event", event_id), rule=rule.name, kind="event",
                                     severity=rule.severity, labels=full, annotations=annotations, event_id=event_id))
        return drafts

    # ---- spikes ----------------------------------------------------------------------------------------

    def _spike_drafts(self, rule: RuleConfig, items: list[Item], now: datetime) -> list[AlertDraft]:
        """Spikes from `analysis.spikes` (binomial test with its explanation) for the values this batch touched."""
        spec = rule.spike
        assert spec is not None
        if self.store is None:
            return []
        touched: dict[tuple[str, str], Item] = {}
        dimensions = (spec.by,) if spec.by else SPIKE_DIMENSIONS
        for item in items:
            if item_matches(rule, item, item_labels(item)):
                for dimension in dimensions:
                    for value in spike_values(item, dimension):
                        touched.setdefault((dimension, value), item)
        if not touched:
            return []
        last = self._spike_checked.get(rule.name)
        if last is not None and timedelta(0) <= now - last < spec.check_every:
            return []  # checked moments ago; the next batch after `check_every` looks again
        self._spike_checked[rule.name] = now
        from analysis.spikes import detect_spikes

        hours = spec.window.total_seconds() / 3600
        config = SpikesConfig(recent_hours=hours, baseline_hours=hours * spec.baseline_windows, alpha=spec.alpha,
                              min_count=spec.min_count, min_ratio=spec.factor)
        bucket = int(now.timestamp() // spec.window.total_seconds())
        drafts = []
        for spike in detect_spikes(self.store, config, now, dimensions=dimensions):
            sample = touched.get((spike["dimension"], spike["value"]))
            if sample is None:
                continue
            drafts.append(self._spike_draft(rule, spike, sample, bucket))
        return drafts

    def _spike_draft(self, rule: RuleConfig, spike: dict[str, Any], sample: Item, bucket: int) -> AlertDraft:
        spec = rule.spike
        assert spec is not None
        dimension, value = spike["dimension"], spike["value"]
        explanation = spike["explanation"]
        labels = {**rule.labels, "rule": rule.name, "severity": rule.severity, "kind": "spike",
                  "spike_dimension": dimension, dimension: value, "spike_count": str(spike["recent"])}
        terms = "、".join(f"{t['term']}({t['recent']}/{t['baseline']})" for t in explanation["terms"]) or "无明显新增关键词"
        sources = "、".join(f"{s['source']} {s['count']} 条" for s in explanation["sources"])
        regions = "、".join(f"{r['region']} {r['count']} 条" for r in explanation["regions"])
        summary = (f"最近 {spec.window} 内 {spike['recent']} 条，此前 {spec.baseline_windows} 个窗口共 {spike['baseline']} 条"
                   f"（预期 {spike['expected']:g} 条，{spike['ratio']:g} 倍，二项检验 p={spike['p_value']:.2g}）。"
                   f"增长最多的关键词：{terms}" + (f"；来源：{sources}" if sources else "")
                   + (f"；属地：{regions}" if regions else ""))
        reasons = [{"feature": "spike", "weight": spike["ratio"], "detail": f"p={spike['p_value']:.2g}",
                    "evidence": f"{spike['recent']} vs 预期 {spike['expected']:g}"}]
        reasons += [{"feature": "term", "weight": t["recent"], "detail": f"基线 {t['baseline']}", "evidence": t["term"]}
                    for t in explanation["terms"]]
        annotations = {
            "title": f"信息量激增：{SPIKE_DIMENSION_ZH[dimension]} {value}",
            "summary": summary,
            "link": f"{self.public_url.rstrip('/')}/items/{spike['item_ids'][0] if spike['item_ids'] else sample.id}",
            "reasons": reasons,
            "spike": {k: spike[k] for k in ("dimension", "value", "recent", "baseline", "expected", "ratio", "p_value",
                                            "explanation", "item_ids")},
        }
        return AlertDraft(fingerprint=fingerprint(rule.name, "spike", dimension, value, bucket), rule=rule.name,
                          kind="spike", severity=rule.severity, labels=labels, annotations=annotations)

    # ---- plan deadlines ----------------------------------------------------------------------------------

    def evaluate_deadlines(self, notices: Iterable[DeadlineNotice]) -> list[AlertDraft]:
        """Alerts for plan steps at their warning or past their deadline, from the `deadline` rules that take them."""
        drafts = []
        for rule in self.rules:
            if rule.kind != "deadline":
                continue
            for n in notices:
                labels = {**n.labels, **rule.labels, "rule": rule.name, "severity": rule.severity, "kind": "deadline",
                          "deadline_stage": n.stage}
                if n.stage not in rule.deadline_stages or not all_match(rule.matchers, labels):
                    continue
                word = "即将到期" if n.stage == "warning" else "已超时"
                annotations = {"title": f"预案时限{word}：{n.title}", "summary": n.summary,
                               "link": n.link or f"{self.public_url.rstrip('/')}/plans", "due_at": n.due_at,
                               "reasons": [{"feature": "deadline", "weight": 1, "detail": f"{n.stage} {n.due_at}",
                                            "evidence": None}]}
                drafts.append(AlertDraft(fingerprint=fingerprint(rule.name, "deadline", n.key, n.stage, n.due_at),
                                         rule=rule.name, kind="deadline", severity=rule.severity, labels=labels,
                                         annotations=annotations, item_id=n.item_id, event_id=n.event_id))
        return drafts

    # ---- source health -----------------------------------------------------------------------------------

    def evaluate_sources(self, health: Iterable[SourceStatus]) -> tuple[list[AlertDraft], list[str]]:
        """Operations alerts for degraded/failing sources, and the fingerprints of healthy ones (to resolve)."""
        drafts, healthy = [], []
        for rule in self.rules:
            if rule.kind != "source_health":
                continue
            for h in health:
                fp = fingerprint(rule.name, "source", h.source)
                labels = {"source": h.source, "source_status": h.status, **rule.labels, "rule": rule.name,
                          "severity": rule.severity, "kind": "source_health", "category": "operations"}
                if h.status not in rule.source_statuses or not all_match(rule.matchers, labels):
                    healthy.append(fp)
                    continue
                last = h.last_success.isoformat() if h.last_success else "从未成功"
                annotations = {"title": f"采集来源异常：{h.source}（{h.status}）",
                               "summary": f"{h.reason or '无详细原因'}；最近一次成功：{last}。采集中断时“没有舆情”不代表平静。",
                               "link": f"{self.public_url.rstrip('/')}/sources/{h.source}",
                               "reasons": [{"feature": "source_health", "weight": 1, "detail": h.reason, "evidence": None}]}
                drafts.append(AlertDraft(fingerprint=fp, rule=rule.name, kind="source_health", severity=rule.severity,
                                         labels=labels, annotations=annotations))
        return drafts, healthy

    # ---- dry run -----------------------------------------------------------------------------------------

    def dry_run(self, rule: RuleConfig, since: datetime, until: datetime, *, sample: int = 20) -> dict[str, Any]:
        """How many alerts `rule` would have raised over items published in [since, until)."""
        if rule.kind not in ("item", "event"):
            from core.errors import InputError

            raise InputError(f"dry run covers item and event rules; rule {rule.name!r} is of kind {rule.kind}")
        if self.store is None:
            raise RuntimeError("dry run needs a store")
        scanned = 0
        hits: list[int] = []
        events: set[str] = set()
        cache: dict[str, EventStats | None] = {}
        for batch in self.store.scan_items(since, until):
            scanned += len(batch)
            if rule.kind == "item":
                hits.extend(i.id for i in batch if item_matches(rule, i, item_labels(i)))
            else:
                events.update(d.event_id for d in self._event_drafts(rule, batch, cache) if d.event_id)
        would = len(hits) if rule.kind == "item" else len(events)
        return {"rule": rule.name, "kind": rule.kind, "since": since.isoformat(), "until": until.isoformat(),
                "items_scanned": scanned, "would_alert": would,
                "sample": hits[:sample] if rule.kind == "item" else sorted(events)[:sample]}
