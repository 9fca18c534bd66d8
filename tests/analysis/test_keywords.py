"""Keywords from the shipped idf table, places from the gazetteer, organisations, and region filling."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from analysis.gazetteer import Gazetteer, find_names
from analysis.keywords import KeywordExtractor, load_idf
from analysis.stages import AnalysisState, KeywordStage
from core.config import parse_config
from core.models import SHANGHAI, Item
from flow.stages import Batch
from nlp.tokenize import segment

NOW = datetime(2026, 1, 5, tzinfo=SHANGHAI)


def test_idf_table_is_real_and_ranks_specific_words_first() -> None:
    idf, default = load_idf()
    assert len(idf) > 10_000
    assert idf["油烟"] > idf["问题"]
    words = KeywordExtractor(top_k=4).extract(segment("小区楼下烧烤店油烟扰民，油烟直排，我们反映了很多次问题"))
    assert "油烟" in words and "烧烤店" in words and "问题" not in words and "我们" not in words


def test_places_orgs_and_names() -> None:
    gaz = Gazetteer()
    text = "上海市浦东新区某小区，A市经济学院的学生反映问题，市教育局尚未回复。"
    places = gaz.find_places(text)
    assert places[:2] == ["上海市", "浦东新区"] and "A市" in places
    # Districts from the administrative-division list, the longest name at each position (长沙市, not 长沙).
    assert gaz.find_places("长沙市雨花区和武汉市洪山区的居民反映") == ["长沙市", "雨花区", "武汉市", "洪山区"]
    assert gaz.find_places("湖南长沙东方红广场") == ["湖南", "长沙"]  # 东方 is no city here
    orgs = gaz.find_orgs(segment(text), places)
    assert "教育局" in "".join(orgs)
    assert find_names("我是万科魅力之城小区的业主") == ["魅力之城小区"]


def test_stage_fills_keywords_entities_and_empty_region_only() -> None:
    state = AnalysisState(parse_config({}).analysis)
    empty = Item(source="s", channel="board", source_id="1", content="广州市天河区某工地夜间施工噪音扰民",
                 published_at=NOW, fetched_at=NOW)
    given = Item(source="s", channel="board", source_id="2", content="广州市天河区施工噪音", region="江城市",
                 published_at=NOW, fetched_at=NOW)
    odd = Item(source="s", channel="weibo", source_id="3", content="😀😀 <br> ok", published_at=NOW, fetched_at=NOW)
    KeywordStage(state).run(Batch(items=[empty, given, odd]))
    assert empty.region == "广州市" and given.region == "江城市"
    assert empty.enrichment.entities["places"][:2] == ["广州市", "天河区"]
    assert "噪音" in empty.enrichment.keywords or "施工" in empty.enrichment.keywords
    assert odd.enrichment.keywords == [] and odd.region is None


def test_region_list_is_built_from_administrative_divisions() -> None:
    from analysis.gazetteer import build_regions

    rows = [("中国", "湖南省", "长沙市", "雨花区", "", ""), ("中国", "海南省", "东方市", "", "", ""),
            ("中国", "广西壮族自治区", "南宁市", "青秀区", "", ""), ("中国", "x"), ("中国", "上海市", "上海市", "浦东新区")]
    names = set(build_regions(rows))
    assert {"湖南省", "湖南", "长沙市", "长沙", "雨花区", "东方市", "广西", "南宁", "青秀区", "上海", "浦东新区"} <= names
    assert not {"雨花", "东方", "青秀", "x"} & names  # districts by full name only; 东方 is an ordinary word


def test_batch_places_equal_item_by_item_places() -> None:
    """`ordered_places_many` finds anonymised names in one pass over a batch's texts joined by newlines; names at the
    edges of texts (where two texts meet) and look-behind cases must come out as `ordered_places` finds them alone."""
    from analysis.gazetteer import ordered_places, ordered_places_many
    from analysis.termscan import TermScanner

    texts = ["A市A3区的问题", "反映到A", "B市\n长沙市雨花区", "XA市不是地名，A12县是", "", "C区", "长沙市", "无地名",
             "COVID在A5区扩散" + "。" * 6000 + "D市", "ZB市和湖南省长沙市", "长沙A市", "A市长沙"]
    gazetteer = Gazetteer()
    scanner = TermScanner(places=gazetteer.places)
    hits = [h.places for h in scanner.scan_many(texts)]
    assert ordered_places_many(hits, texts) == [ordered_places(h, t) for h, t in zip(hits, texts, strict=True)]
    assert ordered_places_many(hits, texts)[:3] == [["A市", "A3区"], [], ["B市", "长沙市", "雨花区"]]
    assert ordered_places_many(hits, texts)[-2:] == [["长沙", "A市"], ["A市", "长沙"]]  # offsets exact to the character


def test_lexicon_feature_hash_is_the_featurisers_hash_of_every_spelling() -> None:
    from itertools import chain

    import numpy as np

    from nlp.features import hash_strings

    state = AnalysisState(parse_config({}).analysis)
    token_lists = [["WiFi", "信号", "wifi", "WIFI"], ["İstanbul", "istanbul", "ΑΣ", "ας"], [], ["小区", "噪音", "Wifi"]]
    encoded = state.lexicon.encode(token_lists)
    assert encoded.ids[0] == encoded.ids[2] == encoded.ids[3]  # one id for the spellings of one lower-cased word
    flat = list(chain.from_iterable(token_lists))
    assert np.array_equal(state.lexicon.feature_hash[encoded.ids], hash_strings(flat))


def test_term_scan_offsets_are_characters_of_each_text() -> None:
    """Hits carry character offsets into their own (lower-cased) text, whatever the UTF-8 width of the characters
    before them (emoji: 4 bytes, CJK: 3, é: 2), and a batch finds what each text alone finds."""
    from analysis.termscan import TermScanner

    scanner = TermScanner(places=["长沙市", "雨花区", "A市"], heads=["小区"], scheme_terms=["噪音"],
                          risk_terms={"扰民": ("nuisance",), "噪音扰民": ("nuisance", "noise")},
                          matter_terms={"噪音": ("noise",)})
    texts = ["😀😀长沙市雨花区魅力之城小区噪音扰民", "café噪音A市", "", "无", "é" * 7 + "长沙市😀噪音扰民😀小区",
             "a市的噪音\x00扰民"]
    batch = scanner.scan_many(texts)
    assert [scanner.scan(t) for t in texts] == batch
    assert [h.places for h in batch[:2]] == [[(2, 5, "长沙市"), (5, 8, "雨花区")], [(6, 8, "A市")]]
    for text, hits in zip(texts, batch, strict=True):
        low = text.lower()
        assert all(low[s:e] == name.lower() for s, e, name in hits.places)
        assert all(low[s:s + len(head)] == head for s, head in hits.heads)
        assert all(low[s:s + len(term)] == term for term, starts in hits.scheme.items() for s in starts)
        assert all(low[s:e] == term for found in hits.risk.values() for term, s, e in found)
    assert batch[4].risk["noise"] == [("噪音扰民", 11, 15)] and batch[4].heads == [(16, "小区")]


def test_lowered_units_are_str_lower_in_utf16() -> None:
    """The scan's lower-casing by table (`_lowered_units`) gives str.lower()'s code units for every character: those
    the table maps, and those it leaves to str.lower() (İ becomes two characters, Σ depends on its neighbours, cased
    letters beyond the BMP); and the table's list of cased supplementary blocks misses none in any plane."""
    from analysis.termscan import _lower_table, _lowered_units

    texts = ["".join(map(chr, range(start, start + 0x800))) for start in range(0, 0xD800, 0x800)]
    texts += ["".join(map(chr, range(0xE000, 0x10000))), "İstanbul ΟΔΥΣΣΕΥΣ Σ", "𐐀𐐨 A市", "😀長沙ＡＢＣ", "a\x00B"]
    for text in texts:
        assert _lowered_units(text).tobytes() == text.lower().encode("utf-16-le")
    _, special = _lower_table()
    cased_blocks = {0xD800 + ((c - 0x10000) >> 10) for c in range(0x10000, 0x110000) if chr(c).lower() != chr(c)}
    assert cased_blocks == {u for u in range(0xD800, 0xDC00) if special[u]}


def test_term_scan_skips_matches_across_characters() -> None:
    """The automaton walks UTF-16 bytes: a term's bytes found astride two characters (at an odd byte) is no hit, and
    a text whose lower case changes its length (İ) keeps offsets into its lower-cased text."""
    from analysis.termscan import TermScanner

    term = ("区".encode("utf-16-le")[1:] + "小".encode("utf-16-le")[:1]).decode("utf-16-le")  # 区's high byte, 小's low
    scanner = TermScanner(scheme_terms=[term, "小区"])
    assert scanner.scan("区小区").scheme == {"小区": [1]}
    assert TermScanner(scheme_terms=["噪音"]).scan("İİ噪音").scheme == {"噪音": [4]}


def test_anonymised_places_by_numpy_are_the_regex_matches() -> None:
    """`_anon_spans` (numpy over code points) finds what `_ANON_PLACE.finditer` finds, on random strings of capitals,
    Latin letters, digits (ASCII and full-width), 省市区县 and other characters; `_first_places`'s two sorts order
    hits as the (start, longest first) key does, ties in their order."""
    import random

    from analysis.gazetteer import _ANON_PLACE, _END, _START, _anon_spans

    rnd = random.Random(5)
    for _ in range(5000):
        text = "".join(rnd.choice("AZBQaz09３市省区县镇\n的 Ａ-_") for _ in range(rnd.randint(0, 14)))
        found = list(_ANON_PLACE.finditer(text))
        assert _anon_spans(text) == ([m.start() for m in found], [m.end() for m in found])
        hits = [(s, s + rnd.randint(1, 3), rnd.choice("甲乙丙")) for s in (rnd.randint(0, 5) for _ in range(4))]
        assert sorted(sorted(hits, key=_END, reverse=True), key=_START) == sorted(hits, key=lambda h: (h[0], h[0] - h[1]))


def test_names_and_orgs_of_a_batch_are_those_of_each_item() -> None:
    """`names_many` (numpy over the four characters before each head word) finds what `names_at` finds, and
    `orgs_many` (one loop over a batch's flagged tokens) what `orgs_at` finds item by item, on random texts and
    words: head words close together, at a text's start, after cut and non-Chinese characters, beyond the BMP, more
    than the limit."""
    import random

    from analysis.gazetteer import HEAD_WORDS, names_at, names_many, org_flag, orgs_at, orgs_many

    rnd = random.Random(7)
    chars = ["小", "区", "学", "院", "魅", "力", "之", "城", "的", "路", "万", "科", "物", "业", "a", "1", " ", "😀", "\n"]
    texts, heads = [], []
    for _ in range(3000):
        text = "".join(rnd.choice(chars) for _ in range(rnd.randint(0, 30)))
        found = sorted((m, word) for word in HEAD_WORDS for m in range(len(text)) if text.startswith(word, m))
        texts.append(text)
        heads.append(found)
    assert names_many(texts, heads) == [names_at(t, h) if h else [] for t, h in zip(texts, heads, strict=True)]
    assert names_many(texts, heads, limit=1) == [names_at(t, h, 1) if h else [] for t, h in zip(texts, heads, strict=True)]
    words = ["小区", "学院", "万科", "魅力", "长沙", "A市", "雨花区", "公安局", "医院", "ab", "的", "经济", "物业"]
    token_lists = [[rnd.choice(words) for _ in range(rnd.randint(0, 12))] for _ in range(3000)]
    places = [rnd.sample(["长沙", "雨花区", "A市"], rnd.randint(0, 2)) for _ in token_lists]
    tags = {"公安局": "nt"}
    flagged = [[i for i, t in enumerate(tokens) if org_flag(t, tags)] for tokens in token_lists]
    owners = [o for o, positions in enumerate(flagged) for _ in positions]
    positions = [i for found in flagged for i in found]
    for limit in (10, 2):
        assert orgs_many(token_lists, owners, positions, places, limit) == [
            orgs_at(tokens, found, 0, set(p), tags, limit) for tokens, found, p in zip(token_lists, flagged, places, strict=True)]


def test_pair_counting_equals_numpy_unique() -> None:
    import numpy as np

    from analysis.keywords import _count_pairs

    rng = np.random.default_rng(7)
    for size, bound in ((1, 5), (2, 3), (1000, 50), (40_000, 500 * 60_000), (300, 2**55)):
        keys = rng.integers(0, bound, size=size, dtype=np.int64)
        got, expected = _count_pairs(keys, bound), np.unique(keys, return_index=True, return_counts=True)
        assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))


def test_batch_keywords_equal_the_item_by_item_extractor() -> None:
    """The batch ranking (terms and the keyword words cut from the same list) agrees with KeywordExtractor.extract."""
    from analysis.keywords import batch_top_terms_flat

    texts = ["A市经济学院强制学生实习，学院与企业合作收取中介费，学生不去就不给毕业证，请教育厅查处",
             "小区旁工地夜间施工噪音扰民，噪音扰民，多次拨打12345没有回复", "", "好", "WiFi信号太差 wifi 信号 WIFI"]
    state = AnalysisState(parse_config({}).analysis)
    token_lists = [segment(t) for t in texts]
    top, words = batch_top_terms_flat(state.lexicon.encode(token_lists), state.lexicon, 14, 8)
    terms = [top.terms(i) for i in range(len(texts))]
    extractor = KeywordExtractor(top_k=8)
    for toks, item_terms, item_words in zip(token_lists, terms, words, strict=True):
        assert item_words == [w for w, _ in item_terms[:8]] == extractor.extract(toks)
    assert words[0] and words[2] == [] and "wifi" in words[4]


def test_keyword_ties_go_to_the_first_mentioned_whatever_the_lexicon_ids() -> None:
    """Words of equal score rank by first mention in every item of a large batch, and the ranking is the same from a
    lexicon that met the words in the other order (an import's pool workers each grow their own)."""
    from analysis.keywords import batch_top_terms_flat

    batch = [["甲乙丙丁词", "戊己庚辛词"]] * 600  # two unknown words: the same default idf, one mention each
    for earlier in (["甲乙丙丁词", "戊己庚辛词"], ["戊己庚辛词", "甲乙丙丁词"]):  # ids in either order
        state = AnalysisState(parse_config({}).analysis)
        state.lexicon.encode([earlier])
        _top, words = batch_top_terms_flat(state.lexicon.encode(batch), state.lexicon, 14, 8)
        assert all(w == ["甲乙丙丁词", "戊己庚辛词"] for w in words), earlier


def test_lexicon_encode_equals_word_by_word_ids() -> None:
    """The one-pass batch lookup (unknown words read as -1, then added) gives the ids `id_of` gives word by word,
    for batches of no token, one token and many with new words among known ones, and leaves no -1 in the index."""
    state = AnalysisState(parse_config({}).analysis)
    lexicon = state.lexicon
    for token_lists in ([], [[]], [["新词甲"]], [["小区", "新词乙", "噪音"], [], ["新词乙", "Wifi", "wifi", "新词丙"]]):
        encoded = lexicon.encode(token_lists)
        assert encoded.ids.tolist() == [lexicon.id_of(t) for toks in token_lists for t in toks]
        assert encoded.lengths.tolist() == [len(toks) for toks in token_lists]
        assert min(lexicon.index.values()) >= 0  # the look-up's -1 placeholders for new words are gone
        assert lexicon._packed.keys() == lexicon.index.keys()
        assert all(int.from_bytes(lexicon._packed[w], "little", signed=True) == i for w, i in lexicon.index.items())
    assert "从未见过的词" not in lexicon.index and lexicon.index.get("从未见过的词", -1) == -1


def test_org_tags_are_the_nt_words_of_jiebas_dictionary() -> None:
    """The tag table is read by finding "nt" in the file, not by splitting every line: the same words either way."""
    import importlib.util

    from analysis.gazetteer import _jieba_tags

    expected: dict[str, str] = {}
    path = Path(importlib.util.find_spec("jieba").submodule_search_locations[0]) / "dict.txt"
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "nt" and len(parts[0]) >= 2:
                expected[parts[0]] = "nt"
    assert list(_jieba_tags().items()) == list(expected.items())
