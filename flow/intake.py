"""The spine's own stages: normalise raw input into items, drop exact duplicates, store."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from core.config import Config
from core.models import Channel, Engagement, Enrichment, Item, QuarantineRecord, Reply, built_as_validated, freeze_signature
from flow.stages import Batch
from nlp.normalise import TimeParseError, clean_text, parse_time
from storage.base import UpsertOutcome

logger = logging.getLogger(__name__)

# Clocks on crawled sites drift; a day of slack keeps honest items while rejecting absurd dates.
_FUTURE_SLACK = timedelta(days=1)

_EXACT_FLOAT_INTS = 2**53  # integers below this survive the float() in `_count` unchanged

# Flat payload keys accepted besides the Item's own field names, so exports and spiders stay simple.
_ENGAGEMENT_KEYS = ("likes", "dislikes", "reposts", "comments", "reads")
_KNOWN = {"source_id", "url", "title", "content", "author", "published_at", "fetched_at", "region", "channel",
          "reply", "reply_text", "reply_department", "replied_at", "engagement", "extra", *_ENGAGEMENT_KEYS}


class RejectedInput(ValueError):
    """A raw record that cannot become an item; the message is the quarantine reason."""


def not_storable(payload: Any) -> str | None:
    """Why a record cannot even be kept in the inbox, or None. JSON may carry lone surrogates (`"\\ud800"`),
    which are no text: UTF-8 cannot encode them, so the record is quarantined with this reason."""
    return None if _plainly_storable(payload) else encoding_problem(payload)


def encoding_problem(payload: Any) -> str | None:
    """`not_storable`'s answer the slow, sure way: encode the whole record as it will be stored and see."""
    try:
        json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"text is not valid Unicode: lone surrogate {exc.object[exc.start]!r} at character {exc.start}"
    except (TypeError, ValueError) as exc:
        return f"record cannot be stored: {exc}"
    return None


_PLAIN_SCALARS = frozenset({float, bool, type(None)})


def _plainly_storable(value: Any, depth: int = 0) -> bool:
    """True when `value` is JSON's own types only (exact types: str keys, no subclass), nested a few levels at most,
    with every string UTF-8 encodable: then `not_storable`'s JSON encoding cannot fail, and it is spared (it encoded
    every imported record whole, 11 µs of the normalise stage's 46 µs an item). False only means "encode to know".
    A dict's keys, strings and plain scalars are checked in its own loop, not by a call each (a record is mostly
    flat: a generator step and a call per value cost more than the checks)."""
    kind = type(value)
    if kind is str:
        return value.isascii() or _encodable(value)
    if kind in _PLAIN_SCALARS:
        return True
    if kind is int:
        return value.bit_length() <= 64  # far below the digits limit of int → str, past which encoding fails
    if depth >= 4:
        return False
    if kind is dict:
        for key, member in value.items():
            if type(key) is not str or not (key.isascii() or _encodable(key)):
                return False
            member_kind = type(member)
            if member_kind is str:
                if not (member.isascii() or _encodable(member)):
                    return False
            elif member_kind is int:
                if member.bit_length() > 64:
                    return False
            elif member_kind not in _PLAIN_SCALARS and not _plainly_storable(member, depth + 1):
                return False
        return True
    if kind is list:
        return all(map(_plainly_storable, value, repeat(depth + 1)))
    return False


def _encodable(text: str) -> bool:
    """Whether UTF-8 can encode `text` (it holds no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escape_surrogates(value: Any) -> Any:
    """The record with every lone surrogate written out as text (`\\ud800`), so it can be stored and shown."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {escape_surrogates(str(k)): escape_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_surrogates(v) for v in value]
    return value


def _count(value: Any, name: str) -> int:
    if type(value) is int and 0 <= value < _EXACT_FLOAT_INTS:  # what the general path returns for it, without it
        return value
    if value is None or value == "":
        return 0
    try:
        number = int(float(str(value).replace(",", "").strip()))
    except ValueError:
        raise RejectedInput(f"{name} is not a number: {str(value)[:50]!r}") from None
    if number < 0:
        raise RejectedInput(f"{name} is negative: {number}")
    return number


# An Item as `to_item` builds it, without pydantic's validation when `_valid_as_given` shows it would pass every value
# through unchanged (the same objects: an exact str, an aware datetime, a model of the field's own type): validating
# the item and its engagement was a fifth of the normalise stage in an import's worker. The fields set are those
# validation would record (the ones given, not `id` and `enrichment`), and `Enrichment()` is the default factory's.
_ITEM_GIVEN = tuple(name for name in Item.model_fields if name not in ("id", "enrichment"))
_ENGAGEMENT_GIVEN = _ENGAGEMENT_KEYS  # `_count` gives each an exact int ≥ 0, which validation passes as is
_LIMITS = {name: (field.metadata[0].min_length, field.metadata[1].max_length)
           for name, field in Item.model_fields.items() if name in ("source", "source_id")}


def _valid_as_given(values: dict[str, Any]) -> bool:
    """Whether `Item(**values)` would keep every value as it is (the checks of the fields' types and limits that
    `to_item`'s own values can miss); False only means "let pydantic validate"."""
    text = str
    low, high = _LIMITS["source"]
    id_low, id_high = _LIMITS["source_id"]
    return (type(values["source"]) is text and low <= len(values["source"]) <= high
            and type(values["source_id"]) is text and id_low <= len(values["source_id"]) <= id_high
            and type(values["channel"]) is Channel and type(values["title"]) is text
            and type(values["content"]) is text and type(values["url"]) in _TEXT_OR_NONE
            and type(values["author"]) in _TEXT_OR_NONE and type(values["region"]) in _TEXT_OR_NONE
            and _aware(values["published_at"]) and _aware(values["fetched_at"])
            and type(values["engagement"]) is Engagement and type(values["reply"]) in _REPLY_OR_NONE
            and all(type(key) is text for key in values["extra"]))


_TEXT_OR_NONE = frozenset({str, type(None)})
_REPLY_OR_NONE = frozenset({Reply, type(None)})


def _aware(value: Any) -> bool:
    return type(value) is datetime and value.tzinfo is not None


class NormaliseStage:
    """Raw payload → validated Item: clean text, parse Chinese time formats, map flat keys, enforce limits."""

    name = "normalise"

    def __init__(self, config: Config, now: datetime | None = None) -> None:
        self.config = config
        self.tz = ZoneInfo(config.ingest.timezone)
        self.now = now

    def to_item(self, source: str, payload: dict[str, Any]) -> Item:
        if not isinstance(payload, dict):
            raise RejectedInput(f"payload must be an object, got {type(payload).__name__}")
        if problem := not_storable(payload):
            raise RejectedInput(problem)
        source_cfg = self.config.sources.get(source)
        channel_value = payload.get("channel") or (source_cfg.channel if source_cfg else None)
        if channel_value is None:
            raise RejectedInput(f"unknown source {source!r} and no channel given")
        try:
            channel = Channel(channel_value)
        except ValueError:
            raise RejectedInput(f"unknown channel {channel_value!r}") from None
        limits = self.config.ingest
        raw_title = payload.get("title")
        raw_content = payload.get("content")
        for name, raw in (("title", raw_title), ("content", raw_content)):
            if raw is not None and not isinstance(raw, str | int | float):
                raise RejectedInput(f"{name} must be text, got {type(raw).__name__}")
        if raw_content is not None and len(str(raw_content)) > limits.max_content_chars * 4:
            raise RejectedInput(f"content too large: {len(str(raw_content))} characters before cleaning")
        title = clean_text(None if raw_title is None else str(raw_title))
        content = clean_text(None if raw_content is None else str(raw_content))
        if len(content) > limits.max_content_chars:
            raise RejectedInput(f"content too large: {len(content)} characters, limit {limits.max_content_chars}")
        if len(title) > limits.max_title_chars:
            raise RejectedInput(f"title too long: {len(title)} characters, limit {limits.max_title_chars}")
        if not title and not content:
            raise RejectedInput("no text: title and content are both empty")
        now = self.now or datetime.now(self.tz)
        if payload.get("published_at") in (None, ""):
            raise RejectedInput("published_at is missing")
        try:
            published_at = parse_time(payload["published_at"], now=now, tz=self.tz)
            fetched_at = parse_time(payload["fetched_at"], now=now, tz=self.tz) if payload.get("fetched_at") else now
        except TimeParseError as exc:
            raise RejectedInput(f"bad time: {exc}") from exc
        if published_at > now.astimezone(published_at.tzinfo) + _FUTURE_SLACK:
            raise RejectedInput(f"published_at is in the future: {published_at.isoformat()}")
        source_id = payload.get("source_id")
        source_id = str(source_id).strip() if source_id not in (None, "") else ""
        if not source_id:
            # No id from the site: the text itself is the identity, so a re-import still adds nothing.
            source_id = "h:" + hashlib.sha1(f"{title}\n{content}".encode()).hexdigest()[:20]
        engagement = payload.get("engagement") or {}
        if not isinstance(engagement, dict):
            raise RejectedInput("engagement must be an object")
        counts = {k: _count(payload.get(k, engagement.get(k)), k) for k in _ENGAGEMENT_KEYS}
        reply = self._reply(payload, now)
        extra = dict(payload.get("extra") or {})
        extra.update({k: v for k, v in payload.items() if k not in _KNOWN and v not in (None, "")})
        region = payload.get("region") or (source_cfg.region if source_cfg else None)
        url = payload.get("url")
        if url is not None and not isinstance(url, str):
            raise RejectedInput("url must be text")
        values = {"source": source, "channel": channel, "source_id": source_id, "url": url or None, "title": title,
                  "content": content,
                  "author": str(payload["author"]) if payload.get("author") not in (None, "") else None,
                  "published_at": published_at, "fetched_at": fetched_at, "region": str(region) if region else None,
                  "engagement": built_as_validated(Engagement, counts, _ENGAGEMENT_GIVEN), "reply": reply,
                  "extra": {k: _jsonable(v) for k, v in extra.items()}}
        if _valid_as_given(values):
            return built_as_validated(Item, {"id": None, **values, "enrichment": Enrichment()}, _ITEM_GIVEN)
        try:
            return Item(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise RejectedInput(f"invalid {field}: {first['msg']}") from exc

    def _reply(self, payload: dict[str, Any], now: datetime) -> Reply | None:
        reply = payload.get("reply")
        if isinstance(reply, dict):
            text, department, replied = reply.get("text"), reply.get("department"), reply.get("replied_at")
        else:
            text = reply if isinstance(reply, str) else payload.get("reply_text")
            department, replied = payload.get("reply_department"), payload.get("replied_at")
        text = clean_text(str(text)) if text not in (None, "") else ""
        if not text:
            return None
        try:
            replied_at = parse_time(replied, now=now, tz=self.tz) if replied not in (None, "") else None
        except TimeParseError as exc:
            raise RejectedInput(f"bad reply time: {exc}") from exc
        return Reply(text=text, department=clean_text(str(department)) or None if department else None, replied_at=replied_at)

    def run(self, batch: Batch) -> None:
        for raw in batch.raw:
            batch.report.received += 1
            try:
                item = self.to_item(raw.source, raw.payload)
            except RejectedInput as exc:
                batch.reject(raw.source, self.name, str(exc), escape_surrogates(raw.payload), raw.origin)
                continue
            batch.origins[id(item)] = raw
            batch.items.append(item)
        batch.raw = []


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


class DedupStage:
    """Drop what the store already has before costly enrichment: unchanged re-crawls and exact copies (same source,
    same id, same words; see `Item.content_hash`).

    Signatures are frozen here, before enrichment fills fields, so an identical re-import compares unchanged and
    keeps its scores. A changed item never loses a stored value to an empty one (a selector that stopped matching
    must not wipe the replies already stored): the stored value is kept and the event quarantined with its reason.
    """

    name = "dedup"
    KEPT_FIELDS = ("title", "content", "author", "url", "reply")  # what collectors fill and enrichment never changes

    def __init__(self, store: Any) -> None:
        self.store = store

    def run(self, batch: Batch) -> None:
        by_key, by_hash = self.store.lookup(batch.items)
        given = batch.signatures  # computed by a pool worker (flow.pool), or none
        keep: list[Item] = []
        seen_keys: dict[tuple[str, str], int] = {}
        seen_hashes: dict[str, tuple[str, str]] = {}  # content hash → key of the batch's item that carries it
        duplicates: list[tuple[int, Item]] = []
        unstored = batch.unstored
        for item in batch.items:
            key = (item.source, item.source_id)
            stored = by_key.get(key)
            if stored is not None:
                if stored[1] == (given.get(id(item)) or item.signature) or self._keep_stored_values(batch, item, stored):
                    batch.report.unchanged += 1
                    continue
                freeze_signature(item, given.get(id(item)))
                keep_index = seen_keys.get(key)
                if keep_index is not None:
                    keep[keep_index] = item  # the later copy in a batch is the fresher one
                    continue
                seen_keys[key] = len(keep)
                keep.append(item)
                continue
            if key in seen_keys:
                freeze_signature(item, given.get(id(item)))
                keep[seen_keys[key]] = item
                unstored[id(item)] = item
                continue
            digest = item.content_hash
            if digest in by_hash:
                duplicates.append((by_hash[digest], item))
                batch.report.duplicates += 1
                continue
            kept = seen_hashes.get(digest)
            if kept is not None:
                batch.copies.append((kept, item))  # recorded by the store stage once the kept item has an id
                batch.report.duplicates += 1
                continue
            freeze_signature(item, given.get(id(item)))
            seen_hashes[digest] = key
            seen_keys[key] = len(keep)
            keep.append(item)
            unstored[id(item)] = item
        self.store.record_duplicates(duplicates)
        batch.items = keep

    def _keep_stored_values(self, batch: Batch, item: Item, stored: tuple[int, str]) -> bool:
        """Put back stored values the new version lacks, recording each; True when the item is then unchanged."""
        lost = [name for name in self.KEPT_FIELDS if not getattr(item, name)]
        try:
            previous = self.store.get(stored[0])
        except Exception:  # noqa: BLE001 - a vanished row only means there is nothing to keep
            return False
        kept = [name for name in lost if getattr(previous, name)]
        lost_extra = [k for k, v in previous.extra.items() if v not in (None, "") and item.extra.get(k) in (None, "")]
        if not kept and not lost_extra:
            return False
        batch.signatures.pop(id(item), None)  # what a worker computed is of the fields before this
        for name in kept:
            setattr(item, name, getattr(previous, name))
        for name in lost_extra:
            item.extra[name] = previous.extra[name]
        names = ", ".join([*kept, *(f"extra.{k}" for k in lost_extra)])
        logger.warning("stored value kept source=%s source_id=%s fields=%s", item.source, item.source_id, names)
        raw = batch.origins.get(id(item))
        batch.quarantined.append(QuarantineRecord(
            source=item.source, stage="dedup:kept_stored", origin=raw.origin if raw else (item.url or ""),
            reason=f"{item.source}/{item.source_id}: new version has no {names}; the stored value was kept "
                   f"(a selector that stopped matching? see the source's health)",
            payload=raw.payload if raw else item.model_dump(mode="json"), created_at=datetime.now(UTC)))
        return item.signature == stored[1]


class StoreStage:
    """Upsert the surviving items and record what happened to each."""

    name = "store"

    def __init__(self, store: Any) -> None:
        # here, not at the top: the after-store outbox brings SQLAlchemy (≈ 0.25 s of CPU), which an import's pool
        # workers, who run this module's normalise stage and never store, need not load
        from flow.after_store import mark_pending

        self.store = store
        self.mark_pending = mark_pending

    def run(self, batch: Batch) -> None:
        # One transaction: the items, and the record that their after-store stages are pending (flow/after_store.py),
        # so a crash right after the commit still leaves every stored item's alert rules to be run.
        with self.store.item_write() as conn:
            # The enrichment's words of each item's text, so the store's full-text index need not cut it again.
            words = ([batch.tokens.get(id(item), batch.index_words.get(id(item))) for item in batch.items]
                     if batch.tokens or batch.index_words else None)
            results = self.store.upsert(batch.items, words, batch.published_timestamps())
            self.mark_pending(conn, [(r.item_id, r.outcome.value) for r in results
                                     if r.outcome in (UpsertOutcome.inserted, UpsertOutcome.updated)])
        for item, result in zip(batch.items, results, strict=True):
            item.id = result.item_id
            if result.outcome is UpsertOutcome.inserted:
                batch.report.stored += 1
                batch.stored.append(item)
            elif result.outcome is UpsertOutcome.updated:
                batch.report.updated += 1
                batch.stored.append(item)
            elif result.outcome is UpsertOutcome.unchanged:
                batch.report.unchanged += 1
            else:
                batch.report.duplicates += 1
            batch.report.item_ids.append(result.item_id)
        if batch.copies:  # in-batch copies of these items (an item-by-item retry shares the list: take only ours)
            ids = {(item.source, item.source_id): item.id for item in batch.items}
            mine = [(ids[kept], copy) for kept, copy in batch.copies if kept in ids]
            batch.copies[:] = [(kept, copy) for kept, copy in batch.copies if kept not in ids]
            self.store.record_duplicates(mine)



