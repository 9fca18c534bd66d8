"""The service fixes glibc's mmap threshold so that freed numpy buffers go back to the system (core/memory.py)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from core.memory import MMAP_THRESHOLD, fix_mmap_threshold

GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_the_threshold_is_fixed_here_and_handed_to_children(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert fix_mmap_threshold() is True
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == str(MMAP_THRESHOLD)
    child = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('MALLOC_MMAP_THRESHOLD_'))"],
                           capture_output=True, text=True, check=True)
    assert child.stdout.strip() == str(MMAP_THRESHOLD)


def test_an_operators_own_value_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    assert fix_mmap_threshold() is False
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == "1048576"
