"""Deadline arithmetic on real schedules (Spring Festival, National Day, 调休 weekends) and across 2026→2027."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from core.calendar import WorkCalendar, parse_due
from core.errors import ConfigError

FIXTURE_2027 = Path(__file__).with_name("fixtures") / "calendar_2027_test.yaml"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return WorkCalendar()  # no override files: the official package, then the fallback


@pytest.mark.parametrize(("start", "due", "expected", "days"), [
    # Spring Festival 2024: off Feb 10–17; Sunday Feb 4 and Sunday Feb 18 are 调休 working days.
    ("2024-02-08T10:00+08:00", "2wd", "2024-02-18T17:00+08:00", ["2024-02-09", "2024-02-18"]),
    ("2024-02-03T09:30+08:00", "1wd", "2024-02-04T17:00+08:00", ["2024-02-04"]),  # Saturday receipt, Sunday make-up day
    ("2024-02-09T16:00+08:00", "3wd", "2024-02-20T17:00+08:00", ["2024-02-18", "2024-02-19", "2024-02-20"]),
    # Spring Festival 2025: off Jan 28–Feb 4; Sunday Jan 26 and Saturday Feb 8 are working days.
    ("2025-01-24T18:00+08:00", "2wd", "2025-01-27T17:00+08:00", ["2025-01-26", "2025-01-27"]),
    ("2025-01-27T10:00+08:00", "5wd", "2025-02-10T17:00+08:00",
     ["2025-02-05", "2025-02-06", "2025-02-07", "2025-02-08", "2025-02-10"]),
    # National Day 2023: off Sep 29–Oct 6; Saturday Oct 7 and Sunday Oct 8 are working days.
    ("2023-09-28T10:00+08:00", "2wd", "2023-10-08T17:00+08:00", ["2023-10-07", "2023-10-08"]),
    ("2023-09-27T10:00+08:00", "15wd", "2023-10-24T17:00+08:00", None),
    # National Day 2025: off Oct 1–8; Sunday Sep 28 and Saturday Oct 11 are working days.
    ("2025-09-26T10:00+08:00", "3wd", "2025-09-30T17:00+08:00", ["2025-09-28", "2025-09-29", "2025-09-30"]),
    ("2025-09-26T10:00+08:00", "4wd", "2025-10-09T17:00+08:00", None),
    ("2025-09-30T10:00+08:00", "3wd", "2025-10-11T17:00+08:00", ["2025-10-09", "2025-10-10", "2025-10-11"]),
])
def test_working_day_deadlines_follow_the_official_schedule(cal: WorkCalendar, start: str, due: str, expected: str,
                                                            days: list[str] | None) -> None:
    d = cal.deadline(at(start), due)
    assert d.due == at(expected)
    assert d.calendar == "official"
    if days is not None:
        assert [x.isoformat() for x in d.working_days] == days
    assert len(d.working_days) == parse_due(due).amount


def test_15_working_days_over_national_day_2023_counts_the_make_up_weekend(cal: WorkCalendar) -> None:
    d = cal.deadline(at("2023-09-27T10:00+08:00"), "15wd")
    assert date(2023, 10, 7) in d.working_days and date(2023, 10, 8) in d.working_days
    assert not any(date(2023, 9, 29) <= x <= date(2023, 10, 6) for x in d.working_days)
    assert d.due == at("2023-10-24T17:00+08:00")


def test_day_of_receipt_does_not_count_and_rest_day_receipt_changes_nothing(cal: WorkCalendar) -> None:
    # Monday 2026-03-09 08:00 and 23:00 both give Tuesday as the first working day.
    assert cal.deadline(at("2026-03-09T08:00+08:00"), "1wd").due == at("2026-03-10T17:00+08:00")
    assert cal.deadline(at("2026-03-09T23:00+08:00"), "1wd").due == at("2026-03-10T17:00+08:00")
    # Saturday and Sunday receipts: Monday is the first working day.
    assert cal.deadline(at("2026-03-07T10:00+08:00"), "1wd").due == at("2026-03-09T17:00+08:00")
    assert cal.deadline(at("2026-03-08T10:00+08:00"), "1wd").due == at("2026-03-09T17:00+08:00")


def test_hour_and_day_clocks_run_through_holidays(cal: WorkCalendar) -> None:
    start = at("2024-02-10T22:00+08:00")  # first day of Spring Festival 2024
    assert cal.deadline(start, "5h").due == at("2024-02-11T03:00+08:00")
    assert cal.deadline(start, "48h").due == start + timedelta(hours=48)
    assert cal.deadline(start, "2d").due == at("2024-02-13T00:00+08:00")  # end (24:00) of the 2nd day after
    assert cal.deadline(start, "5h").calendar == "official"
    assert cal.deadline(start, "5h").working_days == ()


def test_midnight_day_end_and_utc_input() -> None:
    cal = WorkCalendar(day_end="midnight")
    assert cal.deadline(at("2023-09-28T02:00+00:00"), "2wd").due == at("2023-10-09T00:00+08:00")
    naive = WorkCalendar().deadline(datetime(2023, 9, 28, 10, 0), "2wd")  # naive = Asia/Shanghai
    assert naive.due == at("2023-10-08T17:00+08:00")


def test_2026_to_2027_uses_the_fallback_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    cal = WorkCalendar()
    d = cal.deadline(at("2026-12-28T10:00+08:00"), "15wd")
    assert d.calendar == "fallback"
    assert date(2027, 1, 1) in d.working_days  # a weekday, so the fallback counts it: hence the flag
    assert d.due == at("2027-01-18T17:00+08:00")
    assert 2027 in cal.fallback_years
    assert "year=2027" in caplog.text
    # A clock that ends before 2027 is official.
    assert cal.deadline(at("2026-12-28T10:00+08:00"), "3wd").calendar == "official"
    # 2026-12-31 (Thursday) is an official working day, 2027-01-01 (Friday) is a fallback one.
    assert cal.day(date(2026, 12, 31)) == (True, "official")
    assert cal.day(date(2027, 1, 1)) == (True, "fallback")


def test_2026_to_2027_with_an_override_file() -> None:
    cal = WorkCalendar.from_files([FIXTURE_2027])
    d = cal.deadline(at("2026-12-28T10:00+08:00"), "15wd")
    assert d.calendar == "override"
    assert date(2027, 1, 1) not in d.working_days
    assert d.due == at("2027-01-19T17:00+08:00")  # one day later than the fallback: 1 January is a holiday
    spring = cal.deadline(at("2027-02-04T10:00+08:00"), "2wd")  # test file: Feb 5–12 off, Saturday Feb 13 make-up
    assert [x.isoformat() for x in spring.working_days] == ["2027-02-13", "2027-02-15"]
    assert 2027 not in cal.fallback_years


def test_the_shipped_calendar_invents_no_2027_holidays() -> None:
    assert 2027 not in WorkCalendar.from_files().overrides


@pytest.mark.parametrize(("body", "message"), [
    ("year: 2027\nsource: test file x\nworkdays: [{date: 2027-02-10, name: x}]\n", "is a weekday"),
    ("year: 2027\nsource: test file x\nholidays: [{name: x, from: 2028-01-01, to: 2028-01-02}]\n", "not in year 2027"),
    ("year: 2027\nsource: test file x\nholidays: [{name: x, from: 2027-01-03, to: 2027-01-01}]\n", "before"),
    ("year: 2027\nsource: test file x\nholiday: []\n", "holiday"),
    ("year: 2027\nholidays: []\n", "source"),
])
def test_bad_override_files_are_refused_with_the_field(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "2027.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        WorkCalendar.from_files([path])
    assert message in err.value.message and "2027.yaml" in err.value.message


def test_due_times_read_case_and_spaces() -> None:
    assert str(parse_due(" 15 WD ")) == "15wd" and str(parse_due("48H")) == "48h" and str(parse_due("2d")) == "2d"


@pytest.mark.parametrize("bad", ["", "15", "0wd", "-3h", "3 weeks", "1.5h", "wd", None, 5, "99999h"])
def test_unreadable_due_times(bad: object) -> None:
    with pytest.raises(ValueError, match="cannot read due time"):
        parse_due(bad)


def test_warning_times(cal: WorkCalendar) -> None:
    d = cal.deadline(at("2023-09-27T10:00+08:00"), "15wd")
    assert cal.warning_time(d, before_working_days=1) == at("2023-10-23T17:00+08:00")
    d5 = cal.deadline(at("2026-03-10T10:00+08:00"), "5h")
    assert cal.warning_time(d5, before_hours=timedelta(hours=1)) == at("2026-03-10T14:00+08:00")
    d1 = cal.deadline(at("2026-03-10T10:00+08:00"), "1wd")
    assert cal.warning_time(d1, before_working_days=1) == d1.start  # no earlier working day: warn from the start


def test_office_hours_and_working_days_between(cal: WorkCalendar) -> None:
    assert cal.is_office_hours(at("2024-02-18T10:00+08:00"))  # 调休 Sunday
    assert not cal.is_office_hours(at("2024-02-12T10:00+08:00"))  # Spring Festival Monday
    assert not cal.is_office_hours(at("2026-03-10T18:00+08:00"))
    assert cal.working_days_between(at("2023-09-28T10:00+08:00"), at("2023-10-08T09:00+08:00")) == (2, "official")
    assert cal.working_days_between(at("2023-09-28T10:00+08:00"), at("2023-09-28T18:00+08:00"))[0] == 0
