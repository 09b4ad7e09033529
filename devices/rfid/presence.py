"""Which tag is where: turns a stream of reads into arrivals and departures.

Pure: no I/O, no clock; every call carries the time ``t`` (monotonic seconds). Not
thread-safe: when several reader threads share one tracker, serialise calls with a lock.

Two kinds of reader feed it:

* round readers (UHF cabinet readers polled in inventory rounds) call :meth:`end_round`
  after each round; a tag they hold departs after ``missing_rounds`` rounds in a row
  without a read, so one missed read is not "the folder left the cabinet";
* timeout readers (an RDM6300 desk reader streaming frames) never call ``end_round``;
  a tag they hold departs once :meth:`tick` sees ``timeout_s`` without a read.

Cross-reads: cabinets stand side by side, so a tag is often heard by several readers. It
belongs to the one hearing it best, judged on the mean RSSI of the last ``window_rounds``
rounds, and only moves when another reader, having heard it in each of those rounds, beats
the holder by more than ``hysteresis_db``. A move is reported as a departure from the old
reader followed by an arrival at the new one. When the holder loses a tag that another
reader heard in its latest round, that reader takes it over at once.

A tag arrives on its first valid read. During its first round (until the holder ends a
round, or the next ``tick`` for a timeout reader) a reader that hears it louder in that
same round takes it over without hysteresis, so a tag read first by a neighbour settles at
its own cabinet straight away.
"""

from collections import deque
from dataclasses import dataclass
from typing import Literal

Kind = Literal["arrived", "departed"]


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """``kind`` happened to ``epc`` at ``reader`` at time ``t``.

    ``rssi`` is the read that caused an arrival (the reader's mean when a tag moves);
    None for departures and for readers that give no RSSI.
    """

    kind: Kind
    reader: str
    epc: str
    rssi: int | None
    t: float


class _Sighting:
    """One tag as heard by one reader."""

    __slots__ = ("rssi_sum", "rssi_n", "heard", "missed", "last_t", "window")

    def __init__(self, t: float, window_rounds: int) -> None:
        self.rssi_sum = 0
        self.rssi_n = 0
        self.heard = False
        self.missed = 0
        self.last_t = t
        self.window: deque[tuple[int, float]] = deque(maxlen=window_rounds)


class _Reader:
    __slots__ = ("tags", "round", "round_based")

    def __init__(self) -> None:
        self.tags: dict[str, _Sighting] = {}
        self.round = 0
        self.round_based = False


class PresenceTracker:
    """Presence of tags at one or more readers (see the module docstring)."""

    def __init__(
        self,
        *,
        missing_rounds: int = 3,
        timeout_s: float | None = None,
        window_rounds: int = 5,
        hysteresis_db: float = 6.0,
    ) -> None:
        if missing_rounds < 1:
            raise ValueError("missing_rounds must be at least 1")
        if window_rounds < 1:
            raise ValueError("window_rounds must be at least 1")
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if hysteresis_db < 0:
            raise ValueError("hysteresis_db must not be negative")
        self.missing_rounds = missing_rounds
        self.timeout_s = timeout_s
        self.window_rounds = window_rounds
        self.hysteresis_db = hysteresis_db
        self._readers: dict[str, _Reader] = {}
        self._holder: dict[str, str] = {}
        self._first_round: set[str] = set()

    def present(self) -> dict[str, str]:
        """Every present tag and the reader holding it: ``{epc: reader}``."""
        return dict(self._holder)

    def holder(self, epc: str) -> str | None:
        """The reader holding ``epc``, or None if it is not present."""
        return self._holder.get(epc)

    def observe(self, reader: str, epc: str, rssi: int | None, t: float) -> list[PresenceChange]:
        """Record one read; returns the arrival (or first-round move) it causes, if any."""
        r = self._readers.get(reader)
        if r is None:
            r = self._readers[reader] = _Reader()
        s = r.tags.get(epc)
        if s is None:
            s = r.tags[epc] = _Sighting(t, self.window_rounds)
        s.heard = True
        s.last_t = t
        if rssi is not None:
            s.rssi_sum += rssi
            s.rssi_n += 1
        holder = self._holder.get(epc)
        if holder is None:
            self._holder[epc] = reader
            self._first_round.add(epc)
            return [PresenceChange("arrived", reader, epc, rssi, t)]
        if holder != reader and rssi is not None and epc in self._first_round:
            h = self._readers[holder].tags.get(epc)
            if h is not None and h.rssi_n and s.rssi_sum * h.rssi_n > h.rssi_sum * s.rssi_n:
                return self._move(epc, holder, reader, rssi, t)
        return []

    def end_round(self, reader: str, t: float) -> list[PresenceChange]:
        """Close an inventory round of ``reader``: departures, and moves across readers."""
        r = self._readers.get(reader)
        if r is None:
            r = self._readers[reader] = _Reader()
        r.round += 1
        r.round_based = True
        changes: list[PresenceChange] = []
        gone: list[str] = []
        for epc, s in r.tags.items():
            if s.heard:
                s.heard = False
                s.missed = 0
                if s.rssi_n:
                    s.window.append((r.round, s.rssi_sum / s.rssi_n))
                    s.rssi_sum = 0
                    s.rssi_n = 0
            else:
                s.missed += 1
                if s.missed >= self.missing_rounds:
                    gone.append(epc)
        for epc in gone:
            del r.tags[epc]
            if self._holder.get(epc) == reader:
                changes += self._depart(epc, reader, t)
        for epc in r.tags:
            holder = self._holder.get(epc)
            if holder == reader:
                self._first_round.discard(epc)
            if holder is not None:
                changes += self._challenge(epc, holder, t)
        return changes

    def tick(self, t: float) -> list[PresenceChange]:
        """Apply ``timeout_s`` to timeout readers (those that never called ``end_round``)."""
        changes: list[PresenceChange] = []
        for name, r in self._readers.items():
            if r.round_based:
                continue
            for epc in [e for e, s in r.tags.items() if self._expired(s, t)]:
                del r.tags[epc]
                if self._holder.get(epc) == name:
                    changes += self._depart(epc, name, t)
            for epc in r.tags:
                if self._holder.get(epc) == name:
                    self._first_round.discard(epc)
        return changes

    def _expired(self, s: _Sighting, t: float) -> bool:
        return self.timeout_s is not None and t - s.last_t >= self.timeout_s

    def _window(self, reader: str, epc: str) -> tuple[float, int]:
        """Mean of the per-round RSSI means over the reader's last ``window_rounds`` rounds,
        and how many of those rounds heard the tag with an RSSI (0: no mean)."""
        r = self._readers[reader]
        s = r.tags.get(epc)
        if s is None:
            return 0.0, 0
        oldest = r.round - self.window_rounds
        total = 0.0
        n = 0
        for rnd, mean in s.window:
            if rnd > oldest:
                total += mean
                n += 1
        return (total / n if n else 0.0), n

    def _challenge(self, epc: str, holder: str, t: float) -> list[PresenceChange]:
        """Move ``epc`` to a reader beating the holder by more than the hysteresis.

        A challenger must have heard the tag in every one of its last ``window_rounds``
        rounds, so a few loud rounds from a neighbour do not move a folder.
        """
        held, n = self._window(holder, epc)
        if not n:
            return []
        best, best_mean = None, held + self.hysteresis_db
        for name, r in self._readers.items():
            if name != holder and epc in r.tags:
                mean, n = self._window(name, epc)
                if n >= self.window_rounds and mean > best_mean:
                    best, best_mean = name, mean
        if best is None:
            return []
        return self._move(epc, holder, best, round(best_mean), t)

    def _move(
        self, epc: str, old: str, new: str, rssi: int | None, t: float
    ) -> list[PresenceChange]:
        self._holder[epc] = new
        return [
            PresenceChange("departed", old, epc, None, t),
            PresenceChange("arrived", new, epc, rssi, t),
        ]

    def _depart(self, epc: str, reader: str, t: float) -> list[PresenceChange]:
        """``reader`` lost ``epc``: hand it to the best reader hearing it in its latest round."""
        del self._holder[epc]
        self._first_round.discard(epc)
        changes = [PresenceChange("departed", reader, epc, None, t)]
        best: str | None = None
        best_mean = float("-inf")
        for name, r in self._readers.items():
            s = r.tags.get(epc)
            if name == reader or s is None:
                continue
            # Only a reader hearing it now takes it over; one that is missing it too does not.
            if (s.missed and not s.heard) if r.round_based else self._expired(s, t):
                continue
            mean, n = self._window(name, epc)
            score = mean if n else float("-inf")
            if best is None or score > best_mean:
                best, best_mean = name, score
        if best is not None:
            self._holder[epc] = best
            rssi = None if best_mean == float("-inf") else round(best_mean)
            changes.append(PresenceChange("arrived", best, epc, rssi, t))
        return changes
