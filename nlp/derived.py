"""Tables a process derives from shipped files at start (the classifier's stacked weights, the word tables of the
analysis state), kept on disk next to those files in a form that loads without parsing or computing: one JSON file of
plain values and one NumPy `.npy` file per array, memory-mapped read-only (never pickled).

Why: every process that enriches (each import pool worker, the writer, the service) rebuilt the same tables from text
and compressed arrays, ≈ 0.25 s of CPU each; read from here they cost a few milliseconds, and the mapped pages are
shared by the processes through the page cache.

A derivation is found by a digest of its sources: the bytes of the data files and of the modules whose code derives
the tables (so a changed model, word list or derivation is derived again, never read stale) and `FORMAT`. A folder
that cannot be written (a read-only install) only means deriving in memory every time, as before."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

FORMAT = 1  # of what this module writes
FOLDER = ".derived"  # beside the sources (gitignored)
META = "meta.json"

Arrays = dict[str, np.ndarray]
Derived = tuple[dict[str, Any], Arrays]


def source_digest(sources: Iterable[Path]) -> str:
    """sha256 over `FORMAT` and each source's name and bytes."""
    digest = hashlib.sha256(f"derived-{FORMAT}".encode())
    for path in sources:
        data = Path(path).read_bytes()
        digest.update(f"\0{Path(path).name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def load_or_derive(near: Path, name: str, sources: Iterable[Path], derive: Callable[[], Derived]) -> Derived:
    """`derive()`'s (JSON-able values, arrays), read from `near/.derived/name-DIGEST/` when an earlier process wrote
    it, else derived and written there. Either way the values are what JSON gives back (lists, not tuples) and the
    arrays are read-only, so a caller sees the same whether or not the folder could be written."""
    folder = Path(near) / FOLDER / f"{name}-{source_digest(sources)[:32]}"
    try:
        return _read(folder)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError):  # damaged (a full disk, a file changed by hand): derived again in its place
        shutil.rmtree(folder, ignore_errors=True)
    meta, arrays = derive()
    try:
        _write(folder, meta, arrays)
        return _read(folder)
    except (OSError, ValueError, KeyError) as exc:
        logger.debug("derived tables %s not kept in %s: %s", name, folder, exc)
    for array in arrays.values():
        array.flags.writeable = False
    return json.loads(json.dumps(meta)), arrays


def _read(folder: Path) -> Derived:
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    arrays = {key: np.load(folder / f"{key}.npy", mmap_mode="r", allow_pickle=False).view(np.ndarray)
              for key in meta.pop("arrays")}
    return meta, arrays


def _write(folder: Path, meta: dict[str, Any], arrays: Arrays) -> None:
    """Into a new folder renamed into place at the end: readers never see a half-written one, and of two processes
    deriving at once the second keeps the first's. Other derivations of the same name (older sources) are removed."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        scratch.chmod(0o755)  # mkdtemp's 0o700 would keep the tables from processes of other users
        for key, array in arrays.items():
            np.save(scratch / f"{key}.npy", np.ascontiguousarray(array), allow_pickle=False)
        (scratch / META).write_text(json.dumps({**meta, "arrays": list(arrays)}, ensure_ascii=False), encoding="utf-8")
        os.rename(scratch, folder)
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
        if not (folder / META).is_file():  # not written by another process meanwhile
            raise
        return
    name = folder.name.rsplit("-", 1)[0]
    for other in folder.parent.iterdir():
        if other != folder and other.name.rsplit("-", 1)[0] == name:
            shutil.rmtree(other, ignore_errors=True)
