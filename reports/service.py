"""Wires reports into the service: the one object every entry point uses (API, CLI, schedule), and the schedule.

`attach(service)` builds a `ReportService` over the store, the alert engine's reader and the plan service (when
attached), registers the tables, adds the API router and, with `reports.schedule`, a worker running APScheduler
(3.x) cron jobs in the reports' time zone. Each scheduled job makes the report of the period that just ended unless
a complete one is kept, and e-mails it to the configured receivers not yet sent to: running twice (a restart, a
catch-up at start) makes and sends nothing twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from alerts.clock import Clock, SystemClock
from core.config import Config
from core.errors import InputError, NotifyError, ReportError
from reports import store as _tables  # noqa: F401 - registers the "reports" migration chain
from reports.charts import report_charts
from reports.content import Sources, build_content
from reports.mail import email_receivers, send_report
from reports.period import KINDS, Period, latest_complete, parse_day
from reports.render import render_html, render_pdf
from reports.store import ReportArchive, StoredReport

if TYPE_CHECKING:
    from yuqing.host import Service

logger = logging.getLogger(__name__)
WEEKDAY_INDEX = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


class ReportService:
    """Makes, keeps, renders and sends reports for one store."""

    def __init__(self, store: Any, config: Config, *, alerts: Any = None, plans: Any = None,
                 clock: Clock | None = None) -> None:
        self.store = store
        self.config = config
        self.settings = config.reports
        self.zone = ZoneInfo(self.settings.timezone)
        self.clock = clock or SystemClock()
        self.archive = ReportArchive(store)
        from analysis.stages import analysis_config

        self.sources = Sources(store=store, spikes=analysis_config(config).spikes,
                               alerts=alerts.reader if alerts is not None else None, plans=plans,
                               playbook_names={p.id: p.name for p in plans.playbooks.values()} if plans else {})

    @property
    def page_base(self) -> str:
        """Links in pages yuqing serves: the configured base, else relative."""
        return self.settings.base_url or ""

    @property
    def document_base(self) -> str:
        """Links in PDFs and e-mails, read away from the site: the configured base, else the alerts' public URL."""
        return self.settings.base_url or self.config.alerts.public_url.rstrip("/")

    def period(self, kind: str, day: str | None) -> Period:
        return parse_day(day, kind, self.clock.now(), self.zone)

    def make(self, period: Period, *, trigger: str) -> StoredReport:
        """Make the report of `period` now and keep it (replacing an incomplete one)."""
        now = self.clock.now()
        s = self.settings
        content = build_content(self.sources, period, title=s.title, top_items=s.top_items, top_events=s.top_events,
                                links=s.links_per_statement, now=now)
        pdf_url = f"{self.page_base}/api/reports/{period.kind}?date={period.key}&format=pdf"
        try:
            charts = report_charts(content, s.font_path)
        except ReportError as exc:  # no CJK font: the HTML still says everything, without pictures; no PDF yet
            logger.warning("report %s %s without charts and PDF: %s", period.kind, period.key, exc.message)
            charts, pdf = {}, None
        else:
            pdf = render_pdf(content, base=self.document_base, charts=charts, font=s.font_path)
        html = render_html(content, base=self.page_base, pdf_url=pdf_url, charts=charts)
        return self.archive.save(kind=period.kind, period_key=period.key, start_ts=period.start.timestamp(),
                                 end_ts=period.end.timestamp(), generated_ts=now.timestamp(),
                                 complete=bool(content["complete"]), trigger=trigger, content=content, html=html,
                                 pdf=pdf, link_base=self.page_base)

    def get_or_make(self, period: Period, *, trigger: str = "demand", refresh: bool = False) -> StoredReport:
        """The kept report of `period` if it covers all of it; else a new one (a period still running is made
        again each time it is asked for)."""
        kept = self.archive.get(period.kind, period.key)
        if kept is not None and kept.complete and not refresh and kept.link_base == self.page_base:
            return kept  # (a changed reports.base_url makes it again, so its links point where they should)
        return self.make(period, trigger=trigger)

    def pdf(self, report: StoredReport) -> bytes:
        """The report's PDF; one kept without (no font when it was made) is rendered now, or ReportError."""
        if report.pdf is not None:
            return report.pdf
        pdf = render_pdf(report.content, base=self.document_base, font=self.settings.font_path)
        self.archive.set_pdf(report.id, pdf)
        report.pdf = pdf
        return pdf

    def send(self, report: StoredReport, *, receivers: list[str] | None = None,
             skip_sent: bool = False) -> list[dict[str, Any]]:
        """E-mail the report to `receivers` (default: reports.receivers); each outcome is kept. `skip_sent` leaves out
        the receivers it already went to (the schedule)."""
        names = self.settings.receivers if receivers is None else receivers
        if not names:
            raise InputError("no receivers: name them in the request or list alert receivers with e-mail under "
                             "reports.receivers", errors=[{"loc": ["body", "receivers"], "msg": "none configured"}])
        targets = email_receivers(self.config.alerts, names)
        if skip_sent:
            sent = {d["receiver"] for d in self.archive.deliveries(report.id) if d["status"] == "sent"}
            targets = [r for r in targets if r.name not in sent]
        if not targets:
            return []
        pdf = self.pdf(report)
        base = self.document_base
        html = report.html if report.link_base == base else render_html(
            report.content, base=base, pdf_url=f"{base}/api/reports/{report.kind}?date={report.period_key}&format=pdf",
            font=self.settings.font_path)
        outcomes = []
        for receiver in targets:
            error = None
            try:
                send_report(self.config.alerts, receiver, report.content, html, pdf, base=base, kind=report.kind,
                            period_key=report.period_key)
            except NotifyError as exc:
                error = exc.message
                logger.warning("report %s %s not sent to %s: %s", report.kind, report.period_key, receiver.name, error)
            self.archive.record_delivery(report.id, receiver.name, error=error, now=self.clock.now().timestamp())
            outcomes.append({"receiver": receiver.name, "status": "failed" if error else "sent", "error": error})
        return outcomes

    # ---- the schedule -----------------------------------------------------------------------------------------------

    def run_scheduled(self, kind: str) -> dict[str, Any]:
        """The job of `kind`: the period that just ended, made once and sent once to each receiver."""
        period = latest_complete(kind, self.clock.now(), self.zone)
        kept = self.archive.get(kind, period.key)
        made = kept is None or not kept.complete
        report = self.make(period, trigger="schedule") if made else kept
        assert report is not None
        sent = self.send(report, skip_sent=True) if self.settings.receivers else []
        logger.info("scheduled report kind=%s period=%s made=%s sent=%s", kind, period.key, made,
                    [s["receiver"] for s in sent if s["status"] == "sent"])
        return {"kind": kind, "date": period.key, "made": made, "sent": sent}

    def due_at(self, kind: str, now: datetime) -> datetime:
        """When this period's job of `kind` fires (today's, or this week's), in the reports' zone."""
        local = now.astimezone(self.zone)
        if kind == "daily":
            return datetime.combine(local.date(), self.settings.daily.at, self.zone)
        weekly = self.settings.weekly
        monday = local.date() - timedelta(days=local.weekday())
        return datetime.combine(monday + timedelta(days=WEEKDAY_INDEX[weekly.weekday]), weekly.at, self.zone)

    def missed(self, now: datetime | None = None) -> list[str]:
        """Kinds whose job time has passed in this period while the service was down (nothing complete kept, or
        receivers not yet sent to): the schedule catches them up at start."""
        now = now or self.clock.now()
        out = []
        for kind in self.enabled_kinds():
            if now < self.due_at(kind, now):
                continue
            period = latest_complete(kind, now, self.zone)
            kept = self.archive.get(kind, period.key)
            if kept is None or not kept.complete:
                out.append(kind)
                continue
            sent = {d["receiver"] for d in self.archive.deliveries(kept.id) if d["status"] == "sent"}
            if set(self.settings.receivers) - sent:
                out.append(kind)
        return out

    def enabled_kinds(self) -> list[str]:
        return [k for k in KINDS if getattr(self.settings, k).enabled]


class ReportScheduler:
    """APScheduler (3.x) cron jobs, one per report kind, in the reports' time zone; at start, the jobs whose time
    passed while the service was down run once."""

    def __init__(self, reports: ReportService, *, catch_up_delay: float = 30.0) -> None:
        self.reports = reports
        self.catch_up_delay = catch_up_delay  # seconds after start: start-up (and the inbox drain) goes first
        self.scheduler: Any = None

    def start(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.cron import CronTrigger

        settings = self.reports.settings
        scheduler = BackgroundScheduler(timezone=self.reports.zone)
        if settings.daily.enabled:
            scheduler.add_job(self._run, CronTrigger(hour=settings.daily.at.hour, minute=settings.daily.at.minute,
                                                     timezone=self.reports.zone), args=["daily"], id="report-daily",
                              coalesce=True, max_instances=1, misfire_grace_time=3600)
        if settings.weekly.enabled:
            scheduler.add_job(self._run, CronTrigger(day_of_week=settings.weekly.weekday, hour=settings.weekly.at.hour,
                                                     minute=settings.weekly.at.minute, timezone=self.reports.zone),
                              args=["weekly"], id="report-weekly", coalesce=True, max_instances=1,
                              misfire_grace_time=3600)
        catch_up = {"trigger": "date", "run_date": datetime.now(self.reports.zone) + timedelta(seconds=self.catch_up_delay)} \
            if self.catch_up_delay > 0 else {}  # no trigger: runs once, now
        for kind in self.reports.missed():
            scheduler.add_job(self._run, args=[kind], id=f"report-{kind}-catch-up", **catch_up)
        scheduler.start()
        self.scheduler = scheduler

    def _run(self, kind: str) -> None:
        try:
            self.reports.run_scheduled(kind)
        except Exception:  # noqa: BLE001 - a failed report is logged; the next start or run catches it up
            logger.exception("scheduled %s report failed", kind)

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
            self.scheduler = None


def attach(service: Service) -> ReportService | None:
    """Tables, the report service (`service.reports`), its API router and, with `reports.schedule`, the scheduler."""
    settings = service.config.reports
    if not settings.enabled:
        return None
    service.store.migrate()  # our tables register after the store opened
    reports = ReportService(service.store, service.config, alerts=service.alerts, plans=service.playbooks,
                            clock=service.alerts.clock if service.alerts is not None else None)
    service.reports = reports
    if settings.schedule and reports.enabled_kinds():
        service.workers.append(ReportScheduler(reports))
    service.add_routers("reports.api:router")
    return reports
