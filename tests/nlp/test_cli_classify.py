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


def test_events_flag_adds_event_id():
    out = run([json.dumps({"id": 1, "content": "地铁站附近占道经营"}, ensure_ascii=False)], "--events")
    assert "event_id" in out[0]
