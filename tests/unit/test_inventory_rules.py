"""Inventory reconciliation (清查, DOMAIN.md rule 13): table-driven, pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from tracker.domain.inventory import OUTCOMES, Item, expected_cabinet, reconcile
from tracker.domain.levels import Level
from tracker.domain.model import CloseLoan, Document, Move, RaiseAlarm

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
C1, C2, G1 = "hq/r/c1", "hq/r/c2", "hq/r/g1"
CABINETS = {C1: False, C2: False, G1: True}
TAG, OTHER = "E2801170000000000000AA01", "E2801170000000000000AA02"


def doc(**kw: Any) -> Document:
    base = Document(
        id=1,
        number="机要〔2026〕1号",
        classification=Level.SECRET,
        tag=TAG,
        home=C1,
        status="in_cabinet",
        location=C1,
    )
    return replace(base, **kw)


ON_LOAN = {"status": "on_loan", "location": None, "holder": "sec"}

# (name, document, reads {cabinet: tags}, outcome, cabinet read in, status after,
#  decisions, detail)
CASES: list[
    tuple[str, Document, dict[str, list[str]], str, Any, Any, list[Any], dict[str, Any]]
] = [
    ("in its home cabinet", doc(), {C1: [TAG], C2: []}, "present", C1, "in_cabinet", [], {}),
    (
        "in another cabinet",
        doc(),
        {C1: [], C2: [TAG]},
        "wrong_cabinet",
        C2,
        "misplaced",
        [Move(1, "misplaced", C2, None)],
        {},
    ),
    (
        "already misplaced there: no change",
        doc(status="misplaced", location=C2),
        {C1: [], C2: [TAG]},
        "wrong_cabinet",
        C2,
        "misplaced",
        [],
        {},
    ),
    (
        "misplaced, found back home",
        doc(status="misplaced", location=C2),
        {C1: [TAG], C2: []},
        "present",
        C1,
        "in_cabinet",
        [Move(1, "in_cabinet", C1, None)],
        {},
    ),
    (
        "classified in a general cabinet",
        doc(),
        {C1: [], G1: [TAG]},
        "wrong_cabinet",
        G1,
        "misplaced",
        [Move(1, "misplaced", G1, None)],
        {"separate_storage": "a classified document in a general cabinet"},
    ),
    (
        "internal in a general cabinet: misplaced, storage fine",
        doc(classification=Level.INTERNAL),
        {C1: [], G1: [TAG]},
        "wrong_cabinet",
        G1,
        "misplaced",
        [Move(1, "misplaced", G1, None)],
        {},
    ),
    (
        "read nowhere",
        doc(),
        {C1: [], C2: []},
        "missing",
        None,
        "missing",
        [Move(1, "missing", None, None)],
        {"expected_in": C1},
    ),
    (
        "misplaced in c2, read nowhere",
        doc(status="misplaced", location=C2),
        {C1: [], C2: []},
        "missing",
        None,
        "missing",
        [Move(1, "missing", None, None)],
        {"expected_in": C2},
    ),
    (
        "missing already, still read nowhere",
        doc(status="missing", location=None),
        {C1: [], C2: []},
        "missing",
        None,
        "missing",
        [],
        {"expected_in": C1},
    ),
    (
        "missing, found in its cabinet",
        doc(status="missing", location=None),
        {C1: [TAG]},
        "present",
        C1,
        "in_cabinet",
        [Move(1, "in_cabinet", C1, None)],
        {},
    ),
    ("on loan, read nowhere", doc(**ON_LOAN), {C1: [], C2: []}, "on_loan", None, "on_loan", [], {}),
    (
        "on loan, read at home: the loan closes",
        doc(**ON_LOAN),
        {C1: [TAG], C2: []},
        "present",
        C1,
        "in_cabinet",
        [CloseLoan(1, NOW, False), Move(1, "in_cabinet", C1, None)],
        {"loan_closed": True},
    ),
    (
        "on loan, read in another cabinet: closed, misplaced",
        doc(**ON_LOAN),
        {C1: [], C2: [TAG]},
        "wrong_cabinet",
        C2,
        "misplaced",
        [CloseLoan(1, NOW, True), Move(1, "misplaced", C2, None)],
        {"loan_closed": True},
    ),
    (
        "its cabinet's reader did not answer",
        doc(),
        {C2: []},
        "unchecked",
        None,
        "in_cabinet",
        [],
        {"expected_in": C1},
    ),
    (
        "its cabinet not swept, found in another",
        doc(),
        {C2: [TAG]},
        "wrong_cabinet",
        C2,
        "misplaced",
        [Move(1, "misplaced", C2, None)],
        {},
    ),
    (
        "heard by two readers: home wins",
        doc(),
        {C1: [TAG], C2: [TAG]},
        "present",
        C1,
        "in_cabinet",
        [],
        {"also_read_in": [C2]},
    ),
    (
        "heard by two readers, neither home: the first",
        doc(home="hq/r/c9", location="hq/r/c9"),
        {C1: [TAG], C2: [TAG]},
        "wrong_cabinet",
        C1,
        "misplaced",
        [Move(1, "misplaced", C1, None)],
        {"also_read_in": [C2]},
    ),
    (
        "destroyed, read: alarm",
        doc(status="destroyed", location=None),
        {C1: [], C2: [TAG]},
        "retired_tag",
        C2,
        "destroyed",
        [
            RaiseAlarm(
                "destroyed_tag_seen",
                "critical",
                point="cabinet:c2",
                document_id=1,
                detail={"epc": TAG, "cabinet": C2, "by": "inventory"},
            )
        ],
        {},
    ),
    (
        "returned to the issuer, read: flagged",
        doc(status="returned", location=None),
        {C1: [TAG]},
        "retired_tag",
        C1,
        "returned",
        [],
        {},
    ),
]


@pytest.mark.parametrize(
    ("name", "document", "reads", "outcome", "cabinet", "after", "decisions", "detail"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_one_document(
    name: str,
    document: Document,
    reads: dict[str, list[str]],
    outcome: str,
    cabinet: str | None,
    after: str,
    decisions: list[Any],
    detail: dict[str, Any],
) -> None:
    result = reconcile(documents=[document], reads=reads, cabinets=CABINETS, now=NOW)
    [item] = result.items
    assert item == Item(
        outcome,
        document.tag,
        document_id=document.id,
        cabinet=cabinet,
        home=document.home,
        status_before=document.status,
        status_after=after,
        holder=document.holder,
        detail=detail,
    )
    assert list(result.decisions) == decisions


@pytest.mark.parametrize(
    ("status", "reads"),
    [("destroyed", {C1: []}), ("returned", {C1: [], C2: []}), ("destroyed", {})],
)
def test_a_retired_document_not_read_says_nothing(status: str, reads: dict[str, list[str]]) -> None:
    result = reconcile(
        documents=[doc(status=status, location=None)], reads=reads, cabinets=CABINETS, now=NOW
    )
    assert result.items == () and result.decisions == ()


def test_unknown_tags_one_item_per_cabinet_heard() -> None:
    result = reconcile(
        documents=[doc()], reads={C1: [TAG, OTHER], C2: [OTHER]}, cabinets=CABINETS, now=NOW
    )
    assert [(i.outcome, i.epc, i.cabinet) for i in result.items] == [
        ("unknown_tag", OTHER, C1),
        ("unknown_tag", OTHER, C2),
        ("present", TAG, C1),
    ]
    unknown = result.items[0]
    assert unknown.document_id is None and unknown.status_before is None


def test_a_document_without_a_tag_cannot_be_read() -> None:
    result = reconcile(documents=[doc(tag=None)], reads={C1: [TAG]}, cabinets=CABINETS, now=NOW)
    assert [(i.outcome, i.epc) for i in result.items] == [("missing", None), ("unknown_tag", TAG)]


def test_items_come_in_the_order_of_the_outcomes() -> None:
    docs = [
        doc(id=1, tag="A1"),  # present
        doc(id=2, tag="A2"),  # missing
        doc(id=3, tag="A3"),  # wrong cabinet
        doc(id=4, tag="A4", **ON_LOAN),  # on loan
        doc(id=5, tag="A5", home=G1, location=G1),  # unchecked: g1 not swept
    ]
    result = reconcile(
        documents=docs, reads={C1: ["A1", "ZZ"], C2: ["A3"]}, cabinets=CABINETS, now=NOW
    )
    got = [(i.outcome, i.epc) for i in result.items]
    assert got == [
        ("missing", "A2"),
        ("wrong_cabinet", "A3"),
        ("unknown_tag", "ZZ"),
        ("unchecked", "A5"),
        ("on_loan", "A4"),
        ("present", "A1"),
    ]
    assert [o for o, _ in got] == sorted((o for o, _ in got), key=OUTCOMES.index)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (doc(), C1),
        (doc(status="misplaced", location=C2), C2),
        (doc(**ON_LOAN), C1),
        (doc(status="missing", location=None), C1),
    ],
)
def test_expected_cabinet(document: Document, expected: str) -> None:
    assert expected_cabinet(document) == expected
