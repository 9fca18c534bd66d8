"""E-mail over SMTP (plain, STARTTLS or implicit TLS, optional AUTH) with Chinese text and HTML bodies.

The Message-ID is derived from the outbox dedup key, so a message re-sent after a crash carries the same id and
mail clients and archives can fold the duplicate.

Connections are reused (as Postfix does with smtp_connection_reuse): a finished session goes back to a small pool
of idle connections (at most `pool_size`, one per send worker), a reused one that sat idle more than a second is
probed with RSET first, and one that fails the probe or has been idle too long is replaced by a fresh connection. A
session used a moment ago is not probed (at 250 e-mails a second the probe was one round trip in five): if the server
dropped it after all, the message is sent once more on a fresh connection. A connection is closed after any
failure during a send and after `reuse_count` messages, so a relay's per-connection limits are respected.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import re
import smtplib
import ssl
import threading
import time
import uuid
from email.utils import formataddr, formatdate, getaddresses

from alerts.notify.base import Message, render_html, render_text, title
from core.config_alerts import EmailIntegration, SmtpConfig
from core.errors import NotifyError
from core.redact import install_log_redaction, register_secret

# Seconds a pooled session may sit idle and still be used without an RSET probe: servers drop idle sessions after
# minutes (Postfix: smtpd_timeout 300 s), and a send on a dropped one fails as recoverable and is retried anyway.
PROBE_AFTER_IDLE = 1.0


def message_id(dedup_key: str) -> str:
    """A stable RFC 5322 Message-ID from the dedup key (only atom characters on the left of @)."""
    return "<" + re.sub(r"[^A-Za-z0-9._-]", ".", dedup_key) + "@yuqing>"


# UTF-8 bytes per RFC 2047 encoded word: 42 bytes are 56 base64 characters, 68 with "=?utf-8?b?" and "?=", so a
# folded header line stays under 78 characters even after "Subject: ".
_WORD_BYTES = 42


def _header(value: str) -> str:
    """A header value: ASCII as is, anything else as RFC 2047 base64 encoded words (folded), never splitting a
    character. Written out rather than through `email.header.Header`, which spent about 0.7 ms per subject."""
    if value.isascii():
        return value
    words, chunk = [], b""
    for char in value:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += encoded
    words.append(chunk)
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(word).decode('ascii')}?=" for word in words)


@functools.lru_cache(maxsize=256)
def _parsed(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(display name, address) pairs; parsed once per distinct list (the parser cost about 0.2 ms a call)."""
    return tuple(getaddresses(list(values)))


@functools.lru_cache(maxsize=256)
def _address_header(values: tuple[str, ...]) -> str:
    return ", ".join(formataddr(pair, charset="utf-8") for pair in _parsed(values))


def _addresses(values: list[str]) -> str:
    """Address headers: display names encoded when not ASCII, addr-specs left plain."""
    return _address_header(tuple(values))


def _folded_list(values: list[str], width: int = 70) -> str:
    """A comma-separated list folded onto continuation lines (RFC 5322 lines stay short)."""
    lines, line = [], ""
    for value in values:
        piece = value if not line else "," + value
        if line and len(line) + len(piece) > width:
            lines.append(line + ",")
            line = value
        else:
            line += piece
    lines.append(line)
    return "\r\n ".join(lines)


def _base64_part(content_type: str, text: str) -> bytes:
    body = base64.encodebytes(text.encode("utf-8")).replace(b"\n", b"\r\n")
    return (f'Content-Type: {content_type}; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n'
            f"MIME-Version: 1.0\r\n\r\n").encode("ascii") + body


def email_bytes(message: Message, smtp: SmtpConfig, to: list[str]) -> bytes:
    """The e-mail for a notification: subject, addresses, dedup headers, text and HTML alternatives, as bytes.

    Assembled directly rather than through `email.message.EmailMessage`, which spends about 4 ms per message in
    header objects and its generator (a whole core at 250 e-mails a second); writing this fixed MIME layout costs
    well under 1 ms. Bodies are base64, so no body line is too long; id lists are folded under 78 characters.
    """
    boundary = f"===============yuqing{uuid.uuid4().hex}=="
    headers = [
        ("Subject", _header(title(message))),
        ("From", _addresses([smtp.sender])),
        ("To", _addresses(to)),
        ("Date", formatdate(localtime=True)),
        ("Message-ID", message_id(message.dedup_key)),
        ("X-Yuqing-Dedup-Key", _header(message.dedup_key)),
        ("X-Yuqing-Alert-Ids", _folded_list([str(a.get("id")) for a in message.alerts[:200]])),
        ("X-Yuqing-Item-Ids", _folded_list([str(a.get("item_id")) for a in message.alerts[:200] if a.get("item_id")])),
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
    ]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers).encode("ascii")
    sep = f"--{boundary}\r\n".encode("ascii")
    return (head + b"\r\n" + sep + _base64_part("text/plain", render_text(message) + "\n") + b"\r\n" + sep
            + _base64_part("text/html", render_html(message) + "\n") + f"\r\n--{boundary}--\r\n".encode("ascii"))


def _tls_context(smtp: SmtpConfig) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if smtp.ca_file:
        context.load_verify_locations(smtp.ca_file)
    return context


class _Session:
    """One open SMTP connection and how much it has been used."""

    def __init__(self, client: smtplib.SMTP) -> None:
        self.client = client
        self.sent = 0
        self.idle_since = time.monotonic()
        self.unprobed = False  # reused without an RSET probe (used less than PROBE_AFTER_IDLE ago)

    def close(self) -> None:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            self.client.quit()
        with contextlib.suppress(OSError):
            self.client.close()


class EmailNotifier:
    """Sends one message per notification to every address of the receiver, over reused connections."""

    def __init__(self, integration: EmailIntegration, smtp: SmtpConfig, *, pool_size: int = 4) -> None:
        self.to = integration.to
        self.smtp = smtp
        self.pool_size = pool_size
        self._idle: list[_Session] = []
        self._lock = threading.Lock()
        self._closed = False
        self.connections_opened = 0  # for tests and diagnostics: how often a new session was set up
        register_secret(smtp.password.get_secret_value() if smtp.password else None)
        install_log_redaction()

    @property
    def where(self) -> str:
        return f"{self.smtp.host}:{self.smtp.port}"

    def _connect(self) -> _Session:
        cfg = self.smtp
        if cfg.ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=_tls_context(cfg))
        else:
            client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        try:
            if cfg.starttls:
                client.starttls(context=_tls_context(cfg))
            if cfg.username:
                client.login(cfg.username, cfg.password.get_secret_value() if cfg.password else "")
        except BaseException:
            _Session(client).close()
            raise
        self.connections_opened += 1
        return _Session(client)

    def _checkout(self) -> _Session:
        """An idle session that answers RSET, or a new one; stale and dead sessions are closed on the way."""
        while True:
            with self._lock:
                session = self._idle.pop() if self._idle else None
            if session is None:
                return self._connect()
            idle = time.monotonic() - session.idle_since
            if idle > self.smtp.idle_seconds:
                session.close()
                continue
            if idle < PROBE_AFTER_IDLE:
                session.unprobed = True
                return session
            try:
                session.client.rset()  # the server may have dropped an idle connection: probe before MAIL FROM
            except (smtplib.SMTPException, OSError):
                session.close()
                continue
            return session

    def _checkin(self, session: _Session) -> None:
        session.sent += 1
        session.idle_since = time.monotonic()
        if session.sent < self.smtp.reuse_count:
            with self._lock:
                if not self._closed and len(self._idle) < self.pool_size:
                    self._idle.append(session)
                    return
        session.close()

    def close(self) -> None:
        """Say QUIT on every idle connection (service stop, config reload); later sends reconnect."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._closed = True
        for session in idle:
            session.close()

    def send(self, message: Message) -> None:
        self.send_mail(email_bytes(message, self.smtp, self.to))

    def send_mail(self, mail: bytes, to: list[str] | None = None) -> None:
        """Deliver an assembled e-mail (an alert, or a report with its PDF: reports/mail.py) to `to` (default: the
        receiver's addresses) over the pooled connections; failures raise NotifyError as for alerts."""
        to = self.to if to is None else to
        envelope_from = _parsed((self.smtp.sender,))[0][1] or self.smtp.sender
        where = self.where
        session: _Session | None = None
        try:
            session = self._checkout()
            recipients = [addr for _, addr in _parsed(tuple(to))]
            try:
                refused = session.client.sendmail(envelope_from, recipients, mail)
            except (smtplib.SMTPServerDisconnected, ConnectionError):
                if not session.unprobed:
                    raise
                session.close()  # dropped while idle: what the probe would have found out
                session = self._connect()
                refused = session.client.sendmail(envelope_from, recipients, mail)
        except (smtplib.SMTPException, OSError) as exc:
            if session is not None:
                session.close()  # a failed session's state is unknown: never reuse it
            raise _notify_error(exc, where) from exc
        except BaseException:
            if session is not None:
                session.close()
            raise
        self._checkin(session)
        if refused:
            raise NotifyError(f"SMTP {where} refused some recipients: {sorted(refused)}", recoverable=False)


def _notify_error(exc: smtplib.SMTPException | OSError, where: str) -> NotifyError:
    """An SMTP or network failure as a NotifyError, recoverable when the server may accept the message later."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return NotifyError(f"SMTP {where} refused the login: {exc.smtp_code}", recoverable=False)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return NotifyError(f"SMTP {where} does not support a required feature: {exc}", recoverable=False)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return NotifyError(f"SMTP {where} refused every recipient: {codes}", recoverable=all(400 <= c < 500 for c in codes))
    if isinstance(exc, smtplib.SMTPResponseException):
        return NotifyError(f"SMTP {where} answered {exc.smtp_code}: {exc.smtp_error!r}",
                           recoverable=400 <= exc.smtp_code < 500)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return NotifyError(f"SMTP {where}: TLS certificate not trusted: {exc.verify_message}", recoverable=False)
    # Connection refused, timeouts, disconnects: the server may be back soon.
    return NotifyError(f"SMTP {where} unreachable: {exc.__class__.__name__}: {exc}", recoverable=True)
