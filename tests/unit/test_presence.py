"""PresenceTracker: missed rounds, timeouts, duplicates and cross-reads, table-driven."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from devices.rfid.presence import PresenceChange, PresenceTracker

# A step is ("obs", reader, epc, rssi, t), ("end", reader, t) or ("tick", t).
Step = tuple[Any, ...]
Change = tuple[str, str, str]  # (kind, reader, epc)


def rounds(
    n: int,
    t0: float,
    heard: Mapping[str, Mapping[str, int | None]],
    readers: tuple[str, ...] = ("A",),
    dt: float = 0.1,
    dup: int = 1,
) -> list[Step]:
    """``n`` inventory rounds of ``readers`` starting at ``t0``; ``heard[reader][epc] = rssi``."""
    steps: list[Step] = []
    for k in range(n):
        t = round(t0 + k * dt, 6)
        for reader in readers:
            for epc, rssi in heard.get(reader, {}).items():
                steps += [("obs", reader, epc, rssi, t)] * dup
        steps += [("end", reader, round(t + dt / 2, 6)) for reader in readers]
    return steps


def noisy(n: int, t0: float, a: int, b: int, noise: int) -> list[Step]:
    """``n`` rounds where A and B hear T with opposite +-``noise`` dB swings each round."""
    steps: list[Step] = []
    for k in range(n):
        sign = 1 if k % 2 else -1
        heard: dict[str, dict[str, int | None]] = {
            "A": {"T": a + sign * noise},
            "B": {"T": b - sign * noise},
        }
        steps += rounds(1, t0 + k * 0.1, heard, ("A", "B"))
    return steps


def reads(reader: str, epc: str, times: list[float]) -> list[Step]:
    return [("obs", reader, epc, None, t) for t in times]


def ticks(times: list[float]) -> list[Step]:
    return [("tick", t) for t in times]


def play(tracker: PresenceTracker, steps: list[Step]) -> list[PresenceChange]:
    changes: list[PresenceChange] = []
    for op, *args in steps:
        if op == "obs":
            changes += tracker.observe(*args)
        elif op == "end":
            changes += tracker.end_round(*args)
        else:
            changes += tracker.tick(*args)
    return changes


@dataclass
class Case:
    name: str
    steps: list[Step]
    changes: list[Change]
    present: dict[str, str]
    options: dict[str, Any] = field(default_factory=dict)


A = {"A": {"T": -50}}
NOTHING: dict[str, dict[str, int | None]] = {}
CASES = [
    Case("arrives on first read", rounds(1, 0, A), [("arrived", "A", "T")], {"T": "A"}),
    Case(
        "duplicates arrive once",
        rounds(5, 0, A, dup=7),
        [("arrived", "A", "T")],
        {"T": "A"},
    ),
    Case(
        "fewer missed rounds than N is no departure",
        rounds(2, 0, A) + rounds(2, 0.2, NOTHING) + rounds(1, 0.4, A) + rounds(2, 0.5, NOTHING),
        [("arrived", "A", "T")],
        {"T": "A"},
    ),
    Case(
        "departs after N consecutive missed rounds",
        rounds(2, 0, A) + rounds(3, 0.2, NOTHING),
        [("arrived", "A", "T"), ("departed", "A", "T")],
        {},
    ),
    Case(
        "missing_rounds=1 departs at the first miss",
        rounds(1, 0, A) + rounds(1, 0.1, NOTHING),
        [("arrived", "A", "T"), ("departed", "A", "T")],
        {},
        {"missing_rounds": 1},
    ),
    Case(
        "comes back after departing",
        rounds(1, 0, A) + rounds(3, 0.1, NOTHING) + rounds(1, 0.4, A),
        [("arrived", "A", "T"), ("departed", "A", "T"), ("arrived", "A", "T")],
        {"T": "A"},
    ),
    Case(
        "two tags, two readers, independent",
        rounds(2, 0, {"A": {"T": -50}, "B": {"U": -52}}, ("A", "B"))
        + rounds(3, 0.2, {"B": {"U": -52}}, ("A", "B")),
        [("arrived", "A", "T"), ("arrived", "B", "U"), ("departed", "A", "T")],
        {"U": "B"},
    ),
    Case(
        "timeout reader: gone after timeout_s without a frame",
        reads("D", "C", [0.0, 0.065, 0.13]) + ticks([0.3, 0.5, 0.53, 0.6]),
        [("arrived", "D", "C"), ("departed", "D", "C")],
        {},
        {"timeout_s": 0.4},
    ),
    Case(
        "timeout reader: a card left on the reader stays",
        reads("D", "C", [k * 0.065 for k in range(40)])
        + ticks([k * 0.065 + 0.01 for k in range(40)]),
        [("arrived", "D", "C")],
        {"C": "D"},
        {"timeout_s": 0.4},
    ),
    Case(
        "no timeout_s: a timeout reader keeps its tags",
        reads("D", "C", [0.0]) + ticks([10.0]),
        [("arrived", "D", "C")],
        {"C": "D"},
    ),
    Case(
        "same round cross-read, weaker reader first: settles at the best",
        rounds(1, 0, {"A": {"T": -70}, "B": {"T": -50}}, ("A", "B"))
        + rounds(10, 0.1, {"A": {"T": -70}, "B": {"T": -50}}, ("A", "B")),
        [("arrived", "A", "T"), ("departed", "A", "T"), ("arrived", "B", "T")],
        {"T": "B"},
    ),
    Case(
        "same round cross-read, best reader first: one arrival",
        rounds(10, 0, {"B": {"T": -50}, "A": {"T": -70}}, ("B", "A")),
        [("arrived", "B", "T")],
        {"T": "B"},
    ),
    Case(
        "no flapping under alternating +-3 dB noise",
        rounds(1, 0, {"A": {"T": -60}}, ("A", "B")) + noisy(30, 0.1, -60, -60, 3),
        [("arrived", "A", "T")],
        {"T": "A"},
    ),
    Case(
        "a neighbour 4 dB better under +-3 dB noise does not take the tag (hysteresis 6 dB)",
        rounds(3, 0, {"A": {"T": -60}}, ("A", "B")) + noisy(20, 0.3, -60, -56, 3),
        [("arrived", "A", "T")],
        {"T": "A"},
    ),
    Case(
        "moves once when the neighbour is clearly better",
        rounds(5, 0, {"A": {"T": -60}}, ("A", "B"))
        + rounds(20, 0.5, {"A": {"T": -72}, "B": {"T": -58}}, ("A", "B")),
        [("arrived", "A", "T"), ("departed", "A", "T"), ("arrived", "B", "T")],
        {"T": "B"},
    ),
    Case(
        "a few loud rounds from a neighbour do not move it",
        rounds(5, 0, {"A": {"T": -60}}, ("A", "B"))
        + rounds(4, 0.5, {"A": {"T": -60}, "B": {"T": -40}}, ("A", "B"))
        + rounds(10, 0.9, {"A": {"T": -60}}, ("A", "B")),
        [("arrived", "A", "T")],
        {"T": "A"},
    ),
    Case(
        "a larger hysteresis keeps it",
        rounds(5, 0, {"A": {"T": -60}}, ("A", "B"))
        + rounds(20, 0.5, {"A": {"T": -72}, "B": {"T": -58}}, ("A", "B")),
        [("arrived", "A", "T")],
        {"T": "A"},
        {"hysteresis_db": 20.0},
    ),
    Case(
        "leaves its cabinet but the neighbour still hears it",
        rounds(4, 0, {"A": {"T": -50}, "B": {"T": -65}}, ("A", "B"))
        + rounds(3, 0.4, {"B": {"T": -65}}, ("A", "B")),
        [("arrived", "A", "T"), ("departed", "A", "T"), ("arrived", "B", "T")],
        {"T": "B"},
    ),
    Case(
        "leaves both cabinets",
        rounds(4, 0, {"A": {"T": -50}, "B": {"T": -65}}, ("A", "B"))
        + rounds(3, 0.4, NOTHING, ("A", "B")),
        [("arrived", "A", "T"), ("departed", "A", "T")],
        {},
    ),
    Case(
        "readers without RSSI never move a tag",
        rounds(10, 0, {"A": {"T": None}, "B": {"T": None}}, ("A", "B")),
        [("arrived", "A", "T")],
        {"T": "A"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_presence_table(case: Case) -> None:
    tracker = PresenceTracker(**case.options)
    changes = play(tracker, case.steps)
    assert [(c.kind, c.reader, c.epc) for c in changes] == case.changes
    assert tracker.present() == case.present


def test_departure_time_is_the_round_that_completes_the_misses() -> None:
    tracker = PresenceTracker(missing_rounds=3)
    changes = play(tracker, rounds(2, 0, A) + rounds(3, 0.2, NOTHING))
    assert changes[-1] == PresenceChange("departed", "A", "T", None, 0.45)


def test_timeout_departure_time() -> None:
    tracker = PresenceTracker(timeout_s=0.5)
    tracker.observe("D", "C", None, 2.0)
    assert tracker.tick(2.25) == []
    assert tracker.tick(2.5) == [PresenceChange("departed", "D", "C", None, 2.5)]


def test_arrival_carries_the_read() -> None:
    tracker = PresenceTracker()
    assert tracker.observe("A", "T", -47, 3.5) == [PresenceChange("arrived", "A", "T", -47, 3.5)]
    assert tracker.observe("A", "T", -40, 3.6) == []
    assert tracker.holder("T") == "A"
    assert tracker.holder("X") is None


def test_move_reports_the_new_readers_mean() -> None:
    tracker = PresenceTracker()
    steps = rounds(5, 0, {"A": {"T": -60}}, ("A", "B")) + rounds(
        20, 0.5, {"A": {"T": -75}, "B": {"T": -50}}, ("A", "B")
    )
    arrivals = [c for c in play(tracker, steps) if c.kind == "arrived"]
    assert [(c.reader, c.rssi) for c in arrivals] == [("A", -60), ("B", -50)]


def test_present_is_a_copy() -> None:
    tracker = PresenceTracker()
    tracker.observe("A", "T", -50, 0.0)
    tracker.present().clear()
    assert tracker.present() == {"T": "A"}


@pytest.mark.parametrize(
    "options",
    [{"missing_rounds": 0}, {"window_rounds": 0}, {"timeout_s": 0}, {"hysteresis_db": -1}],
)
def test_rejects_nonsense_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PresenceTracker(**options)
