"""Chinese segmentation. jieba is the reference implementation; everything that tokenises goes through here."""

from __future__ import annotations

import logging
import re
import threading

import jieba

logger = logging.getLogger(__name__)
jieba.setLogLevel(logging.WARNING)

_lock = threading.Lock()
_ready = False
_WORDLIKE = re.compile(r"\w", re.UNICODE)


def _ensure_ready() -> None:
    """Load jieba's dictionary once, under a lock, so concurrent first calls do not race."""
    global _ready
    if _ready:
        return
    with _lock:
        if not _ready:
            jieba.initialize()
            _ready = True


def segment(text: str) -> list[str]:
    """Words of `text` in order, without whitespace and punctuation tokens."""
    if not text:
        return []
    _ensure_ready()
    return [tok for tok in jieba.lcut(text) if _WORDLIKE.search(tok)]


def segment_for_index(text: str) -> str:
    """Space-joined, lower-cased words: what the full-text index stores and what queries are turned into."""
    return " ".join(segment(text)).lower()
