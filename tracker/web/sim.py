"""Acting on a simulated room from the console (``ironroom demo`` only): open the door,
present a badge, take or return a folder, cut a tamper loop, and watch what the room, the
tracker and the ledger make of it.

A real tracker has no such thing: the console offers these controls only when the process
that serves it also runs a simulated room and hands it over as :class:`RoomControls`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SimAction:
    """One control: ``verb`` (open, close, badge, take, put, cut, restore) on ``target``
    (a point, a reader, or ``reader|EPC`` for a folder)."""

    verb: str
    target: str
    label: str  # what the target is, as a person reads it (a folder's number, say)


class RoomControls(Protocol):
    def actions(self) -> list[SimAction]:
        """What can be done now (a folder in a cabinet can be taken, one out put back)."""
        ...

    def do(self, verb: str, target: str) -> str:
        """Do it; returns a line saying what was done. Raises ValueError for an action
        that is not offered."""
        ...


VERBS = ("open", "close", "badge", "take", "put", "cut", "restore")
