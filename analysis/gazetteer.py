"""Places and organisations in a text: a region gazetteer (one Aho-Corasick pass), jieba's place/organisation tags
for known words, and suffix rules for organisations the dictionary does not know (XX局, XX学院, XX公司).

The first place mentioned fills `item.region` when the source gave none, for 属地 routing. Anonymised names such as
"A市" and "A5区" (the 泰迪杯 data) are recognised by pattern.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Collection, Iterable, Sequence
from functools import cache, cached_property, partial
from itertools import accumulate, compress
from operator import itemgetter, or_
from pathlib import Path

import numpy as np

from analysis.lexicon import ORG_HEAD, ORG_WORD
from analysis.termscan import TermScanner
from nlp import derived

RESOURCES = Path(__file__).resolve().parent / "resources"
REGIONS_FILE = RESOURCES / "regions.txt"

# The capital first (not the look-behind) so the regex engine can skip ahead to capitals.
_ANON_PLACE = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[0-9]{0,2}[省市区县]")
_ORG_SUFFIXES = ("委员会", "管理局", "人民政府", "政府", "学院", "大学", "中学", "小学", "医院", "公司", "集团", "银行",
                 "派出所", "公安局", "法院", "检察院", "街道办", "居委会", "村委会", "物业", "局", "委", "厅", "办", "院",
                 "中心", "所", "站", "校")
_ORG_MIN_CHARS = 3
_ORG_LAST = frozenset(suffix[-1] for suffix in _ORG_SUFFIXES)  # a word ends with a suffix only if it ends with one of these
# Short head words that name a body or a site only together with the word before them: 经济+学院, 魅力+之城+小区.
_ORG_HEADS = frozenset({"学院", "大学", "医院", "公司", "集团", "银行", "中学", "小学", "学校", "物业", "政府", "法院"})
_SITE_HEADS = frozenset({"小区", "花园", "新村", "家园", "公寓", "商城", "市场", "社区", "新城"})
_HEADS = _SITE_HEADS | _ORG_HEADS
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
    """Words jieba's dictionary tags as organisation (nt); read without loading a segmenter, and without importing
    jieba (its import pulls in pkg_resources: 0.13 s of every process start) to find the file. The first process keeps
    the words beside the shipped resources (`nlp.derived`): ≈ 5 ms instead of ≈ 35 ms in every later one."""
    spec = importlib.util.find_spec("jieba")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("jieba is not installed: its dictionary tags organisations")
    dictionary = Path(spec.submodule_search_locations[0]) / "dict.txt"
    meta, _ = derived.load_or_derive(RESOURCES, "jieba_nt", [dictionary, Path(__file__)],
                                     partial(_read_jieba_tags, dictionary))
    return dict.fromkeys(meta["words"], "nt")


def _read_jieba_tags(dictionary: Path) -> derived.Derived:
    text = dictionary.read_text(encoding="utf-8")
    # Only the lines that contain "nt" are split (~5,000 of 350,000): a third of the time of splitting every line.
    words: dict[str, None] = {}
    find, rfind = text.find, text.rfind
    at = find("nt")
    while at >= 0:
        start, end = rfind("\n", 0, at) + 1, find("\n", at)
        end = len(text) if end < 0 else end
        parts = text[start:end].split()
        if len(parts) == 3 and parts[2] == "nt" and len(parts[0]) >= 2:
            words[parts[0]] = None
        at = find("nt", end)
    return {"words": list(words)}, {}


HEAD_WORDS = ("小区", "花园", "新村", "家园", "公寓", "学院", "大学", "医院", "公司", "中学", "小学", "集团", "幼儿园")
_NAMED = re.compile(r"([\u4e00-\u9fff]{2,8}?)(" + "|".join(HEAD_WORDS) + ")")
# Everything up to the last of these characters is not part of a name: places (路, 区), and function words and verbs
# that glue a generic phrase to a head word (学生必须去学校, 不同公司, 据说学校).
_CUT_CHARS = frozenset("路街道区县市镇省村的在和与了是对个号栋楼家"
                       "去到向从给被把让说同据其该这那各些本我你他们有无不等好要为入出上下内能及近")
_NAME_CUT = re.compile(".*[" + "".join(sorted(_CUT_CHARS)) + "]")


# Name parts that say what kind of body it is, not which one (物业公司, 开发公司): not names of a site or body.
_GENERIC_PARTS = frozenset({"物业", "开发", "房地产", "地产", "建筑", "建设", "保安", "家政", "快递", "物流", "供水", "供电",
                            "燃气", "自来水", "有限", "责任", "投资", "管理", "服务", "培训", "附属", "配套", "公办", "民办",
                            "普惠", "私立", "公立", "职业", "高中", "初中", "全资子", "子公司"})


def names_at(text: str, heads: list[tuple[int, str]], limit: int = 5) -> list[str]:
    """`find_names` given where the head words are (from the shared scan): only the up to 8 Chinese characters
    before each head are looked at, by hand rather than by regex (this runs for most posts)."""
    out: list[str] = []
    covered = 0
    for start, head in heads:
        if start < covered or start < 2:
            continue
        lo = max(covered, start - 8)
        j = start
        while j > lo and "\u4e00" <= text[j - 1] <= "\u9fff":
            j -= 1
        if start - j < 2:
            continue
        covered = start + len(head)
        k = start
        while k > j and text[k - 1] not in _CUT_CHARS:  # what _NAME_CUT removes: up to the last cut character
            k -= 1
        name = text[max(k, start - 4):start]
        if len(name) >= 2 and name not in _GENERIC_PARTS and name[-2:] not in _GENERIC_PARTS:
            key = name + head
            if key not in out:
                out.append(key)
                if len(out) >= limit:
                    break
    return out


_NAME_CHARS = 4  # a name is at most the last four characters before its head word


def _name_classes() -> np.ndarray:
    """Per BMP code point: 1 for a Chinese character (what names_at walks back over), 2 more for a cut character."""
    classes = np.zeros(0x10000, dtype=np.uint8)
    classes[0x4E00:0xA000] = 1
    classes[[ord(c) for c in _CUT_CHARS]] |= 2
    return classes


_NAME_CLASSES = _name_classes()


def names_many(texts: Sequence[str], heads: Sequence[list[tuple[int, str]]], limit: int = 5) -> list[list[str]]:
    """`names_at` of each text, with the character tests done by numpy for all head words of the batch at once.

    Why: `names_at` walks back up to eight characters twice per head word, a Python step per character (~15,000
    instructions an item with head words, about a tenth of the prepare stage). A name is only ever the last four
    characters before its head, so it is enough to know, for the four characters before each head, how many in a
    row are Chinese and how many in a row are not cut characters; what stays in Python is the order-dependent part
    (a head inside the last name found is skipped, and a name never reaches back into it)."""
    out: list[list[str]] = [[] for _ in texts]
    found = [(i, start, head) for i, text_heads in enumerate(heads) if text_heads for start, head in text_heads]
    if not found:
        return out
    # the four characters before each head, NUL-padded at a text's start (NUL is neither Chinese nor a cut character)
    windows = "".join([texts[i][start - _NAME_CHARS:start] if start >= _NAME_CHARS else _NAME_PAD[start:] + texts[i][:start]
                       for i, start, _ in found])
    if len(windows) != _NAME_CHARS * len(found):  # an offset past the text's end: as names_at does
        return [names_at(text, text_heads, limit) if text_heads else [] for text, text_heads in zip(texts, heads, strict=True)]
    codes = np.frombuffer(windows.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).reshape(-1, _NAME_CHARS)
    # nearest character first; beyond the BMP: neither Chinese nor a cut character
    classes = _NAME_CLASSES.take(np.minimum(codes[:, ::-1], 0xFFFF))
    stop = np.zeros((len(found), 1), dtype=bool)  # a column that ends every run
    runs = np.argmin(np.concatenate([(classes & 1).astype(bool), stop], axis=1), axis=1)
    frees = np.argmin(np.concatenate([(classes & 2) == 0, stop], axis=1), axis=1)
    # per head, its Chinese run and its name's length (no longer than the run) as one int: run * 8 + length
    packed = (runs * 8 + np.minimum(runs, frees)).tolist()
    current, names, covered, text = -1, out[0], 0, ""
    for (i, start, head), fact in zip(found, packed, strict=True):
        if i != current:
            current, names, covered, text = i, out[i], 0, texts[i]
        if start < covered or start < 2 or len(names) >= limit:
            continue
        run, size, gap = fact >> 3, fact & 7, start - covered
        if run > gap:  # names_at's walk stops at the end of the name before
            run = gap
            if size > gap:
                size = gap
        if run < 2:
            continue
        covered = start + len(head)
        name = text[start - size:start]
        if size >= 2 and name not in _GENERIC_PARTS and name[-2:] not in _GENERIC_PARTS:
            key = name + head
            if key not in names:
                names.append(key)
    return out


_NAME_PAD = "\x00" * _NAME_CHARS


def find_names(text: str, limit: int = 5) -> list[str]:
    """Named sites and bodies (魅力之城小区, 经济学院), keyed by their last four name characters plus the head word,
    so 万科魅力之城小区 and 劳动东路魅力之城小区 are one name. Used to tie items about one place or body together."""
    out: list[str] = []
    for m in _NAMED.finditer(text[:_MAX_SCAN]):
        name = _NAME_CUT.sub("", m.group(1))[-4:]
        if len(name) >= 2 and name not in _GENERIC_PARTS and name[-2:] not in _GENERIC_PARTS:
            key = name + m.group(2)
            if key not in out:
                out.append(key)
                if len(out) >= limit:
                    break
    return out


_ANON_HINT = re.compile(r"[A-Z]")


def ordered_places(hits: list[tuple[int, int, str]], text: str) -> list[str]:
    """Gazetteer hits (start, end, name) plus anonymised names (A市) in order of first mention, the longest at
    each position, no repeats."""
    head = text[:_MAX_SCAN]
    if _ANON_HINT.search(head):
        hits = hits + [(m.start(), m.end(), m.group(0)) for m in _ANON_PLACE.finditer(head)]
    return _first_places(hits)


_ANON_NEXT = [ord(c) for c in "0123456789省市区县"]  # what may follow the capital of an anonymised place


def _anon_spans(joined: str) -> tuple[list[int], list[int]] | None:
    """(starts, ends) of `_ANON_PLACE.finditer(joined)`'s matches, in order, found with numpy over the code points:
    a capital not after a Latin letter or digit, up to two digits, then 省, 市, 区 or 县 (what the regex says: with
    three digits or more, or another character after the digits, it has no match at that capital, and matches never
    overlap since only their first character is a capital). Why: the regex scan tested every character of the batch
    against its first set, and then a match per candidate capital cost ~1,000 instructions more. None when the
    text cannot be indexed by character as UTF-32 (lone surrogates)."""
    cp = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if len(cp) != len(joined):
        return None
    capitals = np.flatnonzero((cp >= 0x41) & (cp <= 0x5A))
    if not capitals.size:
        return [], []
    padded = np.concatenate([np.zeros(1, dtype=np.uint32), cp, np.zeros(4, dtype=np.uint32)])  # NUL around the text
    before = padded[capitals]  # the character before each capital (NUL before the first)
    folded = before | 0x20
    alone = ~(((before >= 0x30) & (before <= 0x39)) | ((folded >= 0x61) & (folded <= 0x7A)))
    digits = np.zeros(capitals.size, dtype=np.int64)
    run = np.ones(capitals.size, dtype=bool)
    for k in (2, 3, 4):  # padded[capital + 2] is the character after the capital
        after = padded[capitals + k]
        run &= (after >= 0x30) & (after <= 0x39)
        digits += run
    found = alone & (digits <= 2) & np.isin(padded[capitals + 2 + digits], _ANON_TAIL)
    starts = capitals[found]
    return starts.tolist(), (starts + digits[found] + 2).tolist()


_ANON_TAIL = np.array([ord(c) for c in "省市区县"], dtype=np.uint32)


def ordered_places_many(hits: Sequence[list[tuple[int, int, str]]], texts: Sequence[str]) -> list[list[str]]:
    """`ordered_places` for a batch: anonymised names are found by one regex pass over the texts' first 5,000
    characters joined by newlines (no name spans one, and the look-behind sees a newline as it sees a text's start)."""
    heads = [t[:_MAX_SCAN] for t in texts]
    joined = "\n".join(heads)
    anon: dict[int, list[tuple[int, int, str]]] = {}
    if _ANON_HINT.search(joined):
        ends = list(accumulate(len(h) + 1 for h in heads))  # end (exclusive, with its newline) of each head
        spans = _anon_spans(joined)
        if spans is None:
            found = list(_ANON_PLACE.finditer(joined))
            spans = [m.start() for m in found], [m.end() for m in found]
        starts, stops = spans
        if starts:
            owners = np.searchsorted(np.array(ends), starts, side="right").tolist()
            names = map(joined.__getitem__, map(slice, starts, stops))
            for owner, start, stop, name in zip(owners, starts, stops, names, strict=True):
                base = ends[owner] - len(heads[owner]) - 1
                anon.setdefault(owner, []).append((start - base, stop - base, name))
    if not anon:
        return [_first_places(h) if h else [] for h in hits]
    return [_first_places(h + anon[i] if i in anon else h) for i, h in enumerate(hits)]


_START, _END = itemgetter(0), itemgetter(1)


def _first_places(hits: list[tuple[int, int, str]]) -> list[str]:
    if not hits:
        return []
    if len(hits) > 1:
        # by start, the longest first at one start, else in their order: two stable sorts keyed from C (a Python
        # key function per hit cost more than the rest of this function)
        hits = sorted(sorted(hits, key=_END, reverse=True), key=_START)
    out: list[str] = []
    covered = -1
    for start, end, name in hits:
        if start < covered:
            continue
        covered = end
        if name not in out:
            out.append(name)
    return out


class Gazetteer:
    """Finds places (gazetteer + pattern) and organisations (dictionary tag + suffix rules)."""

    def __init__(self, extra_places: Iterable[str] = (), path: Path = REGIONS_FILE) -> None:
        self.places = set(read_names(path)) | {p for p in extra_places if p}
        self.org_tags = _jieba_tags()

    @cached_property
    def _scanner(self) -> TermScanner:
        """Built on first use: the stages scan places with the analysis state's shared scanner, not this one."""
        return TermScanner(places=self.places)

    def find_places(self, text: str) -> list[str]:
        """Places in order of first mention, longest match at each position, no repeats."""
        return ordered_places(self._scanner.scan(text[:_MAX_SCAN]).places, text)

    def find_orgs(self, tokens: Sequence[str], places: Iterable[str] = ()) -> list[str]:
        """Organisations among the words; a place word right before one is joined to it (A市 + 经济学院)."""
        window = list(tokens[:2000])
        positions = [i for i, tok in enumerate(window) if org_flag(tok, self.org_tags)]
        return orgs_at(window, positions, 0, set(places), self.org_tags)

    def org_flag(self, token: str) -> int:
        return org_flag(token, self.org_tags)


def org_flag(token: str, tags: dict[str, str]) -> int:
    """ORG_HEAD for a head word (学院, 小区) that names something with the word before it, ORG_WORD for a word that is
    an organisation by itself (dictionary tag nt, or a suffix such as 局/医院 on three or more characters), else 0."""
    return org_flags([token], tags)[0]


def org_flags(tokens: Iterable[str], tags: dict[str, str]) -> list[int]:
    """`org_flag` of each token (the lexicon asks for every new word of a batch, about a thousand). Only the tokens
    that can be flagged — a head word, a tagged word, or one ending with the last character of a suffix — are tested
    in Python; they are found by C-level maps (a comprehension testing every token cost ~1,600 instructions a word)."""
    tokens = list(tokens)
    flags = [0] * len(tokens)
    maybe = map(or_, map(_HEADS.__contains__, tokens), map(tags.__contains__, tokens))
    for i in compress(range(len(tokens)), map(or_, maybe, map(_ORG_LAST.__contains__, map(_LAST_CHAR, tokens)))):
        t = tokens[i]
        flags[i] = ORG_HEAD if t in _HEADS else ORG_WORD if tags.get(t) == "nt" or (
            len(t) >= _ORG_MIN_CHARS and t[-1] in _ORG_LAST and t.endswith(_ORG_SUFFIXES)
            and not t.endswith(("市", "区", "县"))) else 0
    return flags


_LAST_CHAR = itemgetter(slice(-1, None))  # a string's last character ("" for an empty one)


def _is_place(word: str, place_set: Collection[str]) -> bool:
    return word in place_set or ("A" <= word[:1] <= "Z" and bool(_ANON_PLACE.fullmatch(word)))


def orgs_at(tokens: Sequence[str], positions: Iterable[int], offset: int, place_set: set[str],
            tags: dict[str, str], limit: int = 10) -> list[str]:
    """Organisation names at the flagged token positions (absolute, item's first token at `offset`)."""
    relative = [i - offset for i in positions]
    return orgs_many([tokens[offset:]], [0] * len(relative), relative, [place_set], limit)[0]


def orgs_many(token_lists: Sequence[Sequence[str]], owners: list[int], positions: list[int],
              places: Sequence[Collection[str]], limit: int = 10) -> list[list[str]]:
    """`orgs_at` of every item of a batch in one loop over its flagged tokens (`owners[k]` the item and
    `positions[k]` the token inside it, in item order), each item's places as they are (a membership test on a few
    names needs no set). Why: a call, a position list and a set per item cost more than the loop body."""
    out: list[list[str]] = [[] for _ in token_lists]
    current: int = -1
    tokens: Sequence[str] = ()
    found: list[str] = []
    place_set: Collection[str] = ()
    for owner, i in zip(owners, positions, strict=True):
        if owner != current:
            current, tokens, found, place_set = owner, token_lists[owner], out[owner], places[owner]
        if len(found) >= limit:
            continue
        tok = tokens[i]
        prev = tokens[i - 1] if i else ""
        if tok in _SITE_HEADS or tok in _ORG_HEADS:
            if not prev or len(prev) < 2 or prev.isascii() or _is_place(prev, place_set):
                continue
            name = prev + tok
            before = tokens[i - 2] if i > 1 else ""
            name_part = tok in _SITE_HEADS and len(before) >= 2 and not before.isascii() and len(prev) == 2
            if (before and _is_place(before, place_set)) or name_part:
                name = before + name
        else:
            name = prev + tok if prev and _is_place(prev, place_set) else tok
        if name not in found:
            found.append(name)
    return out


_CJK = re.compile(r"[\u4e00-\u9fff]")
_PROVINCE_SUFFIXES = ("维吾尔自治区", "壮族自治区", "回族自治区", "特别行政区", "自治区", "省", "市")
_SOURCE = ("addressparser 0.2.4 (PyPI, https://github.com/shibing624/addressparser, MIT licence in its setup.py), "
           "file addressparser/pca.csv: province, city, district/county of the People's Republic of China")


# Short city names that are also ordinary words or names of other things (东方红, 中山路, 大同小异, 长治久安, 普洱茶).
_AMBIGUOUS_SHORT = frozenset({"东方", "中山", "大同", "安康", "长治", "普洱", "吉安", "永康", "和田", "阿里"})


def build_regions(pca_rows: Iterable[Sequence[str]]) -> list[str]:
    """Gazetteer names from (country, province, city, district, ...) rows: every province, city and district or
    county by its full name, and short forms of provinces (湖南) and cities (长沙) unless the short form is also an
    ordinary word. Districts keep their full name only: 雨花 alone is not a place, 雨花区 is."""
    names: set[str] = set()
    for row in pca_rows:
        if len(row) < 4:
            continue
        province, city, district = row[1].strip(), row[2].strip(), row[3].strip()
        for full in (province, city, district):
            if len(full) >= 2 and _CJK.search(full):
                names.add(full)
        for full, suffixes in ((province, _PROVINCE_SUFFIXES), (city, ("市",))):
            for suffix in suffixes:
                short = full.removesuffix(suffix)
                if short != full:
                    if len(short) >= 2 and short not in _AMBIGUOUS_SHORT:
                        names.add(short)
                    break
    return sorted(names, key=lambda n: (len(n), n))


def write_regions(pca_csv: Path, out: Path) -> int:
    import csv

    with pca_csv.open(encoding="utf-8") as fh:
        names = build_regions(csv.reader(fh))
    header = ["# Region gazetteer: China's administrative divisions (province, city, district/county) by full name, and",
              "# short forms of provinces and cities that are not common words. Built by",
              "# `python -m analysis.gazetteer build PCA_CSV analysis/resources/regions.txt` from",
              f"# {_SOURCE}.",
              "# One name per line; '#' starts a comment. Local names (街道, 乡镇, 社区) go in config: analysis.keywords.places."]
    out.write_text("\n".join(header + names) + "\n", encoding="utf-8")
    return len(names)


if __name__ == "__main__":  # pragma: no cover - maintenance command
    import sys

    if len(sys.argv) != 4 or sys.argv[1] != "build":
        sys.exit("usage: python -m analysis.gazetteer build PCA_CSV OUT")
    sys.stdout.write(f"{write_regions(Path(sys.argv[2]), Path(sys.argv[3]))} names\n")
