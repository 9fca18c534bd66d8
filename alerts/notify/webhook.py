"""Generic JSON webhook: one POST per notification carrying the dedup key (also as Idempotency-Key)."""

from __future__ import annotations

from typing import Any

import httpx

from alerts.notify.base import Message, http_failure, intro, title
from core.config_alerts import WebhookIntegration
from core.errors import NotifyError
from core.redact import install_log_redaction, redact_url, register_secret

# httpx logs every request's full URL at INFO, and a robot URL's query (?access_token=, ?key=, &sign=) is the
# credential: every module that posts to a receiver imports this one, so its loggers are filtered from then on.
install_log_redaction()


def redact(url: str) -> str:
    """Scheme, host and path only (userinfo masked): tokens in query strings never reach messages or the audit
    trail; log lines are filtered as well (core.redact)."""
    return redact_url(str(httpx.URL(url).copy_with(query=None, fragment=None)))


def post_json(url: str, body: dict[str, Any], *, timeout: float, channel: str,
              headers: dict[str, str] | None = None, client: httpx.Client | None = None) -> httpx.Response:
    """POST and map transport failures: timeouts and refused connections are recoverable. With `client`, its pooled
    connections are reused (no TCP and TLS handshake per notification)."""
    try:
        post = client.post if client is not None else httpx.post
        response = post(url, json=body, timeout=timeout, headers=headers or {})
    except httpx.TimeoutException as exc:
        raise NotifyError(f"{channel} {redact(url)} timed out after {timeout:g}s", recoverable=True) from exc
    except httpx.TransportError as exc:
        raise NotifyError(f"{channel} {redact(url)} unreachable: {exc.__class__.__name__}", recoverable=True) from exc
    if response.status_code >= 300:
        raise http_failure(response.status_code, response.text, channel)
    return response


def webhook_body(message: Message, max_alerts: int) -> dict[str, Any]:
    alerts = message.alerts[:max_alerts]
    return {
        "version": "1", "kind": message.kind, "dedup_key": message.dedup_key, "receiver": message.receiver,
        "title": title(message), "summary": intro(message), "severity": message.severity,
        "group_key": message.group_key, "group_labels": message.group_labels, "escalation_level": message.escalation_level,
        "total": message.total, "truncated_alerts": max(message.total - len(alerts), 0), "alerts": alerts,
    }


class WebhookNotifier:
    def __init__(self, integration: WebhookIntegration) -> None:
        self.integration = integration
        register_secret(integration.url.get_secret_value())
        for name, value in integration.headers.items():
            if name.lower() in ("authorization", "x-api-key", "x-token", "x-auth-token"):
                register_secret(value)

        # One pool per receiver, shared by the send workers (httpx.Client is thread-safe): a burst of notifications
        # reuses kept-alive connections instead of opening one per POST.
        self._client = httpx.Client(limits=httpx.Limits(max_connections=32, max_keepalive_connections=8))

    def send(self, message: Message) -> None:
        cfg = self.integration
        headers = {**cfg.headers, "Idempotency-Key": message.dedup_key}
        post_json(cfg.url.get_secret_value(), webhook_body(message, cfg.max_alerts), timeout=cfg.timeout,
                  channel="webhook", headers=headers, client=None if self._client.is_closed else self._client)

    def close(self) -> None:
        """Close the pooled connections (on stop, and when a reload replaces this receiver); a send still running
        after that posts on a connection of its own."""
        self._client.close()
