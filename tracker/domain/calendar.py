"""Closing time on a room's calendar (the same timetable the controller keeps)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from protocol.hours import Calendar, day_spans


def closing_time(cal: Calendar, day: date) -> datetime | None:
    """The end of the last working span of a local day (``None``: a day off)."""
    spans = day_spans(cal, day)
    if not spans:
        return None
    end = max(s.end for s in spans)
    return datetime.combine(day, end, tzinfo=cal.zone)


def closing_for(cal: Calendar, when: datetime) -> datetime | None:
    """The closing time of the local day ``when`` falls on."""
    return closing_time(cal, when.astimezone(cal.zone).date())


def closings_between(cal: Calendar, after: datetime, upto: datetime) -> list[datetime]:
    """Every closing time in ``(after, upto]``: the end-of-day checks that fell due.
    A room clock that jumped (a simulated day) gets each one, in order."""
    out = []
    day = after.astimezone(cal.zone).date()
    last = upto.astimezone(cal.zone).date()
    wild = (last - day).days > 366  # a wildly wrong clock: only the newest closing counts
    if wild:
        day = last - timedelta(days=1)
    while day <= last:
        c = closing_time(cal, day)
        if c is not None and after < c <= upto:
            out.append(c)
        day += timedelta(days=1)
    return out[-1:] if wild else out
