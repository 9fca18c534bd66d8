"""What every channel shares: the message, the Notifier protocol, Chinese rendering and size-limited splitting.

A notifier's `send(message)` delivers once or raises `NotifyError(recoverable=...)`; it never retries — the
dispatcher owns retries and backoff. Multi-part channels skip the `parts_done` parts already delivered and raise
`PartialNotifyError` saying how far they got, so a retry does not repeat parts.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.errors import NotifyError

SEVERITY_ZH = {"critical": "严重", "warning": "警告", "info": "提示"}
KIND_ZH = {"alert": "舆情预警", "repeat": "舆情预警·重复提醒", "escalation": "舆情预警·升级", "silence_notice": "静默即将到期",
           "test": "测试消息"}
STATE_ZH = {"firing": "未处理", "acknowledged": "已认领", "resolved": "已解决", "silenced": "已静默"}


class PartialNotifyError(NotifyError):
    """Some parts of a split message were delivered before the failure; a retry starts after them."""

    def __init__(self, message: str, *, recoverable: bool, parts_done: int) -> None:
        super().__init__(message, recoverable=recoverable)
        self.parts_done = parts_done


@dataclass
class Message:
    """One notification as stored in the outbox: who, why, which alerts (a capped snapshot) and how many in all."""

    kind: str
    dedup_key: str
    receiver: str
    alerts: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    new: int = 0
    group_key: str | None = None
    group_labels: dict[str, str] = field(default_factory=dict)
    text: str = ""
    escalation_level: int | None = None
    public_url: str = "http://127.0.0.1:8000"
    parts_done: int = 0

    @classmethod
    def from_payload(cls, payload: dict[str, Any], parts_done: int = 0) -> Message:
        known = {k: v for k, v in payload.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "parts_done": parts_done})

    def payload(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data.pop("parts_done")
        return data

    @property
    def severity(self) -> str:
        order = ["critical", "warning", "info"]
        found = [a.get("severity", "info") for a in self.alerts] or ["info"]
        return min(found, key=lambda s: order.index(s) if s in order else 3)

    @property
    def omitted(self) -> int:
        return max(self.total - len(self.alerts), 0)


class Notifier(Protocol):
    def send(self, message: Message) -> None: ...


def title(message: Message) -> str:
    """Subject line: kind, severity, rule(s) and count."""
    kind = KIND_ZH.get(message.kind, "舆情预警")
    if message.kind in ("silence_notice", "test"):
        return f"【{kind}】yuqing 舆情系统"
    rules = sorted({a.get("rule", "") for a in message.alerts})
    rule_text = "、".join(rules[:3]) + ("等" if len(rules) > 3 else "")
    level = f"第{message.escalation_level}级" if message.escalation_level else ""
    return f"【{kind}{level}·{SEVERITY_ZH.get(message.severity, message.severity)}】{rule_text} 共 {message.total} 条"


def _risk_text(a: dict[str, Any]) -> str:
    ann = a.get("annotations", {})
    parts = []
    if ann.get("risk_level"):
        parts.append(f"{ann['risk_level']}级")
    if ann.get("risk_score") is not None:
        parts.append(f"风险分 {ann['risk_score']:g}")
    return " ".join(parts)


def alert_lines(a: dict[str, Any], index: int) -> list[str]:
    """A plain-text block for one alert: title, risk, where from, why, link."""
    ann = a.get("annotations", {})
    labels = a.get("labels", {})
    head = f"{index}. [{SEVERITY_ZH.get(a.get('severity', ''), a.get('severity', ''))}] {ann.get('title', '')}"
    risk = _risk_text(a)
    lines = [head + (f"（{risk}）" if risk else "")]
    where = [labels.get("source", ""), labels.get("channel", ""), labels.get("region", "") and f"属地 {labels['region']}",
             labels.get("department", "") and f"承办 {labels['department']}"]
    where = [w for w in where if w]
    if where:
        lines.append("   来源：" + " / ".join(where))
    if ann.get("summary"):
        lines.append("   摘要：" + ann["summary"])
    reasons = ann.get("reasons") or []
    if reasons:
        lines.append("   原因：" + "；".join(_reason_text(r) for r in reasons[:5]))
    state = a.get("state")
    if state and state != "firing":
        lines.append(f"   状态：{STATE_ZH.get(state, state)}" + (f"（{a['acked_by']}）" if a.get("acked_by") else ""))
    if ann.get("link"):
        lines.append(f"   链接：{ann['link']}")
    if ann.get("url"):
        lines.append(f"   原文：{ann['url']}")
    lines.append(f"   预警编号：{a.get('id')}（认领：POST /api/alerts/{a.get('id')}/ack）")
    return lines


def _reason_text(r: dict[str, Any]) -> str:
    detail = f" {r['detail']}" if r.get("detail") else ""
    evidence = f"「{r['evidence']}」" if r.get("evidence") else ""
    weight = r.get("weight")
    weight_text = f"(+{weight:g})" if isinstance(weight, int | float) else ""
    return f"{r.get('feature', '')}{weight_text}{detail}{evidence}"


def intro(message: Message) -> str:
    if message.kind in ("silence_notice", "test"):
        return message.text
    line = f"共 {message.total} 条预警"
    if message.new and message.kind == "alert":
        line += f"，新增 {message.new} 条"
    if message.kind == "repeat":
        line += "，仍未认领，重复提醒"
    if message.kind == "escalation":
        line += f"，超时未认领，已升级至第 {message.escalation_level} 级"
    if message.group_labels:
        line += "（分组：" + "，".join(f"{k}={v}" for k, v in message.group_labels.items() if v) + "）"
    return line


def footer_omitted(message: Message, shown: int) -> str:
    rest = message.total - shown
    return f"另有 {rest} 条未列出，请登录系统查看：{message.public_url.rstrip('/')}/alerts" if rest > 0 else ""


def render_text(message: Message, max_alerts: int = 200) -> str:
    lines = [title(message), "", intro(message), ""]
    shown = message.alerts[:max_alerts]
    for i, a in enumerate(shown, 1):
        lines.extend(alert_lines(a, i))
        lines.append("")
    if rest := footer_omitted(message, len(shown)):
        lines.append(rest)
    lines.append("—— yuqing 舆情监测系统（请勿直接回复本邮件）")
    return "\n".join(lines)


def render_html(message: Message, max_alerts: int = 200) -> str:
    e = html.escape
    rows = []
    for i, a in enumerate(message.alerts[:max_alerts], 1):
        ann = a.get("annotations", {})
        link = ann.get("link", "")
        reasons = "；".join(e(_reason_text(r)) for r in (ann.get("reasons") or [])[:5])
        labels = a.get("labels", {})
        where = " / ".join(e(v) for v in (labels.get("source", ""), labels.get("channel", ""), labels.get("region", "")) if v)
        rows.append(
            f"<tr><td>{i}</td><td>{e(SEVERITY_ZH.get(a.get('severity', ''), ''))}</td>"
            f"<td><a href=\"{e(link)}\">{e(ann.get('title', ''))}</a><br><small>{e(ann.get('summary', ''))}</small></td>"
            f"<td>{e(_risk_text(a))}</td><td>{where}</td><td>{reasons}</td><td>{a.get('id')}</td></tr>")
    rest = footer_omitted(message, min(len(message.alerts), max_alerts))
    table = ("<table border=\"1\" cellpadding=\"4\" cellspacing=\"0\"><tr><th>#</th><th>级别</th><th>标题 / 摘要</th>"
             "<th>风险</th><th>来源</th><th>原因</th><th>编号</th></tr>" + "".join(rows) + "</table>") if rows else ""
    return (f"<html><body><h3>{e(title(message))}</h3><p>{e(intro(message))}</p>{table}"
            f"{f'<p>{e(rest)}</p>' if rest else ''}<p><small>yuqing 舆情监测系统</small></p></body></html>")


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def truncate_bytes(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[: max(limit - 3, 0)].decode("utf-8", errors="ignore") + "…"


def split_markdown(message: Message, *, max_bytes: int, max_parts: int) -> list[str]:
    """Markdown parts each within `max_bytes` (UTF-8), at most `max_parts`; the last says how many were left out.

    Alerts are never cut in half: a block that does not fit starts the next part (a single block longer than a
    whole part is truncated with an ellipsis).
    """
    header = f"### {title(message)}\n{intro(message)}\n"
    blocks = ["\n".join(alert_lines(a, i)) + "\n" for i, a in enumerate(message.alerts, 1)]
    if message.kind in ("silence_notice", "test"):
        blocks = []
    reserve = 200  # room for "(2/5)" and the omitted-count footer
    budget = max_bytes - reserve
    parts: list[list[str]] = [[truncate_bytes(header, budget)]]
    used = utf8_len(parts[0][0])
    shown = 0
    for block in blocks:
        block = truncate_bytes(block, budget - 100)
        size = utf8_len(block)
        if used + size > budget:
            if len(parts) == max_parts:
                break
            parts.append([])
            used = 0
        parts[-1].append(block)
        used += size
        shown += 1
    rendered = ["".join(p) for p in parts]
    omitted = message.total - shown if message.kind not in ("silence_notice", "test") else 0
    if omitted > 0:
        rendered[-1] += "\n" + f"另有 {omitted} 条未列出，请登录系统查看：{message.public_url.rstrip('/')}/alerts"
    if len(rendered) > 1:
        rendered = [f"({i}/{len(rendered)}) " + text for i, text in enumerate(rendered, 1)]
    return rendered


def http_failure(status: int, body: str, channel: str) -> NotifyError:
    """Map an HTTP status to recoverable (5xx, 408, 429) or permanent (other 4xx)."""
    recoverable = status >= 500 or status in (408, 425, 429)
    return NotifyError(f"{channel} answered HTTP {status}: {body[:200]}", recoverable=recoverable)  # redacted by NotifyError
