"""The `alerts:` section of yuqing.yaml: rules, routing tree, receivers, silences' notice, inhibition, time windows.

Modelled on Alertmanager's config (route tree, matchers, group_* timers, inhibit_rules, time_intervals) and
validated as strictly: an undefined receiver, a root route with `continue` or a bad matcher regex stops start-up
(and a reload keeps the old rules).
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator

from core.config_base import Strict

# ---- durations ---------------------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: Any) -> timedelta:
    """'30s', '5m', '4h', '1d', '1w' or a number of seconds → timedelta; negative or garbled values are errors."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
        if value.startswith(("P", "-P")):  # ISO 8601, as pydantic writes timedeltas back out
            from pydantic import TypeAdapter, ValidationError

            try:
                parsed = TypeAdapter(timedelta).validate_python(value)
            except ValidationError:
                parsed = None
            if parsed is not None and parsed >= timedelta(0):
                return parsed
    raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 4h, 1d)")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

# ---- matchers ----------------------------------------------------------------------------------------------

_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$')


class Matcher(Strict):
    """One label condition as in Alertmanager: `name="v"`, `name!="v"`, `name=~"re"`, `name!~"re"`.

    Regexes are anchored (full match). A missing label is the empty string, so `region=""` matches items without one.
    """

    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    @model_validator(mode="after")
    def _regex_compiles(self) -> Matcher:
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"matcher {self.name}{self.op}{self.value!r}: bad regular expression: {exc}") from None
        return self

    @classmethod
    def parse(cls, text: str) -> Matcher:
        match = _MATCHER.match(text)
        if not match:
            raise ValueError(f'cannot read matcher {text!r}; write name="value", name!="value", name=~"regex" or name!~"regex"')
        name, op, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        return cls(name=name, op=op, value=value)

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


def _to_matchers(value: Any) -> list[Matcher]:
    """Accept a list of matcher strings, or a mapping {label: value} meaning equality (short form)."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [Matcher(name=str(k), op="=", value=str(v)) for k, v in value.items()]
    if isinstance(value, list):
        out = []
        for entry in value:
            if isinstance(entry, Matcher):
                out.append(entry)
            elif isinstance(entry, dict):
                out.append(Matcher.model_validate(entry))
            elif isinstance(entry, str):
                out.append(Matcher.parse(entry))
            else:
                raise ValueError(f"a matcher must be a string like region=\"江城市\", got {entry!r}")
        return out
    raise ValueError("matchers must be a list of strings or a mapping of label: value")


Matchers = Annotated[list[Matcher], BeforeValidator(_to_matchers)]


def all_match(matchers: list[Matcher], labels: dict[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


# ---- receivers ---------------------------------------------------------------------------------------------


class SmtpConfig(Strict):
    """An SMTP relay; `starttls` upgrades a plain connection, `ssl` connects with TLS from the start (port 465)."""

    host: str
    port: int = Field(25, ge=1, le=65535)
    sender: str = Field(min_length=3)
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password: SecretStr | None = None
    timeout: float = Field(10.0, gt=0, le=300)
    ca_file: str | None = None  # trust this CA (PEM) for TLS, e.g. an internal relay's own certificate
    reuse_count: int = Field(100, ge=1, le=100_000)  # messages per connection before a fresh one (1 = no reuse)
    idle_seconds: float = Field(30.0, ge=0, le=3600)  # an idle connection older than this is closed, not reused

    @model_validator(mode="after")
    def _one_tls_mode(self) -> SmtpConfig:
        if self.starttls and self.ssl:
            raise ValueError("choose starttls (upgrade on port 25/587) or ssl (port 465), not both")
        if self.password is not None and not self.username:
            raise ValueError("password given without username")
        return self


class EmailIntegration(Strict):
    to: list[str] = Field(min_length=1)
    smtp: SmtpConfig | None = None  # overrides alerts.smtp for this receiver

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if "@" not in address or address.startswith("@") or address.endswith("@"):
                raise ValueError(f"not an e-mail address: {address!r}")
        return value


class WebhookIntegration(Strict):
    """Generic JSON POST; `max_alerts` caps the alerts listed in one request (the rest are counted)."""

    url: SecretStr
    timeout: float = Field(5.0, gt=0, le=120)
    max_alerts: int = Field(500, ge=1, le=100_000)
    headers: dict[str, str] = Field(default_factory=dict)


class WeComIntegration(Strict):
    """企业微信 group robot: the full webhook URL including its key; markdown messages of at most `max_bytes`."""

    url: SecretStr
    mentioned_mobiles: list[str] = Field(default_factory=list)
    max_bytes: int = Field(4096, ge=256, le=4096)
    max_parts: int = Field(10, ge=1, le=100)
    timeout: float = Field(5.0, gt=0, le=120)


class DingTalkIntegration(Strict):
    """钉钉 group robot: URL with access_token; `secret` turns on the signed URL (加签)."""

    url: SecretStr
    secret: SecretStr | None = None
    at_mobiles: list[str] = Field(default_factory=list)
    max_bytes: int = Field(20000, ge=256, le=20000)
    max_parts: int = Field(10, ge=1, le=100)
    timeout: float = Field(5.0, gt=0, le=120)


class InAppIntegration(Strict):
    """Live in-app delivery over the SSE stream `/api/alerts/stream`; `audience` tags events so clients can filter."""

    audience: str | None = None


class DutyRota(Strict):
    """A duty rotation: `members` (receiver names) take turns of `shift`, counted from `start` at `handover`."""

    members: list[str] = Field(min_length=1)
    start: date
    shift: Duration = timedelta(days=1)
    handover: time = time(9, 0)
    timezone: str = "Asia/Shanghai"


class ReceiverConfig(Strict):
    """A person, team or duty rota; each integration is delivered (and retried) separately."""

    name: str = Field(min_length=1, max_length=100)
    email: EmailIntegration | None = None
    webhook: WebhookIntegration | None = None
    wecom: WeComIntegration | None = None
    dingtalk: DingTalkIntegration | None = None
    inapp: InAppIntegration | None = None
    rota: DutyRota | None = None

    @model_validator(mode="after")
    def _has_integration(self) -> ReceiverConfig:
        channels = [self.email, self.webhook, self.wecom, self.dingtalk, self.inapp]
        if self.rota is not None and any(channels):
            raise ValueError(f"receiver {self.name!r}: a rota names other receivers and cannot have its own channels")
        if self.rota is None and not any(channels):
            raise ValueError(f"receiver {self.name!r} has no channel (email, webhook, wecom, dingtalk, inapp or rota)")
        return self

    def integrations(self) -> list[str]:
        return [n for n in ("email", "webhook", "wecom", "dingtalk", "inapp") if getattr(self, n) is not None]


# ---- time windows ------------------------------------------------------------------------------------------


class TimeRange(Strict):
    start: time
    end: time  # exclusive; "24:00" is not valid YAML time, write "23:59:59"

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.end <= self.start:
            raise ValueError(f"time range {self.start}–{self.end}: end must be after start (split ranges over midnight)")
        return self


class TimeInterval(Strict):
    """A named window. `workdays: true` = official working days incl. 调休 make-up days; `false` = rest days."""

    name: str
    weekdays: list[int] | None = None  # 1 = Monday … 7 = Sunday
    workdays: bool | None = None
    times: list[TimeRange] = Field(default_factory=list)  # empty = the whole day
    timezone: str = "Asia/Shanghai"

    @field_validator("weekdays")
    @classmethod
    def _weekday_range(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(not 1 <= d <= 7 for d in value):
            raise ValueError("weekdays are 1 (Monday) to 7 (Sunday)")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


# ---- routing -----------------------------------------------------------------------------------------------


class EscalationStep(Strict):
    """Unacknowledged `after` this long since the alert started firing → notify `receiver`."""

    after: Duration
    receiver: str


class RouteConfig(Strict):
    """A node of the routing tree; unset timers and group_by inherit from the parent, as in Alertmanager."""

    receiver: str | None = None
    matchers: Matchers = Field(default_factory=list)
    continue_: bool = Field(False, alias="continue")
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    active_time_intervals: list[str] = Field(default_factory=list)
    mute_time_intervals: list[str] = Field(default_factory=list)
    escalation: list[EscalationStep] | None = None
    routes: list[RouteConfig] = Field(default_factory=list)

    model_config = {"extra": "forbid", "populate_by_name": True}

    @field_validator("escalation")
    @classmethod
    def _escalation_order(cls, value: list[EscalationStep] | None) -> list[EscalationStep] | None:
        if value and any(b.after <= a.after for a, b in zip(value, value[1:], strict=False)):
            raise ValueError("escalation steps must have increasing `after` times")
        return value


# ---- rules -------------------------------------------------------------------------------------------------

RISK_LEVELS = ("I", "II", "III", "IV")  # I = 特别重大 (red) … IV = 一般 (blue)


class SpikeSpec(Strict):
    """A volume spike as `analysis.spikes` finds it: items of one topic, scheme, region or source in the last `window`
    against the `baseline_windows` windows before, by a one-sided binomial test (p < `alpha`), with at least
    `min_count` recent items and a rate at least `factor` × the baseline rate.

    `by` names the dimension (none = all four). Only values touched by newly stored items that match the rule's
    conditions are alerted on; the counts cover every item of that value. Detection runs at most every `check_every`.
    """

    window: Duration = timedelta(hours=1)
    min_count: int = Field(10, ge=1)
    factor: float = Field(3.0, ge=1.0)
    baseline_windows: int = Field(24, ge=1, le=1000)
    alpha: float = Field(0.01, gt=0, lt=1)
    by: Literal["topic", "scheme", "region", "source"] | None = None
    check_every: Duration = timedelta(seconds=30)

    @field_validator("window")
    @classmethod
    def _positive_window(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("a spike window must be longer than zero")
        return value


class RuleConfig(Strict):
    """When to raise an alert and with which severity and labels.

    kind: item (each stored item), event (the item's event as a whole), spike (volume over time),
    source_health (a degraded or failing source — an operations alert), deadline (a response-plan step reaching
    its warning time or its deadline; `deadline_stages` picks which, `matchers` see playbook/step/role labels).
    All conditions given must hold; list conditions mean "any of".
    """

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_\-.]+$")
    kind: Literal["item", "event", "spike", "source_health", "deadline"] = "item"
    severity: Literal["critical", "warning", "info"] = "warning"
    description: str = ""
    matchers: Matchers = Field(default_factory=list)
    min_risk_score: float | None = Field(None, ge=0, le=100)
    min_risk_level: Literal["I", "II", "III", "IV"] | None = None
    topics: list[str] | None = None
    emotions: list[str] | None = None
    schemes: list[str] | None = None
    channels: list[str] | None = None
    sources: list[str] | None = None
    regions: list[str] | None = None
    min_event_items: int | None = Field(None, ge=1)
    min_event_heat: float | None = Field(None, ge=0)
    # items published longer ago never raise this rule (history is not news); raise it to alert on older items
    max_age: Duration = timedelta(days=7)
    spike: SpikeSpec | None = None
    source_statuses: list[Literal["degraded", "failing"]] = Field(default_factory=lambda: ["degraded", "failing"])
    deadline_stages: list[Literal["warning", "breach"]] = Field(default_factory=lambda: ["warning", "breach"])
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _kind_fits(self) -> RuleConfig:
        if self.kind == "spike" and self.spike is None:
            raise ValueError(f"rule {self.name!r}: kind spike needs a `spike:` section")
        if self.kind != "spike" and self.spike is not None:
            raise ValueError(f"rule {self.name!r}: `spike:` only applies to kind spike")
        if self.kind != "event" and (self.min_event_items is not None or self.min_event_heat is not None):
            raise ValueError(f"rule {self.name!r}: min_event_items/min_event_heat only apply to kind event")
        reserved = {"rule", "severity", "kind"} & set(self.labels)
        if reserved:
            raise ValueError(f"rule {self.name!r}: labels {sorted(reserved)} are set by yuqing and cannot be overridden")
        return self


class InhibitRule(Strict):
    """While an alert matching `source_matchers` is active, alerts matching `target_matchers` with equal `equal`
    labels are muted — e.g. an event-level alert suppresses the item-level alerts of the same event."""

    source_matchers: Matchers = Field(min_length=1)
    target_matchers: Matchers = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)


class SilenceNoticeConfig(Strict):
    """Warn `receiver` (and the silence's owner, when the owner is a receiver name) `before` a silence expires."""

    before: Duration = timedelta(hours=2)
    receiver: str | None = None


class RetryConfig(Strict):
    """Exponential backoff for recoverable failures: initial × multiplier^n, capped, at most max_attempts sends."""

    initial: Duration = timedelta(seconds=2)
    multiplier: float = Field(2.0, ge=1.0, le=10.0)
    max_delay: Duration = timedelta(minutes=10)
    max_attempts: int = Field(10, ge=1, le=100)


class ArchiveConfig(Strict):
    """Resolved alerts leave the hot tables `after` their resolution, at most `batch` per pass (alerts/archive.py);
    they stay readable (by id, `state=resolved` lists, reports)."""

    after: Duration = timedelta(days=7)
    batch: int = Field(1000, ge=1, le=100_000)


class AlertsConfig(Strict):
    """Root of the `alerts:` section."""

    enabled: bool = True
    public_url: str = "http://127.0.0.1:8000"  # item links in messages: {public_url}/items/{id}
    smtp: SmtpConfig | None = None
    rules: list[RuleConfig] = Field(default_factory=list)
    route: RouteConfig | None = None
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    time_intervals: list[TimeInterval] = Field(default_factory=list)
    critical_ignores_quiet_hours: bool = True
    silence_notice: SilenceNoticeConfig = Field(default_factory=SilenceNoticeConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    poll_interval: Duration = timedelta(seconds=1)  # the dispatcher also wakes at once when an alert is raised
    # Parallel sends, so one hanging webhook does not hold the others. A send mostly waits for the receiver (an e-mail
    # is four SMTP round trips), so parallel sessions set the delivery rate: with 4, a rule firing for every item of a
    # 250 items/s push fell minutes behind (bench/bench_push_alerts.py); 16 keeps up.
    send_workers: int = Field(16, ge=1, le=32)
    # Send the network channels (e-mail, webhook, WeCom, DingTalk) from a process of their own (alerts/delivery.py),
    # so their CPU runs on another core than ingest; false keeps every send in the service process's threads.
    delivery_process: bool = True
    max_alerts_per_message: int = Field(1000, ge=1, le=100_000)  # snapshot cap in one outbox row; the rest are counted
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig)

    @model_validator(mode="after")
    def _references(self) -> AlertsConfig:
        names = [r.name for r in self.receivers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate receiver names: {dupes}")
        rules = [r.name for r in self.rules]
        dup_rules = sorted({n for n in rules if rules.count(n) > 1})
        if dup_rules:
            raise ValueError(f"duplicate rule names: {dup_rules}")
        intervals = [t.name for t in self.time_intervals]
        known = set(names)

        def need(receiver: str | None, where: str) -> None:
            if receiver is not None and receiver not in known:
                raise ValueError(f"{where}: receiver {receiver!r} is not defined; defined receivers: {sorted(known) or 'none'}")

        for receiver in self.receivers:
            if receiver.rota:
                for member in receiver.rota.members:
                    need(member, f"rota {receiver.name!r}")
                    if any(r.name == member and r.rota for r in self.receivers):
                        raise ValueError(f"rota {receiver.name!r}: member {member!r} is itself a rota")
            if receiver.email and receiver.email.smtp is None and self.smtp is None:
                raise ValueError(f"receiver {receiver.name!r} sends e-mail but neither it nor alerts.smtp names an SMTP server")
        need(self.silence_notice.receiver, "silence_notice")
        if self.rules and self.route is None:
            raise ValueError("rules are defined but there is no `route`: say who receives the alerts")
        if self.route is not None:
            root = self.route
            if root.continue_:
                raise ValueError("route: the root route cannot have `continue`")
            if root.matchers:
                raise ValueError("route: the root route matches everything and cannot have matchers")
            if root.receiver is None:
                raise ValueError("route: the root route needs a receiver (the default for unmatched alerts)")

            def walk(node: RouteConfig, path: str) -> None:
                need(node.receiver, path)
                for step in node.escalation or []:
                    need(step.receiver, f"{path}.escalation")
                for name in [*node.active_time_intervals, *node.mute_time_intervals]:
                    if name not in intervals:
                        raise ValueError(f"{path}: time interval {name!r} is not defined in alerts.time_intervals")
                for i, child in enumerate(node.routes):
                    walk(child, f"{path}.routes[{i}]")

            walk(root, "route")
        return self

    def receiver(self, name: str) -> ReceiverConfig | None:
        return next((r for r in self.receivers if r.name == name), None)


RouteConfig.model_rebuild()
