"""Delivery under failure: retries with backoff for recoverable errors, none for permanent ones, other receivers
unaffected; channel formats (WeCom, DingTalk signed URL) split to their size limits; a 10,000-alert group."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import urllib.parse
from datetime import timedelta

from sqlalchemy import select

from alerts.notify.base import Message, split_markdown, utf8_len
from alerts.notify.dingtalk import sign, signed_url
from alerts.store import alert_outbox


def outbox_rows(h) -> list:
    with h.service.store.read() as conn:
        return conn.execute(select(alert_outbox).order_by(alert_outbox.c.id)).all()


def config(receivers: list[dict], **extra) -> dict:
    return {"rules": [{"name": "high_risk", "min_risk_score": 80}],
            "route": {"receiver": receivers[0]["name"], "group_by": ["rule"], "group_wait": 0,
                      "routes": [{"matchers": ['rule=~".+"'], "receiver": r["name"], "continue": True} for r in receivers]},
            "receivers": receivers, "retry": {"initial": "10s", "multiplier": 2, "max_delay": "1m", "max_attempts": 4},
            **extra}


def test_webhook_500_is_retried_with_backoff_and_others_still_flow(make_harness, webhook_server, smtp_cfg, smtp_server):
    webhook_server.script = [(500, {"error": "busy"}, 0), (503, {}, 0)]
    h = make_harness(config([{"name": "hook", "webhook": {"url": webhook_server.url}},
                             {"name": "mail", "email": {"to": ["m@example.gov.cn"]}}], smtp=smtp_cfg))
    h.ingest(h.item())
    assert h.tick()["sent"] == 1  # the e-mail goes; the webhook failed once
    assert len(smtp_server.wait_for(1)) == 1
    hook = next(r for r in outbox_rows(h) if r.integration == "webhook")
    assert hook.status == "pending" and hook.attempts == 1 and "HTTP 500" in hook.last_error
    assert hook.next_attempt_ts - h.clock.now().timestamp() == 10  # initial backoff
    assert h.tick(9)["sent"] == 0 and len(webhook_server.requests) == 1
    assert h.tick(1)["sent"] == 0  # second attempt: 503
    hook = next(r for r in outbox_rows(h) if r.integration == "webhook")
    assert hook.attempts == 2 and hook.next_attempt_ts - h.clock.now().timestamp() == 20  # doubled
    assert h.tick(20)["sent"] == 1
    assert len(webhook_server.requests) == 3
    keys = {r["headers"]["Idempotency-Key"] for r in webhook_server.requests}
    assert len(keys) == 1  # every attempt carries the same dedup key
    retries = h.engine.reader.audit(decision="retry")[0]
    assert len(retries) == 2 and "recoverable" in retries[0]["reason"]


def test_permanent_failure_is_not_retried(make_harness, webhook_server):
    webhook_server.default = (400, {"error": "bad request"}, 0)
    h = make_harness(config([{"name": "hook", "webhook": {"url": webhook_server.url}}]))
    h.ingest(h.item())
    h.tick()
    h.tick(3600)
    assert len(webhook_server.requests) == 1
    row = outbox_rows(h)[0]
    assert row.status == "failed" and "HTTP 400" in row.last_error
    assert "permanent failure, not retried" in h.engine.reader.audit(decision="fail")[0][0]["reason"]


def test_hanging_webhook_times_out_and_gives_up_after_max_attempts(make_harness, webhook_server):
    webhook_server.default = (200, {}, 1.5)  # answers after the 0.5 s timeout
    h = make_harness(config([{"name": "hook", "webhook": {"url": webhook_server.url, "timeout": 0.5}}],
                            retry={"initial": "1s", "max_attempts": 2}))
    h.ingest(h.item())
    h.tick()
    row = outbox_rows(h)[0]
    assert row.status == "pending" and "timed out" in row.last_error
    h.tick(1)
    row = outbox_rows(h)[0]
    assert row.status == "dead" and row.attempts == 2
    assert "gave up after 2 attempts" in h.engine.reader.audit(decision="fail")[0][0]["reason"]


def test_unreachable_smtp_is_recoverable_and_delivers_when_back(make_harness, smtp_server, smtp_cfg):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    h = make_harness(config([{"name": "mail", "email": {"to": ["m@example.gov.cn"],
                                                         "smtp": {**smtp_cfg, "port": dead_port}}}]))
    h.ingest(h.item())
    h.tick()
    row = outbox_rows(h)[0]
    assert row.status == "pending" and "unreachable" in row.last_error
    # The operator fixes the relay address; a reload keeps the queued notification and delivers it.
    h.engine.reload({**h.engine.config.model_dump(mode="json", by_alias=True),
                     "receivers": [{"name": "mail", "email": {"to": ["m@example.gov.cn"], "smtp": smtp_cfg}}]})
    h.tick(10)
    assert len(smtp_server.wait_for(1)) == 1 and outbox_rows(h)[0].status == "sent"


def test_receiver_removed_by_reload_fails_permanently_with_reason(make_harness, webhook_server, smtp_cfg):
    webhook_server.script = [(500, {}, 0)]
    h = make_harness(config([{"name": "hook", "webhook": {"url": webhook_server.url}}]))
    h.ingest(h.item())
    h.tick()
    new = config([{"name": "mail", "email": {"to": ["m@example.gov.cn"]}}], smtp=smtp_cfg)
    h.engine.reload(new)
    h.tick(10)
    row = outbox_rows(h)[0]
    assert row.status == "failed" and "no webhook channel" in row.last_error


def test_dingtalk_signature_matches_the_documented_algorithm():
    secret, stamp = "SEC000000000000000000000", 1700000000000
    expected = urllib.parse.quote_plus(base64.b64encode(
        hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()))
    assert sign(secret, stamp) == expected
    url = signed_url("https://oapi.dingtalk.com/robot/send?access_token=t", secret, stamp)
    assert url == f"https://oapi.dingtalk.com/robot/send?access_token=t&timestamp={stamp}&sign={expected}"


def test_dingtalk_and_wecom_robots_receive_split_signed_messages(make_harness, webhook_server):
    secret = "SECtest"
    h = make_harness(config([
        {"name": "ding", "dingtalk": {"url": webhook_server.url + "/robot/send?access_token=tok", "secret": secret,
                                      "max_bytes": 2000, "at_mobiles": ["13800000000"]}},
        {"name": "wecom", "wecom": {"url": webhook_server.url + "/cgi-bin/webhook/send?key=k", "max_bytes": 1000,
                                    "mentioned_mobiles": ["13900000000"]}},
    ]))
    h.ingest(*[h.item() for _ in range(12)])
    h.tick()
    ding = [r for r in webhook_server.requests if r["path"].startswith("/robot")]
    wecom = [r for r in webhook_server.requests if r["path"].startswith("/cgi-bin")]
    assert len(ding) > 1 and all(r["bytes"] < 2000 + 500 for r in ding)
    for r in ding:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(r["path"]).query)
        stamp = int(query["timestamp"][0])
        digest = hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
        assert query["sign"][0] == base64.b64encode(digest).decode()  # parse_qs undid the URL encoding
        assert r["json"]["msgtype"] == "markdown" and "@13800000000" in r["json"]["markdown"]["text"]
    markdown = [r["json"]["markdown"]["content"] for r in wecom if r["json"]["msgtype"] == "markdown"]
    assert len(markdown) > 1 and all(utf8_len(c) <= 1000 for c in markdown)
    assert markdown[0].startswith(f"(1/{len(markdown)})")
    assert wecom[-1]["json"]["text"]["mentioned_mobile_list"] == ["13900000000"]
    joined = "".join(markdown)
    assert all(f"第{i}条" in joined for i in range(1, 13))  # every alert appears in some part, none cut


def test_wecom_rate_limit_resumes_after_the_parts_already_sent(make_harness, webhook_server):
    webhook_server.script = [(200, {"errcode": 0}, 0), (200, {"errcode": 45009, "errmsg": "api freq out of limit"}, 0)]
    h = make_harness(config([{"name": "wecom", "wecom": {"url": webhook_server.url + "/w", "max_bytes": 1000}}]))
    h.ingest(*[h.item() for _ in range(8)])
    h.tick()
    row = outbox_rows(h)[0]
    assert row.status == "pending" and row.parts_done == 1 and "45009" in row.last_error
    parts_before = len(webhook_server.requests)
    h.tick(10)
    assert outbox_rows(h)[0].status == "sent"
    resent = [r["json"]["markdown"]["content"] for r in webhook_server.requests[parts_before:]]
    assert resent[0].startswith("(2/")  # part 1 is not sent twice


def test_ten_thousand_alert_group_is_one_bounded_message(make_harness, webhook_server, smtp_cfg, smtp_server):
    from alerts.rules import AlertDraft

    h = make_harness(config([{"name": "mail", "email": {"to": ["m@example.gov.cn"]}},
                             {"name": "wecom", "wecom": {"url": webhook_server.url + "/w"}},
                             {"name": "hook", "webhook": {"url": webhook_server.url + "/h", "max_alerts": 100}}],
                            smtp=smtp_cfg, max_alerts_per_message=1000))
    drafts = [AlertDraft(fingerprint=f"fp{i}", rule="high_risk", kind="item", severity="warning",
                         labels={"rule": "high_risk", "severity": "warning", "kind": "item", "item_id": str(i)},
                         annotations={"title": f"批量信息{i}", "summary": "同一问题大量来信"}, item_id=i)
              for i in range(10_000)]
    h.engine.raise_drafts(drafts)
    h.tick()
    mail = smtp_server.wait_for(1)[0]
    assert "共 10000 条" in mail["Subject"]
    assert "另有 9800 条未列出" in mail.get_body(("plain",)).get_content()
    hook = next(r for r in webhook_server.requests if r["path"] == "/h")["json"]
    assert hook["total"] == 10_000 and len(hook["alerts"]) == 100 and hook["truncated_alerts"] == 9_900
    wecom = [r["json"]["markdown"]["content"] for r in webhook_server.requests if r["path"] == "/w"]
    assert len(wecom) == 10 and all(utf8_len(c) <= 4096 for c in wecom)  # max_parts, then a pointer to the rest
    assert "另有" in wecom[-1]
    assert {r.status for r in outbox_rows(h)} == {"sent"}


def test_split_markdown_never_exceeds_the_limit_even_for_huge_alerts():
    giant = {"id": 1, "severity": "critical", "labels": {}, "annotations": {"title": "长" * 5000, "summary": "文" * 9000}}
    message = Message(kind="alert", dedup_key="k", receiver="r", alerts=[giant] * 3, total=3)
    parts = split_markdown(message, max_bytes=4096, max_parts=10)
    assert len(parts) == 3 and all(utf8_len(p) <= 4096 for p in parts)


def test_retry_backoff_is_capped(make_harness, webhook_server):
    webhook_server.default = (502, {}, 0)
    h = make_harness(config([{"name": "hook", "webhook": {"url": webhook_server.url}}],
                            retry={"initial": "10s", "multiplier": 10, "max_delay": "30s", "max_attempts": 5}))
    h.ingest(h.item())
    h.tick()
    delays = []
    for _ in range(3):
        row = outbox_rows(h)[0]
        delay = row.next_attempt_ts - h.clock.now().timestamp()
        delays.append(delay)
        h.tick(delay)
    assert delays == [10, 30, 30]
    assert timedelta(seconds=delays[-1]) == timedelta(seconds=30)
