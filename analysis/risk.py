"""Risk score (0–100) and grade (I–IV) with the evidence behind every point.

Features, each a configured weight in points: anger/fear/sadness (× the classifier's calibrated confidence, and
only above `emotion_min_confidence`: a polite question the model is unsure about adds nothing) and negative polarity,
sensitive-term categories (one Aho-Corasick pass finds every term of every category with its offsets), engagement and
its velocity (log-scaled), channel, repeated complaints (near-duplicates and the size of the item's event), how fast
its event grows, and an official reply that is missing or came after its deadline. The score is the sum, capped at
100; an item published more than `horizon_days` before scoring keeps only a decaying share of it (half per
`stale_half_life_days` beyond the horizon): history must not bury today. Every addition is a `RiskReason` whose
`detail` is Chinese for the reader ("情绪：愤怒（置信度 0.82）"); `feature` stays an identifier.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from math import copysign as _copysign
from math import floor as _floor
from pathlib import Path
from typing import NamedTuple

import yaml
from pydantic import BaseModel

import core.config  # noqa: F401 - loaded first: it imports core.config_analysis at its end
from analysis.termscan import TermScanner
from core import yamlfile
from core.config_analysis import RiskCategory, RiskConfig
from core.errors import ConfigError
from core.models import Item, RiskReason, published_timestamps, text_of
from flow.stages import Batch

TERMS_FILE = Path(__file__).resolve().parent / "resources" / "risk_terms.yaml"
_REPLY_CHANNELS = ("hotline", "mailbox", "board")


_REASONS: dict[tuple, RiskReason] = {}
_MAX_REASONS = 10_000
_MISSING = object()
_NEGATIVE = frozenset(("negative", "neg", "负面"))  # polarity labels (lower-cased) that count as negative
EMOTION_ZH = {"anger": "愤怒", "angry": "愤怒", "fear": "恐惧", "fearful": "恐惧", "sadness": "悲伤", "sad": "悲伤",
              "disgust": "厌恶", "happiness": "喜悦", "surprise": "惊讶", "neutral": "中性"}
CHANNEL_ZH = {"weibo": "微博", "news": "新闻", "wechat": "微信公众号", "board": "留言板", "mailbox": "领导信箱",
              "hotline": "12345 热线"}


def reason(*, feature: str, weight: float, detail: str = "", evidence: str | None = None,
           span: tuple[int, int] | None = None) -> RiskReason:
    """A RiskReason, shared with earlier items that had exactly the same one (channel, emotion, reply overdue by N
    days...): validating a pydantic model per reason per item was most of the risk stage's cost. Reasons are
    never mutated after scoring."""
    key = (feature, weight, detail, evidence, span)
    found = _REASONS.get(key)
    if found is None:
        if len(_REASONS) >= _MAX_REASONS:
            _REASONS.clear()
        found = _REASONS[key] = _new_reason(feature, weight, detail, evidence, span)
    return found


_new_object = object.__new__
# The setters of BaseModel's four slots, called directly: `object.__setattr__(made, name, value)` first looks the
# name up on the type and checks the call, ~700 instructions a slot against ~300 (four slots per new reason).
_set_dict, _set_fields_set, _set_extra, _set_private = (
    BaseModel.__dict__[name].__set__ for name in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__",
                                                  "__pydantic_private__"))
_REASON_FIELDS = frozenset(RiskReason.model_fields)


def _new_reason(feature: str, weight: float, detail: str, evidence: str | None, span: tuple[int, int] | None
                ) -> RiskReason:
    """`RiskReason(feature=..., weight=..., ...)` without pydantic's validation, which was over half the cost of a
    new reason (1.7 of ~3 µs): reasons that carry a continuous value (polarity strength, points lost to age, a term's
    span) are mostly new, about two per item. Sets what validation sets: the weight as a float, all five fields
    marked as set, no extra or private values. Only for values of the declared types, as this module computes them
    (str feature and detail, str or None evidence, a tuple of two ints or None span)."""
    made = _new_object(RiskReason)
    _set_dict(made, {"feature": feature, "weight": float(weight), "detail": detail, "evidence": evidence, "span": span})
    _set_fields_set(made, set(_REASON_FIELDS))
    _set_extra(made, None)
    _set_private(made, None)
    return made


def round2(x: float) -> float:
    """`round(x, 2)`, the same float, at a fraction of its cost for the values risk weights take (|x| < 10⁶).

    Why: round(x, 2) converts x to a correctly rounded decimal string and back (~5,000 instructions); the risk
    stage rounds about one new weight per item. Why it is the same: 100·x is computed with an error below 10⁻⁹ for
    such x; when that product is not within 10⁻⁶ of a half-integer, its nearest integer n is the nearest integer to
    the exact 100·x, which is the decimal digits round() picks, and n / 100 is the float nearest to n/100, as the
    decimal string read back is. Near a half-integer (where round() breaks ties to even on the exact value), for
    large or non-finite x, round() itself decides. The sign of a zero is kept (round(-0.001, 2) is -0.0)."""
    y = x * 100.0
    if -1e8 < y < 1e8:
        n = _floor(y + 0.5)
        if 1e-6 < y - n + 0.5 < 1 - 1e-6:
            return _copysign(n / 100.0, x)
    return round(x, 2)


def load_categories(config: RiskConfig) -> dict[str, RiskCategory]:
    """Shipped (or configured file) categories, then the config's own categories on top."""
    path = config.terms_file or TERMS_FILE
    try:
        raw = yamlfile.safe_load(path.read_text(encoding="utf-8")) or {}
        categories = {name: RiskCategory.model_validate(spec) for name, spec in raw.items()}
    except (OSError, yaml.YAMLError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{path}: cannot load risk terms: {exc}") from exc
    categories.update(config.categories)
    return categories


def grade(score: float, config: RiskConfig) -> str:
    levels = config.levels
    if score >= levels.I:
        return "I"
    if score >= levels.II:
        return "II"
    if score >= levels.III:
        return "III"
    return "IV"


class RiskContext(NamedTuple):
    """What the risk model knows beyond the item: how many items repeat it (near-duplicates, its event). A named
    tuple: one is made per item, and equal contexts share their reasons in `score_many`."""

    repeats: int = 0
    event_volume: int = 1
    event_days: int = 0  # whole days between the event's first and last item (its growth rate is volume / days)


class RiskScorer:
    """`score(item, now, context)` → (score, grade, reasons)."""

    def __init__(self, config: RiskConfig) -> None:
        self.config = config
        self.categories = load_categories(config)
        by_term: dict[str, list[str]] = {}
        for name, cat in self.categories.items():
            for term in cat.terms:
                if term.strip():
                    by_term.setdefault(term.strip().lower(), []).append(name)
        self.term_categories = {term: tuple(names) for term, names in by_term.items()}
        # Only for an item scored without the stage's shared scan (`analysis.termscan`), with the same matcher.
        self._scanner: TermScanner | None = None
        self._log_eng = math.log1p(config.engagement_saturation)
        self._log_vel = math.log1p(config.velocity_saturation)
        self._emotions: dict[tuple, RiskReason | None] = {}
        self._channels: dict[str, RiskReason | None] = {}
        self._memo: dict[tuple, RiskReason | None] = {}  # (feature, the one value its reason depends on) → reason
        # `score_many`'s: (reason, weight) per emotion and per polarity strength; (reasons, weights) per channel and
        # context
        # keyed by (emotion, confidence as the classifier gave it): round(x, 2) costs a correctly rounded decimal
        # conversion per call, so each distinct confidence is rounded once, not once per item
        self._emotion_weights: dict[tuple, tuple[RiskReason, float] | None] = {}
        self._stale_details: dict[int, str] = {}  # whole days of age → the recency reason's text
        self._stale_reasons: dict[tuple[float, int], RiskReason] = {}  # (points lost, whole days) → reason
        self._totals: dict[float, float] = {}  # a score before rounding → round(score, 2)
        self._strengths: dict[float, tuple[RiskReason, float] | None] = {}
        self._polarity_reasons: dict[tuple[float, float], tuple[RiskReason, float]] = {}  # (weight, strength to 0.01)
        self._weighted: dict[str, bool] = {}  # emotion label → whether it has a weight (most labels have none)
        # (category, its one term or its terms) → feature, weight, detail
        self._term_facts: dict[tuple[str, str | frozenset[str]], tuple[str, float, str]] = {}
        self._tails: dict[tuple, tuple[list[RiskReason], list[float]]] = {}

    def _remember(self, key: tuple, found: RiskReason | None) -> RiskReason | None:
        if len(self._memo) >= _MAX_REASONS:
            self._memo.clear()
        self._memo[key] = found
        return found

    def term_hits(self, text: str) -> dict[str, list[tuple[str, int, int]]]:
        """(term, start, end) of every risk term in the text, per category."""
        if not self.term_categories or not text:
            return {}
        if self._scanner is None:
            self._scanner = TermScanner(risk_terms=self.term_categories)
        return self._scanner.scan(text).risk

    def _terms(self, text: str, found: dict[str, list[tuple[str, int, int]]] | None = None) -> list[RiskReason]:
        if found is None:
            found = self.term_hits(text)
        return [self._term_reason(name, hits, text) for name, hits in found.items()]

    def _term_reason(self, name: str, hits: list[tuple[str, int, int]], text: str) -> RiskReason:
        """A category's reason: its weight (more for more distinct terms) and text depend only on the category and
        its distinct terms, remembered per pair; the evidence and span are the first hit's."""
        # one term (most categories of most items): its name is the key, no set to build and hash
        terms = hits[0][0] if len(hits) == 1 else frozenset([t for t, _, _ in hits])
        facts = self._term_facts.get((name, terms))
        if facts is None:
            cat = self.categories[name]
            distinct = [terms] if isinstance(terms, str) else sorted(terms)
            if len(self._term_facts) >= _MAX_REASONS:
                self._term_facts.clear()
            facts = self._term_facts[(name, terms)] = (
                f"terms:{name}", round2(cat.weight * min(1.5, 1 + 0.25 * (len(distinct) - 1))),
                f"敏感词（{cat.label or name}）：{'、'.join(distinct[:8])}")
        _, start, end = hits[0]
        # a new reason without the shared table: the span makes it another item's only by chance
        return _new_reason(facts[0], facts[1], facts[2], text[start:end], (start, end))

    def _reply_at(self, item: Item, channel: str, published: float, now_ts: float) -> RiskReason | None:
        cfg = self.config
        if channel not in _REPLY_CHANNELS:
            return None
        days = cfg.reply_deadline_days.get(channel)
        if channel == "hotline":
            kind = str(item.extra.get("request_type", "")).lower()
            days = cfg.hotline_deadline_days.get(kind, days)
        if days is None:
            return None
        deadline = published + days * 86400
        if item.reply is None:
            return self._missing_reply(days, deadline, now_ts) if now_ts > deadline and cfg.reply_missing_weight else None
        replied = item.reply.replied_at
        if replied is not None and replied.timestamp() > deadline and cfg.reply_late_weight:
            late = (replied.timestamp() - deadline) / 86400
            return reason(feature="reply_late", weight=cfg.reply_late_weight,
                          detail=f"答复逾期：超出 {days:g} 天办理时限 {late:.0f} 天后才答复")
        return None

    def _missing_reply(self, days: float, deadline: float, now_ts: float) -> RiskReason:
        """The reason for a reply `days` after publication that has not come by `now_ts`, past `deadline`."""
        overdue = (now_ts - deadline) / 86400
        # round() and the ".0f" format both round the exact value half to even: one key per detail text
        key = ("reply_missing", days, round(overdue))
        found = self._memo.get(key)
        if found is None:
            found = self._remember(key, reason(
                feature="reply_missing", weight=self.config.reply_missing_weight,
                detail=f"未答复：已超出 {days:g} 天办理时限 {overdue:.0f} 天"))
        return found

    def _by_value(self, cache: dict[str, RiskReason | None], key: str, make: Callable[[str], RiskReason | None]
                  ) -> RiskReason | None:
        """The reason that depends only on `key` (an emotion, a channel), made once per scorer."""
        try:
            return cache[key]
        except KeyError:
            found = cache[key] = make(key)
            return found

    def _emotion_reason(self, key: tuple[str, float | None]) -> RiskReason | None:
        """The emotion's weight × its calibrated confidence, when the confidence reaches the threshold; an emotion
        without a confidence (not from the calibrated classifier) or below it adds nothing."""
        emotion, confidence = key
        w = self.config.emotion_weights.get(emotion.lower(), 0)
        if not w or confidence is None or confidence < self.config.emotion_min_confidence:
            return None
        return reason(feature="emotion", weight=round2(w * confidence),
                      detail=f"情绪：{EMOTION_ZH.get(emotion.lower(), emotion)}（置信度 {confidence:.2f}）")

    def _is_weighted(self, emotion: str) -> bool:
        """Whether the emotion label has a weight, remembered per label (`score_many` asks before any look-up)."""
        if len(self._weighted) >= _MAX_REASONS:
            self._weighted.clear()
        found = self._weighted[emotion] = bool(self.config.emotion_weights.get(emotion.lower(), 0))
        return found

    def _channel_reason(self, channel: str) -> RiskReason | None:
        w = self.config.channel_weights.get(channel, 0)
        return reason(feature="channel", weight=w, detail=f"渠道：{CHANNEL_ZH.get(channel, channel)}") if w else None

    def score(self, item: Item, now: datetime, context: RiskContext | None = None,
              term_hits: dict[str, list[tuple[str, int, int]]] | None = None) -> tuple[float, str, list[RiskReason]]:
        """Score, grade and reasons of one item (`score_many` of a batch of one); `term_hits` are the risk terms
        already found by a shared scan (else scanned here)."""
        return self.score_many([item], now.timestamp(), [context], [term_hits])[0]

    def _polarity(self, strength: float, weight: float | None = None) -> tuple[RiskReason, float] | None:
        """The negative polarity reason of this strength (the magnitude of the classifier's polarity_score, which is
        negative for negative text) with its weight, or None when it weighs nothing."""
        if weight is None:  # `score_many` reads the config's weight once per batch and passes it
            weight = self.config.negative_weight
        w = round2(weight * max(0.0, min(1.0, strength)))
        if not w:
            return None
        # Not through the shared table: `score_many` keeps this one per strength (4 decimals). The reason depends only
        # on its weight and the strength to 2 decimals (round() and the ".2f" format both round the exact value half
        # to even), so strengths that agree on both share it without a new text and model.
        key = (w, round2(strength))
        found = self._polarity_reasons.get(key)
        if found is None:
            if len(self._polarity_reasons) >= _MAX_REASONS:
                self._polarity_reasons.clear()
            found = self._polarity_reasons[key] = (
                _new_reason("polarity", w, f"负面倾向（强度 {strength:.2f}）", None, None), float(w))
        return found

    def _engagement(self, eng: int, published: float, now_ts: float) -> list[RiskReason]:
        """Engagement and its velocity (items without any engagement have neither)."""
        cfg = self.config
        reasons: list[RiskReason] = []
        if eng and cfg.engagement_weight:
            key = ("engagement", eng)
            r = self._memo.get(key)
            if r is None:
                w = round2(cfg.engagement_weight * min(1.0, math.log1p(eng) / self._log_eng))
                r = self._remember(key, reason(feature="engagement", weight=w, detail=f"互动量：点赞、转发、评论共 {eng} 次"))
            reasons.append(r)
            hours = max(1.0, (now_ts - published) / 3600)
            per_hour = eng / hours
            if cfg.velocity_weight and per_hour >= 1:
                w = round2(cfg.velocity_weight * min(1.0, math.log1p(per_hour) / self._log_vel))
                reasons.append(reason(feature="velocity", weight=w, detail=f"传播速度：每小时 {per_hour:.1f} 次互动"))
        return reasons

    def _tail(self, channel: str, context: RiskContext | None) -> list[RiskReason]:
        """The channel and repeats reasons (the reply reason comes after them)."""
        cfg = self.config
        reasons: list[RiskReason] = []
        if (r := self._by_value(self._channels, channel, self._channel_reason)) is not None:
            reasons.append(r)
        if context is not None:
            repeats = context.repeats + max(0, context.event_volume - 1)
            if repeats and cfg.repeat_weight:
                w = round2(cfg.repeat_weight * min(1.0, repeats / cfg.repeat_saturation))
                reasons.append(reason(feature="repeated", weight=w,
                                      detail=f"重复诉求：{context.repeats} 条近似重复，所属事件共 {context.event_volume} 条"))
            # growth: items per day over the event's life so far (a day at least), from its third item on
            if context.event_volume >= 3 and cfg.growth_weight:
                per_day = context.event_volume / max(1, context.event_days)
                if per_day >= 1:
                    w = round2(cfg.growth_weight * min(1.0, math.log1p(per_day) / math.log1p(cfg.growth_saturation)))
                    reasons.append(reason(feature="event_growth", weight=w,
                                          detail=f"事件增长：{max(1, context.event_days)} 天内 {context.event_volume} 条，"
                                                 f"每天 {per_day:.1f} 条"))
        return reasons

    def _recency(self, lost: float, days: int, age_days: float) -> RiskReason:
        """The recency reason of an item older than the horizon, which loses `lost` points of its score (half per
        half-life beyond the horizon) at `days` = round(age_days) whole days of age; made on a miss of
        `_stale_reasons`, where `score_many` looks first.

        Why a memo: the reason depends only on the points lost (before rounding) and the whole days of age, and
        past a few months the share kept is below 2⁻⁵³, so the points lost are the total itself: a handful of
        distinct totals. Keyed by those two, most items skip the correctly rounded decimal conversion. round() and
        the ".0f" format both round the exact value half to even: one text per whole day, formatted once."""
        detail = self._stale_details.get(days)
        if detail is None:
            if len(self._stale_details) >= _MAX_REASONS:
                self._stale_details.clear()
            detail = self._stale_details[days] = (f"时效：发布于 {age_days:.0f} 天前，"
                                                  f"超出 {self.config.horizon_days:g} 天的时效范围")
        if len(self._stale_reasons) >= _MAX_REASONS:
            self._stale_reasons.clear()
        # not through the shared table: kept here per (points lost, days), nearly one per item score
        found = self._stale_reasons[(lost, days)] = _new_reason("recency", -round2(lost), detail, None, None)
        return found

    def _rounded(self, total: float) -> float:
        """round(total, 2), remembered per value: item scores repeat (sums of a few reason weights)."""
        found = self._totals.get(total)
        if found is None:
            if len(self._totals) >= _MAX_REASONS:
                self._totals.clear()
            found = self._totals[total] = round2(total)
        return found

    def score_many(self, items: Sequence[Item], now_ts: float, contexts: Sequence[RiskContext | None],
                   term_hits: Sequence[dict[str, list[tuple[str, int, int]]] | None],
                   published_ts: Sequence[float] | None = None) -> list[tuple[float, str, list[RiskReason]]]:
        """Score, grade and reasons of every item, at `now_ts`; the one implementation (`score` calls it for one item).
        `published_ts`: the items' `published_at.timestamp()` when an earlier stage has them. Reasons in a fixed order
        (emotion, polarity, terms, engagement, velocity, channel, repeats, reply); the sum is taken in that order.

        Why a batch loop: at ~6 reasons per item, the cost was mostly Python calls and model attribute reads. Here
        reasons that depend on one value (emotion, polarity strength, channel with repeats) come from dicts keyed by
        that value, their weights are kept beside them as floats for the sum, and terms, engagement and the reply
        reason are made only for items that have them."""
        cfg = self.config
        if len(self._strengths) + len(self._tails) + len(self._emotion_weights) > _MAX_REASONS:
            self._emotion_weights.clear()
            self._strengths.clear()
            self._tails.clear()
        emotions, strengths, tails, term_reason = self._emotion_weights, self._strengths, self._tails, self._term_reason
        weighted, is_weighted = self._weighted, self._is_weighted
        negative = _NEGATIVE
        negative_weight = cfg.negative_weight
        polarity_counts = bool(negative_weight)
        levels = cfg.levels
        level_i, level_ii, level_iii = levels.I, levels.II, levels.III
        missing_reply, missing_weight = self._missing_reply, cfg.reply_missing_weight
        rounded, totals = self._rounded, self._totals
        horizon, half_life, stale_reasons, recency = (cfg.horizon_days, cfg.stale_half_life_days, self._stale_reasons,
                                                      self._recency)
        # deadlines of the reply channels that do not depend on the item (a hotline's depends on its request type)
        plain_days = {c: cfg.reply_deadline_days.get(c) for c in _REPLY_CHANNELS if c != "hotline"}
        if published_ts is None:
            published_ts = published_timestamps(items)
        out: list[tuple[float, str, list[RiskReason]]] = []
        for item, context, found, published in zip(items, contexts, term_hits, published_ts, strict=True):
            # Fields read from the models' __dict__ (where pydantic keeps them): an attribute read on a model goes
            # through its Python-level __getattr__ hook, ~360 instructions against ~50, and this loop reads ~15 per item.
            values = item.__dict__
            e = values["enrichment"].__dict__
            reasons: list[RiskReason] = []
            weights: list[float] = []
            # an emotion without a weight adds nothing whatever its confidence (`_emotion_reason`): no look-up by value
            if (emotion := e["emotion"]) and ((flag := weighted.get(emotion)) or (flag is None and is_weighted(emotion))):
                confidence = e["emotion_score"]
                got = emotions.get((emotion, confidence), _MISSING)
                if got is _MISSING:
                    emotion_key = (emotion, None if confidence is None else round2(confidence))
                    r = self._by_value(self._emotions, emotion_key, self._emotion_reason)
                    got = emotions[(emotion, confidence)] = None if r is None else (r, r.weight)
                if got is not None:
                    reasons.append(got[0])
                    weights.append(got[1])
            if polarity_counts and (polarity := e["polarity"]) and polarity.lower() in negative:
                strength = abs(signed) if (signed := e["polarity_score"]) is not None else 1.0
                got = strengths.get(strength, _MISSING)
                if got is _MISSING:
                    got = strengths[strength] = self._polarity(strength, negative_weight)
                if got is not None:
                    reasons.append(got[0])
                    weights.append(got[1])
            if found is None:
                made = self._terms(item.text, found)
                reasons += made
                weights += [r.weight for r in made]
            elif found:
                # Made afresh for each item (the first hit's span makes the reason nearly unique to its item); its
                # weight and text come from `_term_facts`.
                text = text_of(values)  # item.text, without the property's call through pydantic's hook
                for name, hits in found.items():
                    r = term_reason(name, hits, text)
                    reasons.append(r)
                    weights.append(r.weight)
            counts = values["engagement"].__dict__
            eng = counts["likes"] + counts["dislikes"] + counts["reposts"] + counts["comments"] + counts["reads"] // 100
            channel = values["channel"]._value_  # the plain str: Enum.value is a property, a Python call per item
            replies = channel in _REPLY_CHANNELS
            if eng:
                made = self._engagement(eng, published, now_ts)
                reasons += made
                weights += [r.weight for r in made]
            key = (channel, context)
            tail = tails.get(key)
            if tail is None:
                made = self._tail(channel, context)
                tail = tails[key] = (made, [r.weight for r in made])
            reasons += tail[0]
            weights += tail[1]
            if replies:
                # The common case (no reply yet, a deadline of the channel's own) without `_reply_at`'s lookups
                days = plain_days.get(channel) if values["reply"] is None else None
                if days is None:
                    reply = self._reply_at(item, channel, published, now_ts)
                else:
                    deadline = published + days * 86400
                    reply = missing_reply(days, deadline, now_ts) if now_ts > deadline and missing_weight else None
                if reply is not None:
                    reasons.append(reply)
                    weights.append(reply.weight)
            total = min(100.0, sum(weights))
            # past the horizon, the recency reason (`_recency`); items within it, the usual case, need no call
            age = (now_ts - published) / 86400
            if age > horizon and total > 0:
                lost, days = total * (1 - 0.5 ** ((age - horizon) / half_life)), round(age)
                stale = stale_reasons.get((lost, days)) or recency(lost, days, age)
                reasons.append(stale)
                total += stale.weight
            # round(max(0.0, total), 2), remembered per value
            total = (totals.get(total) or rounded(total)) if total > 0.0 else 0.0
            level = "I" if total >= level_i else "II" if total >= level_ii else "III" if total >= level_iii else "IV"  # grade
            out.append((total, level, reasons))
        return out


class RiskStage:
    """Sets risk_score, risk_level and risk_reasons; context (repeats, event size) and, when given, the risk terms
    found by the shared scan (`hits_of`) come from earlier stages."""

    name = "risk"

    def __init__(self, scorer: RiskScorer, contexts_of: Callable[[list[Item]], list[RiskContext]],
                 now: Callable[[], datetime], hits_of: Callable[[Batch], list[dict | None]] | None = None) -> None:
        self.scorer = scorer
        self.contexts_of = contexts_of  # each item's RiskContext, for a whole batch
        self.now = now
        self.hits_of = hits_of

    def run(self, batch: Batch) -> None:
        now_ts = self.now().timestamp()
        items = batch.items
        found_all = self.hits_of(batch) if self.hits_of is not None else [None] * len(items)
        contexts = self.contexts_of(items)
        published = batch.published_timestamps()  # the event stage's, when it ran
        for item, (total, level, reasons) in zip(items, self.scorer.score_many(items, now_ts, contexts, found_all,
                                                                               published), strict=True):
            e = item.__dict__["enrichment"]  # the field itself, without pydantic's __getattr__ hook
            # Three plain fields, as pydantic's own __setattr__ would set them (no validate_assignment); item stores
            # and set.add, not a keyword dict and update(): 0.3 µs/item less.
            values = e.__dict__
            values["risk_score"], values["risk_level"], values["risk_reasons"] = total, level, reasons
            fields_set = e.__pydantic_fields_set__
            fields_set.add("risk_score")
            fields_set.add("risk_level")
            fields_set.add("risk_reasons")
