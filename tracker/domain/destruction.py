"""Destruction (销毁, DOMAIN.md rule 12): an approved list is carried out at a room's
designated place, its desk unless the site names another badge reader, when two different
people present their badges there within a short window (两人以上监销), while every
document of the list is present.

A document is present when it is in a cabinet of the room (``in_cabinet`` or
``misplaced``), or on loan from the room to one of the two witnesses (taken out of the
cabinet to the desk under a witness's badge session). A list is carried out whole or not
at all. Every badge at that reader while a list waits in the room is recorded: as a
witness (``destruction_witness``), or refused with the reason (``destruction_refused``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tracker.domain.model import Person, Record

DEFAULT_WINDOW_S = 120
PRESENT = frozenset({"in_cabinet", "misplaced"})


@dataclass(frozen=True, slots=True)
class Witness:
    """A badge accepted at the desk as a witness: whose, which, when (the room's time)."""

    person_id: str
    uid: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Item:
    """A document of a destruction list: where it is now. ``room`` is the ``SITE/ROOM``
    of the cabinet it is in (``None`` while out), ``home_room`` that of its home cabinet."""

    document_id: int
    number: str
    copy_no: int
    status: str
    room: str | None
    home_room: str
    holder: str | None = None


@dataclass(frozen=True, slots=True)
class DestroyList:
    """An approved ``destroy`` request and its documents."""

    request_id: int
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class Destroy:
    """Carry out ``request_id``: its documents are destroyed, witnessed by both."""

    request_id: int
    first: Witness
    second: Witness
    documents: tuple[int, ...]


Outcome = Destroy | Record


def absence(item: Item, room: str, witnesses: frozenset[str]) -> str | None:
    """Why a listed document is not present for a destruction in ``room`` (``None``:
    it is)."""
    if item.status == "destroyed":
        return "destroyed already"
    if item.status == "returned":
        return "given back to its issuer"
    if item.status in PRESENT:
        return None if item.room == room else f"in another room ({item.room})"
    if item.status == "on_loan":
        if item.holder in witnesses and item.home_room == room:
            return None
        return f"on loan to {item.holder}"
    return item.status


def witness_refusal(person: Person | None, auth: str, allow_uid_only: bool) -> str | None:
    """Why a badge at the desk cannot witness (``None``: it can)."""
    if auth == "failed":
        return "badge authentication failed"
    if auth == "uid-only" and not allow_uid_only:
        return "uid-only badges are not accepted at this site"
    if person is None:
        return "unknown badge"
    if not person.active:
        return f"{person.id} is not active"
    return None


def in_window(earlier: Witness, now: datetime, window: timedelta) -> bool:
    return now - window <= earlier.at <= now


def desk_badge(
    *,
    room: str,
    uid: str,
    auth: str,
    person: Person | None,
    now: datetime,
    earlier: Sequence[Witness],
    lists: Sequence[DestroyList],
    window: timedelta,
    allow_uid_only: bool = False,
    reader: str = "desk",
) -> list[Outcome]:
    """A badge presented at ``room``'s designated ``reader`` (the desk, unless the site
    names another) while approved ``lists`` wait there.

    ``earlier``: the witnesses already recorded in the room (any age; only those inside
    ``window`` before ``now`` count). With a witness of another person inside the window
    every list whose documents are all present is carried out; the others are refused
    with what is missing. A refused badge, the same person twice, or no other person
    inside the window destroys nothing."""
    if not lists:
        return []
    requests = [x.request_id for x in lists]
    base = {"uid": uid, "reader": reader, "requests": requests}
    why = witness_refusal(person, auth, allow_uid_only)
    if why is not None or person is None:
        return [
            Record(
                "destruction_refused",
                person_id=person.id if person else None,
                detail={**base, "reason": why},
            )
        ]
    live = [w for w in earlier if in_window(w, now, window)]
    others = [w for w in live if w.person_id != person.id]
    if not others:
        if live:
            return [
                Record(
                    "destruction_refused",
                    person_id=person.id,
                    detail={
                        **base,
                        "reason": "the same person twice: a second, different person's "
                        "badge is needed",
                    },
                )
            ]
        stale = [w for w in earlier if w.at < now - window]
        note = f"waiting for a second person's badge within {int(window.total_seconds())} s"
        if stale:
            last = max(stale, key=lambda w: w.at)
            note += f" (the badge of {last.person_id} came too long before)"
        return [Record("destruction_witness", person_id=person.id, detail={**base, "note": note})]
    first = max(others, key=lambda w: w.at)
    second = Witness(person.id, uid, now)
    witnesses = frozenset({first.person_id, second.person_id})
    out: list[Outcome] = [
        Record(
            "destruction_witness",
            person_id=person.id,
            detail={**base, "note": f"second witness, with {first.person_id}"},
        )
    ]
    for lst in lists:
        missing = {
            f"{it.number} copy {it.copy_no}": why
            for it in lst.items
            if (why := absence(it, room, witnesses)) is not None
        }
        if missing or not lst.items:
            out.append(
                Record(
                    "destruction_refused",
                    person_id=person.id,
                    detail={
                        **base,
                        "request": lst.request_id,
                        "reason": "not every document is present",
                        "missing": missing,
                    },
                )
            )
        else:
            docs = tuple(it.document_id for it in lst.items)
            out.append(Destroy(lst.request_id, first, second, docs))
    return out
