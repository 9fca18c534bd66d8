"""企业微信 group robot: markdown messages, split to the 4096-byte limit; errcode 45009 (too frequent) is retried."""

from __future__ import annotations

from alerts.notify.base import Message, PartialNotifyError, split_markdown
from alerts.notify.webhook import post_json
from core.config_alerts import WeComIntegration
from core.errors import NotifyError
from core.redact import register_secret

RATE_LIMITED = {45009, -1}  # -1: system busy


def wecom_bodies(message: Message, cfg: WeComIntegration) -> list[dict]:
    parts = split_markdown(message, max_bytes=cfg.max_bytes, max_parts=cfg.max_parts)
    bodies = [{"msgtype": "markdown", "markdown": {"content": p}} for p in parts]
    if cfg.mentioned_mobiles and message.kind != "test":
        # Markdown messages cannot @ people; a short text message after them does.
        mention = {"content": "请及时处理以上预警", "mentioned_mobile_list": cfg.mentioned_mobiles}
        bodies.append({"msgtype": "text", "text": mention})
    return bodies


class WeComNotifier:
    def __init__(self, integration: WeComIntegration) -> None:
        self.integration = integration
        register_secret(integration.url.get_secret_value())

    def send(self, message: Message) -> None:
        cfg = self.integration
        bodies = wecom_bodies(message, cfg)
        done = message.parts_done
        for body in bodies[done:]:
            try:
                response = post_json(cfg.url.get_secret_value(), body, timeout=cfg.timeout, channel="wecom")
                data = response.json()
            except NotifyError as exc:
                raise PartialNotifyError(exc.message, recoverable=exc.recoverable, parts_done=done) from exc
            except ValueError as exc:
                raise PartialNotifyError("wecom answered with a body that is not JSON", recoverable=True,
                                         parts_done=done) from exc
            code = data.get("errcode", 0)
            if code != 0:
                raise PartialNotifyError(f"wecom errcode {code}: {data.get('errmsg', '')}", recoverable=code in RATE_LIMITED,
                                         parts_done=done)
            done += 1
