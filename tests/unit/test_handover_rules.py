"""Handover rules (交接), table by table: the list, the successor, settling an item, the
pairing of two badges at a desk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tracker.domain.handover import (
    Listed,
    Outcome,
    Sighting,
    finished,
    handover_list,
    pairing,
    present_tags,
    returned_on_arrival,
    settle,
    successor_refusal,
)
from tracker.domain.levels import Level
from tracker.domain.model import Document, Person, Scope

T = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
SEC = Person("sec", "秘书", Level.SECRET, frozenset({"secretary"}))
SEC2 = Person("sec2", "新秘书", Level.SECRET, frozenset({"secretary"}))
P1 = Person("p1", "甲", Level.SECRET, frozenset({"borrower"}), dept="办公室")
P2 = Person("p2", "乙", Level.SECRET, frozenset({"borrower"}), dept="办公室")
LOW = Person("low", "丙", Level.INTERNAL)
OUT = Person("out", "丁", Level.SECRET, frozenset({"borrower"}), dept="财务处")
GONE = Person("gone", "戊", Level.SECRET, active=False)


def doc(i: int, status: str = "in_cabinet", holder: str | None = None, **kw: object) -> Document:
    loc = "hq/r/c1" if status in ("in_cabinet", "misplaced") else None
    return Document(
        id=i,
        number=f"F-{i}",
        classification=kw.pop("level", Level.SECRET),  # type: ignore[arg-type]
        tag=f"E{i:07d}",
        home="hq/r/c1",
        status=status,
        location=loc,
        holder=holder,
        **kw,  # type: ignore[arg-type]
    )


DOCS = [
    doc(1, "on_loan", "p1"),
    doc(2, "in_cabinet"),
    doc(3, "misplaced"),
    doc(4, "missing"),
    doc(5, "destroyed"),
    doc(6, "returned"),
    doc(7, "on_loan", "p2"),
    doc(8, "on_loan", "sec"),
]


@pytest.mark.parametrize(
    ("person", "expected"),
    [
        (P1, [Listed(1, "loan")]),
        (P2, [Listed(7, "loan")]),
        (
            SEC,
            [Listed(2, "custody"), Listed(3, "custody"), Listed(4, "custody"), Listed(8, "loan")],
        ),
        (LOW, []),
    ],
)
def test_handover_list(person: Person, expected: list[Listed]) -> None:
    assert handover_list(person, reversed(DOCS)) == expected


SCOPED = doc(9, "on_loan", "p1", scope=(Scope("dept", "办公室"),))
BY_ID = {d.id: d for d in [*DOCS, SCOPED]}


@pytest.mark.parametrize(
    ("succ", "pred", "listed", "why"),
    [
        (P2, P1, [Listed(1, "loan")], None),
        (P2, P1, [], None),
        (P1, P1, [], "p1 cannot hand over to themselves"),
        (GONE, P1, [], "gone is not active"),
        (
            LOW,
            P1,
            [Listed(1, "loan")],
            "F-1 cannot go to low: low's clearance 内部 is below 机密",
        ),
        (
            OUT,
            P1,
            [Listed(9, "loan")],
            "F-9 cannot go to out: out is outside the need-to-know scope of F-9",
        ),
        (OUT, P1, [Listed(1, "loan")], None),
        (SEC2, SEC, [Listed(2, "custody")], None),
        (
            P1,
            SEC,
            [Listed(2, "custody")],
            "sec keeps the room's documents (F-2): p1 needs the secretary role to take them over",
        ),
    ],
)
def test_successor_refusal(succ: Person, pred: Person, listed: list[Listed], why: str) -> None:
    assert successor_refusal(succ, pred, listed, BY_ID) == why


@pytest.mark.parametrize(
    ("reason", "document", "succ", "present", "outcome"),
    [
        # a loan still with the predecessor: over when present and readable
        ("loan", doc(1, "on_loan", "p1"), P2, True, Outcome("handed_over", transfer=True)),
        ("loan", doc(1, "on_loan", "p1"), P2, False, None),
        ("loan", doc(1, "on_loan", "p1"), LOW, True, None),
        # back in a cabinet: returned, present or not
        ("loan", doc(1, "in_cabinet"), P2, False, Outcome("returned")),
        ("loan", doc(1, "misplaced"), P2, True, Outcome("returned")),
        # taken by someone else, or gone missing: stays pending
        ("loan", doc(1, "on_loan", "p2"), P2, True, None),
        ("loan", doc(1, "missing"), P2, True, None),
        # custody: over when present
        ("custody", doc(2, "in_cabinet"), SEC2, True, Outcome("handed_over")),
        ("custody", doc(2, "in_cabinet"), SEC2, False, None),
        ("custody", doc(4, "missing"), SEC2, True, Outcome("handed_over")),
        ("custody", doc(2, "on_loan", "p1"), SEC2, True, None),
        # destroyed or given back meanwhile
        ("custody", doc(5, "destroyed"), SEC2, False, Outcome("gone")),
        ("loan", doc(6, "returned"), P2, False, Outcome("gone")),
    ],
)
def test_settle(
    reason: str, document: Document, succ: Person, present: bool, outcome: Outcome | None
) -> None:
    assert settle(reason, document, from_id="p1", successor=succ, present=present) == outcome


@pytest.mark.parametrize(
    ("reason", "document", "returned"),
    [
        ("loan", doc(1, "in_cabinet"), True),
        ("loan", doc(1, "misplaced"), True),
        ("loan", doc(1, "on_loan", "p1"), False),
        ("loan", doc(1, "missing"), False),
        ("custody", doc(1, "in_cabinet"), False),
    ],
)
def test_returned_on_arrival(reason: str, document: Document, returned: bool) -> None:
    assert returned_on_arrival(reason, document, "p1") is returned


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("sightings", "now", "pair"),
    [
        ([("from", "A", 0), ("to", "B", 30)], 30, ("A", "B")),
        ([("to", "B", 0), ("from", "A", 119)], 119, ("A", "B")),
        ([("from", "A", 0), ("to", "B", 120)], 120, ("A", "B")),
        ([("from", "A", 0), ("to", "B", 121)], 121, None),
        ([("from", "A", 0)], 10, None),
        ([("to", "B", 0), ("tag", "E1", 5)], 10, None),
        # the newest badge of each party
        ([("from", "A", 0), ("from", "A2", 50), ("to", "B", 60)], 60, ("A2", "B")),
        # a sighting after now does not count
        ([("from", "A", 0), ("to", "B", 90)], 60, None),
    ],
)
def test_pairing(
    sightings: list[tuple[str, str, float]], now: float, pair: tuple[str, str] | None
) -> None:
    seen = [Sighting(k, v, at(s)) for k, v, s in sightings]
    assert pairing(seen, at(now)) == pair


def test_pairing_window_is_a_parameter() -> None:
    seen = [Sighting("from", "A", at(0)), Sighting("to", "B", at(50))]
    assert pairing(seen, at(50), timedelta(seconds=40)) is None
    assert pairing(seen, at(50), timedelta(seconds=60)) == ("A", "B")


@pytest.mark.parametrize(
    ("sightings", "now", "tags"),
    [
        ([("tag", "E1", 0), ("tag", "E2", 100)], 110, {"E1", "E2"}),
        ([("tag", "E1", 0), ("tag", "E2", 100)], 121, {"E2"}),
        ([("from", "A", 0), ("tag", "E2", 200)], 100, set()),
    ],
)
def test_present_tags(sightings: list[tuple[str, str, float]], now: float, tags: set[str]) -> None:
    seen = [Sighting(k, v, at(s)) for k, v, s in sightings]
    assert present_tags(seen, at(now)) == tags


@pytest.mark.parametrize(
    ("states", "done"),
    [
        ([], True),
        (["handed_over", "returned", "gone"], True),
        (["handed_over", "pending"], False),
    ],
)
def test_finished(states: list[str], done: bool) -> None:
    assert finished(states) is done
