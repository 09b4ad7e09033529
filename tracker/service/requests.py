"""Requests and their approval (审批): copying (复印), carrying out (携带外出), extended
hours and destruction (销毁).

The service API (the command line and a console call the same functions):

- :func:`create` makes a pending request; :func:`approve` and :func:`refuse` decide it;
  each is one transaction with its audit entries, and returns the request as a dict.
- :func:`get` (the row, or ``LedgerError``), :func:`as_dict`, :func:`listing`.
- :func:`documents_of` the documents of a request; :func:`approved_destroy` the approved
  destruction lists with their documents; :func:`mark_done` (inside the caller's
  :class:`Writer`) records that an approved request has been carried out.
- :func:`register_copies` registers the copies of an approved copy request as items.
- :func:`expire_pending` is the tick handler: a pending request past its expiry becomes
  ``expired``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol.timefmt import format_ts, parse_ts
from tracker.domain import approvals as ap
from tracker.domain.levels import Level
from tracker.service import facts
from tracker.service.apply import Rules, queue_policy
from tracker.service.ledger import Ledger, LedgerError, _room
from tracker.service.writer import Writer
from tracker.store import models as m

_EPC = re.compile(r"[0-9A-F]{8,64}")


# -- making and deciding -------------------------------------------------------------------


def create(
    ledger: Ledger,
    kind: str,
    by: str,
    *,
    documents: Sequence[str] = (),
    copies: int | None = None,
    room: str | None = None,
    starts: datetime | None = None,
    ends: datetime | None = None,
    reason: str | None = None,
    expires: datetime | None = None,
) -> dict[str, Any]:
    """A pending request by person ``by``. ``documents``: tags or numbers (``copy``: one;
    ``carry-out`` and ``destroy``: one or more); ``room`` ``SITE/ROOM`` for ``hours``;
    ``starts``/``ends`` the time box of a carry-out pass or an hours grant."""
    if kind not in ap.KINDS:
        raise LedgerError(f"unknown request kind {kind!r}; use {', '.join(ap.KINDS)}")
    now = ledger.now
    expires = expires if expires is not None else now + ap.DEFAULT_EXPIRY
    why = ap.expiry_refusal(now, expires)
    if why:
        raise LedgerError(f"--expires {format_ts(expires)}: {why}")
    with ledger.change() as w:
        s = w.s
        person = s.get(m.Person, by)
        if person is None:
            raise LedgerError(f"no person {by}")
        if not person.active:
            raise LedgerError(f"{by} is not active")
        row = m.Request(
            kind=kind,
            state="pending",
            requester_id=by,
            reason=reason,
            created=format_ts(now),
            expires=format_ts(expires),
        )
        docs: list[m.Document] = []
        if kind in ("copy", "carry-out", "destroy"):
            if not documents:
                raise LedgerError(f"a {kind} request names at least one document")
            if kind == "copy" and len(documents) != 1:
                raise LedgerError("a copy request names one document (ask once per document)")
            docs = _documents(s, documents)
        if kind == "copy":
            doc = docs[0]
            why = ap.copy_refusal(
                ap.CopySource(Level(doc.classification), doc.no_copying, doc.status)
            )
            if why:
                raise LedgerError(f"{_name(doc)} cannot be copied: {why}")
            if copies is None or not 1 <= copies <= ap.MAX_COPIES:
                raise LedgerError(f"--copies: a number from 1 to {ap.MAX_COPIES}")
            row.copies = copies
        elif kind == "carry-out":
            for doc in docs:
                if doc.classification == Level.TOP_SECRET:
                    raise LedgerError(f"{_name(doc)} is 绝密: 绝密 documents never leave the room")
                if doc.status == "destroyed":
                    raise LedgerError(f"{_name(doc)} is destroyed")
        elif kind == "destroy":
            for doc in docs:
                if doc.status == "destroyed":
                    raise LedgerError(f"{_name(doc)} is destroyed already")
                other = _open_destroy(s, doc.id)
                if other is not None:
                    raise LedgerError(f"{_name(doc)} is on destruction request {other} already")
        elif kind == "hours":
            if not room or room.count("/") != 1:
                raise LedgerError("an hours request names its room as SITE/ROOM")
            site, _, name = room.partition("/")
            row.room_id = _room(s, site, name).id
        if kind in ("carry-out", "hours"):
            if starts is None or ends is None:
                raise LedgerError(f"a {kind} request needs --from and --until")
            why = ap.window_refusal(starts, ends)
            if why:
                raise LedgerError(f"--from/--until: {why}")
            row.starts, row.ends = format_ts(starts), format_ts(ends)
        w.add(f"request.{kind}", row)
        for doc in docs:
            w.add("request.document", m.RequestItem(request_id=row.id, document_id=doc.id))
        return as_dict(s, row)


def approve(ledger: Ledger, request_id: int, by: str, reason: str | None = None) -> dict[str, Any]:
    return _decide(ledger, request_id, by, "approve", reason)


def refuse(ledger: Ledger, request_id: int, by: str, reason: str | None = None) -> dict[str, Any]:
    return _decide(ledger, request_id, by, "refuse", reason)


def _decide(
    ledger: Ledger, request_id: int, by: str, action: str, reason: str | None
) -> dict[str, Any]:
    expired = False
    with ledger.change() as w:
        row = get(w.s, request_id)
        person_row = w.s.get(m.Person, by)
        person = facts.person(person_row) if person_row is not None else None
        fx = _facts(row)
        if ap.is_expired(fx, ledger.now):
            # past its expiry: it becomes expired now (kept), and the decision is refused
            w.change("request.expire", row, state="expired")
            expired = True
        else:
            why = ap.decision_refusal(fx, person, ledger.now)
            if person is None:
                raise LedgerError(f"no person {by}")
            if why:
                raise LedgerError(f"cannot {action} request {request_id}: {why}")
            state = ap.transition(row.state, action)
            assert state is not None
            w.change(
                f"request.{action}",
                row,
                state=state,
                decided_by=by,
                decided=w.at,
                decision_reason=reason,
            )
            if state == "approved" and row.kind == "hours" and row.room_id is not None:
                room = w.s.get(m.Room, row.room_id)
                assert room is not None
                queue_policy(w, room, ledger.rules, force=False)
            out = as_dict(w.s, row)
    if expired:
        raise LedgerError(f"cannot {action} request {request_id}: it expired at {row.expires}")
    return out


def mark_done(w: Writer, row: m.Request, reason: str | None = None) -> None:
    """An approved request has been carried out (a destruction list destroyed, every copy
    registered): ``done``, inside the caller's transaction. Refused unless approved."""
    state = ap.transition(row.state, "done")
    if state is None:
        raise LedgerError(f"request {row.id} is {row.state}, not approved")
    w.change("request.done", row, reason=reason, state=state, done=w.at)


def register_copies(ledger: Ledger, request_id: int, tags: Sequence[str]) -> list[dict[str, Any]]:
    """Register copies made under an approved copy request, one per tag: each its own
    item with the next copy numbers, in the original's home cabinet, linked to it."""
    if not tags:
        raise LedgerError("name one --tag per copy")
    clean = [t.strip().upper() for t in tags]
    for t in clean:
        if not _EPC.fullmatch(t):
            raise LedgerError(f"tag {t!r} is not an EPC in hex (8 to 64 digits)")
    if len(set(clean)) != len(clean):
        raise LedgerError("the same tag is named twice")
    out = []
    with ledger.change() as w:
        s = w.s
        row = get(s, request_id)
        if row.kind != "copy":
            raise LedgerError(f"request {request_id} is a {row.kind} request, not copy")
        if row.state != "approved":
            raise LedgerError(f"request {request_id} is {row.state}, not approved")
        done = len(documents_of(s, request_id, role="copy"))
        left = ap.copies_left(row.copies or 0, done)
        if len(clean) > left:
            raise LedgerError(
                f"request {request_id} approved {row.copies} copies, {done} registered: "
                f"{left} left, {len(clean)} tags given"
            )
        src = documents_of(s, request_id)[0]
        why = ap.copy_refusal(ap.CopySource(Level(src.classification), src.no_copying, src.status))
        if why:
            raise LedgerError(f"{_name(src)} cannot be copied: {why}")
        for t in clean:
            if s.scalars(select(m.Document).where(m.Document.tag == t)).first():
                raise LedgerError(f"tag {t} is bound to another document already")
        top = s.scalar(select(func.max(m.Document.copy_no)).where(m.Document.number == src.number))
        next_no = int(top or 0) + 1
        total = next_no + len(clean) - 1
        for i, t in enumerate(clean):
            doc = m.Document(
                number=src.number,
                title=src.title,
                issuer=src.issuer,
                classification=src.classification,
                period_years=src.period_years,
                declassify_on=src.declassify_on,
                copy_no=next_no + i,
                copies=total,
                scope=src.scope,
                no_copying=src.no_copying,
                home_cabinet_id=src.home_cabinet_id,
                return_by=src.return_by,
                tag=t,
                status="in_cabinet",
                location_cabinet_id=src.home_cabinet_id,
                holder_id=None,
                registered=w.at,
                original_id=src.original_id or src.id,
            )
            w.add("document.copy", doc, reason=f"copy under request {request_id}")
            w.add(
                "request.copy_registered",
                m.RequestItem(request_id=row.id, document_id=doc.id, role="copy"),
            )
            out.append(
                {
                    "id": doc.id,
                    "number": doc.number,
                    "copy": f"{doc.copy_no}/{doc.copies}",
                    "tag": t,
                    "original": src.tag,
                    "request": row.id,
                }
            )
        if done + len(clean) == row.copies:
            mark_done(w, row)
        cab = s.get(m.Cabinet, src.home_cabinet_id)
        assert cab is not None
        room = s.get(m.Room, cab.room_id)
        assert room is not None
        queue_policy(w, room, ledger.rules, force=False)
    return out


# -- reading ---------------------------------------------------------------------------


def get(s: Session, request_id: int) -> m.Request:
    row = s.get(m.Request, request_id)
    if row is None:
        raise LedgerError(f"no request {request_id}")
    return row


def documents_of(s: Session, request_id: int, role: str = "subject") -> list[m.Document]:
    """The documents a request is about (``subject``), or the copies registered under it
    (``copy``), in id order."""
    stmt = (
        select(m.Document)
        .join(m.RequestItem, m.RequestItem.document_id == m.Document.id)
        .where(m.RequestItem.request_id == request_id, m.RequestItem.role == role)
        .order_by(m.Document.id)
    )
    return list(s.scalars(stmt))


def approved_destroy(s: Session) -> list[tuple[m.Request, list[m.Document]]]:
    """Approved destruction lists not yet carried out, oldest first, with their documents."""
    stmt = (
        select(m.Request)
        .where(m.Request.kind == "destroy", m.Request.state == "approved")
        .order_by(m.Request.id)
    )
    return [(r, documents_of(s, r.id)) for r in s.scalars(stmt)]


def as_dict(s: Session, row: m.Request) -> dict[str, Any]:
    room = s.get(m.Room, row.room_id) if row.room_id is not None else None
    out: dict[str, Any] = {
        "id": row.id,
        "kind": row.kind,
        "state": row.state,
        "by": row.requester_id,
        "reason": row.reason,
        "created": row.created,
        "expires": row.expires,
        "documents": [_ref(d) for d in documents_of(s, row.id)],
        "decided_by": row.decided_by,
        "decided": row.decided,
        "decision_reason": row.decision_reason,
        "done": row.done,
    }
    if row.kind == "copy":
        out["copies"] = row.copies
        out["registered"] = [_ref(d) for d in documents_of(s, row.id, role="copy")]
    if row.kind in ("carry-out", "hours"):
        out["from"], out["until"] = row.starts, row.ends
    if row.kind == "hours":
        out["room"] = f"{room.site}/{room.room}" if room is not None else None
    return out


def listing(
    s: Session, *, state: str | None = None, kind: str | None = None
) -> list[dict[str, Any]]:
    if state is not None and state not in ap.STATES:
        raise LedgerError(f"unknown state {state!r}; use {', '.join(ap.STATES)}")
    if kind is not None and kind not in ap.KINDS:
        raise LedgerError(f"unknown kind {kind!r}; use {', '.join(ap.KINDS)}")
    stmt = select(m.Request).order_by(m.Request.id)
    if state is not None:
        stmt = stmt.where(m.Request.state == state)
    if kind is not None:
        stmt = stmt.where(m.Request.kind == kind)
    return [as_dict(s, r) for r in s.scalars(stmt)]


# -- time ------------------------------------------------------------------------------


def expire_pending(
    s: Session, now: datetime, room_now: dict[int, datetime], cfg: Rules
) -> list[str]:
    """Tick handler: pending requests past their expiry (tracker time) become ``expired``,
    each with its audit entry. Queues no command."""
    rows = list(
        s.scalars(
            select(m.Request).where(
                m.Request.state == "pending", m.Request.expires <= format_ts(now)
            )
        )
    )
    if rows:
        w = Writer(s, actor="tracker", at=now, cause="request expiry")
        for row in rows:
            if ap.is_expired(_facts(row), now):
                w.change("request.expire", row, state="expired")
    return []


# -- helpers ---------------------------------------------------------------------------


def _facts(row: m.Request) -> ap.RequestFacts:
    return ap.RequestFacts(
        id=row.id,
        kind=row.kind,
        state=row.state,
        requester=row.requester_id,
        created=parse_ts(row.created),
        expires=parse_ts(row.expires),
        starts=parse_ts(row.starts) if row.starts else None,
        ends=parse_ts(row.ends) if row.ends else None,
    )


def _documents(s: Session, keys: Sequence[str]) -> list[m.Document]:
    out: list[m.Document] = []
    for key in keys:
        doc = find_document(s, key)
        if doc.id in {d.id for d in out}:
            raise LedgerError(f"{key!r} is named twice")
        out.append(doc)
    return out


def find_document(s: Session, key: str) -> m.Document:
    """A document by tag, by number (when it has one copy), or ``NUMBER/K`` (copy K)."""
    text = key.strip()
    row = s.scalars(select(m.Document).where(m.Document.tag == text.upper())).first()
    if row is not None:
        return row
    rows = list(s.scalars(select(m.Document).where(m.Document.number == text)))
    if len(rows) == 1:
        return rows[0]
    if len(rows) > 1:
        raise LedgerError(
            f"{text!r} has {len(rows)} copies: name one by its tag or as {text}/K (copy K)"
        )
    number, sep, copy_no = text.rpartition("/")
    if sep and copy_no.isascii() and copy_no.isdigit():
        row = s.scalars(
            select(m.Document).where(
                m.Document.number == number, m.Document.copy_no == int(copy_no)
            )
        ).first()
        if row is not None:
            return row
    raise LedgerError(f"no document with tag or number {key!r}")


def _open_destroy(s: Session, document_id: int) -> int | None:
    return s.scalar(
        select(m.Request.id)
        .join(m.RequestItem, m.RequestItem.request_id == m.Request.id)
        .where(
            m.RequestItem.document_id == document_id,
            m.RequestItem.role == "subject",
            m.Request.kind == "destroy",
            m.Request.state.in_(("pending", "approved")),
        )
    )


def _ref(d: m.Document) -> dict[str, Any]:
    return {"number": d.number, "copy": f"{d.copy_no}/{d.copies}", "tag": d.tag}


def _name(d: m.Document) -> str:
    return f"{d.number} copy {d.copy_no} ({d.tag})" if d.tag else f"{d.number} copy {d.copy_no}"
