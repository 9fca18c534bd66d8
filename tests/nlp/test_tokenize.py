"""Segmentation: the government dictionary is used, and rjieba cuts real texts exactly as jieba (the reference)."""

from __future__ import annotations

import pandas as pd
import pytest

from nlp import tokenize


def test_gov_dict_words_stay_whole():
    words = tokenize.segment("市民反映住建局不作为，已拨打12345热线，要求复工复产、接诉即办。", backend="jieba")
    for word in ("住建局", "不作为", "12345热线", "复工复产", "接诉即办"):
        assert word in words


def test_punctuation_dropped_and_index_lowercased():
    assert tokenize.segment("") == []
    assert "，" not in tokenize.segment("你好，世界")
    from nlp.search_tokens import index_tokens

    assert index_tokens("WiFi信号差") == index_tokens("wifi信号差")


def test_stopwords_keep_negations():
    words = tokenize.content_words(tokenize.segment("我们的小区没有物业，不是很满意"))
    assert "的" not in words and "我们" not in words
    assert "没有" in words and "不是" in words


@pytest.mark.parametrize("text", ["", "😀😀😀", "學校老師很好", "<p>hello&amp;世界</p>", "啊" * 1000, "x" * 100_000])
def test_odd_text_does_not_crash(text):
    """Both backends cope and agree; every word is a non-empty piece of the text (nothing invented)."""
    words = {backend: tokenize.segment(text, backend=backend) for backend in ("jieba", "rjieba")}
    assert words["jieba"] == words["rjieba"]
    assert all(word and word in text for word in words["jieba"])
    assert bool(words["jieba"]) == any(ch.isalnum() for ch in text)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError):
        tokenize.segment("测试", backend="nope")


@pytest.mark.data
def test_rjieba_identical_to_jieba_on_real_texts(shared_data):
    """The fast backend may only be used because this holds on real posts, letters, replies and Weibo."""
    texts: list[str] = []
    replies = pd.read_csv(shared_data / "tipdm2020c_replies/replies.csv", keep_default_na=False).head(300)
    texts += (replies["title"] + "\n" + replies["body"] + "\n" + replies["reply"]).tolist()
    for rel, col in (("smp2020_ewect_virus_weibo/data.csv", "text"), ("weibo_covid19_emotion7/data.csv", "text"),
                     ("chnsenticorp_htl_all/data.csv", "review")):
        texts += pd.read_csv(shared_data / rel, keep_default_na=False)[col].astype(str).head(700).tolist()
    reference = tokenize.segment_many(texts, backend="jieba")
    fast = tokenize.segment_many(texts, backend="rjieba")
    diffs = [i for i, (a, b) in enumerate(zip(reference, fast, strict=True)) if a != b]
    assert not diffs, f"{len(diffs)} of {len(texts)} differ, first: {texts[diffs[0]][:80]!r}"
    assert sum(len(t) for t in reference) > 50_000


TITLES = ["关于小区噪音扰民的投诉", "A市12345热线：3.5万元补贴何时发放？", "学校門口交通擁堵 traffic", "请问", "噪音扰",
          "【紧急】化工厂排放废气!!!", "  前后有空格  ", "哈哈哈哈笑死"]


@pytest.mark.parametrize("backend", ["jieba", "rjieba"])
def test_title_words_read_off_the_text_equal_segmenting_the_title(backend):
    """The classify stage reads the title's words off the item's text; they must be what cutting the title gives."""
    content = "噪音扰民严重，住建局至今没有处理。"
    for title in TITLES:
        if tokenize.has_repeat_run(title):
            assert title == "哈哈哈哈笑死"  # such titles are segmented on their own
            continue
        text = f"{title}\n{content}"
        words = tokenize.segment(text, backend=backend)
        assert tokenize.leading_words(words, text, len(title)) == tokenize.segment(title, backend=backend), title


@pytest.mark.data
def test_title_words_on_real_texts(shared_data):
    """Cut real posts at 30 characters (mid-word included) and compare."""
    texts = pd.read_csv(shared_data / "weibo_covid19_emotion7/data.csv", keep_default_na=False)["text"].astype(str)
    pairs = [(t[:30], t[30:]) for t in texts.head(1500) if len(t) > 30 and not tokenize.has_repeat_run(t[:30])]
    titles = tokenize.segment_many([t for t, _ in pairs])
    whole = tokenize.segment_many([f"{t}\n{c}" for t, c in pairs])
    for (title, content), expected, words in zip(pairs, titles, whole, strict=True):
        assert tokenize.leading_words(words, f"{title}\n{content}", len(title)) == expected, title


def _tricky_texts(count: int, seed: int) -> list[str]:
    """Random texts over digits (ASCII, full-width, Arabic-Indic), split marks, letters, CJK and repeat runs."""
    import random

    rng = random.Random(seed)
    alphabet = "0123456789.-_+#&%/:@ab中文，１２٣啊A \n"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(count)]


def test_presplit_number_pattern_matches_the_plain_one():
    """`_PRESPLIT` starts a number only at the first digit of its run, without backtracking: the same splits as
    the pattern without those guards, on texts made of little but digits and marks."""
    import re

    plain = re.compile(r"([\d.\-_+#&%/:@](?:(?<=\d)\d*(?:\.\d+)+|(?<=[.\-_+#&%/:@])[.\-_+#&%/:@]*))")
    texts = _tricky_texts(20_000, 1) + ["13812345678.5", "1.2.3..4", "٣٣.٣", "ab12345678901234567890.1-2"]
    assert [tokenize._PRESPLIT.split(t) for t in texts] == [plain.split(t) for t in texts]


@pytest.mark.parametrize("backend", ["jieba", "rjieba"])
def test_batch_segmentation_equals_text_by_text(backend):
    """`segment_many` splits only between the batch scan's first and last mark of each text and remembers which
    punctuation tokens hold no word; `segment` searches the whole text: both must cut every text alike."""
    texts = _tricky_texts(2_000, 2) + ["电话0731-12345678，网址baidu.com", "3.5万元和1.3km", "啊啊啊啊1.5", "##话题##"]
    assert tokenize.segment_many(texts, backend=backend) == [tokenize.segment(t, backend=backend) for t in texts]
    # texts that take the exact word test (`_plain` is False): a symbol or an unassigned code point among the
    # ideographs, an ideograph past the basic plane (a digit there, cut alone, keeps the plain test)
    odd = ["中䷀文", "中\ufa6e文3.5", "𠀀𠀀好😀", "a\U0001d7cf.\U0001d7d0b", "好\r\n好"]
    assert [not p for p in tokenize._scan_batch(odd)[2]] == [True, True, True, False, False]
    assert tokenize.segment_many(odd, backend=backend) == [tokenize.segment(t, backend=backend) for t in odd]


@pytest.mark.parametrize("backend", ["jieba", "rjieba"])
def test_non_word_characters_outside_the_ideographs_are_cut_alone(backend):
    """What `_plain` relies on: every basic-plane character that is no letter or digit, no `_PRESPLIT_CHAR` and
    not among the ideograph blocks (3400-9FFF, F900-FAFF) comes out as a token of its own, between ideographs,
    letters or digits, so no token mixes it with word characters (jieba, slower: every 5th such character)."""
    cut = tokenize.cutter(backend)
    step = 5 if backend == "jieba" else 1
    chars = [chr(c) for c in range(0x10000) if not chr(c).isalnum() and chr(c) not in ".-_+#&%/:@"
             and not (0x3400 <= c < 0xA000 or 0xF900 <= c < 0xFB00 or 0xD800 <= c < 0xE000)][::step]
    for pattern in ("中{}文", "a{}1"):
        glued = [ch for ch in chars if ch not in cut(pattern.format(ch))]
        assert not glued, [hex(ord(ch)) for ch in glued[:10]]


def test_repeat_runs_of_a_batch_equal_the_regex_text_by_text():
    """`repeat_runs` (one code-point array for many titles) flags exactly the texts `has_repeat_run` flags, runs at
    the edges of two joined texts included, and past the basic plane (where it falls back to the regex)."""
    texts = _tricky_texts(5_000, 3) + ["啊啊", "啊", "啊啊啊", "", "好好", "好好好好", "aaa", "😀😀😀", "𠀀𠀀𠀀"]
    assert tokenize.repeat_runs(texts) == [tokenize.has_repeat_run(t) for t in texts]
    assert tokenize.repeat_runs(texts[:-2]) == [tokenize.has_repeat_run(t) for t in texts[:-2]]
    assert tokenize.repeat_runs(["啊啊", "啊", "x"]) == [False, False, False]
