"""`yuqing plans …` through the real command line entry (typer's runner)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from yuqing.cli import app

ROOT = Path(__file__).resolve().parents[2]


def config(tmp_path: Path) -> str:
    data = yaml.safe_load((ROOT / "yuqing.example.yaml").read_text(encoding="utf-8"))
    data["storage"]["sqlite_path"] = str(tmp_path / "cli.db")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return str(path)


def test_plans_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    cfg = config(tmp_path)
    out = runner.invoke(app, ["plans", "deadline", "2024-02-08T10:00+08:00", "2wd", "-c", cfg])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["due"] == "2024-02-18T17:00:00+08:00"
    out = runner.invoke(app, ["plans", "list", "-c", cfg])
    assert out.exit_code == 0 and len(out.output.strip().splitlines()) == 5
    out = runner.invoke(app, ["plans", "start", "major_incident", "--actor", "duty", "--event-id", "ev-cli", "-c", cfg])
    assert out.exit_code == 0, out.output
    run_id = json.loads(out.output)["id"]
    out = runner.invoke(app, ["plans", "step", str(run_id), "assess", "--to", "in_progress", "--actor", "duty", "-c", cfg])
    assert out.exit_code == 0 and json.loads(out.output)["steps"][0]["state"] == "in_progress"
    out = runner.invoke(app, ["plans", "step", str(run_id), "assess", "--to", "pending", "--actor", "duty", "-c", cfg])
    assert out.exit_code != 0
    out = runner.invoke(app, ["plans", "runs", "--event-id", "ev-cli", "-c", cfg])
    assert out.exit_code == 0 and json.loads(out.output.splitlines()[0])["id"] == run_id
    out = runner.invoke(app, ["plans", "show", str(run_id), "--audit", "-c", cfg])
    assert out.exit_code == 0 and '"action": "start"' in out.output
    out = runner.invoke(app, ["plans", "review", str(run_id), "-c", cfg])
    assert out.exit_code == 0 and json.loads(out.output)["run_id"] == run_id
    out = runner.invoke(app, ["plans", "sla", "2026-01-01", "2028-01-01", "--csv", str(tmp_path / "p.csv"), "-c", cfg])
    assert out.exit_code == 0 and (tmp_path / "p.csv").read_text(encoding="utf-8").startswith("\ufeffrun_id")
    assert runner.invoke(app, ["plans", "tick", "-c", cfg]).exit_code == 0


def test_plans_check_names_the_bad_field(tmp_path: Path) -> None:
    bad = tmp_path / "plans"
    bad.mkdir()
    (bad / "x.yaml").write_text("id: x\nname: x\nbasis: x\nsteps:\n  - {id: a, title: a, role: janitor}\n", encoding="utf-8")
    out = CliRunner().invoke(app, ["plans", "check", str(bad), "-c", config(tmp_path)])
    assert out.exit_code == 2 and "x.yaml: steps.0.role" in out.output and "janitor" in out.output
