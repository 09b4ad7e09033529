"""Working hours: weekly spans in local time, lunch, holidays, make-up working days (调休),
extended-hours grants and the parsers' error messages."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from protocol.hours import (
    Calendar,
    Grant,
    HoursError,
    Span,
    day_spans,
    is_working_time,
    parse_dates,
    parse_grants,
    parse_spans,
    parse_weekly,
)
from protocol.timefmt import parse_ts

SHANGHAI = ZoneInfo("Asia/Shanghai")
OFFICE = ["08:30-12:00", "13:30-17:30"]
WEEKLY = parse_weekly({d: OFFICE for d in ("mon", "tue", "wed", "thu", "fri")}, "hours")
HOLIDAYS = frozenset({date(2026, 10, 1), date(2026, 10, 2)})  # Thu, Fri
WORKDAYS = frozenset({date(2026, 9, 27), date(2026, 10, 10)})  # Sun, Sat

CALENDARS = {
    "plain": Calendar(weekly=WEEKLY),
    "holidays": Calendar(weekly=WEEKLY, holidays=HOLIDAYS, workdays=WORKDAYS),
    "makeup": Calendar(
        weekly=WEEKLY,
        holidays=HOLIDAYS,
        workdays=WORKDAYS,
        makeup_hours=parse_spans(["09:00-12:00"], "hours.makeup"),
    ),
    "granted": Calendar(
        weekly=WEEKLY,
        holidays=HOLIDAYS,
        grants=parse_grants(
            [
                {"start": "2026-11-27T14:00:00.000Z", "end": "2026-11-27T16:00:00.000Z"},
                {"start": "2026-10-01T02:00:00.000Z", "end": "2026-10-01T03:00:00.000Z", "by": "x"},
            ],
            "extended",
        ),
    ),
    "berlin": Calendar(timezone="Europe/Berlin", weekly=WEEKLY),
    "empty": Calendar(),
}


def local(*args: int) -> datetime:
    """A Shanghai wall-clock time, handed to the rule in UTC (as a clock gives it)."""
    return datetime(*args, tzinfo=SHANGHAI).astimezone(UTC)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


WORKING_TABLE: list[tuple[str, str, datetime, bool]] = [
    # weekly spans and the lunch break (Friday 2026-11-27)
    ("friday 09:00", "plain", local(2026, 11, 27, 9, 0), True),
    ("friday 23:10", "plain", local(2026, 11, 27, 23, 10), False),
    ("just before opening", "plain", local(2026, 11, 27, 8, 29, 59), False),
    ("opening is inclusive", "plain", local(2026, 11, 27, 8, 30), True),
    ("last minute of morning", "plain", local(2026, 11, 27, 11, 59, 59), True),
    ("lunch starts", "plain", local(2026, 11, 27, 12, 0), False),
    ("lunch", "plain", local(2026, 11, 27, 13, 0), False),
    ("afternoon opening", "plain", local(2026, 11, 27, 13, 30), True),
    ("last second", "plain", local(2026, 11, 27, 17, 29, 59), True),
    ("closing is exclusive", "plain", local(2026, 11, 27, 17, 30), False),
    ("saturday", "plain", local(2026, 11, 28, 10, 0), False),
    ("sunday", "plain", local(2026, 11, 29, 10, 0), False),
    ("monday", "plain", local(2026, 11, 30, 10, 0), True),
    # holidays and make-up working days
    ("national day holiday", "holidays", local(2026, 10, 1, 10, 0), False),
    ("second holiday", "holidays", local(2026, 10, 2, 14, 0), False),
    ("thursday before the holiday", "holidays", local(2026, 9, 24, 10, 0), True),
    ("make-up sunday, monday hours", "holidays", local(2026, 9, 27, 8, 30), True),
    ("make-up sunday, lunch", "holidays", local(2026, 9, 27, 12, 30), False),
    ("make-up saturday afternoon", "holidays", local(2026, 10, 10, 16, 0), True),
    ("make-up saturday evening", "holidays", local(2026, 10, 10, 18, 0), False),
    ("ordinary saturday", "holidays", local(2026, 10, 17, 10, 0), False),
    ("make-up hours: before", "makeup", local(2026, 10, 10, 8, 45), False),
    ("make-up hours: start", "makeup", local(2026, 10, 10, 9, 0), True),
    ("make-up hours: afternoon", "makeup", local(2026, 10, 10, 14, 0), False),
    ("make-up hours leave weekdays alone", "makeup", local(2026, 10, 12, 8, 45), True),
    ("make-up hours do not reopen holidays", "makeup", local(2026, 10, 1, 10, 0), False),
    # extended-hours grants, [start, end) in UTC
    ("grant covers friday night", "granted", utc(2026, 11, 27, 15, 10), True),
    ("grant start is inclusive", "granted", utc(2026, 11, 27, 14, 0), True),
    ("grant end is exclusive", "granted", utc(2026, 11, 27, 16, 0), False),
    ("before the grant", "granted", utc(2026, 11, 27, 13, 59, 59), False),
    ("grant on a holiday", "granted", utc(2026, 10, 1, 2, 30), True),
    ("holiday outside its grant", "granted", utc(2026, 10, 1, 3, 0), False),
    # the local day is what counts, not the UTC day (Asia/Shanghai is UTC+8, no DST)
    ("friday 15:10Z is 23:10 local", "plain", utc(2026, 11, 27, 15, 10), False),
    ("friday 01:00Z is 09:00 local", "plain", utc(2026, 11, 27, 1, 0), True),
    ("friday 16:30Z is saturday 00:30", "plain", utc(2026, 11, 27, 16, 30), False),
    ("sunday 23:59Z is monday 07:59", "plain", utc(2026, 11, 29, 23, 59), False),
    ("monday 00:30Z is monday 08:30", "plain", utc(2026, 11, 30, 0, 30), True),
    ("sunday 01:00Z is sunday 09:00", "plain", utc(2026, 11, 29, 1, 0), False),
    ("friday 09:29Z is 17:29 local", "plain", utc(2026, 11, 27, 9, 29), True),
    ("friday 09:30Z is 17:30 local", "plain", utc(2026, 11, 27, 9, 30), False),
    ("make-up sunday by UTC saturday", "holidays", utc(2026, 9, 27, 0, 30), True),
    ("holiday starts at local midnight", "holidays", utc(2026, 9, 30, 16, 0), False),
    # a zone with DST: spans stay in local time on both sides of the change
    ("berlin winter 08:30 CET", "berlin", utc(2026, 3, 23, 7, 30), True),
    ("berlin winter 08:29 CET", "berlin", utc(2026, 3, 23, 7, 29), False),
    ("berlin summer 08:30 CEST", "berlin", utc(2026, 3, 30, 6, 30), True),
    ("berlin summer 08:29 CEST", "berlin", utc(2026, 3, 30, 6, 29), False),
    ("no timetable at all", "empty", local(2026, 11, 27, 10, 0), False),
]


@pytest.mark.parametrize(
    ("calendar", "now", "expected"),
    [(c, n, e) for _, c, n, e in WORKING_TABLE],
    ids=[name for name, _, _, _ in WORKING_TABLE],
)
def test_is_working_time(calendar: str, now: datetime, expected: bool):
    assert is_working_time(CALENDARS[calendar], now) is expected


def test_the_friday_night_example_of_the_spec():
    now = utc(2026, 11, 27, 15, 10)
    assert now.astimezone(SHANGHAI).replace(tzinfo=None) == datetime(2026, 11, 27, 23, 10)
    assert now.astimezone(SHANGHAI).strftime("%a") == "Fri"
    assert not is_working_time(CALENDARS["plain"], now)
    assert is_working_time(CALENDARS["plain"], local(2026, 11, 27, 9, 0))


@pytest.mark.parametrize(
    "zone", ["UTC", "Asia/Shanghai", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"]
)
@pytest.mark.parametrize(
    "instant", [utc(2026, 11, 27, 1, 0), utc(2026, 11, 27, 15, 10), utc(2026, 11, 30, 0, 30)]
)
def test_the_zone_now_is_expressed_in_does_not_matter(zone: str, instant: datetime):
    expected = is_working_time(CALENDARS["plain"], instant)
    assert is_working_time(CALENDARS["plain"], instant.astimezone(ZoneInfo(zone))) is expected


def test_naive_now_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        is_working_time(CALENDARS["plain"], datetime(2026, 11, 27, 9, 0))


@pytest.mark.parametrize(
    ("calendar", "day", "expected"),
    [
        ("holidays", date(2026, 10, 1), ()),
        ("holidays", date(2026, 9, 27), WEEKLY["mon"]),
        ("makeup", date(2026, 9, 27), (Span(time(9), time(12)),)),
        ("makeup", date(2026, 11, 28), ()),
        ("plain", date(2026, 11, 27), WEEKLY["fri"]),
    ],
)
def test_day_spans(calendar: str, day: date, expected: tuple[Span, ...]):
    assert tuple(day_spans(CALENDARS[calendar], day)) == tuple(expected)


# -- parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (OFFICE, ((time(8, 30), time(12)), (time(13, 30), time(17, 30)))),
        ("08:30-12:00, 13:30-17:30", ((time(8, 30), time(12)), (time(13, 30), time(17, 30)))),
        ([], ()),
        ("", ()),
        (["00:00-24:00"], ((time(0), time(23, 59, 59, 999999)),)),
        (["23:00-24:00"], ((time(23), time(23, 59, 59, 999999)),)),
    ],
)
def test_parse_spans(value: Any, expected: tuple[tuple[time, time], ...]):
    assert parse_spans(value, "hours.mon") == tuple(Span(a, b) for a, b in expected)


@pytest.mark.parametrize(
    "value",
    [
        ["8:30-12:00"],
        ["08:30"],
        ["08:30-12:00-13:00"],
        ["24:00-24:00"],
        ["08:60-12:00"],
        ["08:00-24:30"],
        ["08:00-25:00"],
        ["12:00-08:30"],
        ["12:00-12:00"],
        ["22:00-02:00"],
        [830],
        [None],
        830,
        {"start": "08:30"},
        None,
    ],
)
def test_bad_spans_name_the_key(value: Any):
    with pytest.raises(HoursError, match=r"hours\.mon"):
        parse_spans(value, "hours.mon")


def test_parse_weekly_fills_missing_days_closed():
    weekly = parse_weekly({"sat": ["09:00-11:00"]}, "hours")
    assert weekly["sat"] == (Span(time(9), time(11)),)
    assert weekly["mon"] == () and weekly["sun"] == ()
    assert set(weekly) == {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ({"monday": OFFICE}, "hours"),
        ({"mon": OFFICE, "Fri": OFFICE}, "hours"),
        (["mon"], "hours"),
        ({"tue": ["8-12"]}, "hours.tue"),
    ],
)
def test_bad_weekly_names_the_key(value: Any, key: str):
    with pytest.raises(HoursError, match=rf"^{key}\b"):
        parse_weekly(value, "hours")


def test_parse_dates():
    assert parse_dates(["2026-10-01", "2026-10-02", "2026-10-01"], "hours.holidays") == frozenset(
        {date(2026, 10, 1), date(2026, 10, 2)}
    )
    assert parse_dates([], "hours.holidays") == frozenset()


@pytest.mark.parametrize(
    "value",
    [
        ["2026-02-30"],
        ["2026-10-1"],
        ["01/10/2026"],
        ["tomorrow"],
        [20261001],
        [None],
        ["2026-10-01", 5],
        "2026-10-01",
        {"2026-10-01": True},
    ],
)
def test_bad_dates_name_the_key(value: Any):
    with pytest.raises(HoursError, match=r"hours\.holidays"):
        parse_dates(value, "hours.holidays")


def test_parse_grants():
    grants = parse_grants(
        [{"start": "2026-11-27T14:00:00.000Z", "end": "2026-11-27T16:00:00.000Z", "by": "leader"}],
        "extended",
    )
    assert grants == (
        Grant(parse_ts("2026-11-27T14:00:00.000Z"), parse_ts("2026-11-27T16:00:00.000Z")),
    )
    assert parse_grants([], "extended") == ()


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"start": "2026-11-27T14:00:00.000Z"}, "extended"),
        (["2026-11-27T14:00:00.000Z"], "extended[0]"),
        ([{"start": "2026-11-27T14:00:00.000Z"}], "extended[0]"),
        ([{"start": "2026-11-27T14:00:00Z", "end": "2026-11-27T16:00:00.000Z"}], "extended[0]"),
        (
            [{"start": "2026-11-27T16:00:00.000Z", "end": "2026-11-27T14:00:00.000Z"}],
            "extended[0]",
        ),
        (
            [{"start": "2026-11-27T16:00:00.000Z", "end": "2026-11-27T16:00:00.000Z"}],
            "extended[0]",
        ),
        (
            [
                {"start": "2026-11-27T14:00:00.000Z", "end": "2026-11-27T16:00:00.000Z"},
                {"start": "2026-11-27T14:00:00.000Z", "end": "2026-11-27T16:00:00.000Z", "x": 1},
            ],
            "extended[1]",
        ),
    ],
)
def test_bad_grants_name_the_entry(value: Any, where: str):
    with pytest.raises(HoursError) as info:
        parse_grants(value, "extended")
    assert str(info.value).startswith(where)


# -- time zones -------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "UTC", "Europe/Berlin"])
def test_known_zones(zone: str):
    assert Calendar(timezone=zone).zone == ZoneInfo(zone)


@pytest.mark.parametrize(
    "zone", ["Mars/Base", "", "Asia/", "../etc/passwd", "/etc/localtime", "zone.tab", "Asia"]
)
def test_unknown_zone_raises_hours_error_naming_it(zone: str):
    cal = Calendar(timezone=zone, weekly=WEEKLY)
    with pytest.raises(HoursError) as info:
        cal.zone  # noqa: B018
    assert repr(zone) in str(info.value)
    with pytest.raises(HoursError):
        is_working_time(cal, utc(2026, 11, 27, 1, 0))


def test_hours_error_is_a_value_error():
    assert issubclass(HoursError, ValueError)
