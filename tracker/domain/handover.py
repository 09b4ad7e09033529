"""Handover (交接, DOMAIN.md rule 9): what a person changing post holds or keeps, and
when each item of that list is settled. Pure functions of plain values."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tracker.domain.model import Document, Person
from tracker.domain.rules import read_refusal

#: Both parties' badges at one desk within this long of each other make a pairing; a
#: folder read at that desk within this long before the pairing counts as present.
PAIRING_WINDOW = timedelta(seconds=120)

#: Statuses in which a document is in the keeping of the room (a custody item).
IN_CUSTODY = ("in_cabinet", "misplaced", "missing")
#: Statuses in which a document has left the ledger's custody for good.
GONE = ("destroyed", "returned")

#: Item states; ``pending`` is the only one that changes.
ITEM_STATES = ("pending", "handed_over", "returned", "gone")


@dataclass(frozen=True, slots=True)
class Listed:
    """One item of a hand-over list: a document and why it is on it."""

    document_id: int
    reason: str  # "loan": on loan to the person; "custody": kept by them (secretary)


def handover_list(person: Person, docs: Iterable[Document]) -> list[Listed]:
    """What ``person`` holds (every document on loan to them) or keeps: a secretary
    (机要秘书) keeps every document in the room's custody (in a cabinet, misplaced or
    missing). Ordered by document id."""
    out = []
    keeper = "secretary" in person.roles
    for d in sorted(docs, key=lambda d: d.id):
        if d.holder == person.id and d.status == "on_loan":
            out.append(Listed(d.id, "loan"))
        elif keeper and d.holder is None and d.status in IN_CUSTODY:
            out.append(Listed(d.id, "custody"))
    return out


def successor_refusal(
    successor: Person, predecessor: Person, listed: Sequence[Listed], docs: dict[int, Document]
) -> str | None:
    """Why ``successor`` cannot take over the list (``None``: they can)."""
    if successor.id == predecessor.id:
        return f"{successor.id} cannot hand over to themselves"
    if not successor.active:
        return f"{successor.id} is not active"
    for item in listed:
        doc = docs[item.document_id]
        if item.reason == "custody" and "secretary" not in successor.roles:
            return (
                f"{predecessor.id} keeps the room's documents ({doc.number}): "
                f"{successor.id} needs the secretary role to take them over"
            )
        if item.reason == "loan":
            why = read_refusal(successor, doc)
            if why is not None:
                return f"{doc.number} cannot go to {successor.id}: {why}"
    return None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happens to one pending item: its new ``state`` and, for a loan handed over,
    ``transfer`` (the loan to the predecessor closes, one to the successor opens)."""

    state: str
    transfer: bool = False


def settle(
    reason: str,
    doc: Document,
    *,
    from_id: str,
    successor: Person,
    present: bool,
) -> Outcome | None:
    """One pending item, with both parties confirming (their badges) and the document
    ``present`` or not: ``None`` while it stays pending.

    A loan item whose document is back in a cabinet was returned (its loan closed); one
    still on loan to the predecessor goes to the successor when present and readable by
    them. A custody item goes over when present. A document destroyed or given back to
    its issuer meanwhile is ``gone``."""
    if doc.status in GONE:
        return Outcome("gone")
    if reason == "loan":
        if doc.holder != from_id:
            return Outcome("returned") if doc.status in ("in_cabinet", "misplaced") else None
        if present and read_refusal(successor, doc) is None:
            return Outcome("handed_over", transfer=True)
        return None
    if reason == "custody" and present and doc.status in IN_CUSTODY and doc.holder is None:
        return Outcome("handed_over")
    return None


def returned_on_arrival(reason: str, doc: Document, from_id: str) -> bool:
    """A loan item whose document came back into a cabinet (the core rules closed the
    loan): it was returned, not handed over."""
    return reason == "loan" and doc.holder != from_id and doc.status in ("in_cabinet", "misplaced")


@dataclass(frozen=True, slots=True)
class Sighting:
    """A badge of either party (``from``/``to``: the uid) or a tag (``tag``: the EPC)
    read at a room's desk."""

    kind: str
    value: str
    ts: datetime


def pairing(
    sightings: Iterable[Sighting], now: datetime, window: timedelta = PAIRING_WINDOW
) -> tuple[str, str] | None:
    """The two badges (predecessor's, successor's) that make a pairing at ``now``: each
    read within ``window`` before ``now`` (the newest of each); ``None`` without both."""
    newest: dict[str, Sighting] = {}
    for s in sightings:
        if s.kind in ("from", "to") and now - window <= s.ts <= now:
            if s.kind not in newest or s.ts > newest[s.kind].ts:
                newest[s.kind] = s
    if "from" in newest and "to" in newest:
        return newest["from"].value, newest["to"].value
    return None


def present_tags(
    sightings: Iterable[Sighting], now: datetime, window: timedelta = PAIRING_WINDOW
) -> frozenset[str]:
    """EPCs read at the desk within ``window`` before ``now``."""
    return frozenset(s.value for s in sightings if s.kind == "tag" and now - window <= s.ts <= now)


def finished(states: Iterable[str]) -> bool:
    """A hand-over is done when no item is pending."""
    return all(s != "pending" for s in states)
