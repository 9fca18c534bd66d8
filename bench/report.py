"""`make bench`: run every bench/bench_*.py, keep each one's JSON in bench/results.json and write bench/RESULTS.md.

Each bench prints one JSON object as its last line of stdout; a bench that fails is recorded with its exit code and
the tail of its stderr, and the others still run (the exit code is 1 then).
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(script: Path) -> dict:
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(script)], cwd=HERE.parent, capture_output=True, text=True)
    seconds = round(time.monotonic() - started, 1)
    lines = [line for line in done.stdout.splitlines() if line.strip().startswith("{")]
    if done.returncode != 0 or not lines:
        return {"ok": False, "exit": done.returncode, "seconds": seconds, "stderr": done.stderr[-2000:]}
    return {"ok": True, "seconds": seconds, "result": json.loads(lines[-1])}


def flatten(node: object, prefix: str = "") -> list[tuple[str, object]]:
    if isinstance(node, dict):
        return [pair for k, v in node.items() for pair in flatten(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(node, list) and node and all(isinstance(v, dict) for v in node):
        return [pair for i, v in enumerate(node) for pair in flatten(v, f"{prefix}[{i}]")]
    return [(prefix, node)]


def main() -> None:
    results = {"machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count(),
                           "platform": platform.platform()},
               "at": datetime.now(UTC).isoformat(timespec="seconds"), "benches": {}}
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"== {script.name}", file=sys.stderr)  # noqa: T201 - progress
        results["benches"][script.stem] = run(script)
    (HERE / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n")
    lines = ["# Benchmark results", "", f"Written by `make bench` at {results['at']} on {results['machine']['cpus']} "
             f"CPUs ({results['machine']['platform']}, Python {results['machine']['python']}); the same figures are "
             "in `bench/results.json`.", ""]
    for name, outcome in results["benches"].items():
        lines += [f"## {name} ({outcome['seconds']} s)", ""]
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
