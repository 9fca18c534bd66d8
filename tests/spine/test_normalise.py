from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from nlp.normalise import TimeParseError, clean_text, parse_time

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 26, 15, 0, tzinfo=SH)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("刚刚", datetime(2026, 11, 26, 15, 0, tzinfo=SH)),
        ("5分钟前", datetime(2026, 11, 26, 14, 55, tzinfo=SH)),
        ("2小时前", datetime(2026, 11, 26, 13, 0, tzinfo=SH)),
        ("3天前", datetime(2026, 11, 23, 15, 0, tzinfo=SH)),
        ("今天 09:15", datetime(2026, 11, 26, 9, 15, tzinfo=SH)),
        ("昨天 12:30", datetime(2026, 11, 25, 12, 30, tzinfo=SH)),
        ("前天 08:00", datetime(2026, 11, 24, 8, 0, tzinfo=SH)),
        ("2019/1/3 8:05", datetime(2019, 1, 3, 8, 5, tzinfo=SH)),
        ("2019-02-28 11:25:05", datetime(2019, 2, 28, 11, 25, 5, tzinfo=SH)),
        ("2019年1月3日 08:05", datetime(2019, 1, 3, 8, 5, tzinfo=SH)),
        ("2019年1月3日", datetime(2019, 1, 3, tzinfo=SH)),
        ("２０１９－０１－０３", datetime(2019, 1, 3, tzinfo=SH)),
        ("Thu Nov 26 10:00:00 +0800 2026", datetime(2026, 11, 26, 10, 0, tzinfo=SH)),
        ("Tue Jun 08 09:35:04 +0800 2021", datetime(2021, 6, 8, 9, 35, 4, tzinfo=SH)),
        ("11-20 10:00", datetime(2026, 11, 20, 10, 0, tzinfo=SH)),
        ("12-30 10:00", datetime(2025, 12, 30, 10, 0, tzinfo=SH)),
        ("1581517074", datetime(2020, 2, 12, 22, 17, 54, tzinfo=SH)),
        ("1581517074000", datetime(2020, 2, 12, 22, 17, 54, tzinfo=SH)),
        ("2024-02-10T08:00:00Z", datetime(2024, 2, 10, 16, 0, tzinfo=SH)),
        ("2024-02-10T08:00:00+08:00", datetime(2024, 2, 10, 8, 0, tzinfo=SH)),
    ],
)
def test_time_formats(text: str, expected: datetime) -> None:
    parsed = parse_time(text, now=NOW)
    assert parsed.tzinfo is not None
    assert parsed == expected


def test_naive_datetime_is_read_in_shanghai() -> None:
    assert parse_time(datetime(2020, 1, 1, 8, 0)).utcoffset().total_seconds() == 8 * 3600


@pytest.mark.parametrize("text", ["", "not a time", "2019-13-45", "昨天", "99999999999999", "2019/02/30 10:00"])
def test_unparseable_times_raise(text: str) -> None:
    with pytest.raises(TimeParseError):
        parse_time(text, now=NOW)


def test_clean_text_strips_html_and_normalises_width() -> None:
    raw = "<div><p>小区&nbsp;油烟扰民&amp;噪音</p><br/>ＡＢＣ１２３\n\n\t\t  请处理<script>alert(1)</script></div>"
    assert clean_text(raw) == "小区 油烟扰民&噪音\nABC123\n请处理"
    assert clean_text(None) == ""
    assert clean_text("，。！") == "，。！"  # Chinese punctuation carries meaning and is kept
