"""Rendering: crawled text is hostile and comes out escaped (HTML); the PDF carries the Chinese text (pdftotext reads it
back) and clickable links; links are absolute when a base URL is configured."""

from __future__ import annotations

import copy
from html.parser import HTMLParser
from pathlib import Path

import pytest

from reports.render import render_html, render_pdf
from tests.helpers.reports import DAY, pdf_text, require_cjk_font

PAYLOADS = ["<script>alert('x')</script>", "<img src=x onerror=alert(1)>", "\"><svg onload=alert(2)>",
            "<a href=\"javascript:alert(3)\">点我</a>", "<iframe srcdoc='<script>alert(4)</script>'>"]


class Elements(HTMLParser):
    """Every start tag with its attributes, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


@pytest.fixture(scope="module")
def made(make_harness):
    harness = make_harness(settings={"base_url": "https://yq.example.cn/"})
    return harness, harness.reports.make(harness.reports.period("daily", DAY), trigger="demand")


def hostile(content: dict) -> dict:
    """The report with a payload in every place crawled or user-made text reaches."""
    c = copy.deepcopy(content)
    evil = iter(PAYLOADS * 20)
    for r in c["risky"]:
        r["title"], r["reasons"], r["source"] = next(evil) + r["title"], [next(evil), next(evil)], next(evil)
    for e in c["hot_events"]:
        e["title"], e["keywords"], e["channels"] = next(evil), [next(evil)], [next(evil)]
    for s in c["summary"]:
        s["text"] = next(evil) + s["text"]
    for s in c["spikes"]:
        s["value"], s["terms"] = next(evil), next(evil)
    for a in c["alerts"]["notable"]:
        a["title"] = next(evil)
    for r in c["plans"]["runs"]:
        r["title"], r["playbook"] = next(evil), next(evil)
    for rows in ("by_channel", "by_topic", "by_emotion"):
        for row in c["volume"][rows]:
            row["label"] = next(evil)
    c["title"] = next(evil) + c["title"]
    return c


def test_hostile_text_is_escaped_never_markup(made) -> None:
    _, report = made
    html = render_html(hostile(report.content), base="", charts={})
    parser = Elements()
    parser.feed(html)
    tags = {tag for tag, _ in parser.tags}
    assert not tags & {"script", "svg", "iframe"}, tags
    for tag, attrs in parser.tags:
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name, value)
            assert not (value or "").lower().startswith("javascript:"), (tag, name, value)
        if tag == "a":
            href = dict(attrs)["href"] or ""
            assert href.startswith(("/items/", "/events/", "/api/reports/")), href
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_links_are_absolute_with_a_base_url(made) -> None:
    _, report = made
    first = report.content["risky"][0]["id"]
    assert f'href="https://yq.example.cn/items/{first}"' in report.html
    assert 'href="https://yq.example.cn/events/ev-water"' in report.html
    relative = render_html(report.content, base="", charts={})
    assert f'href="/items/{first}"' in relative and "https://yq.example.cn" not in relative


def test_pdf_has_the_chinese_text_charts_and_links(made, tmp_path: Path) -> None:
    require_cjk_font()
    harness, report = made
    assert report.pdf is not None and report.pdf.startswith(b"%PDF")
    text = pdf_text(report.pdf, tmp_path)
    for expected in ("舆情日报", "2026年3月9日", "总体态势", "高风险信息", "雨花小区停水第1天无人管", "群体性：几十户业主聚集",
                     "热点事件", "信息量激增", "交通运输", "预警处置", "预案执行"):
        assert expected in text, expected
    first = report.content["risky"][0]["id"]
    assert f"https://yq.example.cn/items/{first}".encode() in report.pdf  # a link annotation
    assert report.pdf.count(b"/Subtype /Image") >= 4  # volume over the day, channels, topics, emotions


def test_hostile_text_in_the_pdf_is_text(made, tmp_path: Path) -> None:
    require_cjk_font()
    _, report = made
    pdf = render_pdf(hostile(report.content), base="https://yq.example.cn")
    text = pdf_text(pdf, tmp_path)
    assert "<script>alert('x')</script>" in text and "onerror=alert(1)" in text
    assert b"javascript:" not in pdf


def test_html_charts_are_inline_images(made) -> None:
    require_cjk_font()
    _, report = made
    assert report.html.count('src="data:image/png;base64,') == 4
    assert 'id="pdf-link"' in report.html and "/api/reports/daily?date=2026-03-09&amp;format=pdf" in report.html
