"""Where the shared data folder is: one setting, `YUQING_DATA_DIR`, defaulting to ../shared/data beside the repo."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir(configured: Path | str | None = None) -> Path:
    """The shared data folder: env `YUQING_DATA_DIR`, else the configured path, else ../shared/data (repo-relative)."""
    value = os.environ.get("YUQING_DATA_DIR") or configured or "../shared/data"
    path = Path(value)
    return path if path.is_absolute() else (REPO_ROOT / path).resolve()
