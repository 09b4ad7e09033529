"""Working hours: a weekly timetable in local time, holidays, make-up working days (调休)
and extended-hours grants. Pure functions of their inputs, ``now`` included.

Part of the contract: ``policy.update`` carries this calendar from the tracker to the
controller, and both decide with these same functions (the controller alone when
offline, the tracker for unlocks and closing time)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from protocol.timefmt import parse_ts

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"(\d{2}):(\d{2})-(\d{2}):(\d{2})", re.ASCII)


class HoursError(ValueError):
    """A timetable, date or grant that cannot be understood."""


@dataclass(frozen=True)
class Span:
    start: time
    end: time

    def contains(self, t: time) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True)
class Grant:
    """Extended hours granted by an approver: ``[start, end)`` in UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Calendar:
    timezone: str = "Asia/Shanghai"
    weekly: Mapping[str, tuple[Span, ...]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    #: Hours of a make-up working day; defaults to Monday's.
    makeup_hours: tuple[Span, ...] | None = None
    grants: tuple[Grant, ...] = ()

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise HoursError(
            f"unknown time zone {name!r} (an IANA name like 'Asia/Shanghai')"
        ) from None


def parse_spans(value: object, where: str) -> tuple[Span, ...]:
    """``["08:30-12:00", "13:30-17:30"]`` or ``"08:30-12:00,13:30-17:30"``; ``[]`` = closed."""
    items: Iterable[object]
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, list):
        items = value
    else:
        raise HoursError(f"{where}: expected a list like ['08:30-17:30'], got {value!r}")
    spans = []
    for item in items:
        m = _SPAN.fullmatch(item) if isinstance(item, str) else None
        if not m:
            raise HoursError(f"{where}: {item!r} is not HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2 != 0):
            raise HoursError(f"{where}: {item!r} is not a valid time span")
        start = time(h1, m1)
        end = time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2)
        if end <= start:
            raise HoursError(f"{where}: {item!r} ends before it starts")
        spans.append(Span(start, end))
    return tuple(spans)


def parse_dates(value: object, where: str) -> frozenset[date]:
    if not isinstance(value, list):
        raise HoursError(f"{where}: expected a list of dates like ['2026-10-01']")
    out = set()
    for item in value:
        try:
            out.add(date.fromisoformat(item) if isinstance(item, str) else None)
        except ValueError:
            raise HoursError(f"{where}: {item!r} is not a date YYYY-MM-DD") from None
        if None in out:
            raise HoursError(f"{where}: {item!r} is not a date YYYY-MM-DD")
    return frozenset(d for d in out if d is not None)


def parse_grants(value: object, where: str) -> tuple[Grant, ...]:
    """``[{"start": "...Z", "end": "...Z"}]`` (wire timestamps)."""
    if not isinstance(value, list):
        raise HoursError(f"{where}: expected a list of {{start, end}}")
    grants = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) - {"start", "end", "by"}:
            raise HoursError(f"{where}[{i}]: expected {{start, end}}")
        try:
            start, end = parse_ts(item.get("start")), parse_ts(item.get("end"))
        except ValueError as exc:
            raise HoursError(f"{where}[{i}]: {exc}") from None
        if end <= start:
            raise HoursError(f"{where}[{i}]: ends before it starts")
        grants.append(Grant(start, end))
    return tuple(grants)


def parse_weekly(value: object, where: str) -> dict[str, tuple[Span, ...]]:
    if not isinstance(value, dict):
        raise HoursError(f"{where}: expected a table of days mon..sun")
    unknown = set(value) - set(DAYS)
    if unknown:
        raise HoursError(f"{where}: unknown days {sorted(unknown)}; use {', '.join(DAYS)}")
    return {day: parse_spans(value.get(day, []), f"{where}.{day}") for day in DAYS}


def day_spans(cal: Calendar, day: date) -> Sequence[Span]:
    """The working spans of one local calendar day."""
    if day in cal.holidays:
        return ()
    if day in cal.workdays:
        if cal.makeup_hours is not None:
            return cal.makeup_hours
        return cal.weekly.get("mon", ())
    return cal.weekly.get(DAYS[day.weekday()], ())


def is_working_time(cal: Calendar, now: datetime) -> bool:
    """True inside the timetable of the local day or inside an extended-hours grant."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if any(g.start <= now < g.end for g in cal.grants):
        return True
    local = now.astimezone(cal.zone)
    return any(span.contains(local.time()) for span in day_spans(cal, local.date()))
