"""Events and issues on the 泰迪杯 2020 C hot-issue messages (附件3): prints JSON with the two example hot issues of
the problem statement (360100-360109: 魅力之城小区 street food noise and smoke; 360110-360114: A市经济学院 forced internships),
whether each lies in one issue and apart, the largest issue, and the top 10 events and issues with sizes and spans.

Run: .venv/bin/python bench/eval_issues.py [DATA_DIR]  (the classify CLI's path, `--events`, in process)
"""

from __future__ import annotations

import io
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.paths import data_dir  # noqa: E402
from nlp.cli import classify_stream  # noqa: E402

# The organiser's example (problem_statement_zh.txt 表2): which planted message belongs to which hot issue.
EXAMPLES = {"魅力之城小区": range(360100, 360110), "A市经济学院": range(360110, 360115)}


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else data_dir()
    frame = pd.read_csv(folder / "tipdm2020c_hot_issue_messages" / "messages.csv", dtype={"message_id": int})
    frame = frame.sort_values("created_at", kind="stable")
    lines = [json.dumps({"id": int(r.message_id), "title": str(r.title), "content": str(r.body),
                         "published_at": str(r.created_at), "likes": int(r.likes), "channel": "board"},
                        ensure_ascii=False) for r in frame.itertuples()]
    out = io.StringIO()
    classify_stream(lines, out, events=True, batch_size=512)
    rows = [json.loads(x) for x in out.getvalue().splitlines()]
    when = dict(zip(frame.message_id.astype(int), frame.created_at, strict=True))
    title = dict(zip(frame.message_id.astype(int), frame.title, strict=True))
    event_of = {r["id"]: r.get("event_id") for r in rows}
    issue_of = {r["id"]: r.get("issue_id") for r in rows}

    def groups(of: dict) -> list[dict]:
        members: dict[str, list[int]] = defaultdict(list)
        for ident, key in of.items():
            members[key].append(ident)
        ranked = sorted(members.items(), key=lambda kv: -len(kv[1]))[:10]
        return [{"id": key, "items": len(ids), "first": min(when[i] for i in ids), "last": max(when[i] for i in ids),
                 "events": len({event_of[i] for i in ids}), "title": title[min(ids, key=lambda i: when[i])]}
                for key, ids in ranked]

    examples = {name: {"issues": Counter(issue_of[i] for i in ids), "events": Counter(event_of[i] for i in ids)}
                for name, ids in EXAMPLES.items()}
    report = {
        "items": len(rows),
        "examples": {name: {"in_one_issue": len(v["issues"]) == 1, "issues": dict(v["issues"]),
                            "events": dict(v["events"])} for name, v in examples.items()},
        "examples_apart": not set(examples["魅力之城小区"]["issues"]) & set(examples["A市经济学院"]["issues"]),
        "largest_issue": max(Counter(issue_of.values()).values()),
        "largest_event": max(Counter(event_of.values()).values()),
        "events": len(set(event_of.values())), "issues": len(set(issue_of.values())),
        "top_events": groups(event_of), "top_issues": groups(issue_of),
    }
    print(json.dumps(report, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
