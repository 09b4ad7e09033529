"""From rows to the domain's plain values, and the queries the rules need."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.timefmt import format_ts, parse_ts
from tracker.domain import model as dm
from tracker.domain.levels import Level
from tracker.store import models as m


def cabinet_key(room: m.Room, cabinet: m.Cabinet) -> str:
    return f"{room.site}/{room.room}/{cabinet.name}"


class RoomCabinets:
    """The cabinets of one room, by id and by key."""

    def __init__(self, session: Session, room: m.Room) -> None:
        rows = session.scalars(select(m.Cabinet).where(m.Cabinet.room_id == room.id)).all()
        self.by_id = {c.id: c for c in rows}
        self.key_of = {c.id: cabinet_key(room, c) for c in rows}
        self.by_key = {cabinet_key(room, c): c for c in rows}
        self.by_name = {c.name: c for c in rows}


class Keys:
    """Cabinet id -> key for every cabinet (documents may live in any room)."""

    def __init__(self, session: Session) -> None:
        rooms = {r.id: r for r in session.scalars(select(m.Room))}
        self.key_of = {
            c.id: cabinet_key(rooms[c.room_id], c) for c in session.scalars(select(m.Cabinet))
        }

    def get(self, cabinet_id: int | None) -> str | None:
        return None if cabinet_id is None else self.key_of.get(cabinet_id)


def _per_transaction(session: Session, name: str, make: Any) -> Any:
    """``make()`` once per transaction: cabinets and rooms do not change while an
    event is applied, and the ingest applies a thousand events in one transaction."""
    tx = session.get_transaction()
    cache = session.info.setdefault("ironroom.cache", {})
    hit = cache.get(name)
    if hit is not None and hit[0] is tx:
        return hit[1]
    value = make()
    cache[name] = (tx, value)
    return value


def keys(session: Session) -> Keys:
    return _per_transaction(session, "keys", lambda: Keys(session))  # type: ignore[no-any-return]


def room_cabinets(session: Session, room: m.Room) -> RoomCabinets:
    return _per_transaction(  # type: ignore[no-any-return]
        session, f"cabinets:{room.id}", lambda: RoomCabinets(session, room)
    )


def cabinet_ids(session: Session) -> dict[str, int]:
    """Cabinet key -> id, every cabinet."""
    return _per_transaction(  # type: ignore[no-any-return]
        session, "cabinet_ids", lambda: {k: i for i, k in keys(session).key_of.items()}
    )


def document_by_tag(session: Session, epc: str) -> m.Document | None:
    """The document bound to a tag. Tags are bound by the command line only, so within
    one ingest transaction the answer holds; the row is held here for the transaction
    (the session keeps rows weakly and would load it again for every event), and it is
    the session's own object, so a move made earlier in the transaction is seen."""
    rows: dict[str, m.Document | None] = _per_transaction(session, "doc_by_tag", dict)
    if epc not in rows:
        rows[epc] = session.scalars(select(m.Document).where(m.Document.tag == epc)).first()
    return rows[epc]


def prefetch_tags(session: Session, epcs: Iterable[str]) -> None:
    """Load the documents of many tags in one query, for :func:`document_by_tag` in the
    same transaction (the ingest does it for each batch's tags before applying it)."""
    rows: dict[str, m.Document | None] = _per_transaction(session, "doc_by_tag", dict)
    want = sorted({e for e in epcs if e not in rows})
    for i in range(0, len(want), 500):
        chunk = want[i : i + 500]
        for row in session.scalars(select(m.Document).where(m.Document.tag.in_(chunk))):
            if row.tag is not None:
                rows[row.tag] = row
        for epc in chunk:
            rows.setdefault(epc, None)


def person(row: m.Person) -> dm.Person:
    return dm.Person(
        id=row.id,
        name=row.name,
        clearance=Level(row.clearance),
        roles=frozenset(json.loads(row.roles)),
        dept=row.dept,
        active=row.active,
    )


def document(row: m.Document, key_of: dict[int, str]) -> dm.Document:
    return dm.Document(
        id=row.id,
        number=row.number,
        classification=Level(row.classification),
        tag=row.tag,
        home=key_of.get(row.home_cabinet_id, "?"),
        scope=tuple(dm.Scope.parse(s) for s in json.loads(row.scope)),
        status=row.status,
        location=key_of.get(row.location_cabinet_id) if row.location_cabinet_id else None,
        holder=row.holder_id,
    )


def loan(row: m.Loan) -> dm.Loan:
    return dm.Loan(
        row.document_id, row.person_id, parse_ts(row.opened), parse_ts(row.due), row.kind
    )


def session_value(row: m.BadgeSession) -> dm.Session:
    return dm.Session(
        person_id=row.person_id,
        uid=row.uid,
        reader=row.reader,
        cabinets=frozenset(json.loads(row.cabinets)),
        opened=parse_ts(row.opened),
        until=parse_ts(row.until),
    )


def people(session: Session, ids: Iterable[str] | None = None) -> dict[str, dm.Person]:
    stmt = select(m.Person)
    if ids is not None:
        wanted = list(set(ids))
        if not wanted:
            return {}
        stmt = stmt.where(m.Person.id.in_(wanted))
    return {p.id: person(p) for p in session.scalars(stmt)}


def badge_map(session: Session) -> dict[str, str]:
    """Active badge uid -> person id."""
    return {b.uid: b.person_id for b in session.scalars(select(m.Badge).where(m.Badge.active))}


def live_sessions(session: Session, room_id: int, when: datetime) -> list[dm.Session]:
    ts = format_ts(when)
    rows = session.scalars(
        select(m.BadgeSession).where(
            m.BadgeSession.room_id == room_id,
            m.BadgeSession.until >= ts,
            m.BadgeSession.opened <= ts,
        )
    )
    return [session_value(r) for r in rows]


def docs_in_cabinets(
    session: Session, cabinet_ids: Iterable[int], key_of: dict[int, str]
) -> dict[int, list[dm.Document]]:
    ids = list(cabinet_ids)
    out: dict[int, list[dm.Document]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = session.scalars(select(m.Document).where(m.Document.location_cabinet_id.in_(ids)))
    for r in rows:
        if r.location_cabinet_id is not None:
            out[r.location_cabinet_id].append(document(r, key_of))
    return out


def open_loan_row(session: Session, document_id: int) -> m.Loan | None:
    return session.scalars(
        select(m.Loan).where(m.Loan.document_id == document_id, m.Loan.closed.is_(None))
    ).first()


def blocked_people(session: Session, now: datetime) -> dict[str, str]:
    """People who may borrow nothing now: they hold an overdue item (催办)."""
    ts = format_ts(now)
    rows = session.execute(
        select(m.Loan.person_id, m.Document.number)
        .join(m.Document, m.Document.id == m.Loan.document_id)
        .where(m.Loan.closed.is_(None), m.Loan.due < ts, m.Loan.kind != "in-room")
    )
    out: dict[str, str] = {}
    for pid, number in rows:
        out.setdefault(pid, f"{pid} holds an overdue item ({number})")
    return out


# -- approvals: carry-out passes and extended-hours grants --------------------------------


def carry_out_passes(session: Session, when: datetime) -> tuple[dm.Pass, ...]:
    """Approved carry-out passes (携带外出) whose time box holds ``when``."""
    ts = format_ts(when)
    rows = session.execute(
        select(m.Request.id, m.Request.requester_id, m.Request.starts, m.Request.ends)
        .where(
            m.Request.kind == "carry-out",
            m.Request.state == "approved",
            m.Request.starts <= ts,
            m.Request.ends > ts,
        )
        .order_by(m.Request.id)
    ).all()
    if not rows:
        return ()
    docs: dict[int, set[int]] = {}
    for rid, did in session.execute(
        select(m.RequestItem.request_id, m.RequestItem.document_id).where(
            m.RequestItem.request_id.in_([r[0] for r in rows]), m.RequestItem.role == "subject"
        )
    ):
        docs.setdefault(rid, set()).add(did)
    return tuple(
        dm.Pass(pid, frozenset(docs.get(rid, ())), parse_ts(start), parse_ts(end))
        for rid, pid, start, end in rows
    )


def hours_grants(session: Session, room_id: int) -> list[tuple[datetime, datetime]] | None:
    """A room's approved extended-hours grants ``(start, end)``, oldest first; None when
    the room never had one."""
    rows = session.execute(
        select(m.Request.starts, m.Request.ends)
        .where(
            m.Request.kind == "hours",
            m.Request.room_id == room_id,
            m.Request.state.in_(("approved", "done")),
        )
        .order_by(m.Request.starts, m.Request.id)
    ).all()
    if not rows:
        return None
    return [(parse_ts(a), parse_ts(b)) for a, b in rows if a and b]
