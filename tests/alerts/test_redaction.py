"""Receiver URLs' tokens, signatures, userinfo and SMTP passwords never reach a log line, an error message, an audit
row or an API answer — checked against real local receivers while capturing every log record."""

from __future__ import annotations

import json
import logging

from api.main import create_app
from core.errors import NotifyError
from core.redact import redact_text, redact_url, register_secret

DING_TOKEN = "dingAccessToken0123456789"
DING_SECRET = "SECdingSigningSecret0123"
WECOM_KEY = "wecom-key-0123456789abcdef"
HOOK_TOKEN = "hookQueryToken0123456789"
HOOK_PASSWORD = "hookUserPassw0rd"


def _config(base: str, smtp_cfg: dict) -> dict:
    return {"rules": [{"name": "high_risk", "min_risk_score": 80}],
            "route": {"receiver": "duty", "group_by": ["rule"], "group_wait": 0},
            "receivers": [{"name": "duty",
                           "dingtalk": {"url": f"{base}/robot/send?access_token={DING_TOKEN}", "secret": DING_SECRET},
                           "wecom": {"url": f"{base}/cgi-bin/webhook/send?key={WECOM_KEY}"},
                           "webhook": {"url": base.replace("http://", f"http://ops:{HOOK_PASSWORD}@")
                                       + f"/hook?channel=ops&token={HOOK_TOKEN}"},
                           "email": {"to": ["duty@example.gov.cn"]}}],
            "retry": {"initial": "10s", "multiplier": 2, "max_delay": "1m", "max_attempts": 2},
            "smtp": {**smtp_cfg, "username": "yuqing", "password": "smtpPassw0rdSecret"}}


def test_tokens_never_reach_logs_audit_outbox_or_api_answers(signed_in, make_harness, webhook_server, smtp_server, smtp_cfg,
                                                             caplog) -> None:
    h = make_harness(_config(webhook_server.url, smtp_cfg))
    secrets = (DING_TOKEN, DING_SECRET, WECOM_KEY, HOOK_TOKEN, HOOK_PASSWORD, "smtpPassw0rdSecret")
    with caplog.at_level(logging.DEBUG):
        h.ingest(h.item())
        h.tick()  # every channel sends once (the SMTP server has no AUTH: that send fails, with its reason logged)
        assert len(webhook_server.wait_for(3)) >= 3
        # Receivers that answer with the credential in their error, as some gateways echo the request line.
        webhook_server.script = [(500, {"errmsg": f"bad request /robot/send?access_token={DING_TOKEN}"}, 0)] * 3
        webhook_server.default = (502, {"errmsg": f"upstream refused key={WECOM_KEY} token={HOOK_TOKEN}"}, 0)
        h.ingest(h.item())
        h.tick(60)
        with signed_in(create_app(h.service, start_workers=False)) as client:
            answers = [client.post("/api/alerts/receivers/duty/test").text, client.get("/api/alerts/audit").text,
                       client.get("/api/alerts/outbox").text, client.get("/api/alerts/status").text]
    httpx_lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any("/robot/send?access_token=***" in line for line in httpx_lines)  # the request is logged, redacted
    assert any("sign=***" in line and "timestamp=" in line for line in httpx_lines)
    assert "bad request /robot/send?access_token=***" in "".join(answers)  # the receivers' answers are still reported, without the credential
    for text in [caplog.text, *answers]:
        for secret in secrets:
            assert secret not in text, (secret, text[:2000])


def test_redact_url_masks_credentials_and_keeps_the_rest() -> None:
    assert (redact_url("https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1&sign=x%2By")
            == "https://oapi.dingtalk.com/robot/send?access_token=***&timestamp=1&sign=***")
    assert redact_url("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k1") == \
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"
    assert redact_url("https://user:pw@hooks.example.com:8443/a?x_api_key=1&page=2#frag") == \
        "https://***@hooks.example.com:8443/a?x_api_key=***&page=2"


def test_redact_text_and_notify_errors() -> None:
    register_secret("https://open.feishu.cn/open-apis/bot/v2/hook/2f1a4f8e-0d3c-4b7a-9e21-5c6d7e8f9a0b")
    register_secret("mailPassw0rd!")
    line = ("POST https://open.feishu.cn/open-apis/bot/v2/hook/2f1a4f8e-0d3c-4b7a-9e21-5c6d7e8f9a0b failed; "
            'login mailPassw0rd! refused; {"password": "p1", "access_token": "t2"}')
    out = redact_text(line)
    for secret in ("2f1a4f8e-0d3c-4b7a-9e21-5c6d7e8f9a0b", "mailPassw0rd!", "p1", "t2"):
        assert secret not in out
    assert out.startswith("POST https://open.feishu.cn/open-apis/bot/v2/hook/***")
    error = NotifyError("webhook answered HTTP 401: invalid token=abc123def for https://x.example/h?key=zzz",
                        recoverable=False)
    assert "abc123def" not in error.message and "zzz" not in error.message and "HTTP 401" in error.message
    assert redact_text("电话13812345678，工单12345") == "电话13812345678，工单12345"  # ordinary text untouched


def test_log_filter_redacts_records_and_tracebacks(caplog) -> None:
    from core.redact import install_log_redaction

    install_log_redaction()
    log = logging.getLogger("alerts.dispatch")
    with caplog.at_level(logging.INFO):
        log.info("posting to %s", "https://h.example/send?access_token=tok123456")
        try:
            raise ValueError("cannot reach https://h.example/send?key=key123456")
        except ValueError:
            log.exception("notifier crashed")
    assert "tok123456" not in caplog.text and "key123456" not in caplog.text
    assert "access_token=***" in caplog.text and json.dumps("key=***")[1:-1] in caplog.text
