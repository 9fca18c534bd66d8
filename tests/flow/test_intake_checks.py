"""The normalise stage's cheap checks answer exactly as the slow ones they spare (flow/intake.py)."""

from __future__ import annotations

from typing import Any

import pytest

from flow.intake import RejectedInput, _count, encoding_problem, not_storable


class Text(str):
    """A str subclass: JSON encodes it, the fast path leaves it to the encoder."""


circular: dict = {"title": "x"}
circular["self"] = circular

PAYLOADS = [
    {"title": "噪音扰民", "content": "楼下歌舞厅", "likes": 3, "score": 0.5, "ok": True, "none": None},
    {"title": "\ud800"}, {"\udc00": "key"}, {"extra": {"tags": ["a", {"b": "\udfff"}]}},
    {"title": "x", "when": ("tuple", 1)}, {1: "int key"}, {"big": 10**5000}, {"big": 2**64}, {"big": -(2**64)},
    {"nan": float("nan"), "inf": float("inf")}, {"deep": {"a": {"b": {"c": {"d": {"e": "\ud800"}}}}}},
    {"deep": {"a": {"b": {"c": {"d": {"e": 1}}}}}}, {"object": object()}, {"text": Text("\ud800")}, circular,
    [1, "\ud83d"], "plain", 7,
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_not_storable_answers_as_encoding_the_record(payload: Any) -> None:
    assert not_storable(payload) == encoding_problem(payload)


@pytest.mark.parametrize("value", [0, 1, 12_345, 2**53 - 1, 2**53, 2**53 + 1, 10**20, "1,234", " 7 ", 3.9, "", None])
def test_count_fast_path_returns_what_the_general_path_does(value: Any) -> None:
    expected = 0 if value in ("", None) else int(float(str(value).replace(",", "").strip()))
    assert _count(value, "likes") == expected


@pytest.mark.parametrize("value", [-1, True, "many"])
def test_count_still_rejects(value: Any) -> None:
    with pytest.raises(RejectedInput):
        _count(value, "likes")
