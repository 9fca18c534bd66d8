"""Words for the full-text index: each word plus its 2- and 3-character parts.

Segmentation keeps compounds such as 油烟扰民 or 烧烤店 whole, so a search for 油烟 or 烧烤 would miss them. Like
jieba's search mode, the index also stores the parts of long words; unlike it, the parts do not depend on the
dictionary, so index and query agree whichever segmentation backend is in use.
"""

from __future__ import annotations

from nlp.tokenize import segment

_MAX_EXPAND = 8  # longer tokens are names or noise; their parts add size, not recall


def _parts(word: str) -> list[str]:
    if len(word) < 3 or len(word) > _MAX_EXPAND or word.isascii():
        return []
    parts = [word[i : i + 2] for i in range(len(word) - 1)]
    if len(word) > 3:
        parts.extend(word[i : i + 3] for i in range(len(word) - 2))
    return parts


def index_tokens(text: str) -> list[str]:
    """Lower-cased words in text order, each preceded by its parts."""
    out: list[str] = []
    append = out.append
    for word in map(str.lower, segment(text)):
        if 2 < len(word) <= _MAX_EXPAND and not word.isascii():  # `_parts` is empty otherwise: most words skip the call
            out.extend(_parts(word))
        append(word)
    return out
