"""An accelerated, injectable clock for the simulated room.

Between jumps it runs at ``speed`` times real time; :meth:`SimClock.advance_to` jumps
ahead (a scenario going from 08:31 to 11:30 in no time). Both ``now()`` and
``monotonic()`` move together, so every timer in the bridge (debounce, held-open,
relocking, presence timeouts, heartbeats) sees the same simulated time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class SimClock:
    def __init__(
        self,
        start: datetime,
        *,
        speed: float = 1.0,
        real: Callable[[], float] = time.monotonic,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._start = start.astimezone(UTC)
        self._speed = speed
        self._real = real
        self._real0 = real()
        self._offset = 0.0
        self._lock = threading.Lock()

    def _elapsed(self) -> float:
        with self._lock:
            return (self._real() - self._real0) * self._speed + self._offset

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed())

    def monotonic(self) -> float:
        return 1_000_000.0 + self._elapsed()

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        with self._lock:
            self._offset += seconds

    def advance_to(self, when: datetime) -> None:
        """Jump to ``when``; a time already past is left alone (the clock never goes back)."""
        delta = (when - self.now()).total_seconds()
        if delta > 0:
            self.advance(delta)
