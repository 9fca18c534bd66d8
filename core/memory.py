"""Keep a long-running process's memory returnable to the system: a fixed glibc mmap threshold.

Why: glibc serves a request of at least its mmap threshold (128 KiB at start) by a mapping of its own, returned to the
system when freed, but each time such a block is freed it raises the threshold to that block's size (up to 32 MiB).
After the near-duplicate index's rebuild or a large batch frees numpy arrays of several MiB, every array below that
size comes from the heap instead, where freed space stays in the process once anything is allocated above it. In a
service ingesting around the clock that is a ratchet: RSS jumped by 50–150 MB at the index's cap and never came back
(the soak, bench/bench_soak.py). Setting the threshold explicitly turns the adjustment off (mallopt(3)); children
started later (the delivery process, read and enrichment workers) take it from the environment."""

from __future__ import annotations

import ctypes
import os

# Fixed at 4 MiB, not glibc's starting 128 KiB: at 128 KiB every batch's mid-size numpy buffers are mapped and
# faulted in afresh (enrichment -17 to -24 % in bench/bench_nlp.py; 1 MiB -7 %; 4 MiB no cost); the rebuild's
# arrays of tens of MiB are still mapped and given back.
MMAP_THRESHOLD = 4 * 1024 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
_ENV = "MALLOC_MMAP_THRESHOLD_"


def fix_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold in this process and in the processes it starts; False where there is no glibc
    (musl, macOS) or an operator set the variable to something else: nothing is changed then."""
    if os.environ.setdefault(_ENV, str(MMAP_THRESHOLD)) != str(MMAP_THRESHOLD):
        return False  # the operator's own value (glibc read it at start-up)
    try:  # the process's own symbols: libc is loaded already (find_library would run ldconfig at every start)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
