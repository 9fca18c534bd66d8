"""A report as an e-mail — the HTML as its body, a plain-text summary beside it, the PDF attached under its Chinese
name — sent through the alert receivers' e-mail integration (alerts.notify.email: its SMTP relay, TLS and login)."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from typing import Any
from urllib.parse import quote

from alerts.notify.email import EmailNotifier
from core.config_alerts import AlertsConfig, ReceiverConfig
from core.errors import InputError, NotifyError
from reports.render import link_url


def file_name(content: dict[str, Any], extension: str) -> str:
    """舆情日报（2026年12月5日）.pdf — what the user sees when saving it."""
    return f"{content['title']}（{content['period']['label']}）.{extension}"


def ascii_name(kind: str, period_key: str, extension: str) -> str:
    return f"yuqing-{kind}-{period_key}.{extension}"


def content_disposition(disposition: str, kind: str, period_key: str, content: dict[str, Any], extension: str) -> str:
    """RFC 6266 with an RFC 5987 `filename*` for the Chinese name and a plain ASCII `filename` for old clients."""
    chinese = quote(file_name(content, extension), safe="")
    return f"{disposition}; filename=\"{ascii_name(kind, period_key, extension)}\"; filename*=UTF-8''{chinese}"


def plain_text(content: dict[str, Any], base: str) -> str:
    lines = [f"{content['title']}（{content['period']['label']}）", ""]
    for statement in content["summary"]:
        lines.append("· " + statement["text"])
        lines.extend(f"    {link_url(link, base)}" for link in statement["links"])
    lines += ["", "完整报告见 HTML 正文与所附 PDF。"]
    return "\n".join(lines)


def report_email(content: dict[str, Any], html: str, pdf: bytes, *, sender: str, to: list[str], base: str,
                 kind: str, period_key: str) -> bytes:
    message = EmailMessage(policy=SMTP)
    message["Subject"] = f"{content['title']}（{content['period']['label']}）"
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(idstring=f"report.{kind}.{period_key}", domain="yuqing")
    message["X-Yuqing-Report"] = f"{kind} {period_key}"
    message.set_content(plain_text(content, base), charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename=file_name(content, "pdf"))
    return message.as_bytes()


def email_receivers(alerts: AlertsConfig, names: list[str]) -> list[ReceiverConfig]:
    """The named alert receivers; each must exist and have an e-mail integration (the config checks this at start)."""
    found = []
    for name in names:
        receiver = alerts.receiver(name)
        if receiver is None or receiver.email is None:
            known = sorted(r.name for r in alerts.receivers if r.email is not None) or "none"
            raise InputError(f"{name!r} is not an alert receiver with e-mail; receivers with e-mail: {known}",
                             errors=[{"loc": ["body", "receivers"], "msg": "unknown receiver"}])
        found.append(receiver)
    return found


def send_report(alerts: AlertsConfig, receiver: ReceiverConfig, content: dict[str, Any], html: str, pdf: bytes, *,
                base: str, kind: str, period_key: str) -> None:
    """One e-mail to the receiver's addresses over its SMTP relay; NotifyError when the relay refuses or is down."""
    assert receiver.email is not None
    smtp = receiver.email.smtp or alerts.smtp
    if smtp is None:
        raise NotifyError(f"receiver {receiver.name!r} has no SMTP relay (alerts.smtp)", recoverable=False)
    notifier = EmailNotifier(receiver.email, smtp, pool_size=1)
    try:
        notifier.send_mail(report_email(content, html, pdf, sender=smtp.sender, to=receiver.email.to, base=base,
                                        kind=kind, period_key=period_key))
    finally:
        notifier.close()
