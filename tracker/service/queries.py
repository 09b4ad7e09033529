"""The ledger's everyday questions, each one indexed query: where a document is, what a
person holds, which loans are overdue.

Each returns plain dicts (JSON-ready, like the listings of :mod:`tracker.service.ledger`)
and reads only: the caller's session decides the transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.compiler import SQLCompiler

from protocol.timefmt import format_ts
from tracker.domain.levels import Level
from tracker.store import models as m

_Loc = aliased(m.Cabinet, name="loc")
_LocRoom = aliased(m.Room, name="loc_room")
_Home = aliased(m.Cabinet, name="home")
_HomeRoom = aliased(m.Room, name="home_room")

_WHERE = (
    select(
        m.Document.number,
        m.Document.copy_no,
        m.Document.copies,
        m.Document.tag,
        m.Document.status,
        m.Document.holder_id,
        _LocRoom.site,
        _LocRoom.room,
        _Loc.name,
        _HomeRoom.site,
        _HomeRoom.room,
        _Home.name,
        m.Loan.person_id,
        m.Loan.opened,
        m.Loan.due,
        m.Loan.kind,
    )
    .outerjoin(_Loc, _Loc.id == m.Document.location_cabinet_id)
    .outerjoin(_LocRoom, _LocRoom.id == _Loc.room_id)
    .join(_Home, _Home.id == m.Document.home_cabinet_id)
    .join(_HomeRoom, _HomeRoom.id == _Home.room_id)
    .outerjoin(m.Loan, and_(m.Loan.document_id == m.Document.id, m.Loan.closed.is_(None)))
)


def _key(site: str | None, room: str | None, cabinet: str | None) -> str | None:
    return f"{site}/{room}/{cabinet}" if cabinet is not None else None


def where_is(session: Session, tag_or_number: str) -> list[dict[str, Any]]:
    """Where a document is: by its tag (EPC, any case), else every copy with that number.
    One dict per copy: ``number``, ``copy``, ``tag``, ``status``, ``cabinet`` (where it
    is, None while on loan), ``home``, ``holder`` and the open ``loan`` (or None). An
    empty list when nothing matches."""
    key = tag_or_number.strip()
    tag = key.upper()
    # One round trip: both indexes (the tag's, and number + copy's), then the tag wins.
    found = session.execute(
        _WHERE.where(or_(m.Document.tag == tag, m.Document.number == key)).order_by(
            m.Document.copy_no
        )
    ).all()
    rows = [r for r in found if r.tag == tag] or [r for r in found if r.number == key]
    return [
        {
            "number": number,
            "copy": f"{copy_no}/{copies}",
            "tag": tag,
            "status": status,
            "cabinet": _key(ls, lr, lc),
            "home": _key(hs, hr, hc),
            "holder": holder,
            "loan": None
            if person is None
            else {"person": person, "opened": opened, "due": due, "kind": kind},
        }
        for (
            number,
            copy_no,
            copies,
            tag,
            status,
            holder,
            ls,
            lr,
            lc,
            hs,
            hr,
            hc,
            person,
            opened,
            due,
            kind,
        ) in rows
    ]


#: what a loan listing shows of the document
_DOCUMENT_COLUMNS = (
    m.Document.number,
    m.Document.copy_no,
    m.Document.copies,
    m.Document.tag,
    m.Document.title,
    m.Document.classification,
)
_LOANS = select(m.Loan.person_id, m.Loan.opened, m.Loan.due, m.Loan.kind, *_DOCUMENT_COLUMNS).join(
    m.Document, m.Document.id == m.Loan.document_id
)


_LEVEL_NAMES = {int(lv): lv.chinese for lv in Level}


def _loan(row: Any) -> dict[str, Any]:
    person, opened, due, kind, number, copy_no, copies, tag, title, level = row
    return {
        "person": person,
        "document": number,
        "copy": f"{copy_no}/{copies}",
        "tag": tag,
        "title": title,
        "classification": _LEVEL_NAMES[level],
        "opened": opened,
        "due": due,
        "kind": kind,
    }


def holdings(session: Session, person_id: str) -> list[dict[str, Any]]:
    """The open loans of one person with their documents, soonest due first."""
    stmt = _LOANS.where(m.Loan.person_id == person_id, m.Loan.closed.is_(None)).order_by(
        m.Loan.due, m.Loan.id
    )
    # Core rows (no ORM result processing): these listings can be long
    return [_loan(r) for r in session.connection().execute(stmt)]


#: Overdue loans with their documents, as one join (SQLite: the faster way there).
_OVERDUE_JOINED = _LOANS.where(m.Loan.closed.is_(None), m.Loan.due < bindparam("now")).order_by(
    m.Loan.due, m.Loan.id
)
#: Elsewhere the overdue loans first, then their documents by id: as one join, PostgreSQL
#: takes the open loans due before now for nearly all open loans (its statistics cover the
#: closed ones too) and scans every document to hash them.
_OVERDUE = (
    select(m.Loan.person_id, m.Loan.opened, m.Loan.due, m.Loan.kind, m.Loan.document_id)
    .where(m.Loan.closed.is_(None), m.Loan.due < bindparam("now"))
    .order_by(m.Loan.due, m.Loan.id)
)
_LISTED = select(m.Document.id, *_DOCUMENT_COLUMNS)
_COMPILED: dict[tuple[int, str], SQLCompiler] = {}


def _driver_rows(session: Session, stmt: Any, params: dict[str, Any]) -> list[Any]:
    """``stmt`` run on the driver's own cursor, compiled once per database kind.

    For the long listings: the columns are text and integers, which need no result
    processing, and SQLAlchemy's row objects cost as much as the query itself here (the
    overdue listing of a large ledger runs in about half the time this way)."""
    conn = session.connection()
    key = (id(stmt), conn.dialect.name)
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = _COMPILED[key] = stmt.compile(dialect=conn.dialect)  # an SQLCompiler
    args: Any = params
    if compiled.positional:
        args = tuple(params[name] for name in compiled.positiontup or ())
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(compiled.string, args)
        return list(cur.fetchall())
    finally:
        cur.close()


def overdue(session: Session, now: datetime) -> list[dict[str, Any]]:
    """Every open loan whose due time is before ``now``, longest overdue first."""
    params = {"now": format_ts(now)}
    if session.connection().dialect.name == "sqlite":
        return [_loan(r) for r in _driver_rows(session, _OVERDUE_JOINED, params)]
    loans = _driver_rows(session, _OVERDUE, params)
    docs = _documents_by_id(session, sorted({r[4] for r in loans}))
    return [_loan((person, opened, due, kind, *docs[d])) for person, opened, due, kind, d in loans]


def _documents_by_id(session: Session, ids: list[int]) -> dict[int, tuple[Any, ...]]:
    """``_LISTED`` for these document ids, on the driver's cursor (see _driver_rows), as
    one PostgreSQL array parameter (the overdue listing takes this path off SQLite)."""
    conn = session.connection()
    key = (id(_LISTED), conn.dialect.name)
    head = _COMPILED.get(key)
    if head is None:
        head = _COMPILED[key] = _LISTED.compile(dialect=conn.dialect)
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(head.string + " WHERE documents.id = ANY(%s)", (ids,))
        return {row[0]: tuple(row[1:]) for row in cur.fetchall()}
    finally:
        cur.close()
