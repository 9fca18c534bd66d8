"""E-mail over SMTP (plain, STARTTLS or implicit TLS, optional AUTH) with Chinese text and HTML bodies.

The Message-ID is derived from the outbox dedup key, so a message re-sent after a crash carries the same id and
mail clients and archives can fold the duplicate.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from alerts.notify.base import Message, render_html, render_text, title
from core.config_alerts import EmailIntegration, SmtpConfig
from core.errors import NotifyError


def message_id(dedup_key: str) -> str:
    """A stable RFC 5322 Message-ID from the dedup key (only atom characters on the left of @)."""
    return "<" + re.sub(r"[^A-Za-z0-9._-]", ".", dedup_key) + "@yuqing>"


def build_email(message: Message, smtp: SmtpConfig, to: list[str]) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = title(message)
    mail["From"] = smtp.sender
    mail["To"] = ", ".join(to)
    mail["Date"] = formatdate(localtime=True)
    mail["Message-ID"] = message_id(message.dedup_key)
    mail["X-Yuqing-Dedup-Key"] = message.dedup_key
    mail["X-Yuqing-Alert-Ids"] = ",".join(str(a.get("id")) for a in message.alerts[:200])
    mail["X-Yuqing-Item-Ids"] = ",".join(str(a.get("item_id")) for a in message.alerts[:200] if a.get("item_id"))
    mail.set_content(render_text(message), charset="utf-8")
    mail.add_alternative(render_html(message), subtype="html", charset="utf-8")
    return mail


def _tls_context(smtp: SmtpConfig) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if smtp.ca_file:
        context.load_verify_locations(smtp.ca_file)
    return context


class EmailNotifier:
    """Sends one message per notification to every address of the receiver."""

    def __init__(self, integration: EmailIntegration, smtp: SmtpConfig) -> None:
        self.to = integration.to
        self.smtp = smtp

    def send(self, message: Message) -> None:
        mail = build_email(message, self.smtp, self.to)
        cfg = self.smtp
        where = f"{cfg.host}:{cfg.port}"
        try:
            if cfg.ssl:
                client: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=_tls_context(cfg))
            else:
                client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
            with client:
                if cfg.starttls:
                    client.starttls(context=_tls_context(cfg))
                if cfg.username:
                    client.login(cfg.username, cfg.password.get_secret_value() if cfg.password else "")
                refused = client.send_message(mail)
        except smtplib.SMTPAuthenticationError as exc:
            raise NotifyError(f"SMTP {where} refused the login: {exc.smtp_code}", recoverable=False) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise NotifyError(f"SMTP {where} does not support a required feature: {exc}", recoverable=False) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise NotifyError(f"SMTP {where} refused every recipient: {codes}",
                              recoverable=all(400 <= c < 500 for c in codes)) from exc
        except smtplib.SMTPResponseException as exc:
            raise NotifyError(f"SMTP {where} answered {exc.smtp_code}: {exc.smtp_error!r}",
                              recoverable=400 <= exc.smtp_code < 500) from exc
        except ssl.SSLCertVerificationError as exc:
            raise NotifyError(f"SMTP {where}: TLS certificate not trusted: {exc.verify_message}", recoverable=False) from exc
        except (smtplib.SMTPException, OSError) as exc:
            # Connection refused, timeouts, disconnects: the server may be back soon.
            raise NotifyError(f"SMTP {where} unreachable: {exc.__class__.__name__}: {exc}", recoverable=True) from exc
        if refused:
            raise NotifyError(f"SMTP {where} refused some recipients: {sorted(refused)}", recoverable=False)
