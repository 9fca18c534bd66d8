"""The stable batch interface: `python -m nlp.cli classify` on the committed artifacts, bad lines included."""

from __future__ import annotations

import json
import subprocess
import sys

from core.paths import REPO_ROOT

FIELDS = {"id", "topic", "topic_score", "emotion", "emotion_score", "polarity", "polarity_score", "risk_score", "risk_level",
          "risk_reasons", "keywords", "schemes"}


def run_raw(lines: list[str], *args: str, env: dict[str, str] | None = None) -> str:
    """The CLI's standard output for these input lines (`env`: the environment, default this process's)."""
    proc = subprocess.run([sys.executable, "-m", "nlp.cli", "classify", *args], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, encoding="utf-8", cwd=REPO_ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def run(lines: list[str], *args: str) -> list[dict]:
    return [json.loads(x) for x in run_raw(lines, *args).splitlines()]


def test_classify_good_and_bad_lines():
    lines = [
        json.dumps({"id": 1, "title": "小区房屋漏水", "content": "商品房墙体开裂漏水，开发商拒不维修，住建局不作为，非常愤怒！",
                    "channel": "board", "likes": 3, "published_at": "2026-11-20 10:00"}, ensure_ascii=False),
        "{not json",
        json.dumps({"id": "e", "title": "", "content": ""}),
        json.dumps({"id": "emoji", "content": "😀😀😀🎉"}),
        json.dumps({"id": "big", "content": "反映问题" * 25_000}, ensure_ascii=False),
        json.dumps({"id": "trad", "content": "學校門口交通擁堵，請交警處理 traffic jam <br/>&nbsp;"}, ensure_ascii=False),
        json.dumps({"id": "badchan", "content": "x", "channel": "tv"}),
        json.dumps({"id": "badlikes", "content": "x", "likes": -1}),
        "[1, 2]",
        json.dumps({"id": 9, "content": "感谢政府，复工复产做得很好，点赞！"}, ensure_ascii=False),
    ]
    out = run(lines)
    assert len(out) == len(lines)
    ids = [o.get("id") for o in out]
    assert ids == [1, None, "e", "emoji", "big", "trad", "badchan", "badlikes", None, 9]
    errors = {i for i, o in enumerate(out) if "error" in o}
    assert errors == {1, 6, 7, 8}
    for i, o in enumerate(out):
        if i in errors:
            continue
        assert set(o) >= FIELDS
        assert o["emotion"] in {"anger", "fear", "sadness", "disgust", "happiness", "surprise", "neutral"}
        assert -1 <= o["polarity_score"] <= 1 and o["polarity"] in {"negative", "neutral", "positive"}
    assert out[0]["topic"] == "城乡建设" and out[0]["polarity"] == "negative"
    reasons = {r["feature"]: r for r in out[0]["risk_reasons"]}  # the negative tone counts, with its strength
    assert reasons["polarity"]["weight"] > 0 and reasons["polarity"]["detail"].startswith("负面倾向（强度 0.")
    assert out[9]["polarity"] == "positive"
    for empty in (out[2], out[3]):  # no words at all: no topic guessed from nothing, and no feeling
        assert empty["topic"] is None and empty["topic_score"] is None
        assert empty["emotion"] == "neutral" and empty["polarity_score"] == 0.0
    assert out[5]["topic"] is not None  # traditional characters and HTML remnants still have words


def test_events_flag_adds_event_and_issue_ids():
    """The same grievance in January and in March: two events (bounded in time), one issue."""
    text = "幸福里小区楼下烧烤店营业到凌晨，油烟和噪音扰民，要求相关部门处理。"
    lines = [json.dumps({"id": i, "content": text + tail, "published_at": when}, ensure_ascii=False)
             for i, (tail, when) in enumerate([("", "2026-01-05 10:00"), ("再次反映", "2026-01-06 10:00"),
                                               ("居民再次投诉", "2026-03-10 22:00")])]
    out = run(lines, "--events")
    assert out[0]["event_id"] == out[1]["event_id"] != out[2]["event_id"]
    assert out[0]["issue_id"] == out[1]["issue_id"] == out[2]["issue_id"] == out[0]["event_id"]
    assert "issue_id" not in run(lines)[0]


FLOOD_CONFIG = """
storage: {sqlite_path: DB}
sources:
  board_a: {channel: board}
analysis:
  risk:
    categories:
      flood: {weight: 25, label: 汛情, terms: [内涝, 被淹, 积水]}
  schemes:
    examples: false
    items:
      - {name: 防汛, subject: [车库, 小区], event: [内涝, 积水]}
"""


def test_classify_with_config_gives_what_the_service_gives(tmp_path):
    """The same flood text scored 22.9/IV in the CLI and 47.9/III in the service: `--config` uses the configured
    risk terms and schemes, and the result is the service's for the same item."""
    from datetime import UTC, datetime, timedelta

    from core.config import load_config
    from core.models import RawRecord
    from yuqing.service import build_service

    path = tmp_path / "c.yaml"
    path.write_text(FLOOD_CONFIG.replace("DB", str(tmp_path / "s.db")), encoding="utf-8")
    published = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    record = {"source_id": "f1", "title": "地下车库内涝", "content": "暴雨后小区地下车库严重内涝，几十辆车被淹，物业不管！",
              "published_at": published}
    service = build_service(load_config(path))
    try:
        ids = service.writer.ingest([RawRecord(source="board_a", payload=record)]).item_ids
        stored = service.store.get(ids[0]).enrichment
    finally:
        service.close()
    line = json.dumps({"id": "f1", "source": "board_a", "channel": "board", "title": record["title"],
                       "content": record["content"], "published_at": published}, ensure_ascii=False)
    configured = run([line], "--config", str(path))[0]
    assert any(r["feature"] == "terms:flood" for r in configured["risk_reasons"])
    assert configured["schemes"] == stored.schemes == ["防汛"]
    for key in ("topic", "emotion", "polarity", "polarity_score", "risk_score", "risk_level", "keywords"):
        assert configured[key] == getattr(stored, key), key
    assert configured["risk_reasons"] == [r.model_dump(mode="json") for r in stored.risk_reasons]
    plain = run([line])[0]
    assert not any(r["feature"] == "terms:flood" for r in plain["risk_reasons"])
