"""`yuqing reports make daily --date … --format pdf --out FILE` writes the report; `list` shows it kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from core.models import RawRecord
from tests.helpers.reports import DAY, DAY_START, SOURCES, pdf_text, require_cjk_font


def test_make_writes_pdf_and_html_and_list_shows_it(tmp_path: Path) -> None:
    require_cjk_font()
    from core.config import load_config
    from yuqing.service import build_service

    config_file = tmp_path / "yuqing.yaml"
    config_file.write_text(yaml.safe_dump({"storage": {"sqlite_path": str(tmp_path / "cli.db")}, "sources": SOURCES,
                                           "crawling": {"scheduler": False}}, allow_unicode=True), encoding="utf-8")
    service = build_service(load_config(config_file))  # the real enrichment: the item gets its risk score
    service.writer.ingest([RawRecord(source="board_a", payload={
        "source_id": "1", "title": "小区停水三天", "content": "雨花小区停水三天无人管", "published_at": DAY_START.isoformat()})])
    service.close()

    def yuqing(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "yuqing", *args, "-c", str(config_file)], capture_output=True,
                              text=True, timeout=180, cwd=tmp_path)

    out = tmp_path / "daily.pdf"
    made = yuqing("reports", "make", "daily", "--date", DAY, "--format", "pdf", "--out", str(out))
    assert made.returncode == 0, made.stderr
    assert "舆情日报（2026年3月9日），1 条信息" in made.stdout
    assert "小区停水三天" in pdf_text(out.read_bytes(), tmp_path)

    # The rest in this process (the same commands, without starting Python again on a busy machine).
    from typer.testing import CliRunner

    from yuqing.cli import app

    runner = CliRunner()
    html_file = tmp_path / "舆情日报（2026年3月9日）.html"
    html = runner.invoke(app, ["reports", "make", "daily", "--date", DAY, "--format", "html", "--out", str(html_file),
                               "-c", str(config_file)])
    assert html.exit_code == 0, html.output
    assert "小区停水三天" in html_file.read_text(encoding="utf-8")
    listed = runner.invoke(app, ["reports", "list", "-c", str(config_file)])
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["kind"], r["date"], r["trigger"]) for r in rows] == [("daily", DAY, "cli")]
    bad = runner.invoke(app, ["reports", "make", "daily", "--date", "2026-02-30", "-c", str(config_file)])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
