"""What the console shows and the one change of its own (acknowledging an alarm):
plain dicts from a session, so the pages and the JSON API say the same thing."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from protocol.timefmt import format_ts
from tracker.domain.levels import Level
from tracker.service import facts
from tracker.service.ledger import Ledger, LedgerError, alarm_dict
from tracker.service.writer import CONDITION_CAUSES
from tracker.store import models as m
from tracker.store.audit import verify

ACTIVE = ("active", "acknowledged")


def change_mark(s: Session) -> str:
    """Changes whenever the live view may have: the newest audit entry (alarms, loans,
    moves) and each room's snapshot time and link status (one row per room)."""
    audit = s.scalar(select(func.max(m.AuditEntry.id))) or 0
    live = s.execute(
        select(m.RoomLive.room_id, m.RoomLive.status, m.RoomLive.state_ts).order_by(
            m.RoomLive.room_id
        )
    ).all()
    return f"{audit}|" + ";".join(f"{r}:{st}:{ts}" for r, st, ts in live)


def _group(points: dict[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {
        "door": {},
        "windows": {},
        "cabinets": {},
        "locks": {},
        "other": {},
    }
    for name, state in sorted(points.items()):
        if name.startswith("lock:"):
            out["locks"][name[5:]] = state
        elif name.startswith("door"):
            out["door"][name] = state
        elif name.startswith("window"):
            out["windows"][name] = state
        elif name.startswith("cabinet"):
            out["cabinets"][name.partition(":")[2] or name] = state
        else:
            out["other"][name] = state
    return out


def rooms_live(s: Session) -> list[dict[str, Any]]:
    """Each room: its controller's link, the last state snapshot grouped by kind, arming,
    and the room's active alarms."""
    rooms = list(s.scalars(select(m.Room).order_by(m.Room.site, m.Room.room)))
    live = {r.room_id: r for r in s.scalars(select(m.RoomLive))}
    active = list(s.scalars(select(m.Alarm).where(m.Alarm.state.in_(ACTIVE)).order_by(m.Alarm.id)))
    out = []
    for r in rooms:
        lv = live.get(r.id)
        state = json.loads(lv.state) if lv is not None and lv.state else {}
        mine = [alarm_dict(a, r) for a in active if a.room_id == r.id]
        out.append(
            {
                "room": f"{r.site}/{r.room}",
                "controller": r.controller,
                "status": lv.status if lv is not None else None,
                "silent": any(a["cause"] == "controller_silent" for a in mine),
                "state_ts": lv.state_ts if lv is not None else None,
                "armed": state.get("armed"),
                "siren": state.get("siren"),
                "points": _group(dict(state.get("points", {}))),
                "alarms": mine,
            }
        )
    return out


def controllers(s: Session) -> list[dict[str, Any]]:
    return [
        {k: r[k] for k in ("room", "controller", "status", "silent", "state_ts")}
        for r in rooms_live(s)
    ]


def alarms(s: Session, *, active: bool) -> list[dict[str, Any]]:
    rooms = {r.id: r for r in s.scalars(select(m.Room))}
    stmt = select(m.Alarm).order_by(m.Alarm.id.desc())
    if active:
        stmt = stmt.where(m.Alarm.state.in_(ACTIVE))
    return [
        alarm_dict(a, rooms.get(a.room_id) if a.room_id else None)
        for a in s.scalars(stmt.limit(500))
    ]


def alarm_ack(ledger: Ledger, alarm_id: str, by: str) -> dict[str, Any]:
    """A person acknowledges an active alarm (seen, being dealt with); it stays latched
    until a reset with a reason."""
    with ledger.change() as w:
        a = w.s.scalars(select(m.Alarm).where(m.Alarm.alarm_id == alarm_id)).first()
        if a is None:
            raise LedgerError(f"no alarm {alarm_id}")
        if a.cause in CONDITION_CAUSES:
            # the ingest ends these when the condition goes (an active one only)
            raise LedgerError(
                f"alarm {alarm_id} ({a.cause}) ends by itself: nothing to acknowledge"
            )
        if a.state != "active":
            raise LedgerError(f"alarm {alarm_id} is {a.state}: only an active one is acknowledged")
        w.change("alarm.ack", a, state="acknowledged", reason=f"acknowledged by {by}")
        room = w.s.get(m.Room, a.room_id) if a.room_id is not None else None
        return alarm_dict(a, room)


def _doc(d: m.Document, keys: facts.Keys, loan: m.Loan | None) -> dict[str, Any]:
    return {
        "id": d.id,
        "number": d.number,
        "title": d.title,
        "classification": Level(d.classification).chinese,
        "classification_en": Level(d.classification).english,
        "copy": f"{d.copy_no}/{d.copies}",
        "tag": d.tag,
        "status": d.status,
        "cabinet": keys.get(d.location_cabinet_id),
        "home": keys.get(d.home_cabinet_id),
        "holder": d.holder_id,
        "loan": None
        if loan is None
        else {"person": loan.person_id, "opened": loan.opened, "due": loan.due, "kind": loan.kind},
    }


def register(
    s: Session,
    *,
    q: str | None = None,
    classification: str | None = None,
    status: str | None = None,
    holder: str | None = None,
    cabinet: str | None = None,
    own: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """The register (登记簿) filtered; ``own``: only what that person holds or has on loan."""
    stmt = select(m.Document).order_by(m.Document.number, m.Document.copy_no)
    if q:
        like = f"%{q.strip()}%"
        stmt = stmt.where(
            or_(
                m.Document.number.ilike(like),
                m.Document.title.ilike(like),
                m.Document.tag == q.strip().upper(),
            )
        )
    if classification:
        try:
            stmt = stmt.where(m.Document.classification == int(Level.parse(classification)))
        except ValueError as exc:
            raise LedgerError(str(exc)) from None
    if status:
        stmt = stmt.where(m.Document.status == status)
    if holder:
        stmt = stmt.where(m.Document.holder_id == holder)
    keys = facts.Keys(s)
    if cabinet:
        ids = [i for i, k in keys.key_of.items() if k == cabinet or k.endswith("/" + cabinet)]
        stmt = stmt.where(
            or_(m.Document.location_cabinet_id.in_(ids), m.Document.home_cabinet_id.in_(ids))
        )
    if own is not None:
        lent = select(m.Loan.document_id).where(m.Loan.person_id == own)
        stmt = stmt.where(or_(m.Document.holder_id == own, m.Document.id.in_(lent)))
    out = []
    for d in s.scalars(stmt.limit(limit)):
        out.append(_doc(d, keys, facts.open_loan_row(s, d.id)))
    return out


def document(s: Session, doc_id: int, *, own: str | None = None) -> dict[str, Any]:
    """One document and its whole history: ledger entries and the physical events that
    name its tag, on one timeline."""
    d = s.get(m.Document, doc_id)
    if d is None:
        raise LedgerError(f"no document {doc_id}")
    if (
        own is not None
        and d.holder_id != own
        and s.scalar(
            select(func.count())
            .select_from(m.Loan)
            .where(m.Loan.document_id == d.id, m.Loan.person_id == own)
        )
        == 0
    ):
        raise PermissionError("not a document of this person")
    keys = facts.Keys(s)
    out = _doc(d, keys, facts.open_loan_row(s, d.id))
    timeline: list[dict[str, Any]] = []
    loan_ids = [str(i) for i in s.scalars(select(m.Loan.id).where(m.Loan.document_id == d.id))]
    ledger = select(m.AuditEntry).where(
        or_(
            (m.AuditEntry.entity == "document") & (m.AuditEntry.entity_key == str(d.id)),
            (m.AuditEntry.entity == "loan") & m.AuditEntry.entity_key.in_(loan_ids),
        )
    )
    for e in s.scalars(ledger.order_by(m.AuditEntry.id)):
        timeline.append(
            {"ts": e.ts, "kind": "ledger", "what": e.action, "by": e.actor, "reason": e.reason}
        )
    if d.tag:
        rooms = {r.id: r for r in s.scalars(select(m.Room))}
        evs = select(m.Event).where(m.Event.applied, m.Event.data.like(f"%{d.tag}%"))
        for ev in s.scalars(evs.order_by(m.Event.ts).limit(1000)):
            r = rooms.get(ev.room_id)
            timeline.append(
                {
                    "ts": ev.ts,
                    "kind": "event",
                    "what": ev.type,
                    "by": r.controller if r is not None else None,
                    "reason": ev.data,
                }
            )
    timeline.sort(key=lambda x: (x["ts"] or "", x["kind"]))
    out["history"] = timeline
    return out


def loans(
    s: Session, now: datetime, *, open_only: bool, overdue: bool = False, person: str | None = None
) -> list[dict[str, Any]]:
    at = format_ts(now)
    stmt = select(m.Loan, m.Document).join(m.Document, m.Document.id == m.Loan.document_id)
    if open_only or overdue:
        stmt = stmt.where(m.Loan.closed.is_(None))
    if overdue:
        stmt = stmt.where(m.Loan.due < at)
    if person:
        stmt = stmt.where(m.Loan.person_id == person)
    return [
        {
            "document": d.number,
            "document_id": d.id,
            "copy": f"{d.copy_no}/{d.copies}",
            "person": ln.person_id,
            "kind": ln.kind,
            "opened": ln.opened,
            "due": ln.due,
            "closed": ln.closed,
            "overdue": ln.closed is None and ln.due < at,
        }
        for ln, d in s.execute(stmt.order_by(m.Loan.id.desc()).limit(1000))
    ]


def people(s: Session) -> list[dict[str, Any]]:
    badges: dict[str, list[dict[str, Any]]] = {}
    for b in s.scalars(select(m.Badge).order_by(m.Badge.uid)):
        badges.setdefault(b.person_id, []).append({"uid": b.uid, "active": b.active})
    return [
        {
            "id": p.id,
            "name": p.name,
            "dept": p.dept,
            "clearance": Level(p.clearance).chinese,
            "roles": json.loads(p.roles),
            "active": p.active,
            "badges": badges.get(p.id, []),
        }
        for p in s.scalars(select(m.Person).order_by(m.Person.id))
    ]


def audit_verify(s: Session) -> dict[str, Any]:
    v = verify(s)
    return {k: getattr(v, k) for k in v.__dataclass_fields__}
