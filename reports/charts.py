"""Report charts (matplotlib, Agg) as PNG bytes, labelled in Chinese with a CJK font found on the machine.

A fresh Debian machine has no CJK font: matplotlib would draw empty boxes. `cjk_font()` finds WenQuanYi Zen Hei
(`fonts-wqy-zenhei`, installed by `make browser-deps`) or Noto CJK, or the configured file, and every chart names it
explicitly; without one, making a chart or a PDF is a ReportError saying what to install.
"""

from __future__ import annotations

import io
import logging
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.errors import ReportError

CJK_FAMILIES = ("WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei")
PALETTE = ["#c0392b", "#e67e22", "#f1c40f", "#2980b9", "#16a085", "#8e44ad", "#7f8c8d", "#2c3e50"]
_LOCK = threading.Lock()  # pyplot's state is global: one chart at a time


@lru_cache(maxsize=4)
def cjk_font(configured: Path | None = None) -> tuple[str, Path]:
    """(family name, file) of a font with Chinese glyphs: the configured file, else the first family installed."""
    from matplotlib import font_manager

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # "now using weight 500": the font has one
    if configured is not None:
        if not configured.is_file():
            raise ReportError(f"reports.font_path: no font file at {configured}")
        font_manager.fontManager.addfont(str(configured))
        return font_manager.FontProperties(fname=str(configured)).get_name(), configured
    for family in CJK_FAMILIES:
        try:
            path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        except ValueError:
            continue
        return family, Path(path)
    raise ReportError("no CJK font found: install fonts-wqy-zenhei (`make browser-deps` as root, or "
                      "`apt-get install fonts-wqy-zenhei`) or set reports.font_path to a .ttf/.ttc with Chinese glyphs")


def _figure(width: float, height: float, font: Path | None) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    family, _ = cjk_font(font)
    plt.rcParams["font.sans-serif"] = [family, "DejaVu Sans"]
    plt.rcParams["font.family"] = "sans-serif"
    plt.rcParams["axes.unicode_minus"] = False
    return plt, plt.figure(figsize=(width, height), dpi=110)


def _png(plt: Any, fig: Any, ax: Any = None, title: str | None = None) -> bytes:
    """The figure as PNG; with `ax`, titled and without the top and right frame lines first."""
    if ax is not None:
        ax.set_title(title, fontsize=11)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.tick_params(labelsize=8)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def bar_chart(title: str, labels: list[str], values: list[float], *, font: Path | None = None,
              horizontal: bool = True) -> bytes:
    """Bars with their values written on them; horizontal for long Chinese labels."""
    with _LOCK:
        plt, fig = _figure(6.4, max(2.2, 0.36 * len(labels) + 1.0) if horizontal else 3.0, font)
        ax = fig.add_subplot(1, 1, 1)
        colours = [PALETTE[i % len(PALETTE)] for i in range(len(labels))]
        if horizontal:
            bars = ax.barh(labels[::-1], values[::-1], color=colours[::-1])
        else:
            bars = ax.bar(labels, values, color=PALETTE[3])
        ax.bar_label(bars, fmt="%g", fontsize=8, padding=2)
        return _png(plt, fig, ax, title)


def line_chart(title: str, labels: list[str], values: list[float], *, font: Path | None = None) -> bytes:
    """Volume over the period (hours of a day, days of a week)."""
    with _LOCK:
        plt, fig = _figure(6.4, 2.6, font)
        ax = fig.add_subplot(1, 1, 1)
        ax.plot(range(len(values)), values, marker="o", markersize=3, color=PALETTE[3])
        ax.fill_between(range(len(values)), values, alpha=0.15, color=PALETTE[3])
        step = max(1, len(labels) // 12)
        ax.set_xticks(range(0, len(labels), step), [labels[i] for i in range(0, len(labels), step)])
        ax.set_ylabel("条数", fontsize=8)
        return _png(plt, fig, ax, title)


def pie_chart(title: str, labels: list[str], values: list[float], *, font: Path | None = None) -> bytes:
    with _LOCK:
        plt, fig = _figure(4.6, 3.0, font)
        ax = fig.add_subplot(1, 1, 1)
        ax.pie(values, labels=labels, autopct="%1.0f%%", colors=PALETTE[: len(values)], textprops={"fontsize": 8},
               startangle=90, counterclock=False)
        ax.set_title(title, fontsize=11)
        ax.axis("equal")
        return _png(plt, fig)


def report_charts(content: dict[str, Any], font: Path | None = None) -> dict[str, bytes]:
    """The charts of one report by name: volume over time, by channel, by topic, by emotion (when there is data)."""
    volume = content["volume"]
    charts: dict[str, bytes] = {}
    if not volume["total"]:
        return charts
    series = volume["series"]
    unit = "按小时" if content["kind"] == "daily" else "按日"
    charts["series"] = line_chart(f"信息量走势（{unit}）", series["labels"], series["counts"], font=font)
    channel = volume["by_channel"][:8]
    charts["channel"] = bar_chart("各渠道信息量", [r["label"] for r in channel], [r["count"] for r in channel], font=font)
    topic = volume["by_topic"][:10]
    charts["topic"] = bar_chart("话题分布", [r["label"] for r in topic], [r["count"] for r in topic], font=font)
    emotion = volume["by_emotion"][:7]
    charts["emotion"] = pie_chart("情绪分布", [r["label"] for r in emotion], [r["count"] for r in emotion], font=font)
    return charts
