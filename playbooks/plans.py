"""Playbooks as data: YAML files validated strictly (unknown keys, roles, rules, receivers, unreadable due times
and cycles between steps are errors naming the file and the field). No I/O beyond loading."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from core import yamlfile
from core.calendar import DueSpec, parse_due
from core.config import Strict
from core.config_alerts import Matchers, all_match
from core.config_playbooks import RoleConfig
from core.errors import PlaybookError

SHIPPED_DIR = Path(__file__).with_name("plans")
ID = r"^[a-z][a-z0-9_]{0,63}$"
ANCHORS = ("received", "detected", "alert", "run_start")
EvidenceKind = Literal["link", "text", "file"]

# 诉求类型 as users write it → the English identifier items carry (core.models.RequestType).
REQUEST_TYPES_ZH = {"咨询": "consult", "求助": "help", "建议": "suggest", "投诉": "complain", "举报": "report"}


def normalise_label(name: str, value: str) -> str:
    if name == "request_type":
        return REQUEST_TYPES_ZH.get(value.strip(), value.strip().lower())
    return value


def _due(value: Any) -> str:
    parse_due(value)  # raises ValueError with the accepted forms
    return str(value).strip()


class DueByLabel(Strict):
    """A due time chosen by a label of the run, e.g. the 12345 clock by request type."""

    by: str = Field(min_length=1)
    values: dict[str, str] = Field(min_length=1)
    default: str | None = None

    @field_validator("values")
    @classmethod
    def _values(cls, value: dict[str, str]) -> dict[str, str]:
        return {k: _due(v) for k, v in value.items()}

    @field_validator("default")
    @classmethod
    def _default(cls, value: str | None) -> str | None:
        return None if value is None else _due(value)

    def choose(self, labels: dict[str, str]) -> str | None:
        actual = normalise_label(self.by, labels.get(self.by, ""))
        for key, due in self.values.items():
            if normalise_label(self.by, key) == actual:
                return due
        return self.default

    def units(self) -> set[str]:
        return {parse_due(v).unit for v in [*self.values.values(), *([self.default] if self.default else [])]}


class StepSpec(Strict):
    """One step: who does it, by when (relative to an anchor), what evidence closes it, who signs it off."""

    id: str = Field(pattern=ID)
    title: str = Field(min_length=1)
    role: str | None = None
    receiver: str | None = None  # an alerts receiver told about this step's clock (besides the role's)
    due: str | DueByLabel | None = None  # 5h, 48h, 2d, 15wd, or by label; none = no clock
    anchor: str = "received"  # received | detected | alert | run_start | step:<id> (that step's completion)
    evidence: list[EvidenceKind] = Field(default_factory=list)  # kinds required before the step is done
    approval: list[str] = Field(default_factory=list)  # 审签 chain of roles: the first drafts, the others sign in order
    statement: bool = False  # the step publishes a statement (口径): an approval chain is required
    public_response: bool = False  # completing it is a public response (outcome review measures from the first)
    completes_on_reply: bool = False  # done when the item carries an official reply (work order / letter answered)
    extension: str | None = None  # at most this much extra time may be granted (same unit as `due`)
    extension_role: str | None = None  # who may grant it (default: the last role of the approval chain, else leader)
    skippable: bool = True
    basis: str = ""  # the rule behind the clock

    @field_validator("due", mode="before")
    @classmethod
    def _due_value(cls, value: Any) -> Any:
        if isinstance(value, str | int) and not isinstance(value, bool):
            return _due(str(value))
        return value

    @field_validator("extension")
    @classmethod
    def _extension(cls, value: str | None) -> str | None:
        return None if value is None else _due(value)

    @field_validator("anchor")
    @classmethod
    def _anchor(cls, value: str) -> str:
        if value in ANCHORS or (value.startswith("step:") and len(value) > 5):
            return value
        raise ValueError(f"unknown anchor {value!r}: use {', '.join(ANCHORS)} or step:<step id>")

    @model_validator(mode="after")
    def _shape(self) -> StepSpec:
        if self.statement and len(self.approval) < 2:
            raise ValueError(f"step {self.id!r} publishes a statement: give an approval chain of at least two roles "
                             "(drafter → … → leader)")
        if len(set(self.approval)) != len(self.approval):
            raise ValueError(f"step {self.id!r}: a role appears twice in the approval chain")
        if self.extension is not None:
            if self.due is None:
                raise ValueError(f"step {self.id!r}: an extension needs a due time to extend")
            units = self.due.units() if isinstance(self.due, DueByLabel) else {parse_due(self.due).unit}
            if units != {parse_due(self.extension).unit}:
                raise ValueError(f"step {self.id!r}: extension {self.extension} must use the unit of the due time")
        return self

    @property
    def depends_on(self) -> str | None:
        return self.anchor[5:] if self.anchor.startswith("step:") else None

    def due_for(self, labels: dict[str, str]) -> DueSpec | None:
        if self.due is None:
            return None
        chosen = self.due.choose(labels) if isinstance(self.due, DueByLabel) else self.due
        return parse_due(chosen) if chosen else None

    def roles(self) -> list[str]:
        return [r for r in [self.role, *self.approval, self.extension_role] if r]


class Trigger(Strict):
    """When a run starts by itself: on a newly firing alert (of these rules, with these labels) or on a stored
    item (e.g. every work order with a request type). Conditions given must all hold."""

    kind: Literal["alert", "item"]  # (not `on`: YAML 1.1 reads it as true)
    rules: list[str] = Field(default_factory=list)
    matchers: Matchers = Field(default_factory=list)

    @model_validator(mode="after")
    def _shape(self) -> Trigger:
        if self.kind == "item" and self.rules:
            raise ValueError("an item trigger has no alert rules; use matchers on item labels")
        if not self.rules and not self.matchers:
            raise ValueError("a trigger needs rules or matchers (an empty trigger would start a run for everything)")
        return self

    def matches(self, labels: dict[str, str], rule: str | None = None) -> bool:
        if self.rules and rule not in self.rules:
            return False
        return all_match(self.matchers, labels)


class Playbook(Strict):
    """A response plan template (预案)."""

    id: str = Field(pattern=ID)
    name: str = Field(min_length=1)
    description: str = ""
    basis: str = Field(min_length=1)  # the rule it implements, e.g. 国办发〔2016〕80号
    triggers: list[Trigger] = Field(default_factory=list)
    steps: list[StepSpec] = Field(min_length=1)

    def step(self, step_id: str) -> StepSpec:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise PlaybookError(f"playbook {self.id!r} has no step {step_id!r}",
                            errors=[{"loc": ["step_id"], "msg": f"unknown step {step_id!r}"}])

    @property
    def version(self) -> str:
        """A short hash of the definition: runs record which version they followed."""
        return hashlib.sha1(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:12]


def _error(origin: str, exc: ValidationError) -> PlaybookError:
    errors = [{"loc": [origin, *map(str, e["loc"])], "msg": e["msg"]} for e in exc.errors()]
    lines = [f"{origin}: {'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()]
    return PlaybookError("invalid playbook\n" + "\n".join(lines), errors=errors)


def step_graph_problems(playbook: Playbook, origin: str) -> list[dict[str, Any]]:
    """Unique step ids, anchors on existing steps, and no cycle through the anchors (one edge per step, so a walk
    from each step finds any cycle)."""
    problems: list[dict[str, Any]] = []
    ids = [s.id for s in playbook.steps]
    for i, step in enumerate(playbook.steps):
        if ids.count(step.id) > 1:
            problems.append({"loc": [origin, "steps", str(i), "id"], "msg": f"duplicate step id {step.id!r}"})
    by_id = {s.id: s for s in playbook.steps}
    for i, step in enumerate(playbook.steps):
        dep = step.depends_on
        loc = [origin, "steps", str(i), "anchor"]
        if dep is None:
            continue
        if dep == step.id:
            problems.append({"loc": loc, "msg": f"step {step.id!r} cannot be anchored on itself"})
        elif dep not in by_id:
            problems.append({"loc": loc, "msg": f"step {dep!r} does not exist; steps: {ids}"})
    if problems:
        return problems
    for i, step in enumerate(playbook.steps):
        seen = [step.id]
        current = step
        while (dep := current.depends_on) is not None:
            if dep in seen:
                cycle = " → ".join([*seen[seen.index(dep):], dep])
                problems.append({"loc": [origin, "steps", str(i), "anchor"],
                                 "msg": f"the steps' anchors form a cycle: {cycle}"})
                break
            seen.append(dep)
            current = by_id[dep]
    return problems


def check_references(playbook: Playbook, origin: str, *, roles: dict[str, RoleConfig], rules: set[str] | None,
                     receivers: set[str] | None) -> None:
    """Roles, alert rules and receivers a playbook names must exist; the error names the field."""
    problems: list[dict[str, Any]] = step_graph_problems(playbook, origin)
    for i, step in enumerate(playbook.steps):
        for field_name in ("role", "extension_role"):
            role = getattr(step, field_name)
            if role is not None and role not in roles:
                problems.append({"loc": [origin, "steps", str(i), field_name],
                                 "msg": f"unknown role {role!r}; roles: {sorted(roles)}"})
        for j, role in enumerate(step.approval):
            if role not in roles:
                problems.append({"loc": [origin, "steps", str(i), "approval", str(j)],
                                 "msg": f"unknown role {role!r}; roles: {sorted(roles)}"})
        if step.receiver is not None and receivers is not None and step.receiver not in receivers:
            problems.append({"loc": [origin, "steps", str(i), "receiver"],
                             "msg": f"receiver {step.receiver!r} is not an alerts receiver; receivers: {sorted(receivers)}"})
    if rules is not None:
        for i, trigger in enumerate(playbook.triggers):
            for j, rule in enumerate(trigger.rules):
                if rule not in rules:
                    problems.append({"loc": [origin, "triggers", str(i), "rules", str(j)],
                                     "msg": f"unknown alert rule {rule!r}; rules: {sorted(rules)}"})
    if problems:
        lines = [f"{p['loc'][0]}: {'.'.join(p['loc'][1:]) or '<root>'}: {p['msg']}" for p in problems]
        raise PlaybookError("invalid playbook\n" + "\n".join(lines), errors=problems)


def parse_playbook(data: Any, origin: str = "<playbook>", *, roles: dict[str, RoleConfig], rules: set[str] | None = None,
                   receivers: set[str] | None = None) -> Playbook:
    """Validate one playbook mapping; any problem is a PlaybookError with `errors[].loc` naming the field."""
    if not isinstance(data, dict):
        raise PlaybookError(f"{origin}: a playbook must be a mapping, got {type(data).__name__}",
                            errors=[{"loc": [origin], "msg": "not a mapping"}])
    try:
        playbook = Playbook.model_validate(data)
    except ValidationError as exc:
        raise _error(origin, exc) from None
    check_references(playbook, origin, roles=roles, rules=rules, receivers=receivers)
    return playbook


def load_playbooks(directory: Path | None = None, *, roles: dict[str, RoleConfig], rules: set[str] | None = None,
                   receivers: set[str] | None = None) -> dict[str, Playbook]:
    """Every `*.yaml` in `directory` (default: the shipped plans), validated; ids must be unique."""
    folder = Path(directory) if directory else SHIPPED_DIR
    if not folder.is_dir():
        raise PlaybookError(f"playbooks directory {folder} does not exist")
    out: dict[str, Playbook] = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            data = yamlfile.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise PlaybookError(f"{path.name}: cannot read playbook: {exc}") from exc
        playbook = parse_playbook(data, path.name, roles=roles, rules=rules, receivers=receivers)
        if playbook.id in out:
            raise PlaybookError(f"{path.name}: playbook id {playbook.id!r} is already used by another file")
        out[playbook.id] = playbook
    return out
