"""Source health: every run recorded, and a state per source (ok / degraded / failing) with the reason.

A source is **degraded** when a run that used to find entries finds none (the site changed), when parse errors
jump, when credentials are rejected, or after a failed run; **failing** after `failing_after` failed runs in a row.
Changes of state are kept in `crawl_health_changes`, so the alerts package can raise operations alerts from them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from core.config_crawl import HealthSpec
from crawlers.state import crawl_health, crawl_health_changes, crawl_runs, now_iso
from storage.base import StateStore

# Error kinds that mean a page was not usable (a jump in these is what degrades a source).
PARSE_ERRORS = {"parse_error", "no_entries", "config_error", "invalid_item"}
CREDENTIAL_ERRORS = {"credentials_rejected", "login_wall"}


@dataclass
class RunResult:
    """What one crawl run did, as reported by the crawl subprocess (or by the runner when the process failed)."""

    source: str
    started_at: str
    finished_at: str
    duration: float = 0.0
    finish_reason: str = ""
    pages: int = 0
    pages_ok: int = 0
    entries: int = 0
    entries_seen: int = 0
    items: int = 0  # new or changed items sent to the inbox (revisit_changed included)
    revisited: int = 0  # recently collected entries fetched again
    revisit_changed: int = 0  # of those, changed since collected (a reply, new counts)
    errors: dict[str, int] = field(default_factory=dict)
    message: str = ""
    resumed: bool = False
    incremental: bool = False  # the site was asked only for changes (updated_since): zero entries is normal
    exit_code: int = 0
    fields: dict[str, list[int]] = field(default_factory=dict)  # per configured field: [pages filled, pages read]

    @property
    def outcome(self) -> str:
        """failed: nothing usable was fetched; partial: stopped early (page cap, interrupted); else ok."""
        if self.exit_code != 0 or self.pages_ok == 0:
            return "failed"
        if self.finish_reason != "finished":
            return "partial"
        return "ok"


@dataclass
class SourceHealth:
    """The health of one source as shown in `GET /api/sources`."""

    source: str
    state: str = "unknown"
    reason: str = "never run"
    last_run_at: str | None = None
    last_success_at: str | None = None
    last_items: int = 0
    consecutive_failures: int = 0
    runs: int = 0
    errors_total: dict[str, int] = field(default_factory=dict)
    changed_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _judge(run: RunResult, history: list[Any], failures: int, rules: HealthSpec) -> tuple[str, str]:
    """The state after `run`, given earlier runs (newest first) and the consecutive failures including this run."""
    errors = run.errors
    if errors.get("config_error"):  # retrying cannot help: someone has to fix the source's configuration
        return "failing", f"configuration error ({errors['config_error']} pages): {run.message or 'see quarantine'}"
    if failures >= rules.failing_after:
        return "failing", f"{failures} failed runs in a row; last: {run.message or _describe(errors) or run.finish_reason}"
    if credential := sorted(CREDENTIAL_ERRORS & set(errors)):
        return "degraded", f"credentials rejected or login wall ({', '.join(credential)}): renew the cookie or token"
    if run.outcome == "failed":
        return "degraded", f"run failed: {run.message or _describe(errors) or 'no page could be fetched'}"
    found_before = any(r.entries > 0 for r in history[:10])
    if run.entries == 0 and found_before and not run.incremental:
        return "degraded", "pages that used to list entries now list none: the site's structure may have changed"
    if drift := _field_drift(run, history, rules):
        return "degraded", drift
    parse_errors = sum(v for k, v in errors.items() if k in PARSE_ERRORS)
    if parse_errors and parse_errors / max(run.entries, 1) > rules.error_jump_ratio:
        return "degraded", f"parse errors jumped: {parse_errors} of {run.entries} entries ({_describe(errors)})"
    if run.outcome == "partial":
        return "ok", f"stopped early ({run.finish_reason}); the next run resumes"
    if errors:
        return "ok", f"minor errors: {_describe(errors)}"
    return "ok", ""


def _field_drift(run: RunResult, history: list[Any], rules: HealthSpec) -> str:
    """Configured fields that used to be filled on most pages and are empty on every page of this run, named.

    Required fields already fail their pages; this catches the optional ones (`reply.text`, `region`), whose
    selector can stop matching without a single error."""
    lost = []
    for name, (filled, read) in sorted(run.fields.items()):
        if filled or read < rules.field_drift_min_pages:
            continue
        before_filled = before_read = 0
        for past in history[:10]:
            pair = json.loads(getattr(past, "fields", None) or "{}").get(name)
            if pair:
                before_filled += pair[0]
                before_read += pair[1]
        if before_read >= rules.field_drift_min_pages and before_filled / before_read >= rules.field_drift_share:
            lost.append(f"{name} (filled on {before_filled * 100 // before_read}% of pages before, on none of {read} now)")
    if not lost:
        return ""
    return (f"field{'s' if len(lost) > 1 else ''} no longer found: {'; '.join(lost)}: the site or its selector changed "
            f"(stored values are kept)")


def _describe(errors: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(errors.items()))


def record_run(store: StateStore, run: RunResult, rules: HealthSpec) -> SourceHealth:
    """Store the run, recompute the source's health and log a state change; returns the new health."""
    with store.write() as conn:
        history = conn.execute(select(crawl_runs).where(crawl_runs.c.source == run.source)
                               .order_by(crawl_runs.c.id.desc()).limit(20)).all()
        conn.execute(crawl_runs.insert().values(
            source=run.source, started_at=run.started_at, finished_at=run.finished_at, duration=run.duration,
            outcome=run.outcome, finish_reason=run.finish_reason, pages=run.pages, entries=run.entries, items=run.items,
            errors=json.dumps(run.errors), message=run.message[:2000], fields=json.dumps(run.fields)))
        row = conn.execute(select(crawl_health).where(crawl_health.c.source == run.source)).first()
        previous = _from_row(row) if row else SourceHealth(source=run.source)
        failures = previous.consecutive_failures + 1 if run.outcome == "failed" else 0
        state, reason = _judge(run, history, failures, rules)
        totals = dict(previous.errors_total)
        for kind, count in run.errors.items():
            totals[kind] = totals.get(kind, 0) + count
        now = now_iso()
        health = SourceHealth(
            source=run.source, state=state, reason=reason, last_run_at=run.finished_at,
            last_success_at=run.finished_at if run.outcome != "failed" else previous.last_success_at,
            last_items=run.items, consecutive_failures=failures, runs=previous.runs + 1, errors_total=totals,
            changed_at=now if state != previous.state else previous.changed_at)
        values = {**health.to_dict(), "errors_total": json.dumps(totals), "updated_at": now}
        if row is None:
            conn.execute(crawl_health.insert().values(**values))
        else:
            conn.execute(crawl_health.update().where(crawl_health.c.source == run.source).values(**values))
        if state != previous.state:
            conn.execute(crawl_health_changes.insert().values(source=run.source, from_state=previous.state, to_state=state,
                                                              reason=reason, at=now))
    return health


def _from_row(row: Any) -> SourceHealth:
    return SourceHealth(source=row.source, state=row.state, reason=row.reason, last_run_at=row.last_run_at,
                        last_success_at=row.last_success_at, last_items=row.last_items,
                        consecutive_failures=row.consecutive_failures, runs=row.runs,
                        errors_total=json.loads(row.errors_total or "{}"), changed_at=row.changed_at)


def source_health(store: StateStore) -> dict[str, SourceHealth]:
    """Health of every source that has run, by source id (for the API and for operations alerts)."""
    with store.read() as conn:
        rows = conn.execute(select(crawl_health).order_by(crawl_health.c.source)).all()
    return {r.source: _from_row(r) for r in rows}


def health_changes(store: StateStore, after_id: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """State changes with id > after_id, oldest first: what an alert rule polls to say a source went quiet."""
    with store.read() as conn:
        rows = conn.execute(select(crawl_health_changes).where(crawl_health_changes.c.id > after_id)
                            .order_by(crawl_health_changes.c.id).limit(limit)).all()
    return [dict(r._mapping) for r in rows]


def recent_runs(store: StateStore, source: str, limit: int = 10) -> list[dict[str, Any]]:
    with store.read() as conn:
        rows = conn.execute(select(crawl_runs).where(crawl_runs.c.source == source)
                            .order_by(crawl_runs.c.id.desc()).limit(limit)).all()
    out = []
    for r in rows:
        data = dict(r._mapping)
        data["errors"] = json.loads(data["errors"] or "{}")
        out.append(data)
    return out
