"""Inventory (清查, DOMAIN.md rule 13): an RFID sweep of every cabinet of a room,
reconciled with the ledger.

Pure: the ledger's documents, what each cabinet reader answered and ``now`` go in; one
item per document or tag, and the changes the register takes from the sweep, come out.

Outcomes:

``present``        read in its home cabinet
``wrong_cabinet``  read in another cabinet than its home (a classified document in a
                   general cabinet is also a breach of separate storage)
``missing``        expected in a cabinet that was swept, read nowhere
``on_loan``        on an open loan and read nowhere (as it should be)
``unknown_tag``    read, and no document of the ledger carries the tag
``retired_tag``    read, and its document is destroyed (or otherwise gone for good)
``unchecked``      read nowhere, and the cabinet where it should be was not swept (its
                   reader did not answer, or the controller has none)

The register follows the sweep, like a tag arriving in a cabinet: a document read in its
home cabinet is ``in_cabinet`` there, one read elsewhere ``misplaced`` there, an open loan
of a document read in a cabinet is closed (the folder is back), and a document expected
in a swept cabinet and read nowhere is ``missing``. A destroyed document read raises
``destroyed_tag_seen``. Documents on loan and documents not checked are left as they are.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from tracker.domain.model import CloseLoan, Decision, Document, Move, RaiseAlarm

#: The outcomes, in the order a report lists them.
OUTCOMES = (
    "missing",
    "wrong_cabinet",
    "retired_tag",
    "unknown_tag",
    "unchecked",
    "on_loan",
    "present",
)

#: Statuses of documents that are gone for good: their tag should be read nowhere.
RETIRED = frozenset({"destroyed", "returned"})


@dataclass(frozen=True, slots=True)
class Item:
    """One line of an inventory report."""

    outcome: str
    epc: str | None
    document_id: int | None = None
    cabinet: str | None = None  # where it was read (a cabinet key)
    home: str | None = None
    status_before: str | None = None  # the ledger's status before the sweep
    status_after: str | None = None  # and after it
    holder: str | None = None  # the person it was on loan to
    detail: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reconciliation:
    items: tuple[Item, ...]
    decisions: tuple[Decision, ...]


def expected_cabinet(doc: Document) -> str | None:
    """Where the ledger says the document is: its location while in a cabinet, its home
    while on loan or missing (where it should come back to)."""
    if doc.location is not None and doc.status in ("in_cabinet", "misplaced"):
        return doc.location
    return doc.home


def reconcile(
    *,
    documents: Sequence[Document],
    reads: Mapping[str, Collection[str]],
    cabinets: Mapping[str, bool],
    now: datetime,
) -> Reconciliation:
    """Reconcile the sweep with the ledger.

    ``documents``: the ledger's documents expected in the room's cabinets, and any other
    document whose tag was read; ``reads``: cabinet key -> the tags its reader reported,
    for every cabinet whose reader answered (a cabinet missing here was not swept);
    ``cabinets``: the room's cabinet keys -> whether the cabinet is general (普通柜).
    """
    read_in: dict[str, list[str]] = {}
    for cabinet in sorted(reads):
        for epc in reads[cabinet]:
            read_in.setdefault(epc, []).append(cabinet)
    items: list[Item] = []
    decisions: list[Decision] = []
    known: set[str] = set()
    for doc in documents:
        if doc.tag is not None:
            known.add(doc.tag)
        where = read_in.get(doc.tag, []) if doc.tag is not None else []
        item: Item | None
        if where:
            item, decided = _read(doc, where, cabinets, now)
        else:
            item, decided = _not_read(doc, reads)
        if item is not None:
            items.append(item)
            decisions += decided
    for epc in sorted(set(read_in) - known):
        for cabinet in read_in[epc]:
            items.append(Item("unknown_tag", epc, cabinet=cabinet))
    items.sort(key=lambda i: (OUTCOMES.index(i.outcome), i.epc or "", i.cabinet or ""))
    return Reconciliation(tuple(items), tuple(decisions))


def _base(doc: Document) -> Item:
    return Item(
        "",
        doc.tag,
        document_id=doc.id,
        home=doc.home,
        status_before=doc.status,
        status_after=doc.status,
        holder=doc.holder,
    )


def _read(
    doc: Document, where: list[str], cabinets: Mapping[str, bool], now: datetime
) -> tuple[Item, list[Decision]]:
    # A tag heard by two readers (neighbouring cabinets): its home cabinet wins.
    cabinet = doc.home if doc.home in where else where[0]
    base = replace(_base(doc), cabinet=cabinet)
    detail: dict[str, object] = {}
    if len(where) > 1:
        detail["also_read_in"] = [c for c in where if c != cabinet]
    if doc.status in RETIRED:
        decided: list[Decision] = []
        if doc.status == "destroyed":
            decided.append(
                RaiseAlarm(
                    "destroyed_tag_seen",
                    "critical",
                    point=f"cabinet:{cabinet.rsplit('/', 1)[-1]}",
                    document_id=doc.id,
                    detail={"epc": doc.tag, "cabinet": cabinet, "by": "inventory"},
                )
            )
        return replace(base, outcome="retired_tag", detail=detail), decided
    decisions: list[Decision] = []
    home = cabinet == doc.home
    if doc.holder is not None:
        decisions.append(CloseLoan(doc.id, now, not home))
        detail["loan_closed"] = True
    status = "in_cabinet" if home else "misplaced"
    if not home and cabinets.get(cabinet, False) and doc.classification.classified:
        detail["separate_storage"] = "a classified document in a general cabinet"
    if doc.status != status or doc.location != cabinet or doc.holder is not None:
        decisions.append(Move(doc.id, status, cabinet, None))
    outcome = "present" if home else "wrong_cabinet"
    return replace(base, outcome=outcome, status_after=status, detail=detail), decisions


def _not_read(
    doc: Document, reads: Mapping[str, Collection[str]]
) -> tuple[Item | None, list[Decision]]:
    if doc.status in RETIRED:
        return None, []  # gone for good, and not read: nothing to say
    base = _base(doc)
    if doc.holder is not None:
        return replace(base, outcome="on_loan"), []
    expected = expected_cabinet(doc)
    detail: dict[str, object] = {"expected_in": expected}
    if expected not in reads:
        return replace(base, outcome="unchecked", detail=detail), []
    decisions: list[Decision] = []
    if doc.status != "missing" or doc.location is not None:
        decisions.append(Move(doc.id, "missing", None, None))
    return replace(base, outcome="missing", status_after="missing", detail=detail), decisions
