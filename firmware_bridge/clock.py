"""Clocks. Rules never read the time themselves: a clock is passed in.

A clock has ``now()`` (aware UTC datetime: event timestamps, working hours) and
``monotonic()`` (seconds: debounce, presence, timers). The simulators ship an
accelerated one (:class:`simulators.clock.SimClock`) with the same two methods.
"""

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()
