"""The ledger's rules: what a badge, a folder leaving or coming back, a sighting at the
desk or the portal, and closing time mean. Each is a pure function of its inputs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tracker.domain.levels import Level
from tracker.domain.model import (
    CloseLoan,
    Decision,
    Document,
    Loan,
    Move,
    OpenLoan,
    OpenSession,
    Pass,
    Person,
    RaiseAlarm,
    Record,
    Scope,
    Session,
    Unlock,
)

#: Default loan periods per classification; 绝密 is in-room use, due at closing time.
DEFAULT_LOAN_DAYS: dict[Level, int | None] = {
    Level.TOP_SECRET: None,
    Level.SECRET: 7,
    Level.CONFIDENTIAL: 14,
    Level.INTERNAL: 30,
    Level.PUBLIC: 30,
}

#: Roles whose badge may reset the controller's latched alarms on the spot.
RESET_ROLES = frozenset({"secretary", "secrecy-office"})


# -- who may read what ----------------------------------------------------------------


def in_scope(person: Person, scope: Sequence[Scope]) -> bool:
    """Inside the need-to-know scope. An empty scope leaves clearance alone to decide;
    the secretary, the custodian of every document, is always inside."""
    if not scope or "secretary" in person.roles:
        return True
    for s in scope:
        if s.kind == "person" and s.value == person.id:
            return True
        if s.kind == "dept" and person.dept is not None and s.value == person.dept:
            return True
        if s.kind == "role" and s.value in person.roles:
            return True
    return False


def read_refusal(person: Person | None, doc: Document) -> str | None:
    """Why ``person`` may not take ``doc`` (``None``: they may)."""
    if person is None:
        return "no badge session"
    if not person.active:
        return f"{person.id} is not active"
    if person.clearance < doc.classification:
        return (
            f"{person.id}'s clearance {person.clearance.chinese} is below "
            f"{doc.classification.chinese}"
        )
    if not in_scope(person, doc.scope):
        return f"{person.id} is outside the need-to-know scope of {doc.number}"
    return None


def takeable(docs: Iterable[Document]) -> set[tuple[Level, tuple[Scope, ...]]]:
    """What matters of a cabinet's documents for "may this person take something here":
    the distinct (classification, scope) pairs of those that are there to take."""
    return {(d.classification, d.scope) for d in docs if d.status in ("in_cabinet", "misplaced")}


def may_take_from(person: Person, docs: Iterable[Document]) -> bool:
    """At least one document in the cabinet is one the person may read."""
    return may_take(person, takeable(docs))


def may_take(person: Person, kinds: Iterable[tuple[Level, tuple[Scope, ...]]]) -> bool:
    if not person.active:
        return False
    return any(person.clearance >= lvl and in_scope(person, scope) for lvl, scope in kinds)


# -- badges ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BadgeContext:
    """What the tracker knows when a badge is presented in a room."""

    reader: str
    uid: str
    auth: str  # verified | uid-only | failed
    allow_uid_only: bool
    person: Person | None
    #: cabinet key -> its own name and the documents in it, for the cabinets the
    #: reader covers (one at a cabinet reader, every cabinet of the room at the desk)
    cabinets: Mapping[str, tuple[str, Sequence[Document]]]
    locked_cabinets: frozenset[str]  # cabinet names that have a lock in this room
    working: bool  # working hours, or inside an extended-hours grant
    blocked: str | None = None  # why this person may borrow nothing now (overdue, ...)
    session_s: int = 120
    unlock_s: int = 20


def badge_presented(ctx: BadgeContext, now: datetime) -> list[Decision]:
    """A badge at a cabinet or the desk opens a session and, where the person may take
    something, an unlock. Every refusal is recorded with its reason."""
    if not (ctx.reader == "desk" or ctx.reader.startswith("cabinet:")):
        return []
    refusal = None
    if ctx.auth == "failed":
        refusal = "badge authentication failed"
    elif ctx.auth == "uid-only" and not ctx.allow_uid_only:
        refusal = "uid-only badges are not accepted at this site"
    elif ctx.person is None:
        refusal = "unknown badge"
    elif not ctx.person.active:
        refusal = f"{ctx.person.id} is not active"
    elif ctx.blocked:
        refusal = ctx.blocked
    elif not ctx.working:
        refusal = "outside working hours and no extended-hours grant"
    if refusal is not None or ctx.person is None:
        return [
            Record(
                "badge_refused",
                person_id=ctx.person.id if ctx.person else None,
                detail={"reader": ctx.reader, "uid": ctx.uid, "reason": refusal},
            )
        ]
    person = ctx.person
    session = Session(
        person_id=person.id,
        uid=ctx.uid,
        reader=ctx.reader,
        cabinets=frozenset(ctx.cabinets),
        opened=now,
        until=now + timedelta(seconds=ctx.session_s),
    )
    out: list[Decision] = [OpenSession(session)]
    any_takeable = False
    for _key, (name, docs) in sorted(ctx.cabinets.items()):
        if may_take_from(person, docs):
            any_takeable = True
            if name in ctx.locked_cabinets:  # a cabinet without a lock needs no unlock
                out.append(Unlock(name, ctx.unlock_s, ctx.uid))
    if not any_takeable:
        out.append(
            Record(
                "badge_refused",
                person_id=person.id,
                detail={
                    "reader": ctx.reader,
                    "uid": ctx.uid,
                    "reason": "nothing here this person may take",
                },
            )
        )
    return out


# -- folders leaving and coming back --------------------------------------------------


def loan_due(
    level: Level,
    opened: datetime,
    closing: datetime | None,
    days: Mapping[Level, int | None] = DEFAULT_LOAN_DAYS,
) -> tuple[datetime, str]:
    """Due date and kind of a loan: in-room use (due at closing time) where the period is
    ``None``, else ``days`` after it was opened."""
    period = days.get(level)
    if period is None:
        return (closing if closing is not None and closing > opened else opened), "in-room"
    return opened + timedelta(days=period), "badge"


def session_for(sessions: Sequence[Session], cabinet: str, when: datetime) -> Session | None:
    """The newest badge session covering ``cabinet`` at ``when``."""
    live = [s for s in sessions if s.covers(cabinet, when)]
    return max(live, key=lambda s: s.opened) if live else None


def tag_departed(
    *,
    doc: Document | None,
    epc: str,
    cabinet: str,
    sessions: Sequence[Session],
    people: Mapping[str, Person],
    now: datetime,
    closing: datetime | None,
    days: Mapping[Level, int | None] = DEFAULT_LOAN_DAYS,
) -> list[Decision]:
    """A tag left a cabinet: a loan to the person whose session covers it and who may
    read it; anything else is an ``unauthorized_removal``."""
    if doc is None:
        return [Record("unknown_tag", epc=epc, detail={"reader": cabinet, "event": "departed"})]
    if doc.status == "destroyed":
        return [_destroyed_seen(doc, epc, cabinet)]
    if doc.status == "returned":
        return [_returned_seen(doc, epc, cabinet, "departed")]
    session = session_for(sessions, cabinet, now)
    person = people.get(session.person_id) if session else None
    refusal = read_refusal(person, doc)
    if refusal is None and person is not None:
        due, kind = loan_due(doc.classification, now, closing, days)
        out: list[Decision] = []
        if doc.holder is not None:  # still on loan (never came back): that loan ends here
            out.append(CloseLoan(doc.id, now))
        out += [
            OpenLoan(doc.id, person.id, now, due, kind),
            Move(doc.id, "on_loan", None, person.id),
        ]
        return out
    # the tag was in the cabinet, so an earlier loan that never saw it come back ends
    # here too; left open it would keep a holder and mask the end-of-day check
    closed: list[Decision] = [CloseLoan(doc.id, now)] if doc.holder is not None else []
    return [
        *closed,
        RaiseAlarm(
            "unauthorized_removal",
            "critical",
            point=cabinet_point(cabinet),
            document_id=doc.id,
            detail={
                "epc": epc,
                "number": doc.number,
                "person": person.id if person else None,
                "reason": refusal,
            },
        ),
        Move(doc.id, "missing", None, None),
    ]


def tag_arrived(*, doc: Document | None, epc: str, cabinet: str, now: datetime) -> list[Decision]:
    """A tag came into a cabinet: the open loan closes; in another cabinet than its home
    the document is ``misplaced``."""
    if doc is None:
        return [Record("unknown_tag", epc=epc, detail={"reader": cabinet, "event": "arrived"})]
    if doc.status == "destroyed":
        return [_destroyed_seen(doc, epc, cabinet)]
    if doc.status == "returned":
        return [_returned_seen(doc, epc, cabinet, "arrived")]
    out: list[Decision] = []
    misplaced = cabinet != doc.home
    if doc.holder is not None:
        out.append(CloseLoan(doc.id, now, misplaced))
    if misplaced:
        out.append(Move(doc.id, "misplaced", cabinet, None))
        out.append(
            Record(
                "misplaced",
                epc=epc,
                document_id=doc.id,
                detail={"cabinet": cabinet, "home": doc.home},
            )
        )
    elif doc.status != "in_cabinet" or doc.location != cabinet:
        out.append(Move(doc.id, "in_cabinet", cabinet, None))
    return out


def tag_seen(
    *,
    doc: Document | None,
    epc: str,
    reader: str,
    sessions: Sequence[Session],
    passes: Sequence[Pass],
    now: datetime,
) -> list[Decision]:
    """A tag read at the desk or the portal.

    Desk: a document on loan to one person read during another person's session is a
    lateral pass (不得横传): recorded, the loan does not move. Portal: 绝密 never leaves
    the room, and nothing leaves without an approved carry-out pass."""
    if doc is None:
        return [Record("unknown_tag", epc=epc, detail={"reader": reader, "event": "seen"})]
    if doc.status == "destroyed":
        return [_destroyed_seen(doc, epc, reader)]
    if doc.status == "returned":
        return [_returned_seen(doc, epc, reader, "seen")]
    if reader == "portal":
        if doc.classification == Level.TOP_SECRET:
            reason = "绝密 documents never leave the room"
        elif valid := [p for p in passes if p.allows(doc.id, now)]:
            # the passage is the pass holder's (the portal reads tags, not people)
            return [
                Record(
                    "portal_pass",
                    epc=epc,
                    document_id=doc.id,
                    person_id=valid[0].person_id,
                    detail={"holder": doc.holder}
                    if doc.holder not in (None, valid[0].person_id)
                    else {},
                )
            ]
        else:
            reason = "no approved carry-out pass"
        return [
            RaiseAlarm(
                "classified_exit",
                "critical",
                point="portal",
                document_id=doc.id,
                detail={"epc": epc, "number": doc.number, "reason": reason},
            )
        ]
    if reader == "desk" and doc.holder is not None:
        others = [
            s
            for s in sessions
            if s.reader == "desk" and s.opened <= now <= s.until and s.person_id != doc.holder
        ]
        if others:
            newest = max(others, key=lambda s: s.opened)
            return [
                Record(
                    "lateral_pass",
                    epc=epc,
                    document_id=doc.id,
                    person_id=newest.person_id,
                    detail={"holder": doc.holder, "number": doc.number},
                )
            ]
    return []


def _destroyed_seen(doc: Document, epc: str, reader: str) -> RaiseAlarm:
    return RaiseAlarm(
        "destroyed_tag_seen",
        "critical",
        point=reader if reader in ("portal", "desk") else cabinet_point(reader),
        document_id=doc.id,
        detail={"epc": epc, "number": doc.number},
    )


def _returned_seen(doc: Document, epc: str, reader: str, event: str) -> Record:
    """A document given back to its issuer (清退) is no longer here: its tag read again
    is a sighting, recorded; the ledger does not take it back."""
    return Record(
        "returned_tag_seen",
        epc=epc,
        document_id=doc.id,
        detail={"reader": reader, "event": event, "number": doc.number},
    )


def cabinet_point(cabinet_key: str) -> str:
    """``hq/room-101/c1`` -> ``cabinet:c1`` (the room's point name)."""
    return "cabinet:" + cabinet_key.rsplit("/", 1)[-1]


# -- closing time ---------------------------------------------------------------------


def end_of_day_missing(
    docs: Iterable[Document], loans: Mapping[int, Loan], closing: datetime
) -> list[RaiseAlarm]:
    """At closing time every classified document must be in a cabinet or on a loan that
    is still valid after closing (an in-room loan ends at closing time)."""
    out = []
    for doc in docs:
        if not doc.classification.classified or doc.status in (
            "in_cabinet",
            "misplaced",
            "destroyed",
            "returned",
        ):
            continue
        loan = loans.get(doc.id)
        if loan is not None and loan.due > closing:
            continue
        out.append(
            RaiseAlarm(
                "end_of_day_missing",
                "critical",
                document_id=doc.id,
                detail={"number": doc.number, "status": doc.status, "holder": doc.holder},
            )
        )
    return out


# -- what the controller needs to decide alone ----------------------------------------


def room_policy(
    *,
    cabinets: Mapping[str, Sequence[Document]],
    people: Mapping[str, Person],
    badges: Mapping[str, str],
    calendar: Mapping[str, object],
    blocked: frozenset[str] = frozenset(),
) -> dict[str, object]:
    """The ``policy.update`` for one room: per cabinet (by its own name) the badges of
    people who may take something from it, the badges that may reset alarms, and the
    calendar (hours, holidays, make-up days, grants)."""
    by_person: dict[str, list[str]] = {}
    for uid, pid in badges.items():
        by_person.setdefault(pid, []).append(uid)
    allowed: dict[str, list[str]] = {}
    for name, docs in sorted(cabinets.items()):
        kinds = takeable(docs)
        uids: list[str] = []
        for pid, uids_of in by_person.items():
            person = people.get(pid)
            if person is None or pid in blocked:
                continue
            if may_take(person, kinds):
                uids += uids_of
        allowed[name] = sorted(uids)
    resets = sorted(
        uid
        for uid, pid in badges.items()
        if pid in people and people[pid].active and people[pid].roles & RESET_ROLES
    )
    policy: dict[str, object] = {"cabinets": allowed, "reset_badges": resets}
    policy.update(calendar)
    return policy


# -- clocks and silence ---------------------------------------------------------------

#: An offset between a controller's clock and the tracker's above this is a warning.
SKEW_LIMIT = timedelta(seconds=60)


def clock_offset(event_ts: datetime, received: datetime) -> timedelta:
    """The controller's clock minus the tracker's, from one event (it was made at most a
    moment before it was received)."""
    return event_ts - received


def is_skewed(offset: timedelta) -> bool:
    return abs(offset) > SKEW_LIMIT


def is_silent(last_heard: float | None, now: float, interval_s: float, since: float) -> bool:
    """No heartbeat for three intervals (counted from the last one, or from when the
    tracker started listening)."""
    ref = last_heard if last_heard is not None else since
    return now - ref > 3 * interval_s


def rate_limited(last: datetime | None, now: datetime, every: timedelta) -> bool:
    """True while a repeat of something raised at ``last`` should be folded into it."""
    return last is not None and now - last < every
