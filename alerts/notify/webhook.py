"""Generic JSON webhook: one POST per notification carrying the dedup key (also as Idempotency-Key).

Posts go down kept-alive `http.client` connections, one per send worker at most: httpx spent about 1 ms of CPU per
POST in its request and connection-pool objects (a third of a core at 250 alerts a second), a plain HTTP/1.1
exchange on an open connection a fraction of that. A URL the environment sends through a proxy (HTTP(S)_PROXY,
NO_PROXY) is posted with httpx, which honours it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import ssl
import threading
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from alerts.notify.base import Message, http_failure, intro, title
from core.config_alerts import WebhookIntegration
from core.errors import NotifyError
from core.redact import install_log_redaction, redact_url, register_secret

if TYPE_CHECKING:  # imported where a POST goes through it: httpx costs ≈ 0.07 s of CPU at the start of every process
    import httpx  # that loads the alert engine (a `yuqing import` sends nothing)

# httpx logs every request's full URL at INFO, and a robot URL's query (?access_token=, ?key=, &sign=) is the
# credential: every module that posts to a receiver imports this one, so its loggers are filtered from then on.
install_log_redaction()


def redact(url: str) -> str:
    """Scheme, host and path only (userinfo masked): tokens in query strings never reach messages or the audit
    trail; log lines are filtered as well (core.redact)."""
    import httpx

    return redact_url(str(httpx.URL(url).copy_with(query=None, fragment=None)))


def post_json(url: str, body: dict[str, Any], *, timeout: float, channel: str,
              headers: dict[str, str] | None = None, client: httpx.Client | None = None) -> httpx.Response:
    """POST and map transport failures: timeouts and refused connections are recoverable. With `client`, its pooled
    connections are reused (no TCP and TLS handshake per notification)."""
    import httpx

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


def _context() -> ssl.SSLContext:
    """Certificates verified against certifi's bundle, as httpx does."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class KeepAlivePoster:
    """JSON POSTs to one URL over reused HTTP/1.1 connections (at most `pool_size` kept idle); failures raise
    NotifyError as `post_json` does. A connection the server closed while idle is replaced and the POST sent once
    more on a new one (the receiver folds a duplicate by its Idempotency-Key)."""

    def __init__(self, url: str, *, channel: str, pool_size: int = 16) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {redact(url)}")
        self.url = url
        self.channel = channel
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        self.host_header = parts.netloc.rsplit("@", 1)[-1]
        self.pool_size = pool_size
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self.https:
            if self._ssl is None:
                self._ssl = _context()
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self._ssl)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _exchange(self, conn: http.client.HTTPConnection, body: bytes, headers: dict[str, str],
                  timeout: float) -> tuple[int, bytes, bool]:
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        conn.timeout = timeout
        conn.request("POST", self.target, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(), response.will_close

    def post(self, body: dict[str, Any], *, timeout: float, headers: dict[str, str]) -> tuple[int, bytes]:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        sent_headers = {"Host": self.host_header, "Content-Type": "application/json", "Accept": "*/*",
                        "User-Agent": "yuqing", **headers}
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        reused = conn is not None
        conn = conn or self._connect(timeout)
        try:
            try:
                status, payload, closing = self._exchange(conn, data, sent_headers, timeout)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if not reused:
                    raise
                conn.close()  # dropped while idle: once more on a new connection
                conn = self._connect(timeout)
                status, payload, closing = self._exchange(conn, data, sent_headers, timeout)
        except TimeoutError as exc:
            conn.close()
            raise NotifyError(f"{self.channel} {redact(self.url)} timed out after {timeout:g}s", recoverable=True) from exc
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise NotifyError(f"{self.channel} {redact(self.url)} unreachable: {exc.__class__.__name__}",
                              recoverable=True) from exc
        if closing:
            conn.close()
        else:
            with self._lock:
                keep = len(self._idle) < self.pool_size
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()
        return status, payload

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def proxied(url: str) -> bool:
    """Whether the environment routes `url` through a proxy (then httpx, which honours it, posts it)."""
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    return parts.scheme in proxies and not urllib.request.proxy_bypass(parts.hostname or "")


class WebhookNotifier:
    def __init__(self, integration: WebhookIntegration, *, pool_size: int = 16) -> None:
        self.integration = integration
        register_secret(integration.url.get_secret_value())
        for name, value in integration.headers.items():
            if name.lower() in ("authorization", "x-api-key", "x-token", "x-auth-token"):
                register_secret(value)

        # One pool per receiver, shared by the send workers: a burst of notifications reuses kept-alive connections
        # instead of opening one per POST. Through a proxy: an httpx client (thread-safe), which honours it.
        url = integration.url.get_secret_value()
        self._poster: KeepAlivePoster | None = None
        if not proxied(url):
            with contextlib.suppress(ValueError):  # not an http(s) URL: httpx reports it when a send is tried
                self._poster = KeepAlivePoster(url, channel="webhook", pool_size=pool_size)
        import httpx

        self._client = httpx.Client(limits=httpx.Limits(max_connections=32, max_keepalive_connections=8)) \
            if self._poster is None else None

    def send(self, message: Message) -> None:
        cfg = self.integration
        headers = {**cfg.headers, "Idempotency-Key": message.dedup_key}
        body = webhook_body(message, cfg.max_alerts)
        if self._poster is None:
            client = None if self._client is None or self._client.is_closed else self._client
            post_json(cfg.url.get_secret_value(), body, timeout=cfg.timeout, channel="webhook", headers=headers,
                      client=client)
            return
        status, payload = self._poster.post(body, timeout=cfg.timeout, headers=headers)
        if status >= 300:
            raise http_failure(status, payload.decode("utf-8", "replace"), "webhook")

    def close(self) -> None:
        """Close the pooled connections (on stop, and when a reload replaces this receiver); a send still running
        after that posts on a connection of its own."""
        if self._poster is not None:
            self._poster.close()
        if self._client is not None:
            self._client.close()
