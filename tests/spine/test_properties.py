"""Property-based tests (hypothesis): whatever arrives, each parser answers with its result or its own error — never an
unexpected exception, which in the service is a 500 or a lost batch.

Examples are bounded (`FUZZ`) so `make test` stays short; `HYPOTHESIS_PROFILE=long` runs more."""

from __future__ import annotations

import json
import os
import string
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import parse_config
from core.config_analysis import SchemeSpec
from core.errors import ConfigError, InputError, YuqingError
from core.models import Item, QuarantineRecord, RawRecord
from core.query import And, Near, Not, Or, QuerySyntaxError, Term, parse_query, positive_terms
from flow.importer import FileImporter
from flow.intake import NormaliseStage, RejectedInput
from nlp.normalise import SHANGHAI, TimeParseError, clean_text, parse_time

settings.register_profile("short", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "short"))

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=SHANGHAI)
# Text that looks like what the parsers read: CJK, digits, punctuation, the query operators, markup and controls.
LOOKALIKE = st.lists(st.sampled_from(list("路灯小区油烟年月日时分秒前今天昨天刚:-/. T+Z0123456789()\"&|<>;"
                                          "ANDORTNEA/ \n\t\r\x00\u3000ＡＢ１２") + ["&amp;", "<p>", "\ud800", "&#0;"]),
                     max_size=40).map("".join)
ANY_TEXT = st.one_of(st.text(max_size=80), LOOKALIKE)
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), ANY_TEXT)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                  st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)


@given(ANY_TEXT)
def test_clean_text_never_fails_and_leaves_no_control_characters(text: str) -> None:
    cleaned = clean_text(text)
    assert cleaned == cleaned.strip()
    assert not any(ch in cleaned for ch in "\r\x00\t\u3000")


@given(st.one_of(ANY_TEXT, JSON_SCALARS))
def test_parse_time_answers_an_aware_time_or_its_own_error(value: object) -> None:
    try:
        parsed = parse_time(value, now=NOW)
    except TimeParseError:
        return
    assert parsed.tzinfo is not None


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)),
       st.sampled_from(["%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y年%m月%d日 %H:%M:%S", "%Y-%m-%dT%H:%M:%S"]))
def test_parse_time_reads_back_what_it_is_given(moment: datetime, layout: str) -> None:
    assert parse_time(moment.strftime(layout), now=NOW) == moment.replace(microsecond=0, tzinfo=SHANGHAI)


@given(st.integers(min_value=-14 * 60, max_value=14 * 60), st.datetimes(min_value=datetime(1971, 1, 1),
                                                                          max_value=datetime(2100, 1, 1)))
def test_parse_time_keeps_an_explicit_offset(minutes: int, moment: datetime) -> None:
    zone = timezone(timedelta(minutes=minutes))
    text = moment.replace(microsecond=0, tzinfo=zone).isoformat()
    assert parse_time(text, now=NOW).astimezone(UTC) == moment.replace(microsecond=0, tzinfo=zone).astimezone(UTC)


@given(ANY_TEXT)
def test_any_query_parses_or_names_the_position_of_the_problem(text: str) -> None:
    try:
        tree = parse_query(text)
    except QuerySyntaxError as exc:
        assert 0 <= exc.position <= len(text)
        return
    positive_terms(tree)  # every walk over a parsed tree terminates without recursion trouble


WORDS = st.text(alphabet="路灯小区油烟噪音停水", min_size=1, max_size=4)
QUERIES = st.recursive(WORDS, lambda inner: st.one_of(
    st.tuples(inner, inner).map(lambda p: f"({p[0]} AND {p[1]})"),
    st.tuples(inner, inner).map(lambda p: f"({p[0]} OR {p[1]})"),
    st.tuples(inner, inner).map(lambda p: f"({p[0]} -{p[1]})"),
    st.tuples(WORDS, WORDS, st.integers(1, 20)).map(lambda p: f'"{p[0]}" NEAR/{p[2]} {p[1]}'),
), max_leaves=10)


@given(QUERIES)
def test_well_formed_queries_parse_and_keep_their_words(text: str) -> None:
    tree = parse_query(text)
    assert isinstance(tree, Term | And | Or | Not | Near)
    assert positive_terms(tree)


@given(st.lists(ANY_TEXT, max_size=3), st.lists(ANY_TEXT, max_size=3), st.lists(ANY_TEXT, max_size=3),
       st.lists(ANY_TEXT, max_size=3), st.one_of(st.none(), ANY_TEXT))
def test_any_scheme_compiles_or_says_why_not(region, subject, event, exclude, expression) -> None:  # noqa: ANN001
    from analysis.schemes import compile_scheme

    spec = SchemeSpec(name="fuzz", region=region, subject=subject, event=event, exclude=exclude, expression=expression)
    try:
        compiled = compile_scheme(spec)
    except InputError as exc:
        assert exc.message
        return
    assert compiled.terms


CONFIG_KEYS = st.sampled_from(["server", "storage", "ingest", "sources", "demo", "alerts", "access", "analysis",
                               "crawling", "data_dir", "port", "host", "channel", "region", "sqlite_path", "batch_size",
                               "timezone", "rules", "receivers", "route", "enabled", "$env"])
CONFIGS = st.dictionaries(CONFIG_KEYS, st.recursive(
    JSON_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(CONFIG_KEYS, inner, max_size=4)),
    max_leaves=10), max_size=5)


@given(CONFIGS)
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_any_config_loads_or_is_a_config_error(data: dict) -> None:
    try:
        parse_config(data)
    except ConfigError as exc:
        assert exc.message


@given(st.dictionaries(st.sampled_from(["title", "content", "published_at", "source_id", "author", "url", "region",
                                        "channel", "likes", "reply", "engagement", "extra", "fetched_at", "other"]),
                       JSON_VALUES, max_size=8))
def test_the_normaliser_makes_an_item_or_a_quarantine_reason(payload: dict) -> None:
    config = parse_config({"sources": {"board_a": {"channel": "board"}}})
    try:
        item = NormaliseStage(config, now=NOW).to_item("board_a", payload)
    except RejectedInput as exc:
        assert str(exc)
        return
    assert isinstance(item, Item) and (item.title or item.content)


@given(st.binary(max_size=400), st.sampled_from(["csv", "jsonl", "tsv"]))
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
def test_any_file_imports_as_records_or_quarantine(tmp_path: Path, body: bytes, suffix: str) -> None:
    path = tmp_path / f"fuzz.{suffix}"
    path.write_bytes(body)
    try:
        out = list(FileImporter(path, "board_a").records())
    except YuqingError:
        return
    assert all(isinstance(r, RawRecord | QuarantineRecord) for r in out)
    for record in out:  # what is kept must be storable: JSON text
        json.dumps(record.payload, default=str)


@given(st.lists(st.dictionaries(st.sampled_from(["title", "content", "published_at", "likes"]),
                                st.text(alphabet=string.printable + "路灯", max_size=20), max_size=4), max_size=5))
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
def test_jsonl_rows_come_back_as_they_were_written(tmp_path: Path, rows: list[dict]) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = list(FileImporter(path, "board_a").records())
    kept = [r.payload for r in out if isinstance(r, RawRecord)]
    assert kept == [r for r in rows if r] or kept == rows


@given(st.sampled_from(["title", "content", "author", "extra"]), st.sampled_from(["\ud800", "\udfff", "a\udc80b"]))
def test_text_that_is_not_unicode_is_rejected_with_a_storable_reason(field: str, text: str) -> None:
    from flow.intake import escape_surrogates

    config = parse_config({"sources": {"board_a": {"channel": "board"}}})
    payload = {"title": "路灯", "content": "坏了", "published_at": "2026-12-01 09:00",
               field: {"note": text} if field == "extra" else text}
    try:
        NormaliseStage(config, now=NOW).to_item("board_a", payload)
    except RejectedInput as exc:
        assert "lone surrogate" in str(exc)
    else:
        raise AssertionError("a lone surrogate reached an item")
    json.dumps(escape_surrogates(payload), ensure_ascii=False).encode("utf-8")  # the quarantined copy can be stored
