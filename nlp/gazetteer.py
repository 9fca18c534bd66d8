"""Places and organisations in a text: a region gazetteer (one Aho-Corasick pass), jieba's place/organisation tags
for known words, and suffix rules for organisations the dictionary does not know (XX局, XX学院, XX公司).

The first place mentioned fills `item.region` when the source gave none, for 属地 routing. Anonymised names such as
"A市" and "A5区" (the 泰迪杯 data) are recognised by pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

import ahocorasick

RESOURCES = Path(__file__).resolve().parent / "resources"
REGIONS_FILE = RESOURCES / "regions.txt"

_ANON_PLACE = re.compile(r"(?<![A-Za-z0-9])[A-Z][0-9]{0,2}(?:省|市|区|县)")
_ORG_SUFFIXES = ("委员会", "管理局", "人民政府", "政府", "学院", "大学", "中学", "小学", "医院", "公司", "集团", "银行",
                 "派出所", "公安局", "法院", "检察院", "街道办", "居委会", "村委会", "物业", "局", "委", "厅", "办", "院",
                 "中心", "所", "站", "校")
_ORG_MIN_CHARS = 3
# Short head words that name a body or a site only together with the word before them: 经济+学院, 魅力+之城+小区.
_ORG_HEADS = frozenset({"学院", "大学", "医院", "公司", "集团", "银行", "中学", "小学", "学校", "物业", "政府", "法院"})
_SITE_HEADS = frozenset({"小区", "花园", "新村", "家园", "公寓", "商城", "市场", "社区", "新城"})
_MAX_SCAN = 5000  # places beyond the first 5,000 characters rarely change the jurisdiction; long texts stay cheap


def read_names(path: Path) -> list[str]:
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names


@cache
def _jieba_tags() -> dict[str, str]:
    """Words jieba's dictionary tags as organisation (nt); read once, without loading a segmenter."""
    import jieba

    tags: dict[str, str] = {}
    with open(Path(jieba.__file__).parent / "dict.txt", encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "nt" and len(parts[0]) >= 2:
                tags[parts[0]] = "nt"
    return tags


_NAMED = re.compile(r"([\u4e00-\u9fff]{2,8}?)(小区|花园|新村|家园|公寓|学院|大学|医院|公司|中学|小学|集团|幼儿园)")
_NAME_CUT = re.compile(r".*[路街道区县市镇省村的在和与了是对个号栋楼家]")


def find_names(text: str, limit: int = 5) -> list[str]:
    """Named sites and bodies (魅力之城小区, 经济学院), keyed by their last four name characters plus the head word,
    so 万科魅力之城小区 and 劳动东路魅力之城小区 are one name. Used to tie items about one place or body together."""
    out: list[str] = []
    for m in _NAMED.finditer(text[:_MAX_SCAN]):
        name = _NAME_CUT.sub("", m.group(1))[-4:]
        if len(name) >= 2:
            key = name + m.group(2)
            if key not in out:
                out.append(key)
                if len(out) >= limit:
                    break
    return out


class Gazetteer:
    """Finds places (gazetteer + pattern) and organisations (dictionary tag + suffix rules)."""

    def __init__(self, extra_places: Iterable[str] = (), path: Path = REGIONS_FILE) -> None:
        self.places = set(read_names(path)) | {p for p in extra_places if p}
        self._automaton = ahocorasick.Automaton()
        for name in self.places:
            self._automaton.add_word(name, name)
        self._automaton.make_automaton()
        self._org_tags = _jieba_tags()

    def find_places(self, text: str) -> list[str]:
        """Places in order of first mention, longest match at each position, no repeats."""
        text = text[:_MAX_SCAN]
        hits: list[tuple[int, int, str]] = [(end - len(name) + 1, end + 1, name)
                                            for end, name in self._automaton.iter(text)]
        hits.extend((m.start(), m.end(), m.group(0)) for m in _ANON_PLACE.finditer(text))
        hits.sort(key=lambda h: (h[0], -(h[1] - h[0])))
        out: list[str] = []
        covered = -1
        for start, end, name in hits:
            if start < covered:
                continue
            covered = end
            if name not in out:
                out.append(name)
        return out

    def find_orgs(self, tokens: Sequence[str], places: Iterable[str] = ()) -> list[str]:
        """Organisations among the words; a place word right before one is joined to it (A市 + 经济学院)."""
        place_set = set(places)
        out: list[str] = []
        window = list(tokens[:2000])
        for i, tok in enumerate(window):
            prev = window[i - 1] if i else ""
            if tok in _SITE_HEADS or tok in _ORG_HEADS:
                if not prev or len(prev) < 2 or prev.isascii() or prev in place_set or _ANON_PLACE.fullmatch(prev):
                    continue
                name = prev + tok
                before = window[i - 2] if i > 1 else ""
                is_place = before in place_set or bool(_ANON_PLACE.fullmatch(before or "-"))
                name_part = tok in _SITE_HEADS and len(before) >= 2 and not before.isascii() and len(prev) == 2
                if is_place or name_part:
                    name = before + name
            elif self._org_tags.get(tok) == "nt" or (
                    len(tok) >= _ORG_MIN_CHARS and tok.endswith(_ORG_SUFFIXES) and not tok.endswith(("市", "区", "县"))):
                name = prev + tok if prev in place_set or _ANON_PLACE.fullmatch(prev or "-") else tok
            else:
                continue
            if name not in out:
                out.append(name)
        return out[:10]
