"""PII masking: real-looking Chinese texts, checksums decide, raw kept only when configured."""

from __future__ import annotations

from datetime import datetime

from analysis.pii import PiiMaskStage, id_card_valid, luhn_valid, mask_text
from core.models import SHANGHAI, Item, Reply
from flow.stages import Batch

VALID_ID = "11010519491231002X"  # the GB 11643 example number
VALID_CARD = "6222021234567890128"  # 19 digits, Luhn-valid


def test_checksums() -> None:
    assert id_card_valid(VALID_ID)
    assert not id_card_valid("110105194912310021")
    assert luhn_valid(VALID_CARD)
    assert not luhn_valid("6222021234567890123")


def test_masks_every_kind_in_a_letter() -> None:
    text = (f"我叫张三，电话13812345678，身份证号{VALID_ID}，工资卡{VALID_CARD}被冻结，"
            "请回复到 zhangsan.hz@163.com 或 +86 139-1234-5678。")
    result = mask_text(text)
    assert result.counts == {"mobile": 2, "id_card": 1, "bank_card": 1, "email": 1, "name": 1}
    for secret in ("13812345678", VALID_ID, VALID_CARD, "zhangsan.hz", "139-1234-5678", "张三"):
        assert secret not in result.text
    assert "138****5678" in result.text and "z***@163.com" in result.text
    assert result.text.startswith("我叫张*，电话")


def test_leaves_non_personal_numbers() -> None:
    text = "工单号20190912123456，金额1234567.89元，2019年9月12日，订单6222021234567890123"
    assert mask_text(text).text == text  # the 19-digit order number fails Luhn
    assert mask_text("").text == ""
    assert mask_text("😀😀😀").text == "😀😀😀"


def _item(**kw) -> Item:
    now = datetime(2026, 1, 10, tzinfo=SHANGHAI)
    return Item(source="s", channel="mailbox", source_id="1", published_at=now, fetched_at=now, **kw)


def test_stage_masks_title_content_reply_and_keeps_raw_only_when_allowed() -> None:
    from storage.held import held

    item = _item(title="联系13812345678", content=f"身份证{VALID_ID}", reply=Reply(text="已致电13912345678"))
    PiiMaskStage(keep_raw=False).run(Batch(items=[item]))
    assert "13812345678" not in item.title and VALID_ID not in item.content and "13912345678" not in item.reply.text
    assert item.extra["pii_masked"] == {"mobile": 2, "id_card": 1}
    assert "raw" not in item.extra and held(item) is None
    kept = _item(title="联系13812345678")
    PiiMaskStage(keep_raw=True).run(Batch(items=[kept]))
    # The original travels beside the item to the store, never inside it (it would be served and hashed).
    assert held(kept) == {"title": "联系13812345678"}
    assert "raw" not in kept.extra and "13812345678" not in kept.model_dump_json()


def test_huge_text_is_masked_without_trouble() -> None:
    text = ("市民反映噪音扰民问题。" * 10_000) + "电话13812345678"
    assert mask_text(text).text.endswith("138****5678")


def test_recrawl_with_a_phone_number_is_unchanged(tmp_path) -> None:
    """The flow masks before the exact-duplicate check (flow.ingest.STAGES), so the same letter crawled again is
    'unchanged', not 'updated' because the raw number differs from the stored masked one."""
    from analysis.stages import pre_stages
    from core.config import parse_config
    from core.models import RawRecord
    from flow.ingest import Ingestor
    from nlp.tokenize import segment
    from storage.sqlite import SqliteStore

    config = parse_config({"sources": {"mailbox_a": {"channel": "mailbox"}}})
    store = SqliteStore(tmp_path / "p.db", segment=segment)
    ingest = Ingestor(config, store, pre_stages(config))
    names = [s.name for s in ingest.chain.stages]
    assert names.index("pii_mask") < names.index("dedup")

    def record() -> RawRecord:
        return RawRecord(source="mailbox_a", payload={"source_id": "42", "published_at": "2026-01-05 10:00",
                                                       "content": "小区停水三天，请联系我13812345678，身份证" + VALID_ID})

    first = ingest.ingest([record()])
    assert first.stored == 1
    stored = store.get(first.item_ids[0])
    assert "13812345678" not in stored.content and "138****5678" in stored.content
    again = ingest.ingest([record()])
    assert (again.unchanged, again.updated, again.stored) == (1, 0, 0)
    store.close()


def test_quick_check_finds_exactly_the_texts_with_candidates():
    from analysis.pii import _QUICK

    hits = ["电话1234567", "号码 138 1234", "号码1-2", "写信到a@b.cn", "@"]
    misses = ["2019年9月12日", "编号123456", "1 a 2", "", "无数字", "12--3"]
    assert all(_QUICK.search(t) for t in hits)
    assert not any(_QUICK.search(t) for t in misses)


def test_stage_over_a_batch_masks_exactly_what_item_by_item_masking_does() -> None:
    """The stage scans the batch's texts joined; numbers at the edges of a title or content (where two texts meet in
    the joined string) and clean neighbours must come out as `mask_item` alone makes them."""
    import copy

    from analysis.pii import mask_item

    clean = [dict(title="2019年9月12日", content="编号123456"), dict(title="清白", content="没有号码"),
             dict(title="末尾1", content="3812345678开头"), dict(title="", content="12--3")]
    personal = [dict(title="电话13812345678", content="13912345678是我的号码"),
                dict(title="", content="写信到 someone@example.com 谢谢"), dict(title="无数字", content="18612345678"),
                dict(title="答复", content="见回复", reply=Reply(text="已致电13912345678")),
                # words after a clean stretch (the words pass starts at the gate's first match), and after a number
                # whose mask is shorter than it (positions move: the words pass starts over)
                dict(title="小区噪音问题反映", content="前面是很长的一段情况说明，我叫张三，家住3栋2单元501室"),
                dict(title="", content="电话：+86 138 1234 5678，联系人：李四，家住5栋1单元302室")]
    fields = [clean[0], personal[0], clean[1], clean[2], personal[1], clean[3], clean[0], clean[1], personal[2],
              clean[2], clean[3], personal[3], personal[4], clean[1], personal[5]]
    batch = [_item(**copy.deepcopy(f)) for f in fields]
    alone = [_item(**copy.deepcopy(f)) for f in fields]
    PiiMaskStage().run(Batch(items=batch))
    for item in alone:
        mask_item(item)
    assert [i.model_dump() for i in batch] == [i.model_dump() for i in alone]
    assert [bool(i.extra) for i in batch] == [f in personal for f in fields]
    assert batch[1].title.endswith("138****5678") and batch[8].content == "186****5678" and batch[2].content == "没有号码"
    assert "张三" not in batch[12].content and "501" not in batch[12].content
    assert "李四" not in batch[14].content and "302" not in batch[14].content


# ---- issue 14: names, landlines, mistyped IDs, addresses, author, extra -------------------------------------------

NAMES = [  # (text, the name that must be gone, what stays)
    ("我叫张三，家住雨花区。", "张三", "我叫张*，"),
    ("联系人：李四，电话见附件", "李四", "联系人：李*"),
    ("联系人:谈俊(东成大厦业委会主任)", "谈俊", "联系人:谈*("),
    ("姓名：何艳银，于2011年5月入住", "何艳银", "姓名：何**"),
    ("投诉人周燕，身份证号码附后", "周燕", "投诉人周*，"),
    ("举报人：欧阳倩广投诉电话：见后", "欧阳倩广", "欧阳**投诉电话"),
    ("尊敬的领导：我是李明，男，今年52岁", "李明", "我是李*，男"),
    ("本人杨俊，身份证号码见附件", "杨俊", "本人杨*，"),
    ("我的名字叫李小明。", "李小明", "名字叫李**。"),
    ("王女士反映小区停水", "王女士", "*女士反映"),
    ("刘先生来电称噪音扰民", "刘先生", "*先生来电"),
    ("业主张某某多次投诉", "张某某", "业主*某某"),
    ("店主黄某拒不整改", "黄某", "店主*某"),
    ("开发商代表欧阳先生当众威胁", "欧阳先生", "代表**先生"),
    ("请与陈小姐联系", "陈小姐", "与*小姐"),
]


def test_names_are_masked_where_citizens_write_them() -> None:
    for text, name, kept in NAMES:
        result = mask_text(text)
        assert name not in result.text and kept in result.text, (text, result.text)
        assert result.counts.get("name") == 1, text


def test_officials_titles_and_ordinary_words_are_not_names() -> None:
    """Officials in their public role stay (a letter to 胡书记 addresses the office); a surname alone says nothing;
    words that merely start with a surname character, or follow a label as a verb, are no names."""
    for text in ["胡书记您好，王局长已批示", "请市长先生关注", "我姓王", "我叫了救护车", "某些单位推诿", "向某单位反映",
                 "每周某天停水", "投诉人的诉求没有回应", "举报人曾在现场", "我是王府井小区业主", "我是一名教师",
                 "我是农民，靠种粮为生", "本人申请，已提交", "退还本人费用，直到现在", "来信人：您好！", "举报人：姓名：",
                 "我是高三学生", "我是江城市民"]:
        assert mask_text(text).text == text, text


def test_landlines_are_masked_but_public_service_numbers_stay() -> None:
    cases = {
        "电话0731-88888888": "电话0731-****8888",
        "座机(010)12345678": "座机(010)****5678",
        "（0755）2345678": "（0755）***5678",
        "联系电话：88888888": "联系电话：****8888",
        "区号0731，电话88888888": "区号0731，电话****8888",
        "电话0731-88888888转123": "电话0731-****8888转123",
        "075522345678": "0755****5678",
    }
    for text, masked in cases.items():
        result = mask_text(text)
        assert result.text == masked and result.counts == {"landline": 1}, text
    for text in ["客服400-800-1234", "热线800-820-8820", "拨打4008123123", "请拨打12345热线", "95588", "2019-09-12",
                 "金额1234567元", "编号88888888", "订单号0000000000000000"]:
        assert mask_text(text).text == text, text


def test_mistyped_old_and_spaced_id_numbers_are_masked() -> None:
    wrong_check = VALID_ID[:17] + "1"  # one character mistyped: the checksum fails, the number is still an ID
    assert not id_card_valid(wrong_check)
    for text, secret in [(f"身份证{wrong_check}", wrong_check), ("老身份证430102900101123号", "430102900101123"),
                         ("身份证 1101 0519 4912 3100 2X", "1101 0519 4912 3100 2X"),
                         ("身份证号：110105-19491231-002X", "110105-19491231-002X")]:
        result = mask_text(text)
        assert secret not in result.text and result.counts == {"id_card": 1}, (text, result.text)
        assert "0519491231" not in result.text.replace(" ", "").replace("-", "")


def test_home_addresses_lose_numbers_and_keep_the_region() -> None:
    cases = {
        "家住江城市雨花区XX小区3栋2单元501室": "家住江城市雨花区XX小区*栋*单元***室",
        "住在芙蓉中路88号": "住在芙蓉中路**号",
        "人民东路398-2号门面": "人民东路*****号门面",
        "A3区西湖街道茶场村五组村民": "A3区西湖街道茶场村*组村民",
        "新安村8组": "新安村*组",
        "12号楼3单元1201": "**号楼*单元****",
        "万国城一期20栋106业主": "万国城一期**栋***业主",
        "邻居511房的厕所反水": "邻居***房的厕所反水",
        "4单元310室": "*单元***室",
    }
    for text, masked in cases.items():
        assert mask_text(text).text == masked, text
    for text in ["地铁2号线", "3月5号上午", "3栋楼下堆满垃圾", "6栋24层的房子", "3栋105m2户型", "第4栋36户和第5栋42户",
                 "我省2005房补文件", "知道2号那天", "本楼有18层", "卓越中寰3栋12月23日开盘", "1栋31+1层"]:
        assert mask_text(text).text == text, text


def test_author_and_every_string_of_extra_are_masked() -> None:
    item = _item(title="小区停水", content="三天没水", author="张三丰",
                 extra={"contact_phone": "13812345678", "id_card": VALID_ID, "name": "李四", "Mobile": 13912345678,
                        "address": "雨花区XX小区3栋2单元501室", "email": "lisi@example.com",
                        "handling_unit": "雨花区城管局", "status": "办理中",
                        "petition": {"note": "我叫王五，电话13712345678", "copies": ["0731-88888888", {"联系人": "赵六"}]}})
    PiiMaskStage().run(Batch(items=[item]))
    served = item.model_dump_json()
    for secret in ("张三丰", "13812345678", VALID_ID, "李四", "13912345678", "501", "lisi@", "王五", "13712345678",
                   "88888888", "赵六"):
        assert secret not in served, secret
    assert item.author == "张**"
    assert item.extra["contact_phone"] == item.extra["id_card"] == item.extra["name"] == item.extra["Mobile"] == "***"
    assert item.extra["handling_unit"] == "雨花区城管局" and item.extra["status"] == "办理中"  # not personal: kept
    assert item.extra["petition"]["note"] == "我叫王*，电话137****5678"
    assert item.extra["petition"]["copies"] == ["0731-****8888", {"联系人": "***"}]
    assert item.extra["pii_masked"]["field"] == 7 and item.extra["pii_masked"]["name"] == 2  # author + 王五
    again = item.model_copy(deep=True)
    PiiMaskStage().run(Batch(items=[again]))
    assert again.model_dump() == item.model_dump()  # masking masked data changes nothing (re-crawls stay unchanged)


def test_placeholder_authors_stay() -> None:
    from analysis.pii import mask_name

    assert [mask_name(a) for a in ("匿名", "网友", "张三", "欧阳倩", "江城发布")] == ["匿名", "网友", "张*", "欧阳*", "江***"]


def test_every_trigger_word_is_found_by_the_trigger_scans() -> None:
    """The scans are written by hand as character sets and look-behinds: each word must still be found by both."""
    from analysis.pii import _HONORIFICS, _INTROS, _LABELS, _QUICK, _TRIGGER

    for word in (*_LABELS, *_INTROS, *_HONORIFICS, "3栋", "2单元", "501室", "88号", "村五"):
        assert _TRIGGER.search(word) and _QUICK.search(word), word


def test_real_letters_keep_their_meaning(shared_data) -> None:
    """On real 问政 posts: few texts change at all, and the words that carry the complaint are untouched."""
    import pandas as pd

    frame = pd.read_csv(shared_data / "tipdm2020c_messages_labeled" / "messages.csv")
    texts = [" ".join(str(t).split()) for t in frame["body"].dropna()]
    changed = [t for t in texts if mask_text(t).counts]
    assert len(changed) < len(texts) * 0.15
    for t in changed:
        masked = mask_text(t).text
        if not any(c.isdigit() or c == "@" for c in t):  # only names can change: characters become '*', none move
            assert len(masked) == len(t) and all(a == b or b == "*" for a, b in zip(t, masked, strict=True))


def test_sensitive_keys_are_recognised_by_name_and_by_the_words_in_them() -> None:
    from analysis.pii import mask_value

    payload = {"contactPhone": "x", "home_addr": "y", "applicant_id_card": "z", "联系电话2": "w", "lxdh": "v",
               "callback": 13912345678, "count": 12, "department": "信访局", "user_name": "王五", "unit_name": "城管局"}
    masked = mask_value(payload)
    assert [masked[k] for k in ("contactPhone", "home_addr", "applicant_id_card", "联系电话2", "lxdh", "user_name")] == ["***"] * 6
    assert masked["callback"] == "139****5678"  # a number sent as a JSON number is masked all the same
    assert (masked["count"], masked["department"], masked["unit_name"]) == (12, "信访局", "城管局")


def test_quick_gate_matches_equal_a_full_regex_scan():
    """The gate tries `_QUICK` only where numpy says a match can begin; the matches must be finditer's, in order."""
    import random

    from analysis.pii import _ANCHOR_GROUPS, _QUICK, _WORD_ANCHORS, _quick_matches

    rng = random.Random(3)
    # every character that begins a match and every one a word branch or the village branch goes on with
    alphabet = ("0123456789 -栋幢号座室房单元@村一二三十" + _WORD_ANCHORS + "".join(n for _, n in _ANCHOR_GROUPS)
                + "叫是字诉映报信助事请件系人生士姐名主款电话身份证\n中a")
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(3_000)]
    texts += ["电话13812345678", "3栋2单元501室", "茶场村五组", "写信到a@b.cn", "1-2", "😀1234567", "某", "我叫", "投诉人", "张某"]
    for start in range(0, len(texts), 100):
        joined = "\n".join(texts[start:start + 100])
        found = [(m.start(), m.end()) for m in _quick_matches(joined)]
        assert found == [(m.start(), m.end()) for m in _QUICK.finditer(joined)]
