"""Domain model shared by every stage.

Glossary (English identifiers, Chinese for users): item 条目, channel 渠道, source 来源, reply 答复,
jurisdiction 属地, scheme 监测方案, event 事件, risk grade 风险等级 (I–IV), alert 预警, playbook 预案.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from operator import attrgetter, itemgetter
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import to_json

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Channel(StrEnum):
    """Kinds of places citizens speak."""

    hotline = "hotline"
    mailbox = "mailbox"
    board = "board"
    weibo = "weibo"
    wechat = "wechat"
    news = "news"


class Reply(BaseModel):
    """An official reply (答复) to a letter, message or work order."""

    model_config = ConfigDict(extra="forbid")

    text: str
    department: str | None = None
    replied_at: datetime | None = None


class Engagement(BaseModel):
    """Counts that measure reach; absent counts are zero."""

    model_config = ConfigDict(extra="forbid")

    likes: int = Field(0, ge=0)
    dislikes: int = Field(0, ge=0)
    reposts: int = Field(0, ge=0)
    comments: int = Field(0, ge=0)
    reads: int = Field(0, ge=0)

    @property
    def total(self) -> int:
        return self.likes + self.dislikes + self.reposts + self.comments


class RiskReason(BaseModel):
    """One piece of evidence behind a risk score: which feature, how much it added, and where in the text."""

    feature: str
    weight: float
    detail: str = ""
    evidence: str | None = None
    span: tuple[int, int] | None = None


class Enrichment(BaseModel):
    """What understanding adds to an item; every field is optional so stages can land one at a time."""

    topic: str | None = None
    topic_score: float | None = None
    emotion: str | None = None
    emotion_score: float | None = None  # calibrated confidence of `emotion`; risk counts an emotion only above a threshold
    polarity: str | None = None
    polarity_score: float | None = None
    risk_score: float | None = None
    risk_level: str | None = None
    risk_reasons: list[RiskReason] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    entities: dict[str, list[str]] = Field(default_factory=dict)
    schemes: list[str] = Field(default_factory=list)
    event_id: str | None = None
    near_duplicate_of: int | None = None


class Item(BaseModel):
    """One collected post, letter, message or work order, normalised."""

    model_config = ConfigDict(extra="forbid")

    id: int | None = None
    source: str = Field(min_length=1, max_length=100)
    channel: Channel
    source_id: str = Field(min_length=1, max_length=300)
    url: str | None = None
    title: str = ""
    content: str = ""
    author: str | None = None
    published_at: datetime
    fetched_at: datetime
    region: str | None = None
    engagement: Engagement = Field(default_factory=Engagement)
    reply: Reply | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    enrichment: Enrichment = Field(default_factory=Enrichment)

    @field_validator("published_at", "fetched_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=SHANGHAI)
        return value

    @property
    def text(self) -> str:
        """Title and content as one string, for understanding and search. Read off the model's field dict: each
        attribute read on a model goes through pydantic's Python-level __getattr__ hook, and every enrichment stage
        reads this."""
        return text_of(self.__dict__)

    @property
    def backfill(self) -> bool:
        """Imported history (`yuqing import` marks its records `backfill`): stored and analysed, but not news, so it
        raises no alert (alerts.rules), starts no response plan (playbooks) and is no part of a spike baseline."""
        return self.__dict__["extra"].get("backfill") is True

    @property
    def signature(self) -> str:
        """Hash of what a collector saw; equal signatures mean a re-crawl brought nothing new.

        Once intake has frozen it (`freeze_signature`), enrichment that fills fields (a region from the text) no
        longer changes it, so the stored signature compares like with like against the next identical input."""
        entry = _FROZEN_SIGNATURES.get(id(self))
        if entry is not None and entry[0]() is self:
            return entry[1]
        return self.intake_signature()

    def intake_signature(self) -> str:
        """The signature computed from the fields as they are now."""
        # What `model_dump_json(include={those fields})` writes, byte for byte (the fields in the model's order, each
        # by the same pydantic-core writer), without the include set walked per call or the str round trip. The channel
        # and the engagement and reply models go in as their plain values (field dicts in field order): pydantic-core
        # writes those directly, where an enum or a model makes it probe the type (failed attribute look-ups).
        f = self.__dict__
        channel, engagement, reply = f["channel"], f["engagement"], f["reply"]
        seen = to_json({"channel": channel._value_ if type(channel) is Channel else channel, "url": f["url"],
                        "title": f["title"], "content": f["content"], "author": f["author"],
                        "published_at": f["published_at"], "region": f["region"],
                        "engagement": engagement.__dict__ if type(engagement) is Engagement else engagement,
                        "reply": reply.__dict__ if type(reply) is Reply else reply, "extra": f["extra"]},
                       inf_nan_mode="null")
        return hashlib.sha1(seen).hexdigest()

    @property
    def content_hash(self) -> str:
        """Exact-duplicate key: the same title and content (whitespace collapsed) from the same source under the same
        id of the site's own (items without one: from the same source). The same words from two sources or two ids
        are two items, linked as near-duplicates: two citizens may well both write "写错了", each with a reply."""
        fields = self.__dict__
        key = _HASHED_FIELDS(fields)  # (source, source_id, title, content): no pydantic __getattr__ hook per field
        digest = _CONTENT_HASHES.get(key)
        if digest is None:
            source, source_id = key[0], key[1]
            own_id = "" if source_id.startswith("h:") else source_id
            basis = "\x1f".join((source, own_id, " ".join(text_of(fields).split())))
            digest = hashlib.sha1(basis.encode("utf-8")).hexdigest()
            if len(_CONTENT_HASHES) >= _CONTENT_HASHES_MAX:
                _CONTENT_HASHES.clear()
            _CONTENT_HASHES[key] = digest
        return digest


# Content hashes of recent (source, source_id, title, content): ingest asks for an item's hash four times (the
# store's look-up, exact dedup, the row and its look-up again); its strings keep their own hashes, so a repeat costs a
# dict look-up instead of a whitespace split and a SHA-1 over the text. A pure function of the key: never stale.
_CONTENT_HASHES: dict[tuple[str, str, str, str], str] = {}
_HASHED_FIELDS = itemgetter("source", "source_id", "title", "content")  # its key, read off an item's field dict
_CONTENT_HASHES_MAX = 4096


def seed_content_hashes(known: Iterable[tuple[Item, str]]) -> None:
    """Remember the `content_hash` of each item as computed already (by an import's pool worker, from the same
    fields: `flow.pool.intake_hashes`), so that the writer's first ask is a look-up. The cache is keyed by the fields
    the hash covers, so a value is only found while they are unchanged."""
    known = list(known)
    if len(_CONTENT_HASHES) + len(known) > _CONTENT_HASHES_MAX:  # room for all of them: none pushed out before use
        _CONTENT_HASHES.clear()
    for item, digest in known:
        _CONTENT_HASHES[_HASHED_FIELDS(item.__dict__)] = digest


# Signatures frozen at intake, beside the items rather than in them (a private attribute would cost every Item built).
_FROZEN_SIGNATURES: dict[int, tuple[weakref.ref, str]] = {}


def freeze_signature(item: Item, signature: str | None = None) -> str:
    """Fix `item.signature` to what it is now (at exact dedup, before enrichment) for as long as the object lives.
    `signature`: its `intake_signature()` as computed already from the fields as they are now (an import's pool
    worker computes it at the same point of the chain, `flow.pool.intake_hashes`), taken instead of computing it."""
    key, value = id(item), signature if signature is not None else item.intake_signature()
    _FROZEN_SIGNATURES[key] = (weakref.ref(item, lambda _ref, key=key: _FROZEN_SIGNATURES.pop(key, None)), value)
    return value


# BaseModel's slots, set through their descriptors as pydantic's __setstate__ sets them (`built_as_validated`,
# `flow.wire`): pydantic's own __setattr__ is Python, and object.__setattr__ finds the same descriptor by a look-up
# per call (~15 % more per slot)
MODEL_SLOT_SETTERS = {name: BaseModel.__dict__[name].__set__
                      for name in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")}
_SET_DICT, _SET_FIELDS_SET, _SET_EXTRA, _SET_PRIVATE = MODEL_SLOT_SETTERS.values()


def built_as_validated(cls: type[BaseModel], values: dict[str, Any], given: tuple[str, ...]) -> Any:
    """A `cls` (no extra fields, no private attributes) of `values`, every field in field order, as validation makes
    one of values it keeps as they are, `given` the fields given in field order (its fields set, filled in the order
    validation fills it, so that it iterates, and pickles, alike); without validating. Only for values the caller
    knows validation would keep unchanged (validation cost an import's worker more than the checks);
    `model_construct` would do it slower than validating."""
    model = object.__new__(cls)
    _SET_DICT(model, values)
    _SET_FIELDS_SET(model, set(given))
    _SET_EXTRA(model, None)
    _SET_PRIVATE(model, None)
    return model


class RawRecord(BaseModel):
    """An input as it arrived (a crawled item, a file row, a pushed work order) before normalising."""

    source: str
    payload: dict[str, Any]
    origin: str = ""


class QuarantineRecord(BaseModel):
    """A rejected input, kept with the reason so nothing is lost silently."""

    id: int | None = None
    source: str
    reason: str
    stage: str
    payload: dict[str, Any] | str
    origin: str = ""
    created_at: datetime
    times_seen: int = 1


class SourceStatus(BaseModel):
    """How one collection source is doing, as collection reports it to other packages (alert rules read it):
    `status` ok | degraded | failing, with the reason and when it last fetched successfully."""

    source: str
    status: str
    reason: str = ""
    last_success: datetime | None = None


class IngestReport(BaseModel):
    """What one ingest batch did: counts per outcome."""

    received: int = 0
    stored: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    quarantined: int = 0
    item_ids: list[int] = Field(default_factory=list)

    def merge(self, other: IngestReport) -> None:
        self.received += other.received
        self.stored += other.stored
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        self.item_ids.extend(other.item_ids)


def text_of(fields: dict[str, Any]) -> str:
    """`Item.text` from the model's field dict."""
    title = fields["title"]
    return f"{title}\n{fields['content']}" if title else fields["content"]


def item_texts(items: Iterable[Item]) -> list[str]:
    """`item.text` of each item, without a property call through pydantic's __getattr__ hook per item (the segment
    and keyword stages read a whole batch's texts)."""
    return list(map(text_of, map(_FIELDS, items)))


_FIELDS = attrgetter("__dict__")
_PUBLISHED_AT = itemgetter("published_at")


def published_timestamps(items: Iterable[Item]) -> list[float]:
    """`item.published_at.timestamp()` of each item, from C (no Python frame or pydantic hook per item): the event and
    risk stages and the store share one list per batch (`flow.stages.Batch.published_timestamps`)."""
    return list(map(datetime.timestamp, map(_PUBLISHED_AT, map(_FIELDS, items))))
