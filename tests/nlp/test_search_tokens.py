"""The full-text index built from the enrichment's words is the index built by segmenting title and content again.

The store reuses the words the segment stage cut from an item's text (title, newline, content) instead of cutting the
title and the content once more (`nlp.search_tokens.index_tokens_from_words`); search must not notice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from core.models import SHANGHAI, Channel, Item
from nlp import tokenize
from nlp.search_tokens import index_text_from_words, index_tokens, index_tokens_from_words
from storage.base import ItemQuery
from storage.sqlite import SqliteStore

TITLES = ["关于小区噪音扰民的投诉", "A市12345热线：3.5万元补贴何时发放？", "学校門口交通擁堵 traffic WiFi", "请问", "",
          "【紧急】化工厂排放废气!!!", "  前后有空格  ", "哈哈哈哈笑死", "油烟扰民，烧烤店", "baidu.com 0731-0000"]
CONTENTS = ["噪音扰民严重，住建局至今没有处理。", "", "啊啊啊啊气死了，油烟扰民烧烤店天天开到凌晨", "1.3km外的工地 3.5元",
            "电话：0731-88888888，地址：雨花区xx路"]


def _pairs() -> list[tuple[str, str]]:
    return [(t, c) for t in TITLES for c in CONTENTS]


def test_index_tokens_from_words_equal_segmenting_again():
    for title, content in _pairs():
        text = f"{title}\n{content}" if title else content
        words = tokenize.segment(text)
        got = index_tokens_from_words(title, content, words)
        assert got == (index_tokens(title), index_tokens(content)), (title, content)
        assert index_text_from_words(title, content, words) == (" ".join(got[0]), " ".join(got[1]))


@pytest.mark.data
def test_index_tokens_from_words_on_real_texts(shared_data: Path):
    """Real letters (titles and bodies as stored) and Weibo posts cut at 30 characters, mid-word included."""
    letters = pd.read_csv(shared_data / "tipdm2020c_hot_issue_messages/messages.csv", keep_default_na=False).head(1500)
    pairs = list(zip(letters["title"].astype(str), letters["body"].astype(str), strict=True))
    posts = pd.read_csv(shared_data / "weibo_covid19_emotion7/data.csv", keep_default_na=False)["text"].astype(str)
    pairs += [(t[:30], t[30:]) for t in posts.head(1000) if len(t) > 30]
    texts = [f"{t}\n{c}" if t else c for t, c in pairs]
    for (title, content), words in zip(pairs, tokenize.segment_many(texts), strict=True):
        tokens = index_tokens_from_words(title, content, words)
        assert tokens == (index_tokens(title), index_tokens(content)), title
        assert index_text_from_words(title, content, words) == (" ".join(tokens[0]), " ".join(tokens[1])), title


def _items() -> list[Item]:
    start = datetime(2026, 11, 1, 9, tzinfo=SHANGHAI)
    return [Item(source="board", channel=Channel.board, source_id=str(i), title=title, content=content or "。",
                 published_at=start + timedelta(minutes=i), fetched_at=start + timedelta(minutes=i))
            for i, (title, content) in enumerate(_pairs())]


def test_search_answers_the_same_from_reused_words(tmp_path: Path):
    """Two stores, one indexing the words handed in, one segmenting again: every query finds the same items."""
    items_a, items_b = _items(), _items()
    again = SqliteStore(tmp_path / "again.db", segment=tokenize.segment, index_segment=index_tokens)
    reused = SqliteStore(tmp_path / "reused.db", segment=tokenize.segment, index_segment=index_tokens,
                         index_from_words=index_tokens_from_words)
    again.upsert(items_a)
    reused.upsert(items_b, [tokenize.segment(item.text) for item in items_b])
    queries = ["噪音", "扰民", "烧烤", "油烟 OR 废气", "住建局 NOT 噪音", "traffic", "wifi", "3.5", "补贴", "哈哈",
               "笑死", "啊啊", "0731", "baidu", "雨花区", "凌晨", "紧急", "化工厂", "1.3km", "请问"]
    found = 0
    for q in queries:
        a = [i.source_id for i in again.search(ItemQuery(q=q, limit=200)).data]
        b = [i.source_id for i in reused.search(ItemQuery(q=q, limit=200)).data]
        assert a == b, q
        found += len(a)
    assert found > 100  # the queries do match: equal empty answers would prove nothing
    again.close()
    reused.close()
