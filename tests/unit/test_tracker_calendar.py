"""Closing time on a room's calendar (tracker/domain/calendar.py): weekdays, holidays,
make-up working days (调休), clocks that jump over days, Asia/Shanghai against UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from protocol.hours import Calendar, parse_spans, parse_weekly
from tracker.domain.calendar import closing_for, closing_time, closings_between

SHANGHAI = ZoneInfo("Asia/Shanghai")
OFFICE = ["08:30-12:00", "13:30-17:30"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
WEEKLY = parse_weekly({d: OFFICE for d in WEEKDAYS}, "hours")
# National Day 2026: Thu 1 .. Wed 7 October off, made up on Sun 27 September and Sat 10 October.
HOLIDAYS = frozenset(date(2026, 10, d) for d in range(1, 8))
WORKDAYS = frozenset({date(2026, 9, 27), date(2026, 10, 10)})

CALENDARS = {
    "plain": Calendar(weekly=WEEKLY),
    "national-day": Calendar(weekly=WEEKLY, holidays=HOLIDAYS, workdays=WORKDAYS),
    "makeup-hours": Calendar(
        weekly=WEEKLY,
        holidays=HOLIDAYS,
        workdays=WORKDAYS,
        makeup_hours=parse_spans(["09:00-12:00"], "hours.makeup"),
    ),
    "short-friday": Calendar(
        weekly=parse_weekly({**{d: OFFICE for d in WEEKDAYS}, "fri": ["08:30-15:00"]}, "hours")
    ),
    "unordered": Calendar(weekly=parse_weekly({"wed": ["13:30-17:30", "08:30-12:00"]}, "h")),
    "to-midnight": Calendar(weekly=parse_weekly({"wed": ["18:00-24:00"]}, "hours")),
    "utc": Calendar(timezone="UTC", weekly=WEEKLY),
    "empty": Calendar(),
}


def cst(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    """A Shanghai wall-clock time, in UTC as a clock hands it over."""
    return datetime(y, mo, d, h, mi, tzinfo=SHANGHAI).astimezone(UTC)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cal", "day", "closing"),
    [
        pytest.param("plain", date(2026, 9, 30), cst(2026, 9, 30, 17, 30), id="wednesday"),
        pytest.param("plain", date(2026, 10, 3), None, id="saturday-off"),
        pytest.param("plain", date(2026, 10, 4), None, id="sunday-off"),
        pytest.param("plain", date(2026, 10, 1), cst(2026, 10, 1, 17, 30), id="no-holidays-set"),
        pytest.param("national-day", date(2026, 10, 1), None, id="holiday-thursday"),
        pytest.param("national-day", date(2026, 10, 7), None, id="holiday-wednesday"),
        pytest.param(
            "national-day", date(2026, 10, 8), cst(2026, 10, 8, 17, 30), id="back-to-work"
        ),
        pytest.param(
            "national-day", date(2026, 9, 27), cst(2026, 9, 27, 17, 30), id="调休-sunday-mon-hours"
        ),
        pytest.param(
            "national-day", date(2026, 10, 10), cst(2026, 10, 10, 17, 30), id="调休-saturday"
        ),
        pytest.param(
            "makeup-hours", date(2026, 10, 10), cst(2026, 10, 10, 12, 0), id="调休-own-hours"
        ),
        pytest.param(
            "makeup-hours", date(2026, 10, 9), cst(2026, 10, 9, 17, 30), id="friday-normal-hours"
        ),
        pytest.param("short-friday", date(2026, 10, 2), cst(2026, 10, 2, 15, 0), id="short-friday"),
        pytest.param(
            "short-friday", date(2026, 10, 1), cst(2026, 10, 1, 17, 30), id="thursday-full"
        ),
        pytest.param(
            "unordered", date(2026, 9, 30), cst(2026, 9, 30, 17, 30), id="latest-span-not-last"
        ),
        pytest.param("unordered", date(2026, 9, 29), None, id="day-not-in-table"),
        pytest.param(
            "to-midnight",
            date(2026, 9, 30),
            datetime(2026, 9, 30, 23, 59, 59, 999999, tzinfo=SHANGHAI),
            id="until-24:00",
        ),
        pytest.param("utc", date(2026, 9, 30), utc(2026, 9, 30, 17, 30), id="utc-wednesday"),
        pytest.param("empty", date(2026, 9, 30), None, id="no-timetable"),
    ],
)
def test_closing_time(cal: str, day: date, closing: datetime | None) -> None:
    got = closing_time(CALENDARS[cal], day)
    assert got == closing
    if got is not None:
        assert got.tzinfo == CALENDARS[cal].zone  # local wall-clock, in the room's zone


def test_closing_time_is_local_wall_clock() -> None:
    got = closing_time(CALENDARS["plain"], date(2026, 9, 30))
    assert got is not None
    assert (got.date(), got.time(), got.utcoffset()) == (
        date(2026, 9, 30),
        time(17, 30),
        timedelta(hours=8),
    )
    assert got.astimezone(UTC) == utc(2026, 9, 30, 9, 30)


@pytest.mark.parametrize(
    ("cal", "when", "closing"),
    [
        pytest.param(
            "plain", cst(2026, 9, 30, 10, 0), cst(2026, 9, 30, 17, 30), id="morning-same-day"
        ),
        pytest.param(
            "plain", cst(2026, 9, 30, 20, 0), cst(2026, 9, 30, 17, 30), id="evening-same-day"
        ),
        pytest.param(
            "plain", cst(2026, 9, 30, 0, 0), cst(2026, 9, 30, 17, 30), id="local-midnight"
        ),
        # 23:00 UTC on the 29th is already 07:00 on the 30th in Shanghai
        pytest.param(
            "plain", utc(2026, 9, 29, 23, 0), cst(2026, 9, 30, 17, 30), id="shanghai-next-day"
        ),
        pytest.param(
            "utc", utc(2026, 9, 29, 23, 0), utc(2026, 9, 29, 17, 30), id="utc-same-instant"
        ),
        # 20:00 UTC on the 30th is 04:00 on a holiday in Shanghai, a working evening in UTC
        pytest.param("national-day", utc(2026, 9, 30, 20, 0), None, id="shanghai-holiday"),
        pytest.param(
            "utc", utc(2026, 9, 30, 20, 0), utc(2026, 9, 30, 17, 30), id="utc-working-day"
        ),
        pytest.param("national-day", cst(2026, 10, 3, 9, 0), None, id="holiday-saturday"),
        pytest.param(
            "national-day", cst(2026, 10, 10, 9, 0), cst(2026, 10, 10, 17, 30), id="调休-saturday"
        ),
        pytest.param(
            "plain",
            datetime(2026, 9, 30, 10, 0, tzinfo=ZoneInfo("America/New_York")),
            cst(2026, 9, 30, 17, 30),
            id="other-zone-input",
        ),
    ],
)
def test_closing_for(cal: str, when: datetime, closing: datetime | None) -> None:
    assert closing_for(CALENDARS[cal], when) == closing


@pytest.mark.parametrize(
    ("cal", "after", "upto", "closings"),
    [
        pytest.param(
            "plain", cst(2026, 9, 30, 8, 0), cst(2026, 9, 30, 12, 0), [], id="before-closing"
        ),
        pytest.param(
            "plain",
            cst(2026, 9, 30, 17, 0),
            cst(2026, 9, 30, 18, 0),
            [cst(2026, 9, 30, 17, 30)],
            id="across-closing",
        ),
        pytest.param(
            "plain",
            cst(2026, 9, 30, 17, 0),
            cst(2026, 9, 30, 17, 30),
            [cst(2026, 9, 30, 17, 30)],
            id="upto-closing-included",
        ),
        pytest.param(
            "plain", cst(2026, 9, 30, 17, 30), cst(2026, 9, 30, 18, 0), [], id="after-excluded"
        ),
        pytest.param(
            "plain",
            cst(2026, 9, 30, 17, 0),
            cst(2026, 10, 1, 9, 0),
            [cst(2026, 9, 30, 17, 30)],
            id="overnight",
        ),
        pytest.param(
            "plain",
            cst(2026, 10, 2, 18, 0),
            cst(2026, 10, 5, 8, 0),
            [],
            id="over-a-weekend",
        ),
        pytest.param(
            "national-day",
            cst(2026, 9, 26, 10, 0),
            cst(2026, 10, 12, 10, 0),
            [
                cst(2026, 9, 27, 17, 30),  # Sunday, 调休
                cst(2026, 9, 28, 17, 30),
                cst(2026, 9, 29, 17, 30),
                cst(2026, 9, 30, 17, 30),
                cst(2026, 10, 8, 17, 30),
                cst(2026, 10, 9, 17, 30),
                cst(2026, 10, 10, 17, 30),  # Saturday, 调休
            ],
            id="clock-jump-over-national-day",
        ),
        pytest.param(
            "makeup-hours",
            cst(2026, 10, 9, 18, 0),
            cst(2026, 10, 12, 18, 0),
            [cst(2026, 10, 10, 12, 0), cst(2026, 10, 12, 17, 30)],
            id="clock-jump-调休-own-hours",
        ),
        pytest.param(
            "plain", cst(2026, 9, 30, 18, 0), cst(2026, 9, 29, 18, 0), [], id="clock-went-back"
        ),
        pytest.param(
            "plain", cst(2026, 9, 30, 18, 0), cst(2026, 9, 30, 18, 0), [], id="no-time-passed"
        ),
        # one UTC hour, 09:00-10:00Z: 17:00-18:00 in Shanghai, the morning in UTC
        pytest.param(
            "plain",
            utc(2026, 9, 30, 9, 0),
            utc(2026, 9, 30, 10, 0),
            [utc(2026, 9, 30, 9, 30)],
            id="shanghai-closing-at-0930Z",
        ),
        pytest.param(
            "utc", utc(2026, 9, 30, 9, 0), utc(2026, 9, 30, 10, 0), [], id="utc-not-yet-closing"
        ),
        pytest.param(
            "plain", utc(2026, 9, 30, 17, 0), utc(2026, 9, 30, 18, 0), [], id="shanghai-at-night"
        ),
        pytest.param(
            "utc",
            utc(2026, 9, 30, 17, 0),
            utc(2026, 9, 30, 18, 0),
            [utc(2026, 9, 30, 17, 30)],
            id="utc-closing-at-1730Z",
        ),
        # a Pi without an RTC booting in 1970, then set right: only the newest closing
        pytest.param(
            "plain",
            utc(1970, 1, 1),
            cst(2026, 9, 30, 18, 0),
            [cst(2026, 9, 30, 17, 30)],
            id="wild-clock-after-closing",
        ),
        pytest.param(
            "plain",
            utc(1970, 1, 1),
            cst(2026, 9, 30, 10, 0),
            [cst(2026, 9, 29, 17, 30)],
            id="wild-clock-before-closing",
        ),
    ],
)
def test_closings_between(
    cal: str, after: datetime, upto: datetime, closings: list[datetime]
) -> None:
    assert closings_between(CALENDARS[cal], after, upto) == closings


def test_a_year_of_closings_is_every_working_day() -> None:
    got = closings_between(CALENDARS["plain"], cst(2025, 9, 30, 17, 0), cst(2026, 9, 30, 18, 0))
    assert len(got) == 262  # 52 weeks and two days (Tue 30 Sep 2025 .. Wed 30 Sep 2026)
    assert got[0] == cst(2025, 9, 30, 17, 30) and got[-1] == cst(2026, 9, 30, 17, 30)
    assert all(c.weekday() < 5 and c.time() == time(17, 30) for c in got)
