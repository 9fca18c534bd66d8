"""Compiled modules (see setup.py): which ones run, and a guard that keeps an out-of-date one from running.

Why the guard: Python imports an extension module before a .py file of the same name, so after editing a module
without rebuilding (`make compile`), the old compiled code would run silently. A compiled file older than its source
is therefore skipped and the source runs (with a warning). YUQING_PURE_PYTHON=1 runs every module from source.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import warnings
from pathlib import Path

PACKAGE = "nlp"
PACKAGE_DIR = Path(__file__).resolve().parent
_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def compiled_files(folder: Path) -> dict[str, Path]:
    """module name → its compiled file, for the modules of `folder` that have both a source and a compiled file."""
    out: dict[str, Path] = {}
    for suffix in _SUFFIXES:
        for compiled in folder.glob(f"*{suffix}"):
            name = compiled.name[: -len(suffix)]
            if (folder / f"{name}.py").is_file():
                out[name] = compiled
    return out


def stale_modules(folder: Path) -> list[str]:
    """Modules whose compiled file is older than their source."""
    return sorted(name for name, compiled in compiled_files(folder).items()
                  if (folder / f"{name}.py").stat().st_mtime > compiled.stat().st_mtime)


class SourceFirst:
    """Meta-path finder: the named modules of a package load from their .py files, never from compiled ones."""

    def __init__(self, package: str, names: set[str], folder: Path) -> None:
        self.package, self.names, self.folder = package, names, folder

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != self.package or name not in self.names:
            return None
        return importlib.util.spec_from_file_location(fullname, self.folder / f"{name}.py")


def use_current_code() -> None:
    """Called when the package is imported, before any of its modules."""
    if os.environ.get("YUQING_PURE_PYTHON") == "1":
        names = set(compiled_files(PACKAGE_DIR))
    else:
        names = set(stale_modules(PACKAGE_DIR))
        if names:
            warnings.warn(f"compiled {', '.join(sorted(names))} older than the source; running the source instead "
                          "(`make compile` rebuilds)", stacklevel=2)
    if names:
        sys.meta_path.insert(0, SourceFirst(PACKAGE, names, PACKAGE_DIR))


def compiled_modules() -> list[str]:
    """The modules of the package that were imported from compiled files (benchmarks report it)."""
    prefix = PACKAGE + "."
    return sorted(name for name, module in list(sys.modules.items())
                  if name.startswith(prefix) and str(getattr(module, "__file__", "") or "").endswith(_SUFFIXES))
