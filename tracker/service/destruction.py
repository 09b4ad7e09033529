"""Carrying out approved destruction lists (销毁) at a room's designated reader (the
desk, or ``[destruction] reader``), and the records.

- :func:`on_event` is the event handler: a ``badge.presented`` at that reader while an
  approved ``destroy`` request waits in the room is a witness; with a second, different
  person inside ``[destruction] window_s`` every list whose documents are all present is
  carried out (the rules: :mod:`tracker.domain.destruction`). Inside the event's
  transaction, every change audited.
- :func:`listing`, :func:`get` and :func:`attempts` read the records.

A list waits in a room when one of its documents has its home cabinet there. Carrying
it out writes the permanent record (both witnesses, their badges and times, the request,
each document's number, copy and tag), marks each document ``destroyed`` (its loan
closed, its tag retired: still bound to it, so a reading of it raises
``destroyed_tag_seen`` and it can never be bound again) and the request ``done``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.envelope import Event
from protocol.timefmt import format_ts, parse_ts
from tracker.domain import destruction as dx
from tracker.domain.levels import Level
from tracker.domain.model import Record
from tracker.service import facts, requests
from tracker.service.apply import Rules, queue_policy
from tracker.service.ledger import LedgerError
from tracker.service.writer import Writer
from tracker.store import models as m

WITNESS = "destruction_witness"
REFUSED = "destruction_refused"


def on_event(w: Writer, room: m.Room, ev: Event, cfg: Rules, when: datetime) -> None:
    """Event handler: badges at the designated reader witness the room's waiting
    destruction lists."""
    if ev.type != "badge.presented" or ev.data.get("reader") != cfg.destruction_reader:
        return
    s = w.s
    here = f"{room.site}/{room.room}"
    lists = waiting_lists(s, here)
    if not lists:
        return
    uid = str(ev.data["uid"])
    badge = s.get(m.Badge, uid)
    person_row = s.get(m.Person, badge.person_id) if badge is not None and badge.active else None
    outcomes = dx.desk_badge(
        room=here,
        uid=uid,
        auth=str(ev.data["auth"]),
        person=facts.person(person_row) if person_row is not None else None,
        now=when,
        earlier=witnesses(s, room, when),
        lists=[lst for lst, _ in lists],
        window=timedelta(seconds=cfg.destruction_window_s),
        allow_uid_only=cfg.allow_uid_only,
        reader=cfg.destruction_reader,
    )
    rows = {lst.request_id: row for lst, row in lists}
    for out in outcomes:
        if isinstance(out, Record):
            w.execute(room, [out], cabinet_ids={}, event_id=ev.id, when=when)
        else:
            carry_out(w, room, rows[out.request_id], out, ev.id, cfg)


def waiting_lists(s: Session, here: str) -> list[tuple[dx.DestroyList, m.Request]]:
    """Approved destruction lists with a document whose home cabinet is in room ``here``
    (``SITE/ROOM``), oldest first."""
    key_of = facts.keys(s).key_of
    out = []
    for row, docs in requests.approved_destroy(s):
        items = tuple(
            dx.Item(
                document_id=d.id,
                number=d.number,
                copy_no=d.copy_no,
                status=d.status,
                room=_room_of(key_of.get(d.location_cabinet_id or -1)),
                home_room=_room_of(key_of.get(d.home_cabinet_id)) or "",
                holder=d.holder_id,
            )
            for d in docs
        )
        if any(it.home_room == here for it in items):
            out.append((dx.DestroyList(row.id, items), row))
    return out


def witnesses(s: Session, room: m.Room, when: datetime) -> list[dx.Witness]:
    """The witnesses recorded at the room's desk up to ``when`` since its last
    destruction (a badge that witnessed one destruction does not witness the next)."""
    last = s.scalar(
        select(m.Destruction.destroyed)
        .where(m.Destruction.room_id == room.id)
        .order_by(m.Destruction.destroyed.desc())
        .limit(1)
    )
    stmt = select(m.Incident).where(
        m.Incident.room_id == room.id,
        m.Incident.kind == WITNESS,
        m.Incident.ts <= format_ts(when),
    )
    if last is not None:
        stmt = stmt.where(m.Incident.ts > last)
    rows = s.scalars(stmt.order_by(m.Incident.ts.desc()).limit(50))
    out = []
    for r in rows:
        if r.person_id is None:
            continue
        detail = json.loads(r.detail)
        out.append(dx.Witness(r.person_id, str(detail.get("uid", "")), parse_ts(r.ts)))
    return out


def carry_out(
    w: Writer, room: m.Room, req: m.Request, d: dx.Destroy, event_id: str | None, cfg: Rules
) -> m.Destruction:
    """The permanent record, the documents destroyed (loans closed, tags retired), the
    request done; inside the caller's transaction."""
    s = w.s
    rec = m.Destruction(
        request_id=req.id,
        room_id=room.id,
        reader=cfg.destruction_reader,
        destroyed=format_ts(d.second.at),
        approved_by=req.decided_by,
        witness1_id=d.first.person_id,
        witness1_badge=d.first.uid,
        witness1_at=format_ts(d.first.at),
        witness2_id=d.second.person_id,
        witness2_badge=d.second.uid,
        witness2_at=format_ts(d.second.at),
        event_id=event_id,
    )
    w.add("destruction.record", rec)
    for doc_id in d.documents:
        doc = s.get(m.Document, doc_id)
        assert doc is not None
        w.add(
            "destruction.item",
            m.DestructionItem(
                destruction_id=rec.id,
                document_id=doc.id,
                number=doc.number,
                copy_no=doc.copy_no,
                copies=doc.copies,
                tag=doc.tag,
                classification=doc.classification,
                status_before=doc.status,
                holder_before=doc.holder_id,
            ),
        )
        loan = facts.open_loan_row(s, doc.id)
        if loan is not None:
            w.change("loan.close", loan, closed=rec.destroyed, closed_by=event_id)
        w.change(
            "document.destroy",
            doc,
            reason=f"destroyed under request {req.id}",
            status="destroyed",
            location_cabinet_id=None,
            holder_id=None,
        )
    requests.mark_done(
        w,
        req,
        reason=f"destroyed at {room.site}/{room.room} {cfg.destruction_reader}, witnessed by "
        f"{d.first.person_id} and {d.second.person_id}",
    )
    queue_policy(w, room, cfg, force=False)
    return rec


# -- reading ---------------------------------------------------------------------------


def as_dict(s: Session, rec: m.Destruction) -> dict[str, Any]:
    room = s.get(m.Room, rec.room_id)
    items = s.scalars(
        select(m.DestructionItem)
        .where(m.DestructionItem.destruction_id == rec.id)
        .order_by(m.DestructionItem.id)
    )
    return {
        "id": rec.id,
        "request": rec.request_id,
        "room": f"{room.site}/{room.room}" if room is not None else None,
        "reader": rec.reader,
        "destroyed": rec.destroyed,
        "approved_by": rec.approved_by,
        "witnesses": [
            {"person": rec.witness1_id, "badge": rec.witness1_badge, "at": rec.witness1_at},
            {"person": rec.witness2_id, "badge": rec.witness2_badge, "at": rec.witness2_at},
        ],
        "documents": [
            {
                "number": it.number,
                "copy": f"{it.copy_no}/{it.copies}",
                "tag": it.tag,
                "classification": Level(it.classification).chinese,
                "status_before": it.status_before,
                "holder_before": it.holder_before,
            }
            for it in items
        ],
        "event": rec.event_id,
    }


def listing(s: Session, *, request: int | None = None) -> list[dict[str, Any]]:
    stmt = select(m.Destruction).order_by(m.Destruction.id)
    if request is not None:
        stmt = stmt.where(m.Destruction.request_id == request)
    return [as_dict(s, r) for r in s.scalars(stmt)]


def get(s: Session, record_id: int) -> dict[str, Any]:
    rec = s.get(m.Destruction, record_id)
    if rec is None:
        raise LedgerError(f"no destruction record {record_id}")
    return as_dict(s, rec)


def attempts(s: Session) -> list[dict[str, Any]]:
    """Every badge recorded at a desk for a destruction: witnesses and refusals."""
    rooms = {r.id: r for r in s.scalars(select(m.Room))}
    stmt = select(m.Incident).where(m.Incident.kind.in_((WITNESS, REFUSED))).order_by(m.Incident.id)
    out = []
    for r in s.scalars(stmt):
        room = rooms.get(r.room_id) if r.room_id is not None else None
        out.append(
            {
                "kind": r.kind,
                "ts": r.ts,
                "room": f"{room.site}/{room.room}" if room is not None else None,
                "person": r.person_id,
                "detail": json.loads(r.detail),
                "event": r.event_id,
            }
        )
    return out


def _room_of(cabinet_key: str | None) -> str | None:
    return cabinet_key.rsplit("/", 1)[0] if cabinet_key else None
