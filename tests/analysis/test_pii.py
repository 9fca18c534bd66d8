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
    assert result.counts == {"mobile": 2, "id_card": 1, "bank_card": 1, "email": 1}
    for secret in ("13812345678", VALID_ID, VALID_CARD, "zhangsan.hz", "139-1234-5678"):
        assert secret not in result.text
    assert "138****5678" in result.text and "z***@163.com" in result.text
    assert result.text.startswith("我叫张三，电话")


def test_leaves_non_personal_numbers() -> None:
    text = "工单号20190912123456，金额1234567.89元，2019年9月12日，订单6222021234567890123"
    assert mask_text(text).text == text  # the 19-digit order number fails Luhn
    assert mask_text("").text == ""
    assert mask_text("😀😀😀").text == "😀😀😀"


def _item(**kw) -> Item:
    now = datetime(2026, 1, 10, tzinfo=SHANGHAI)
    return Item(source="s", channel="mailbox", source_id="1", published_at=now, fetched_at=now, **kw)


def test_stage_masks_title_content_reply_and_keeps_raw_only_when_allowed() -> None:
    item = _item(title="联系13812345678", content=f"身份证{VALID_ID}", reply=Reply(text="已致电13912345678"))
    PiiMaskStage(keep_raw=False).run(Batch(items=[item]))
    assert "13812345678" not in item.title and VALID_ID not in item.content and "13912345678" not in item.reply.text
    assert item.extra["pii_masked"] == {"mobile": 2, "id_card": 1}
    assert "raw" not in item.extra
    kept = _item(title="联系13812345678")
    PiiMaskStage(keep_raw=True).run(Batch(items=[kept]))
    assert kept.extra["raw"] == {"title": "联系13812345678"}


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
                dict(title="答复", content="见回复", reply=Reply(text="已致电13912345678"))]
    fields = [clean[0], personal[0], clean[1], clean[2], personal[1], clean[3], clean[0], clean[1], personal[2],
              clean[2], clean[3], personal[3]]
    batch = [_item(**copy.deepcopy(f)) for f in fields]
    alone = [_item(**copy.deepcopy(f)) for f in fields]
    PiiMaskStage().run(Batch(items=batch))
    for item in alone:
        mask_item(item)
    assert [i.model_dump() for i in batch] == [i.model_dump() for i in alone]
    assert [bool(i.extra) for i in batch] == [f in personal for f in fields]
    assert batch[1].title.endswith("138****5678") and batch[8].content == "186****5678" and batch[2].content == "没有号码"
