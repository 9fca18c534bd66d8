"""Compiled modules (setup.py, `make compile`): same output as the source, and never older than the source."""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.paths import REPO_ROOT
from demo.generator import DemoGenerator
from nlp._compiled import PACKAGE_DIR, SourceFirst, compiled_files, stale_modules
from tests.nlp.test_cli_classify import run_raw


def _package(root: Path, compiled_age: float) -> Path:
    """A package `pkgx` with a source module and a compiled file that is not a real extension (it cannot load)."""
    folder = root / "pkgx"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    source = folder / "mod.py"
    source.write_text("VALUE = 'source'\n")
    compiled = folder / f"mod{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    compiled.write_bytes(b"not an extension module")
    now = source.stat().st_mtime
    os.utime(compiled, (now + compiled_age, now + compiled_age))
    return folder


def test_a_compiled_file_older_than_its_source_is_stale(tmp_path: Path):
    assert stale_modules(_package(tmp_path, compiled_age=-60)) == ["mod"]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert stale_modules(_package(fresh, compiled_age=60)) == []


def test_source_first_loads_the_source_instead_of_the_compiled_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    folder = _package(tmp_path, compiled_age=-60)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(ImportError):  # what would happen without the guard: the compiled file wins and fails
            importlib.import_module("pkgx.mod")
        sys.modules.pop("pkgx.mod", None)
        finder = SourceFirst("pkgx", {"mod"}, folder)
        sys.meta_path.insert(0, finder)
        try:
            assert importlib.import_module("pkgx.mod").VALUE == "source"
        finally:
            sys.meta_path.remove(finder)
    finally:
        for name in ("pkgx.mod", "pkgx"):
            sys.modules.pop(name, None)


def _classify(lines: list[str], pure: bool) -> list[dict]:
    out = run_raw(lines, "--events", env={**os.environ, "YUQING_PURE_PYTHON": "1" if pure else "0"})
    # event ids are random: name them by first appearance
    names: dict[str, str] = {}
    text = re.sub(r'"ev-[0-9a-f]+"', lambda m: json.dumps(names.setdefault(m.group(0), f"E{len(names)}")), out)
    return [json.loads(x) for x in text.splitlines()]


def test_compiled_modules_give_the_same_output_as_the_source():
    compiled = compiled_files(PACKAGE_DIR)
    if not compiled:
        pytest.skip("no compiled modules in nlp/ (`make compile` builds them; the Makefile's test target does)")
    assert not stale_modules(PACKAGE_DIR), "compiled modules older than their source: run `make compile`"
    probe = subprocess.run([sys.executable, "-c", "import nlp.pipeline; from nlp._compiled import compiled_modules; "
                            "print(len(compiled_modules()))"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
                           env={**os.environ, "YUQING_PURE_PYTHON": "0"})
    assert int(probe.stdout.strip()) >= 10, probe.stderr  # the flow really runs compiled code here
    generator = DemoGenerator(seed=7)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    lines = []
    for i in range(300):  # realistic items of every channel: repeats, places, replies, engagement, events
        item = generator.one(("hotline", "mailbox", "weibo", "wechat", "board")[i % 5], start + timedelta(minutes=37 * i))
        p = item.payload
        lines.append(json.dumps({"id": i, "title": p.get("title", ""), "content": p["content"], "channel": item.channel,
                                 "published_at": p["published_at"], "likes": max(0, p.get("likes", 0)),
                                 "reposts": max(0, p.get("reposts", 0)), "comments": max(0, p.get("comments", 0))},
                                ensure_ascii=False))
    lines += ["{bad", json.dumps({"id": "empty", "content": ""}), json.dumps({"id": "emoji", "content": "😀🎉"})]
    compiled_out, source_out = _classify(lines, pure=False), _classify(lines, pure=True)
    assert compiled_out == source_out
    assert len({o.get("event_id") for o in compiled_out}) > 10
