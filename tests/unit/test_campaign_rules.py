"""Annual return rules (清退), table by table, and what the core rules do with the tag of
a document given back to its issuer (status ``returned``)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tracker.domain import rules
from tracker.domain.campaign import (
    CUSTODY_HOLDER,
    Candidate,
    by_holder,
    complete,
    due_for_return,
    holder_of,
    progress,
    return_refusal,
    sign_off_refusal,
)
from tracker.domain.levels import Level
from tracker.domain.model import STATUSES, Document, Loan, Person, Record, Session

T = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def cand(
    i: int,
    return_by: str | None,
    issuer: str | None = "省委办公厅",
    status: str = "in_cabinet",
    holder: str | None = None,
    elsewhere: bool = False,
) -> Candidate:
    rb = date.fromisoformat(return_by) if return_by else None
    return Candidate(i, f"F-{i}", issuer, rb, status, holder, elsewhere)


DOCS = [
    cand(1, "2026-06-30"),
    cand(2, "2026-12-31", "市委办公室", "on_loan", "p1"),
    cand(3, "2027-01-01"),
    cand(4, None),
    cand(5, "2025-03-01", "市委办公室"),
    cand(6, "2026-01-01", status="destroyed"),
    cand(7, "2026-01-01", status="returned"),
    cand(8, "2026-02-01", elsewhere=True),
    cand(9, "2024-02-01", None, "missing"),
]


@pytest.mark.parametrize(
    ("year", "issuer", "ids"),
    [
        (2026, None, [9, 2, 5, 1]),  # no issuer first, then by issuer and number
        (2025, None, [9, 5]),
        (2027, None, [9, 2, 5, 1, 3]),
        (2026, "省委办公厅", [1]),
        (2026, "市委办公室", [2, 5]),
        (2026, "nobody", []),
        (2023, None, []),
    ],
)
def test_due_for_return(year: int, issuer: str | None, ids: list[int]) -> None:
    assert [d.id for d in due_for_return(DOCS, year, issuer)] == ids


def test_holders() -> None:
    assert holder_of(DOCS[1]) == "p1"
    assert holder_of(DOCS[0]) == CUSTODY_HOLDER == "secretary"
    grouped = by_holder(due_for_return(DOCS, 2026, None))
    assert {k: [d.id for d in v] for k, v in grouped.items()} == {
        "p1": [2],
        "secretary": [9, 5, 1],
    }
    assert list(grouped) == ["p1", "secretary"]


@pytest.mark.parametrize(
    ("item", "status", "campaign", "why"),
    [
        ("pending", "in_cabinet", "open", None),
        ("pending", "on_loan", "open", None),
        ("pending", "missing", "open", None),
        ("returned", "returned", "open", "it is returned already"),
        ("pending", "destroyed", "open", "it was destroyed"),
        ("pending", "in_cabinet", "complete", "the campaign is complete"),
    ],
)
def test_return_refusal(item: str, status: str, campaign: str, why: str | None) -> None:
    assert return_refusal(item, status, campaign) == why


SECRETARY = frozenset({"secretary"})


@pytest.mark.parametrize(
    ("states", "signed", "roles", "why"),
    [
        (["returned", "returned"], False, SECRETARY, None),
        (["returned"], False, frozenset({"secrecy-office"}), None),
        (["returned", "pending"], False, SECRETARY, "1 of 2 items are not back yet"),
        (["pending", "pending"], False, SECRETARY, "2 of 2 items are not back yet"),
        (["returned"], True, SECRETARY, "signed off already"),
        (
            ["returned"],
            False,
            frozenset({"borrower"}),
            "a sign-off needs the secretary or secrecy-office role",
        ),
    ],
)
def test_sign_off_refusal(
    states: list[str], signed: bool, roles: frozenset[str], why: str | None
) -> None:
    assert sign_off_refusal(states, signed, roles) == why


@pytest.mark.parametrize(
    ("states", "counts"),
    [([], (0, 0)), (["pending"], (0, 1)), (["returned", "pending", "returned"], (2, 3))],
)
def test_progress(states: list[str], counts: tuple[int, int]) -> None:
    assert progress(states) == counts


@pytest.mark.parametrize(
    ("signed", "done"), [([True, True], True), ([True, False], False), ([], True)]
)
def test_complete(signed: list[bool], done: bool) -> None:
    assert complete(signed) is done


# -- the core rules and a returned document --------------------------------------------

RETURNED = Document(1, "F-1", Level.SECRET, "E0000001", "hq/r/c1", status="returned")
SEC = Person("sec", "秘书", Level.SECRET, frozenset({"secretary"}))
SESSION = Session("sec", "04A1", "cabinet:c1", frozenset({"hq/r/c1"}), T, T.replace(hour=3))


def test_returned_is_a_status() -> None:
    assert "returned" in STATUSES


@pytest.mark.parametrize(
    ("decide", "reader", "event"),
    [
        (
            lambda: rules.tag_departed(
                doc=RETURNED,
                epc="E0000001",
                cabinet="hq/r/c1",
                sessions=[SESSION],
                people={"sec": SEC},
                now=T,
                closing=None,
            ),
            "hq/r/c1",
            "departed",
        ),
        (
            lambda: rules.tag_arrived(doc=RETURNED, epc="E0000001", cabinet="hq/r/c1", now=T),
            "hq/r/c1",
            "arrived",
        ),
        (
            lambda: rules.tag_seen(
                doc=RETURNED, epc="E0000001", reader="portal", sessions=[], passes=[], now=T
            ),
            "portal",
            "seen",
        ),
        (
            lambda: rules.tag_seen(
                doc=RETURNED, epc="E0000001", reader="desk", sessions=[], passes=[], now=T
            ),
            "desk",
            "seen",
        ),
    ],
)
def test_a_returned_tag_is_a_sighting(decide: object, reader: str, event: str) -> None:
    """No loan, no move, no alarm: the ledger records that the tag was read again."""
    assert decide() == [  # type: ignore[operator]
        Record(
            "returned_tag_seen",
            epc="E0000001",
            document_id=1,
            detail={"reader": reader, "event": event, "number": "F-1"},
        )
    ]


def test_a_returned_document_is_not_missing_at_closing() -> None:
    closing = T.replace(hour=9)
    on_loan = Document(2, "F-2", Level.SECRET, "E2", "hq/r/c1", status="on_loan", holder="p")
    loans = {2: Loan(2, "p", T, closing, "in-room")}
    out = rules.end_of_day_missing([RETURNED, on_loan], loans, closing)
    assert [a.document_id for a in out] == [2]


def test_nothing_in_a_cabinet_to_take_once_returned() -> None:
    assert rules.takeable([RETURNED]) == set()
