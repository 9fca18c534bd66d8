"""What a report says: the period's volume, riskiest items, hot events, recurring issues, spikes, alerts and response
plans, read through the Store interface and the other packages' public reads (no SQL of its own).

The result is plain JSON (kept with the report, rendered to HTML and PDF later). Every statement carries `links`:
the items (`{"item": id}`) and events (`{"event": id}`) it rests on; rendering turns them into page URLs.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from analysis.event_store import get_events, issue_histories
from analysis.spikes import DIMENSIONS, detect_spikes
from core.config_analysis import SpikesConfig
from core.models import Item
from reports.period import KIND_ZH, Period
from storage.base import ItemFacets, Store

CHANNEL_ZH = {"hotline": "12345热线", "mailbox": "领导信箱", "board": "留言板", "weibo": "微博", "wechat": "微信公众号",
              "news": "新闻网站"}
EMOTION_ZH = {"anger": "愤怒", "angry": "愤怒", "fear": "恐惧", "sadness": "悲伤", "sad": "悲伤", "disgust": "厌恶",
              "happiness": "喜悦", "happy": "喜悦", "surprise": "惊讶", "neutral": "中性"}
LEVEL_ZH = {"I": "I级（特别重大·红）", "II": "II级（重大·橙）", "III": "III级（较大·黄）", "IV": "IV级（一般·蓝）"}
DIMENSION_ZH = {"topic": "话题", "scheme": "监测方案", "region": "地域", "source": "来源"}
SEVERITY_ZH = {"critical": "严重", "warning": "警告", "info": "提示"}
ALERT_STATE_ZH = {"firing": "未处理", "acknowledged": "已认领", "resolved": "已解决", "silenced": "已静默"}
RUN_STATE_ZH = {"open": "进行中", "closed": "已办结", "cancelled": "已撤销"}
UNKNOWN = "未识别"
MAX_SPIKE_STEPS = 500  # windows tested per period (a week of hourly windows is 168)


@dataclass
class Sources:
    """Where a report reads from: the store, and the alert reader and plan service when those packages are attached."""

    store: Store
    spikes: SpikesConfig
    alerts: Any = None  # alerts.store.AlertReader
    plans: Any = None  # playbooks.service.PlaybookService
    playbook_names: dict[str, str] = field(default_factory=dict)


def link_items(ids: list[int | None], limit: int) -> list[dict[str, Any]]:
    return [{"item": i} for i in dict.fromkeys(i for i in ids if i is not None)][:limit]


def zh_duration(seconds: float | None) -> str:
    """3 小时 20 分, 2 天 4 小时, 45 秒."""
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} 秒"
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} 天 {hours} 小时"
    return f"{hours} 小时 {minutes} 分" if hours else f"{minutes} 分钟"


def _scan(store: Store, period: Period) -> Iterator[Item]:
    for batch in store.scan_items(period.start, period.end, batch_size=2000):
        yield from batch


class _FacetWindow:
    """Serves `item_facets` from facets read once, so spikes can be tested at every window of a period without
    reading the store again for each."""

    def __init__(self, facets: list[ItemFacets]) -> None:
        self.facets = sorted(facets, key=lambda f: f.published_ts)
        self.keys = [f.published_ts for f in self.facets]

    def item_facets(self, since: datetime, until: datetime) -> list[ItemFacets]:
        lo = bisect.bisect_left(self.keys, since.timestamp())
        hi = bisect.bisect_left(self.keys, until.timestamp())
        return self.facets[lo:hi]


def _volume(items: list[Item], previous_total: int, period: Period, links: int) -> dict[str, Any]:
    """Counts by channel, topic, emotion and grade, each row with the riskiest items behind it, and over time."""
    def risk(item: Item) -> float:
        return item.enrichment.risk_score if item.enrichment.risk_score is not None else -1.0

    groups: dict[str, dict[str, list[Item]]] = {"channel": defaultdict(list), "topic": defaultdict(list),
                                                "emotion": defaultdict(list), "level": defaultdict(list)}
    for item in items:
        e = item.enrichment
        groups["channel"][CHANNEL_ZH.get(item.channel.value, item.channel.value)].append(item)
        groups["topic"][e.topic or UNKNOWN].append(item)
        groups["emotion"][EMOTION_ZH.get(e.emotion or "", e.emotion or UNKNOWN)].append(item)
        groups["level"][LEVEL_ZH.get(e.risk_level or "", "未评级")].append(item)

    def rows(name: str) -> list[dict[str, Any]]:
        out = []
        for label, members in sorted(groups[name].items(), key=lambda kv: (-len(kv[1]), kv[0])):
            top = sorted(members, key=lambda i: (-risk(i), -(i.id or 0)))[:links]
            out.append({"label": label, "count": len(members), "share": round(len(members) / len(items), 4),
                        "links": link_items([i.id for i in top], links)})
        return out

    buckets = 24 if period.kind == "daily" else 7
    width = (period.end - period.start).total_seconds() / buckets
    series = [0] * buckets
    start = period.start.timestamp()
    for item in items:
        index = int((item.published_at.timestamp() - start) // width)
        if 0 <= index < buckets:
            series[index] += 1
    axis = [f"{h}时" for h in range(24)] if period.kind == "daily" else \
        [f"{(period.first_day + timedelta(days=d)).month}/{(period.first_day + timedelta(days=d)).day}" for d in range(7)]
    change = None if previous_total == 0 else round((len(items) - previous_total) / previous_total, 4)
    return {"total": len(items), "previous": previous_total, "change": change,
            "by_channel": rows("channel"), "by_topic": rows("topic"), "by_emotion": rows("emotion"),
            "by_level": rows("level"), "series": {"labels": axis, "counts": series}}


def _riskiest(items: list[Item], top: int) -> list[dict[str, Any]]:
    scored = [i for i in items if i.enrichment.risk_score is not None]
    scored.sort(key=lambda i: (-(i.enrichment.risk_score or 0), -(i.id or 0)))
    out = []
    for item in scored[:top]:
        e = item.enrichment
        reasons = [r.detail or f"{r.feature} +{r.weight:g}" for r in sorted(e.risk_reasons, key=lambda r: -r.weight)]
        out.append({"id": item.id, "title": item.title or item.content[:40], "excerpt": item.content[:120],
                    "channel": CHANNEL_ZH.get(item.channel.value, item.channel.value), "source": item.source,
                    "region": item.region, "topic": e.topic, "published_at": item.published_at.isoformat(),
                    "risk_score": round(e.risk_score or 0, 1), "risk_level": e.risk_level,
                    "level_zh": LEVEL_ZH.get(e.risk_level or "", "未评级"), "reasons": reasons[:6],
                    "event_id": e.event_id, "links": [{"item": item.id}]})
    return out


def _events(sources: Sources, items: list[Item], period: Period, top: int, links: int) -> tuple[list, list]:
    """Hot events (most items in the period, then heat) and recurring issues (a grievance back after earlier events)."""
    by_event: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        if item.enrichment.event_id:
            by_event[item.enrichment.event_id].append(item)
    stored = get_events(sources.store, list(by_event))
    ranked = sorted(by_event, key=lambda eid: (-len(by_event[eid]), -(stored.get(eid, {}).get("heat") or 0), eid))
    hot = []
    for event_id in [e for e in ranked if len(by_event[e]) >= 2][:top]:
        members = sorted(by_event[event_id], key=lambda i: (-(i.enrichment.risk_score or -1), -(i.id or 0)))
        info = stored.get(event_id, {})
        hot.append({"id": event_id, "title": info.get("title") or members[0].title or members[0].content[:40],
                    "period_items": len(members), "volume": info.get("volume", len(members)),
                    "heat": round(info.get("heat") or 0.0, 1),
                    "channels": sorted({CHANNEL_ZH.get(i.channel.value, i.channel.value) for i in members}),
                    "regions": sorted({i.region for i in members if i.region})[:5],
                    "keywords": (info.get("keywords") or [])[:6], "first_seen": info.get("first_seen"),
                    "links": [{"event": event_id}, *link_items([i.id for i in members], links)]})
    issues: dict[str, list[str]] = defaultdict(list)
    for event_id, info in stored.items():
        issues[info.get("issue_id") or event_id].append(event_id)
    histories = issue_histories(sources.store, list(issues))
    start = period.start.timestamp()
    recurring = []
    for issue_id, history in histories.items():
        earlier = [e for e in history["event_ids"] if e not in by_event]
        if history["events"] < 2 or (not earlier and history["first_seen_ts"] >= start and len(issues[issue_id]) < 2):
            continue
        now_events = sorted(issues[issue_id], key=lambda e: -len(by_event[e]))
        lead = stored[now_events[0]]
        recurring.append({"id": issue_id, "title": lead["title"], "events": history["events"],
                          "volume": history["volume"], "period_items": sum(len(by_event[e]) for e in now_events),
                          "first_seen": datetime.fromtimestamp(history["first_seen_ts"], UTC).isoformat(),
                          "earlier_events": len(earlier),
                          "links": [*({"event": e} for e in (now_events + earlier[::-1])[:links]),
                                    *link_items([i.id for e in now_events for i in by_event[e]], links)]})
    recurring.sort(key=lambda r: (-r["events"], -r["period_items"], r["id"]))
    return hot, recurring[:top]


def _spikes(sources: Sources, period: Period, links: int) -> list[dict[str, Any]]:
    """Spikes at every `recent_hours` window of the period, each group once at its strongest."""
    cfg = sources.spikes
    lead = timedelta(hours=cfg.recent_hours + cfg.baseline_hours)
    window = _FacetWindow(sources.store.item_facets(period.start - lead, period.end))
    step = timedelta(hours=cfg.recent_hours)
    steps = min(MAX_SPIKE_STEPS, max(1, int((period.end - period.start) / step)))
    stride = (period.end - period.start) / steps
    strongest: dict[tuple[str, str], dict[str, Any]] = {}
    for n in range(1, steps + 1):
        at = period.start + stride * n
        for spike in detect_spikes(window, cfg, at, DIMENSIONS):  # type: ignore[arg-type]
            key = (spike["dimension"], spike["value"])
            known = strongest.get(key)
            if known is None or spike["p_value"] < known["p_value"]:
                strongest[key] = {**spike, "at": at.isoformat()}
    out = []
    for spike in sorted(strongest.values(), key=lambda s: (s["p_value"], -s["recent"])):
        terms = "、".join(t["term"] for t in spike["explanation"]["terms"][:4])
        out.append({"dimension": DIMENSION_ZH.get(spike["dimension"], spike["dimension"]), "value": spike["value"],
                    "recent": spike["recent"], "baseline": spike["baseline"], "ratio": spike["ratio"],
                    "at": spike["at"], "window_hours": cfg.recent_hours, "terms": terms,
                    "links": link_items(spike["item_ids"], links)})
    return out[:20]


def _alert_links(alert: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if alert.get("event_id"):
        out.append({"event": alert["event_id"]})
    if alert.get("item_id"):
        out.append({"item": alert["item_id"]})
    return out


def _alerts(sources: Sources, period: Period, top: int) -> dict[str, Any] | None:
    if sources.alerts is None:
        return None
    found = sources.alerts.period(period.start.timestamp(), period.end.timestamp())
    raised = found["raised"]
    severity = Counter(a["severity"] for a in raised)
    rules = Counter(a["rule"] for a in raised)
    order = {"critical": 0, "warning": 1, "info": 2}
    notable = sorted(raised, key=lambda a: (order.get(a["severity"], 3), a["id"]))[:top]
    return {"raised": len(raised), "acknowledged": len(found["acknowledged"]), "resolved": len(found["resolved"]),
            "still_firing": sum(1 for a in raised if a["state"] == "firing"),
            "by_severity": [{"label": SEVERITY_ZH.get(k, k), "count": v} for k, v in severity.most_common()],
            "by_rule": [{"label": k, "count": v} for k, v in rules.most_common(10)],
            "notable": [{"id": a["id"], "title": str(a["annotations"].get("title") or a["rule"]),
                         "summary": str(a["annotations"].get("summary") or ""), "rule": a["rule"],
                         "severity": SEVERITY_ZH.get(a["severity"], a["severity"]),
                         "state": ALERT_STATE_ZH.get(a["state"], a["state"]), "starts_at": a["starts_at"],
                         "links": _alert_links(a)} for a in notable],
            "links": [link for a in notable for link in _alert_links(a)][:top]}


def _plans(sources: Sources, period: Period, top: int) -> dict[str, Any] | None:
    if sources.plans is None:
        return None
    review = sources.plans.review
    sla = review.period(period.start, period.end)["total"]
    runs = []
    met = missed = 0
    responses: list[float] = []
    ids = review.runs_started(period.start, period.end)
    for run_id in ids:
        r = review.run(run_id)
        met += r["deadlines"]["met"]
        missed += r["deadlines"]["missed"]
        if r["time_to_first_response"] is not None:
            responses.append(r["time_to_first_response"])
        effect = r.get("effect")
        opinion = None
        if effect:
            before, after = effect["before"], effect["after"]
            opinion = {"before_volume": before["volume"], "after_volume": after["volume"],
                       "before_negative": before["negative_share"], "after_negative": after["negative_share"],
                       "before_risk": before["mean_risk"], "after_risk": after["mean_risk"],
                       "window_hours": effect["window_hours"], "complete": effect["after_complete"]}
        links = [*([{"event": r["event_id"]}] if r["event_id"] else []), *([{"item": r["item_id"]}] if r["item_id"] else [])]
        playbook = sources.playbook_names.get(r["playbook_id"], r["playbook_id"])
        runs.append({"id": run_id, "title": r["title"], "playbook": playbook,
                     "state": RUN_STATE_ZH.get(r["state"], r["state"]), "met": r["deadlines"]["met"],
                     "missed": r["deadlines"]["missed"], "open": r["deadlines"]["open"],
                     "first_response": zh_duration(r["time_to_first_response"]),
                     "first_response_seconds": r["time_to_first_response"], "opinion": opinion, "links": links})
    runs.sort(key=lambda r: (-r["missed"], r["id"]))
    responses.sort()
    median = responses[len(responses) // 2] if responses else None
    return {"started": len(ids), "steps_met": met, "steps_missed": missed, "sla": sla,
            "median_first_response": zh_duration(median), "responded": len(responses), "runs": runs[:top],
            "with_opinion": [r for r in runs if r["opinion"]][:top]}


def _summary(content: dict[str, Any]) -> list[dict[str, Any]]:
    """The few sentences at the top, each with the items or events it rests on."""
    volume = content["volume"]
    out = []
    change = ""
    if volume["change"] is not None:
        change = f"，较上期{'增加' if volume['change'] >= 0 else '减少'} {abs(volume['change']) * 100:.1f}%"
    channels = "、".join(f"{r['label']} {r['count']} 条" for r in volume["by_channel"][:5])
    out.append({"text": f"本期共监测到信息 {volume['total']} 条{change}" + (f"，其中{channels}" if channels else "") + "。",
                "links": [link for r in volume["by_channel"][:5] for link in r["links"][:1]]})
    severe = [r for r in volume["by_level"] if r["label"].startswith(("I级", "II级"))]
    if severe:
        out.append({"text": "高风险信息（I、II 级）" + "、".join(f"{r['label']} {r['count']} 条" for r in severe) + "。",
                    "links": [link for r in severe for link in r["links"]][:5]})
    if content["risky"]:
        top = content["risky"][0]
        reason = "；".join(top["reasons"][:2]) or "风险分较高"
        out.append({"text": f"风险最高的是「{top['title']}」（{top['level_zh']}，{top['risk_score']} 分），原因：{reason}。",
                    "links": top["links"]})
    if content["hot_events"]:
        event = content["hot_events"][0]
        out.append({"text": f"最热事件「{event['title']}」本期新增 {event['period_items']} 条，涉及"
                            f"{'、'.join(event['channels'])}。", "links": event["links"]})
    if content["recurring"]:
        issue = content["recurring"][0]
        out.append({"text": f"反复出现的问题「{issue['title']}」已出现 {issue['events']} 次（事件），"
                            f"本期 {issue['period_items']} 条。", "links": issue["links"]})
    if content["spikes"]:
        spike = content["spikes"][0]
        out.append({"text": f"{spike['dimension']}「{spike['value']}」信息量激增：{spike['recent']} 条，"
                            f"为基线的 {spike['ratio']} 倍" + (f"（{spike['terms']}）" if spike["terms"] else "") + "。",
                    "links": spike["links"]})
    alerts = content.get("alerts")
    if alerts and alerts["raised"]:
        out.append({"text": f"新增预警 {alerts['raised']} 条，认领 {alerts['acknowledged']} 条，解决 {alerts['resolved']} 条，"
                            f"仍未处理 {alerts['still_firing']} 条。", "links": alerts["links"]})
    plans = content.get("plans")
    if plans and plans["started"]:
        sla = plans["sla"]
        compliance = "—" if sla["compliance"] is None else f"{sla['compliance'] * 100:.1f}%"
        out.append({"text": f"启动处置预案 {plans['started']} 个，本期到期时限 {sla['met']} 个按时、{sla['missed']} 个超时"
                            f"（按时率 {compliance}），首次回应时间中位数 {plans['median_first_response']}。",
                    "links": [link for r in plans["runs"] for link in r["links"]][:5]})
    return out


def build_content(sources: Sources, period: Period, *, title: str, top_items: int, top_events: int, links: int,
                  now: datetime) -> dict[str, Any]:
    """Everything the report says about `period`, as JSON."""
    items = list(_scan(sources.store, period))
    previous = period.previous()
    previous_total = len(sources.store.item_facets(previous.start, previous.end))
    content: dict[str, Any] = {
        "kind": period.kind, "kind_zh": KIND_ZH[period.kind], "title": f"{title}{KIND_ZH[period.kind]}",
        "period": {"key": period.key, "label": period.label, "start": period.start.isoformat(),
                   "end": period.end.isoformat(), "timezone": period.zone.key},
        "generated_at": now.isoformat(), "complete": period.complete_at(now),
        "volume": _volume(items, previous_total, period, links),
        "risky": _riskiest(items, top_items),
        "spikes": _spikes(sources, period, links),
        "alerts": _alerts(sources, period, top_events),
        "plans": _plans(sources, period, top_events),
    }
    content["hot_events"], content["recurring"] = _events(sources, items, period, top_events, links)
    content["summary"] = _summary(content)
    return content
