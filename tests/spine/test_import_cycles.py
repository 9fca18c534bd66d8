"""No import cycle between project modules, counting imports inside functions too (but not `if TYPE_CHECKING:`
blocks: they never run, and a type named in an annotation ties nothing at import time).

A cycle makes import order matter (a half-initialised module, `# noqa: E402` imports at the bottom of a file) and
ties packages together that should only meet in the composition root; a lazy import hides it from Python but not
from the reader, so it counts here as well.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from core.paths import REPO_ROOT

PACKAGES = ("core", "storage", "flow", "api", "yuqing", "demo", "nlp", "analysis", "crawlers", "alerts", "playbooks")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES if (REPO_ROOT / package).is_dir()
            for p in sorted((REPO_ROOT / package).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_modules(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules that `name` imports anywhere in its file (`from pkg import mod` counts as pkg.mod)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block.test)
                 for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def project_graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    graph = {name: imported_modules(path, name, known) for name, path in modules.items()}
    # A package's __init__ importing its own submodules is not a cycle a reader has to untangle.
    return {name: {t for t in targets if not (t.startswith(name + ".") and modules[name].name == "__init__.py")}
            for name, targets in graph.items()}


def test_the_checker_finds_a_cycle() -> None:
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_the_checker_reads_relative_and_lazy_imports(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text("from . import sibling\n\ndef f():\n    from pkg.other import thing\n", encoding="utf-8")
    assert imported_modules(source, "pkg.mod", {"pkg", "pkg.sibling", "pkg.other", "pkg.mod"}) == {
        "pkg", "pkg.sibling", "pkg.other"}


def test_no_import_cycle_between_project_modules() -> None:
    cycles = import_cycles(project_graph())
    assert cycles == [], "import cycles:\n" + "\n".join(" ↔ ".join(c) for c in cycles)


@pytest.mark.parametrize("module", ["core.config_base", "core.config_alerts", "core.config_analysis", "core.config_crawl",
                                    "core.config_nlp", "alerts.cli", "crawlers.cli"])
def test_modules_once_in_a_cycle_import_on_their_own(module: str) -> None:
    """Each used to work only when its partner had been imported first (or half-imported, mid-cycle)."""
    result = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def test_no_test_module_imports_another_test_module() -> None:
    """Shared test code lives in tests/helpers; importing a test module runs its collection-time code twice and makes
    one test file's edits break another."""
    tests_dir = REPO_ROOT / "tests"
    offenders = []
    for path in sorted(tests_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            leaf = [n.rpartition(".")[2] for n in names if n.startswith("tests.")]
            if any(n.startswith("test_") or n == "conftest" for n in leaf):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert offenders == []
