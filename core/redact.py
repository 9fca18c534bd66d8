"""Secrets out of logs, error messages, audit rows and API answers: receiver URLs' tokens, signatures, userinfo.

A DingTalk or WeCom robot URL *is* the credential (`?access_token=…`, `?key=…`), and HTTP clients log the URL of
every request (httpx at INFO). Three layers, so no single forgotten call site leaks one:

- `redact_url` / `redact_text` rewrite URLs: the value of every credential-like query parameter (token, key,
  secret, sign, access_token, password, …) and any userinfo (user:password@) become `***`;
- `register_secret` remembers configured secret values (a receiver URL's token, an SMTP password, a signing
  secret, a token in a URL path such as a Feishu or Slack hook) so `redact_text` removes them wherever they appear,
  whatever the shape of the message;
- `RedactingFilter`, installed on the loggers of HTTP clients and alert delivery and on the service's log handler
  (`install_log_redaction`), passes every log line and traceback through `redact_text`.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse

MASK = "***"
# Query parameter names whose values are credentials (compared lower-case; also matched as a suffix: x_api_key).
_SECRET_PARAMS = re.compile(r"(?:^|[_\-.])(?:access_?token|token|key|api_?key|secret|sign|signature|sig|password|passwd"
                            r"|pwd|auth|authorization|credential|credentials|ticket|session|sessionid|code)$", re.I)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>]+")
# Credential-looking assignments outside URLs too: `access_token=abc`, `"password": "x"`, `key: abc`.
_ASSIGNMENT = re.compile(r"(?i)\b((?:access_?token|token|api_?key|secret|sign|signature|password|passwd|pwd)"
                         r"[\"']?\s*[=:]\s*[\"']?)([^\s\"'&,;}]+)")
_MIN_SECRET = 6  # shorter values ("k", "tok") are too likely to occur by chance in ordinary text

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_secret_pattern: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Remember a configured secret so `redact_text` removes it from any message (URLs: their credential parts)."""
    global _secret_pattern
    if not value:
        return
    found = set()
    if "://" in value:
        parts = urllib.parse.urlsplit(value)
        found.update(v for _, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=False))
        if parts.password:
            found.add(parts.password)
        # A token in the path (Feishu /hook/<uuid>, Slack /services/T…/B…/<token>): long segments.
        found.update(seg for seg in parts.path.split("/") if len(seg) >= 16)
    else:
        found.add(value)
    found = {s for s in found if len(s) >= _MIN_SECRET}
    if not found - _secrets:
        return
    with _secrets_lock:
        _secrets.update(found)
        alternatives = sorted(_secrets | {urllib.parse.quote(s, safe="") for s in _secrets}, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(re.escape(s) for s in alternatives))


def redact_url(url: str) -> str:
    """The URL with userinfo and the values of credential-like query parameters replaced by ***; fragment dropped."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = "&".join(
        f"{name}={MASK}" if _SECRET_PARAMS.search(name) else (f"{name}={value}" if sep else name)
        for name, sep, value in (pair.partition("=") for pair in parts.query.split("&") if pair)
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_text(text: str) -> str:
    """Any message with every URL redacted, credential assignments masked and every registered secret removed."""
    if not text:
        return text
    if "://" in text:
        text = _URL.sub(lambda m: redact_url(m.group()), text)
    if "=" in text or ":" in text:
        text = _ASSIGNMENT.sub(lambda m: m.group(1) + MASK, text)
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and traceback) through `redact_text`; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format must not hide the line; the handler reports it
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


# Loggers that may see a receiver URL or a credential: HTTP clients (every request's URL) and alert delivery.
# A logger's filter sees only records logged on that very logger, so each is listed.
REDACTED_LOGGERS = ("httpx", "httpcore", "urllib3.connectionpool", "smtplib", "alerts", "alerts.dispatch",
                    "alerts.service", "alerts.engine", "alerts.api", "alerts.cli", "alerts.notify.base",
                    "alerts.notify.webhook", "alerts.notify.dingtalk", "alerts.notify.wecom", "alerts.notify.email",
                    "alerts.notify.inapp")
_FILTER = RedactingFilter()


def install_log_redaction(handler: logging.Handler | None = None) -> None:
    """Put the redacting filter on the REDACTED_LOGGERS (and on `handler`, e.g. the service's log handler, which
    then covers every logger). Idempotent."""
    targets: list[logging.Filterer] = [logging.getLogger(name) for name in REDACTED_LOGGERS]
    if handler is not None:
        targets.append(handler)
    for target in targets:
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)
