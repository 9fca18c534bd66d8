"""钉钉 group robot: markdown messages split to the 20,000-byte limit, with the signed URL (加签) when a secret is set.

Signing as documented by DingTalk: sign = urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}"))),
timestamp in milliseconds, both appended to the webhook URL as query parameters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse

from alerts.notify.base import Message, PartialNotifyError, split_markdown, title
from alerts.notify.webhook import post_json
from core.config_alerts import DingTalkIntegration
from core.errors import NotifyError
from core.redact import register_secret

RATE_LIMITED = {130101, -1}  # 130101: sending too fast


def sign(secret: str, timestamp_ms: int) -> str:
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest))


def signed_url(url: str, secret: str | None, timestamp_ms: int | None = None) -> str:
    if not secret:
        return url
    stamp = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}timestamp={stamp}&sign={sign(secret, stamp)}"


def dingtalk_bodies(message: Message, cfg: DingTalkIntegration) -> list[dict]:
    parts = split_markdown(message, max_bytes=cfg.max_bytes, max_parts=cfg.max_parts)
    head = title(message)
    bodies = []
    for text in parts:
        if cfg.at_mobiles:
            text += "\n\n" + " ".join(f"@{m}" for m in cfg.at_mobiles)
        bodies.append({"msgtype": "markdown", "markdown": {"title": head[:60], "text": text},
                       "at": {"atMobiles": cfg.at_mobiles, "isAtAll": False}})
    return bodies


class DingTalkNotifier:
    def __init__(self, integration: DingTalkIntegration) -> None:
        self.integration = integration
        register_secret(integration.url.get_secret_value())
        register_secret(integration.secret.get_secret_value() if integration.secret else None)

    def send(self, message: Message) -> None:
        cfg = self.integration
        secret = cfg.secret.get_secret_value() if cfg.secret else None
        done = message.parts_done
        for body in dingtalk_bodies(message, cfg)[done:]:
            # A fresh signature per request: DingTalk rejects timestamps older than an hour.
            url = signed_url(cfg.url.get_secret_value(), secret)
            try:
                data = post_json(url, body, timeout=cfg.timeout, channel="dingtalk").json()
            except NotifyError as exc:
                raise PartialNotifyError(exc.message, recoverable=exc.recoverable, parts_done=done) from exc
            except ValueError as exc:
                raise PartialNotifyError("dingtalk answered with a body that is not JSON", recoverable=True,
                                         parts_done=done) from exc
            code = data.get("errcode", 0)
            if code != 0:
                raise PartialNotifyError(f"dingtalk errcode {code}: {data.get('errmsg', '')}",
                                         recoverable=code in RATE_LIMITED, parts_done=done)
            done += 1
