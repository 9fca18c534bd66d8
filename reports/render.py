"""A report's content as HTML (Jinja2, autoescaped: titles and reasons come from crawled text and are hostile) and as
PDF (reportlab with an embedded CJK font, so `pdftotext` and readers get the Chinese text back), both with charts.

Links: `{"item": id}` → `{base}/items/{id}`, `{"event": id}` → `{base}/events/{id}` (the web pages); `base` is empty
for pages served by yuqing itself (relative links) and absolute for anything read elsewhere (PDF, e-mail).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context

from reports.charts import cjk_font, report_charts


def link_url(link: dict[str, Any], base: str = "") -> str:
    if "item" in link:
        return f"{base}/items/{int(link['item'])}"
    return f"{base}/events/{quote(str(link['event']), safe='')}"


def link_label(link: dict[str, Any]) -> str:
    return f"信息#{link['item']}" if "item" in link else f"事件 {link['event']}"


def _localtime(zone: ZoneInfo) -> Callable[[str | None], str]:
    def convert(value: str | None) -> str:
        if not value:
            return "—"
        return datetime.fromisoformat(value).astimezone(zone).strftime("%Y-%m-%d %H:%M")

    return convert


@pass_context
def _localtime_filter(context: Context, value: str | None) -> str:
    """`{{ t | localtime }}`: an ISO time in the report's own time zone."""
    return _localtime(ZoneInfo(context["c"]["period"]["timezone"]))(value)


_ENV = Environment(loader=PackageLoader("reports", "templates"), autoescape=select_autoescape(["html"], default=True),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_ENV.filters["localtime"] = _localtime_filter


def render_html(content: dict[str, Any], *, base: str = "", pdf_url: str | None = None,
                charts: dict[str, bytes] | None = None, font: Path | None = None) -> str:
    """The report page (charts inline as PNG data URIs, so it is one self-contained file for e-mail too)."""
    charts = report_charts(content, font) if charts is None else charts
    return _ENV.get_template("report.html").render(
        c=content, url=lambda link: link_url(link, base), link_label=link_label, pdf_url=pdf_url,
        charts={k: base64.b64encode(v).decode("ascii") for k, v in charts.items()})


# ---- PDF -------------------------------------------------------------------------------------------------------


def _register_font(font: Path | None) -> str:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    _, path = cjk_font(font)
    name = "YuqingCJK-" + path.stem
    if name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(name, str(path), subfontIndex=0) if path.suffix.lower() == ".ttc"
                                else TTFont(name, str(path)))
    return name


def render_pdf(content: dict[str, Any], *, base: str, charts: dict[str, bytes] | None = None,
               font: Path | None = None) -> bytes:
    """The report as an A4 PDF: the same sections as the HTML, the charts as images, links clickable."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    font_name = _register_font(font)
    charts = report_charts(content, font) if charts is None else charts
    zone = ZoneInfo(content["period"]["timezone"])
    local = _localtime(zone)
    body = ParagraphStyle("body", fontName=font_name, fontSize=9.5, leading=14, wordWrap="CJK")
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=11, textColor=colors.HexColor("#555555"))
    h1 = ParagraphStyle("h1", parent=body, fontSize=18, leading=24, alignment=1, textColor=colors.HexColor("#a61b1b"))
    h2 = ParagraphStyle("h2", parent=body, fontSize=12.5, leading=18, spaceBefore=10, spaceAfter=4,
                        textColor=colors.HexColor("#a61b1b"))
    meta = ParagraphStyle("meta", parent=small, alignment=1)

    def text(value: Any) -> str:
        return escape(str(value))

    def anchors(links: list[dict[str, Any]]) -> str:
        if not links:
            return ""
        parts = [f'<a href={quoteattr(link_url(link, base))} color="#1f5fa8">{text(link_label(link))}</a>' for link in links]
        return "依据：" + "　".join(parts)

    def para(markup: str, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(markup, style)

    def table(header: list[str], rows: list[list[Any]], widths: list[float]) -> Table:
        data = [[para(text(h), small) for h in header]]
        data += [[cell if isinstance(cell, Paragraph) else para(text(cell), small) for cell in row] for row in rows]
        t = Table(data, colWidths=[w * mm for w in widths], repeatRows=1)
        t.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#cccccc")),
                               ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f2f2f2")),
                               ("VALIGN", (0, 0), (-1, -1), "TOP")]))
        return t

    def chart(name: str, width_mm: float) -> Image | None:
        data = charts.get(name)
        if not data:
            return None
        image = Image(io.BytesIO(data))
        scale = width_mm * mm / image.imageWidth
        image.drawWidth, image.drawHeight = width_mm * mm, image.imageHeight * scale
        return image

    c = content
    story: list[Any] = [para(text(c["title"]), h1),
                        para(f"{text(c['period']['label'])} · 生成于 {text(local(c['generated_at']))}", meta), Spacer(1, 6)]
    if not c["complete"]:
        story.append(para("本期尚未结束：以下为截至生成时的情况。", small))
    story.append(para("一、总体态势", h2))
    for number, statement in enumerate(c["summary"] or [{"text": "本期没有监测到信息。", "links": []}], 1):
        story.append(para(f"{number}. " + text(statement["text"])))  # numbered: the CJK fonts lack a bullet glyph
        if statement["links"]:
            story.append(para(anchors(statement["links"]), small))
    for name, width in (("series", 170), ("channel", 150), ("topic", 150), ("emotion", 110)):
        image = chart(name, width)
        if image is not None:
            story.append(image)
    volume = c["volume"]
    if volume["total"]:
        story.append(para("二、信息量分布", h2))
        for title, rows in (("渠道", volume["by_channel"]), ("话题", volume["by_topic"]), ("情绪", volume["by_emotion"]),
                            ("风险等级", volume["by_level"])):
            story.append(table([title, "条数", "占比", "代表信息"],
                               [[r["label"], r["count"], f"{r['share'] * 100:.1f}%", para(anchors(r["links"]), small)]
                                for r in rows], [40, 18, 18, 94]))
            story.append(Spacer(1, 4))
    story.append(para("三、高风险信息", h2))
    if c["risky"]:
        story.append(table(["#", "信息", "等级", "风险原因"], [
            [i, para(f'<a href={quoteattr(link_url({"item": r["id"]}, base))} color="#1f5fa8">{text(r["title"])}</a><br/>'
                     f'<font size="7">{text(r["channel"])} · {text(r["source"])} · {text(local(r["published_at"]))}</font>',
                     small),
             f"{r['level_zh']} {r['risk_score']} 分", "；".join(r["reasons"])]
            for i, r in enumerate(c["risky"], 1)], [8, 62, 30, 70]))
    else:
        story.append(para("本期没有评分的信息。", small))
    story.append(para("四、热点事件", h2))
    if c["hot_events"]:
        story.append(table(["事件", "本期", "累计", "热度", "渠道"], [
            [para(f'<a href={quoteattr(link_url({"event": e["id"]}, base))} color="#1f5fa8">{text(e["title"])}</a><br/>'
                  + anchors(e["links"][1:]), small), e["period_items"], e["volume"], e["heat"], "、".join(e["channels"])]
            for e in c["hot_events"]], [90, 14, 14, 16, 36]))
    else:
        story.append(para("本期没有两条以上信息的事件。", small))
    if c["recurring"]:
        story.append(para("反复出现的问题", body))
        story.append(table(["问题", "出现次数（事件）", "本期", "首次出现"], [
            [para(text(r["title"]) + "<br/>" + anchors(r["links"]), small), r["events"], r["period_items"],
             local(r["first_seen"])] for r in c["recurring"]], [100, 24, 14, 32]))
    story.append(para("五、信息量激增", h2))
    if c["spikes"]:
        story.append(table(["维度", "对象", "条数", "倍数", "增长词", "时间"], [
            [s["dimension"], para(text(s["value"]) + "<br/>" + anchors(s["links"]), small), s["recent"], s["ratio"],
             s["terms"], local(s["at"])] for s in c["spikes"]], [18, 56, 14, 14, 38, 30]))
    else:
        story.append(para("本期没有检测到激增。", small))
    story.append(para("六、预警处置", h2))
    alerts = c.get("alerts")
    if alerts is None:
        story.append(para("预警模块未启用。", small))
    else:
        story.append(para(text(f"新增预警 {alerts['raised']} 条，认领 {alerts['acknowledged']} 条，解决 {alerts['resolved']} 条，"
                               f"仍未处理 {alerts['still_firing']} 条。")))
        if alerts["notable"]:
            story.append(table(["预警", "级别", "状态", "时间"], [
                [para(text(a["title"]) + "<br/>" + anchors(a["links"]), small), a["severity"], a["state"],
                 local(a["starts_at"])] for a in alerts["notable"]], [100, 18, 20, 32]))
    story.append(para("七、预案执行", h2))
    plans = c.get("plans")
    if plans is None:
        story.append(para("预案模块未启用。", small))
    else:
        sla = plans["sla"]
        compliance = "" if sla["compliance"] is None else f"（按时率 {sla['compliance'] * 100:.1f}%）"
        story.append(para(text(f"本期启动预案 {plans['started']} 个；本期到期的时限 {sla['met']} 个按时、{sla['missed']} 个超时、"
                               f"{sla['open']} 个进行中{compliance}；首次回应时间中位数 {plans['median_first_response']}。")))
        if plans["runs"]:
            rows = []
            for r in plans["runs"]:
                o = r["opinion"]
                opinion = "—"
                if o:
                    def share(v: float | None) -> str:
                        return "" if v is None else f"、负面 {v * 100:.0f}%"
                    opinion = (f"前 {o['window_hours']:.0f} 小时 {o['before_volume']} 条{share(o['before_negative'])}；"
                               f"后 {o['after_volume']} 条{share(o['after_negative'])}" + ("" if o["complete"] else "（观察中）"))
                rows.append([para(text(f"#{r['id']} {r['title']}") + f"<br/>{text(r['playbook'])} " + anchors(r["links"]), small),
                             r["state"], f"{r['met']} / {r['missed']}", r["first_response"], opinion])
            story.append(table(["预案运行", "状态", "按时/超时", "首次回应", "回应前后舆情"], rows, [62, 16, 18, 24, 50]))
    story.append(Spacer(1, 10))
    story.append(para(text(f"yuqing 舆情 · {c['title']} · {local(c['period']['start'])} 至 {local(c['period']['end'])}"), meta))

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm,
                            bottomMargin=16 * mm, title=f"{c['title']}（{c['period']['label']}）", author="yuqing",
                            subject=c["title"], creator="yuqing reports")
    doc.build(story)
    return buffer.getvalue()
