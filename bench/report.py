"""`make bench`: run every bench/bench_*.py, keep each one's JSON in bench/results.json and write bench/RESULTS.md.

Each bench prints one JSON object as its last line of stdout; a bench that fails is recorded with its exit code and
the tail of its stderr, and the others still run (the exit code is 1 then).

`--quick` runs every bench on a small input (a 2-minute soak, 20,000 stored items, …) to check the whole run works end
to end in minutes; its RESULTS.md says so, and its figures are not the published ones. `--only a,b` runs some benches;
with `--merge` their results replace those of the same benches in the existing results.json and the others are kept
(each bench keeps the time, commit and arguments it ran with), so a long run can be completed in parts. `--args
bench_store='--db PATH --reuse'` passes arguments to one bench (here: measure a 1,000,000-item store built before).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Small inputs for `--quick` (benches not listed run as they are).
QUICK: dict[str, list[str]] = {
    "bench_alert_latency": ["--items", "100"],
    "bench_analysis": ["--repeat", "1"],
    "bench_dedup_memory": ["--items", "50000"],
    "bench_import": ["--items", "20000"],
    "bench_nlp": ["--items", "4000", "--rounds", "1"],
    "bench_playbooks": ["--orders", "5000"],
    "bench_push_alerts": ["--seconds", "5", "--drain", "30"],
    "bench_soak": ["--minutes", "2", "--warmup", "30"],
    "bench_store": ["--items", "20000", "--rounds", "5", "--idle-seconds", "5"],
}


def run(script: Path, args: list[str] | None = None) -> dict:
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(script), *(args or [])], cwd=HERE.parent, capture_output=True, text=True)
    seconds = round(time.monotonic() - started, 1)
    result = last_json(done.stdout)
    if done.returncode != 0 or result is None:
        return {"ok": False, "exit": done.returncode, "seconds": seconds, "stderr": done.stderr[-2000:]}
    return {"ok": True, "seconds": seconds, "result": result}


def last_json(stdout: str) -> dict | None:
    """The bench's JSON: the last stdout line that parses as a JSON object (progress lines may look like one), or
    the whole output when the bench printed it over several lines (indent)."""
    for line in reversed(stdout.splitlines()):
        if line.strip().startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    try:
        whole = json.loads(stdout[stdout.index("{"):]) if "{" in stdout else None
    except json.JSONDecodeError:
        return None
    return whole if isinstance(whole, dict) else None


def flatten(node: object, prefix: str = "") -> list[tuple[str, object]]:
    if isinstance(node, dict):
        return [pair for k, v in node.items() for pair in flatten(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(node, list) and node and all(isinstance(v, dict) for v in node):
        return [pair for i, v in enumerate(node) for pair in flatten(v, f"{prefix}[{i}]")]
    return [(prefix, node)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small inputs: checks the run, not the published figures")
    parser.add_argument("--only", help="comma-separated bench names (bench_ingest,bench_soak)")
    parser.add_argument("--merge", action="store_true", help="keep the other benches' results from results.json")
    parser.add_argument("--args", action="append", default=[], metavar="BENCH=ARGS",
                        help="extra arguments for one bench, e.g. bench_store='--db var/1m.db --reuse' (repeatable)")
    options = parser.parse_args()
    extra: dict[str, list[str]] = {}
    for given in options.args:
        name, sep, args = given.partition("=")
        if not sep:
            sys.exit(f"--args {given!r}: expected BENCH=ARGS")
        extra[name.strip()] = shlex.split(args)
    only = set(options.only.split(",")) if options.only else None
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=HERE.parent, capture_output=True,
                            text=True).stdout.strip() or None
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform()},
               "at": datetime.now(UTC).isoformat(timespec="seconds"), "quick": options.quick, "benches": {}}
    if options.merge and (HERE / "results.json").exists():
        earlier = json.loads((HERE / "results.json").read_text())
        if earlier.get("quick") != options.quick:
            sys.exit("--merge: results.json holds a run of the other kind (quick vs full); not mixing them")
        results["benches"] = earlier["benches"]
    for script in sorted(HERE.glob("bench_*.py")):
        if only is not None and script.stem not in only:
            continue
        print(f"== {script.name}", file=sys.stderr)  # noqa: T201 - progress
        args = [*(QUICK.get(script.stem, []) if options.quick else []), *extra.get(script.stem, [])]
        outcome = run(script, args)
        results["benches"][script.stem] = {**outcome, "args": args, "commit": commit,
                                           "at": datetime.now(UTC).isoformat(timespec="seconds"),
                                           "load_average": [round(x, 2) for x in os.getloadavg()]}
        results["benches"] = dict(sorted(results["benches"].items()))
    (HERE / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n")
    # A merged file holds benches run at different times: say when the first and the last of them ran, not only
    # when this file was last written.
    times = sorted(o["at"] for o in results["benches"].values() if "at" in o)
    span = f"the benches below ran from {times[0]} to {times[-1]}" if len(times) > 1 else f"at {results['at']}"
    lines = ["# Benchmark results", "", f"Written by `make bench` on {results['machine']['cpus']} CPUs "
             f"({results['machine']['platform']}, Python {results['machine']['python']}), {span}; the same figures "
             "are in `bench/results.json`.", ""]
    missing = sorted(s.stem for s in HERE.glob("bench_*.py") if s.stem not in results["benches"])
    if missing:
        lines += [f"**Incomplete**: run in parts (`--only … --merge`), and these benches have not run yet: "
                  f"{', '.join(missing)}. Each section below says when, at which commit and with which arguments it ran.",
                  ""]
    if options.quick:
        lines += ["**Quick run** (`bench/report.py --quick`: small inputs, a 2-minute soak): these figures check that the "
                  "benches run, they are not the published ones.", ""]
    for name, outcome in results["benches"].items():
        when = f", ran at {outcome['at']}, load average {outcome['load_average']} at its end" if "at" in outcome else ""
        if outcome.get("commit"):
            when += f", commit {outcome['commit']}"
        if outcome.get("args"):
            when += f", arguments `{shlex.join(outcome['args'])}`"
        lines += [f"## {name} ({outcome['seconds']} s{when})", ""]
        if not outcome["ok"]:
            lines += [f"failed (exit {outcome['exit']}):", "```", outcome["stderr"], "```", ""]
            continue
        lines += ["| figure | value |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in flatten(outcome["result"])]
        lines.append("")
    (HERE / "RESULTS.md").write_text("\n".join(lines))
    sys.exit(0 if all(o["ok"] for o in results["benches"].values()) else 1)


if __name__ == "__main__":
    main()
