"""Quality of official replies (泰迪杯 2020 C task 3): relevance, completeness, interpretability, timeliness.

Each score is in [0, 1] and explainable (it returns what it found), not a trained black box, because the only labels
available are weak and noisy (two student teams, 59 % agreement with each other):
- relevance: TF-IDF cosine between the message (title + body) and the reply, over jieba words without stopwords,
  with the IDF fitted on the corpus scored; the reply's greeting/closing formulas are removed first.
- completeness: the message is split into its points (sentences that ask, demand or propose: 吗/？/希望/要求/建议/
  请/能否/为什么…; the whole message when none does); a point is answered when at least a third of its content
  words (top 8 by IDF) appear in the reply; the score is the share answered.
- interpretability: four cues — cites a rule (《…》, 条例, 规定, 办法, 第…条, 文件), states a measure (责成, 整改,
  协调, 督促, 安排, 将…), reports a result (已完成/已解决/已恢复/经核实/经调查…), gives specifics (dates, numbers,
  amounts, phone numbers) — the share present.
- timeliness: reply time − message time in working days (core.calendar: the day of the message does not count, the
  reply's day does), and whether it is within the 15-working-day clock.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.calendar import WorkCalendar, default_calendar

_POINT_SPLIT = re.compile(r"[。！？!?；;\n]+")
_ASKS = re.compile(r"吗|？|\?|希望|要求|建议|请求|恳请|请|能否|能不能|是否|为什么|为何|怎么|如何|何时|什么时候|呼吁|诉求|盼")
_FORMULA = re.compile(r"(网友|市民|您)?[，,]?您好[！!，,。]?|"
                      r"感谢(您|你)?[^。！]{0,30}?(关注|支持|信任|监督|理解)[^。！!]{0,10}[。！!]?|"
                      r"(特此|现将)?[^。]{0,20}答复如下[:：]?|此复[。]?|谢谢[！!。]?|"
                      r"[0-9]{4}年[0-9]{1,2}月[0-9]{1,2}日\s*$")
_RULE = re.compile(r"《[^》]{2,40}》|条例|规定|办法|实施细则|第[一二三四五六七八九十百零0-9]+条|政策|文件|通知|"
                   r"标准|法律|法规|规范|号文|〔[0-9]{4}〕")
_MEASURE = re.compile(r"责成|整改|协调|督促|安排|部署|约谈|处罚|查处|核查|调查|排查|巡查|维修|修复|清理|拆除|执法|"
                      r"跟进|落实|加强|将(会|于|在|对|进一步)|下一步|拟|计划")
_RESULT = re.compile(r"已(经)?(完成|解决|恢复|修复|整改|办结|处理|清理|拆除|落实|到位|签订|发放|退还|补发|开通|安装)|"
                      r"经(核实|调查|查实|了解|核查|现场)|目前|现已|结果|情况属实|不属实|办理完毕")
_SPECIFIC = re.compile(r"[0-9０-９]+(\.[0-9]+)?\s*(元|万|亿|米|公里|平方|户|人|天|日|个|台|辆|%|％|号|期|栋)|"
                       r"[0-9]{4}年|[0-9]{1,2}月[0-9]{1,2}日|1[3-9][0-9]{9}|0[0-9]{2,3}-?[0-9]{7,8}")


def _words(text: str) -> list[str]:
    from nlp.tokenize import segment, stopwords

    stop = stopwords()
    return [w for w in segment(text) if len(w) > 1 and w not in stop and not w.isspace() and not w.isdigit()]


def strip_formulas(reply: str) -> str:
    """The reply without greetings, thanks, 'reply as follows' and dates at the end: what is left says something."""
    return _FORMULA.sub("", " ".join(reply.split()))


def points(message: str) -> list[str]:
    """The sentences of a message that ask, demand or propose (the whole message when none does)."""
    parts = [p.strip() for p in _POINT_SPLIT.split(" ".join(message.split())) if len(p.strip()) >= 4]
    asks = [p for p in parts if _ASKS.search(p)]
    return asks or ([" ".join(parts)] if parts else [])


@dataclass
class ReplyScore:
    relevance: float
    completeness: float
    interpretability: float
    working_days: int | None
    within_15wd: bool | None
    calendar: str | None
    detail: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {"relevance": round(self.relevance, 4), "completeness": round(self.completeness, 4),
                "interpretability": round(self.interpretability, 4), "working_days": self.working_days,
                "within_15wd": self.within_15wd, "calendar": self.calendar, "detail": self.detail}


class ReplyScorer:
    """Fit IDF on a corpus of messages and replies, then score pairs. `fit` returns self; learned state ends in `_`."""

    def __init__(self, calendar: WorkCalendar | None = None, *, point_coverage: float = 1 / 3, point_words: int = 8,
                 clock_days: int = 15) -> None:
        self.calendar = calendar
        self.point_coverage = point_coverage
        self.point_words = point_words
        self.clock_days = clock_days

    def fit(self, texts: list[str]) -> ReplyScorer:
        df: Counter = Counter()
        for text in texts:
            df.update(set(_words(text)))
        self.n_docs_ = max(len(texts), 1)
        self.idf_ = {w: math.log((1 + self.n_docs_) / (1 + c)) + 1 for w, c in df.items()}
        return self

    def _idf(self, word: str) -> float:
        return self.idf_.get(word, math.log(1 + self.n_docs_) + 1)

    def _vector(self, words: list[str]) -> dict[str, float]:
        counts = Counter(words)
        vec = {w: c * self._idf(w) for w, c in counts.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        return {w: v / norm for w, v in vec.items()}

    def score(self, message: str, reply: str, created: datetime | None = None,
              replied: datetime | None = None) -> ReplyScore:
        body = strip_formulas(reply or "")
        m_words, r_words = _words(message or ""), _words(body)
        mv, rv = self._vector(m_words), self._vector(r_words)
        relevance = sum(v * rv.get(w, 0.0) for w, v in mv.items())
        reply_set = set(r_words)
        found_points = points(message or "")
        answered = []
        for point in found_points:
            key = sorted(set(_words(point)), key=lambda w: -self._idf(w))[: self.point_words]
            if key and sum(w in reply_set for w in key) / len(key) >= self.point_coverage:
                answered.append(point[:60])
        completeness = len(answered) / len(found_points) if found_points else 0.0
        cues = {"rule": _RULE.search(body), "measure": _MEASURE.search(body), "result": _RESULT.search(body),
                "specifics": _SPECIFIC.search(body)}
        interpretability = sum(1 for c in cues.values() if c) / len(cues)
        days = within = source = None
        if created is not None and replied is not None:
            cal = self.calendar or default_calendar()
            days, source = cal.working_days_between(created, replied)
            if replied < created:
                days = -cal.working_days_between(replied, created)[0]
            within = days <= self.clock_days
        detail = {"points": len(found_points), "answered": answered,
                  "cues": {k: (v.group(0) if v else None) for k, v in cues.items()}, "reply_chars": len(body)}
        return ReplyScore(relevance, completeness, interpretability, days, within, source, detail)


def _quantiles(values: list[float], qs: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)) -> dict[str, float]:
    ordered = sorted(values)
    out = {}
    for q in qs:
        pos = q * (len(ordered) - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        out[f"p{int(q * 100)}"] = round(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo), 2)
    return out


def evaluate(data_dir: Any, *, calendar: WorkCalendar | None = None) -> dict[str, Any]:
    """Score every reply in `tipdm2020c_replies`, summarise timeliness, and compare with the weak labels."""
    import pandas as pd
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from core.paths import data_dir as resolve

    folder = resolve(data_dir)
    replies = pd.read_csv(folder / "tipdm2020c_replies" / "replies.csv", dtype=str, keep_default_na=False)
    labels = pd.read_csv(folder / "tipdm2020c_reply_quality_unofficial" / "annotations.csv")
    messages = (replies["title"] + "\n" + replies["body"]).tolist()
    scorer = ReplyScorer(calendar).fit(messages + replies["reply"].tolist())
    rows = []
    for message, row in zip(messages, replies.itertuples(index=False), strict=True):
        created = datetime.fromisoformat(row.created_at) if row.created_at else None
        replied = datetime.fromisoformat(row.replied_at) if row.replied_at else None
        s = scorer.score(message, row.reply, created, replied)
        rows.append({"message_id": int(row.message_id), "relevance": s.relevance, "completeness": s.completeness,
                     "interpretability": s.interpretability, "working_days": s.working_days, "calendar": s.calendar})
    scored = pd.DataFrame(rows)
    days = [d for d in scored["working_days"].tolist() if d is not None and not pd.isna(d)]
    valid = [d for d in days if d >= 0]
    buckets = [(0, 0), (1, 2), (3, 5), (6, 10), (11, 15), (16, 30), (31, 60), (61, 10**9)]
    histogram = {(f"{a}-{b}" if b < 10**9 else f">{a - 1}") if a != b else str(a): sum(a <= d <= b for d in valid)
                 for a, b in buckets}
    merged = scored.merge(labels, on="message_id", how="inner")
    agreement = {}
    for ours, theirs in (("interpretability", "interpretability_syu"), ("interpretability", "interpretability_rb"),
                         ("completeness", "completeness_rb"), ("relevance", "completeness_rb")):
        part = merged[[ours, theirs]].dropna()
        if len(part) < 10 or part[theirs].nunique() < 2:
            continue
        rho, p = spearmanr(part[ours], part[theirs])
        agreement[f"{ours}~{theirs}"] = {"n": int(len(part)), "spearman": round(float(rho), 4), "p_value": float(f"{p:.3g}"),
                                         "auc": round(float(roc_auc_score(part[theirs], part[ours])), 4)}
    both = merged[["interpretability_syu", "interpretability_rb"]].dropna()
    return {
        "rows": int(len(scored)),
        "timeliness": {"with_dates": len(days), "negative_delay": len(days) - len(valid),
                       "working_days": {"mean": round(sum(valid) / len(valid), 2), **_quantiles(valid)},
                       "histogram": histogram,
                       "share_within_15wd": round(sum(d <= 15 for d in valid) / len(valid), 4),
                       "calendar": sorted(set(scored["calendar"].dropna()))},
        "scores": {k: {"mean": round(float(scored[k].mean()), 4), **_quantiles(scored[k].tolist(), (0.1, 0.5, 0.9))}
                   for k in ("relevance", "completeness", "interpretability")},
        "weak_labels": {"joined": int(len(merged)), "agreement": agreement,
                        "labellers_agree_interpretability": round(float((both.iloc[:, 0] == both.iloc[:, 1]).mean()), 4)
                        if len(both) else None},
    }
