"""Handover (交接): the list of what a person changing post holds or keeps, settled item
by item at a desk (both parties' badges, the folders read there) or from the command
line (both badges named), each change audited.

A pending loan item handed over closes the loan to the predecessor and opens one to the
successor with the same due date and kind (``closed_by``/``opened_by``
``handover:<id>``): the one sanctioned transfer of a loan. A loan item whose folder
comes back into a cabinet was returned (the core rules closed its loan)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.envelope import Event
from protocol.timefmt import format_ts, parse_ts
from tracker.domain import handover as rules
from tracker.domain import model as dm
from tracker.service import facts
from tracker.service.apply import queue_policy
from tracker.service.ledger import _UID, Ledger, LedgerError
from tracker.service.writer import Writer
from tracker.store import models as m

if TYPE_CHECKING:
    from tracker.service.apply import Rules


# -- the list --------------------------------------------------------------------------


def start(ledger: Ledger, from_id: str, to_id: str) -> list[dict[str, Any]]:
    """Open a hand-over from ``from_id`` to ``to_id`` with one item per document held or
    kept; returns its header and items (``status``)."""
    with ledger.change() as w:
        s = w.s
        pred, succ = _person(s, from_id), _person(s, to_id)
        open_one = s.scalars(
            select(m.Handover).where(m.Handover.from_id == from_id, m.Handover.state == "open")
        ).first()
        if open_one is not None:
            raise LedgerError(f"{from_id} has an open hand-over already ({open_one.id})")
        key_of = facts.keys(s).key_of
        docs = {d.id: facts.document(d, key_of) for d in s.scalars(select(m.Document))}
        listed = rules.handover_list(pred, docs.values())
        why = rules.successor_refusal(succ, pred, listed, docs)
        if why is not None:
            raise LedgerError(why)
        h = m.Handover(from_id=from_id, to_id=to_id, state="open", created=w.at)
        w.add("handover.open", h)
        for item in listed:
            w.add(
                "handover_item.list",
                m.HandoverItem(handover_id=h.id, document_id=item.document_id, reason=item.reason),
            )
        if not listed:
            w.change("handover.done", h, state="done", closed=w.at)
        hid = h.id
    return _read(ledger, hid)


def listing(s: Session) -> list[dict[str, Any]]:
    return [_header(s, h) for h in s.scalars(select(m.Handover).order_by(m.Handover.id))]


def status(s: Session, hid: int) -> list[dict[str, Any]]:
    """The header (no ``item`` key), then one object per item."""
    h = _handover(s, hid)
    keys = facts.Keys(s)
    out = [_header(s, h)]
    for it, d in s.execute(
        select(m.HandoverItem, m.Document)
        .join(m.Document, m.Document.id == m.HandoverItem.document_id)
        .where(m.HandoverItem.handover_id == hid)
        .order_by(m.HandoverItem.id)
    ):
        out.append(
            {
                "handover": hid,
                "item": it.id,
                "document": d.number,
                "copy": f"{d.copy_no}/{d.copies}",
                "tag": d.tag,
                "reason": it.reason,
                "state": it.state,
                "done": it.done,
                "from_badge": it.from_badge,
                "to_badge": it.to_badge,
                "via": it.via,
                "status": d.status,
                "holder": d.holder_id,
                "cabinet": keys.get(d.location_cabinet_id),
            }
        )
    return out


def confirm(
    ledger: Ledger, hid: int, from_badge: str, to_badge: str, document: str | None
) -> list[dict[str, Any]]:
    """Both parties confirm at the command line, each naming their badge: every pending
    item (or those of one document, by tag or number) that can be settled is."""
    with ledger.change() as w:
        s = w.s
        h = _handover(s, hid)
        if h.state != "open":
            raise LedgerError(f"hand-over {hid} is {h.state} already")
        fb = _badge_of(s, from_badge, h.from_id, "--from-badge")
        tb = _badge_of(s, to_badge, h.to_id, "--to-badge")
        items = _pending(s, h)
        if document is not None:
            key = document.strip()
            items = [(it, d) for it, d in items if d.tag == key.upper() or d.number == key]
            if not items:
                raise LedgerError(f"no pending item of hand-over {hid} for {document!r}")
        succ = _person(s, h.to_id)
        key_of = facts.keys(s).key_of
        settled = []
        for it, d in items:
            out = rules.settle(
                it.reason,
                facts.document(d, key_of),
                from_id=h.from_id,
                successor=succ,
                present=True,
            )
            if out is not None:
                settled.append((it, d, out))
        if document is not None and not settled:
            it, d = items[0]
            raise LedgerError(
                f"{d.number} copy {d.copy_no} cannot be settled now: it is {d.status}"
                + (f" (holder {d.holder_id})" if d.holder_id else "")
            )
        _apply(w, h, settled, fb, tb, "cli", ledger.rules)
    return _read(ledger, hid)


# -- at the desk (an event handler, inside the event's transaction) --------------------


def on_event(w: Writer, room: m.Room, ev: Event, cfg: Rules, when: datetime) -> None:
    """Both badges at a room's desk within the pairing window settle the pending items
    that are present: a loan item whose folder was read at that desk in the window, a
    custody item in one of the room's cabinets. A loan item's folder arriving in a
    cabinet marks it returned."""
    t = ev.type
    if t not in ("badge.presented", "tag.seen", "tag.arrived"):
        return
    if not _any_open(w.s):
        return
    reader = str(ev.data.get("reader", ""))
    if t == "tag.arrived":
        _arrived(w, str(ev.data["epc"]), ev.id, when)
    elif reader != "desk":
        return
    elif t == "badge.presented":
        _desk_badge(w, room, ev, cfg, when)
    else:
        _desk_tag(w, room, ev, cfg, when)


def _any_open(s: Session) -> bool:
    # Hand-overs are opened by the command line only: within one ingest transaction the
    # answer holds (one settled here leaves a stale True: a query more, no harm).
    return bool(
        facts._per_transaction(
            s,
            "handovers_open",
            lambda: (
                s.scalar(select(m.Handover.id).where(m.Handover.state == "open").limit(1))
                is not None
            ),
        )
    )


def _desk_badge(w: Writer, room: m.Room, ev: Event, cfg: Rules, when: datetime) -> None:
    s = w.s
    uid, auth = str(ev.data["uid"]), str(ev.data["auth"])
    if not (auth == "verified" or (auth == "uid-only" and cfg.allow_uid_only)):
        return
    badge = s.get(m.Badge, uid)
    if badge is None or not badge.active:
        return
    pid = badge.person_id
    for h in s.scalars(
        select(m.Handover).where(
            m.Handover.state == "open", (m.Handover.from_id == pid) | (m.Handover.to_id == pid)
        )
    ).all():
        kind = "from" if h.from_id == pid else "to"
        _sighting(s, h, room, kind, uid, ev.id, when)
        _evaluate(w, h, room, ev.id, when, cfg)


def _desk_tag(w: Writer, room: m.Room, ev: Event, cfg: Rules, when: datetime) -> None:
    s = w.s
    epc = str(ev.data["epc"])
    doc = facts.document_by_tag(s, epc)
    if doc is None:
        return
    for h in _handovers_pending_for(s, doc.id, reason="loan"):
        _sighting(s, h, room, "tag", epc, ev.id, when)
        _evaluate(w, h, room, ev.id, when, cfg)


def _arrived(w: Writer, epc: str, event_id: str, when: datetime) -> None:
    s = w.s
    doc = facts.document_by_tag(s, epc)
    if doc is None:
        return
    key_of = facts.keys(s).key_of
    value = facts.document(doc, key_of)
    for h in _handovers_pending_for(s, doc.id, reason="loan"):
        if rules.returned_on_arrival("loan", value, h.from_id):
            items = [(it, d) for it, d in _pending(s, h) if d.id == doc.id]
            _apply(
                w,
                h,
                [(it, d, rules.Outcome("returned")) for it, d in items],
                None,
                None,
                event_id,
                None,
            )


def _handovers_pending_for(s: Session, document_id: int, *, reason: str) -> list[m.Handover]:
    return list(
        s.scalars(
            select(m.Handover)
            .join(m.HandoverItem, m.HandoverItem.handover_id == m.Handover.id)
            .where(
                m.Handover.state == "open",
                m.HandoverItem.document_id == document_id,
                m.HandoverItem.state == "pending",
                m.HandoverItem.reason == reason,
            )
            .distinct()
        )
    )


def _sighting(
    s: Session, h: m.Handover, room: m.Room, kind: str, value: str, event_id: str, when: datetime
) -> None:
    s.add(
        m.HandoverSighting(
            handover_id=h.id,
            room_id=room.id,
            kind=kind,
            value=value,
            ts=format_ts(when),
            event_id=event_id,
        )
    )
    s.flush()


def _evaluate(
    w: Writer, h: m.Handover, room: m.Room, event_id: str, when: datetime, cfg: Rules
) -> None:
    s = w.s
    since = format_ts(when - rules.PAIRING_WINDOW)
    seen = [
        rules.Sighting(r.kind, r.value, parse_ts(r.ts))
        for r in s.scalars(
            select(m.HandoverSighting).where(
                m.HandoverSighting.handover_id == h.id,
                m.HandoverSighting.room_id == room.id,
                m.HandoverSighting.ts >= since,
            )
        )
    ]
    pair = rules.pairing(seen, when)
    if pair is None:
        return
    tags = rules.present_tags(seen, when)
    in_room = set(facts.room_cabinets(s, room).key_of.values())
    succ = _person(s, h.to_id)
    key_of = facts.keys(s).key_of
    settled = []
    for it, d in _pending(s, h):
        doc = facts.document(d, key_of)
        present = (d.tag in tags) if it.reason == "loan" else (doc.location in in_room)
        out = rules.settle(it.reason, doc, from_id=h.from_id, successor=succ, present=present)
        if out is not None:
            settled.append((it, d, out))
    _apply(w, h, settled, pair[0], pair[1], event_id, cfg)


# -- writing ---------------------------------------------------------------------------


def _apply(
    w: Writer,
    h: m.Handover,
    settled: Iterable[tuple[m.HandoverItem, m.Document, rules.Outcome]],
    from_badge: str | None,
    to_badge: str | None,
    via: str,
    cfg: Rules | None,
) -> None:
    s = w.s
    transferred = False
    for it, d, out in settled:
        if out.transfer:
            loan = facts.open_loan_row(s, d.id)
            if loan is None:  # the document is on loan (settle said so): its loan row
                raise LedgerError(f"{d.number}: on loan to {h.from_id} but no open loan")
            w.change(
                "loan.close",
                loan,
                closed=w.at,
                closed_by=f"handover:{h.id}",
                reason=f"handed over to {h.to_id}",
            )
            w.add(
                "loan.open",
                m.Loan(
                    document_id=d.id,
                    person_id=h.to_id,
                    kind=loan.kind,
                    opened=w.at,
                    due=loan.due,
                    opened_by=f"handover:{h.id}",
                ),
                reason=f"handed over from {h.from_id}",
            )
            w.change("document.move", d, holder_id=h.to_id)
            transferred = True
        values: dict[str, Any] = {"state": out.state, "done": w.at, "via": via}
        if out.state == "handed_over":
            values.update(from_badge=from_badge, to_badge=to_badge)
        w.change(f"handover_item.{out.state}", it, **values)
    states = s.scalars(select(m.HandoverItem.state).where(m.HandoverItem.handover_id == h.id)).all()
    if rules.finished(states):
        w.change("handover.done", h, state="done", closed=w.at)
    if transferred and cfg is not None:  # an overdue loan now blocks the successor
        for room in s.scalars(select(m.Room)):
            queue_policy(w, room, cfg, force=False)


def _pending(s: Session, h: m.Handover) -> list[tuple[m.HandoverItem, m.Document]]:
    return [
        (it, d)
        for it, d in s.execute(
            select(m.HandoverItem, m.Document)
            .join(m.Document, m.Document.id == m.HandoverItem.document_id)
            .where(m.HandoverItem.handover_id == h.id, m.HandoverItem.state == "pending")
            .order_by(m.HandoverItem.id)
        )
    ]


# -- helpers ---------------------------------------------------------------------------


def _read(ledger: Ledger, hid: int) -> list[dict[str, Any]]:
    with ledger.sessions() as s:
        return status(s, hid)


def _header(s: Session, h: m.Handover) -> dict[str, Any]:
    states = list(s.scalars(select(m.HandoverItem.state).where(m.HandoverItem.handover_id == h.id)))
    return {
        "handover": h.id,
        "from": h.from_id,
        "to": h.to_id,
        "state": h.state,
        "created": h.created,
        "closed": h.closed,
        "items": len(states),
        "pending": sum(1 for x in states if x == "pending"),
    }


def _handover(s: Session, hid: int) -> m.Handover:
    h = s.get(m.Handover, hid)
    if h is None:
        raise LedgerError(f"no hand-over {hid}")
    return h


def _person(s: Session, pid: str) -> dm.Person:
    row = s.get(m.Person, pid)
    if row is None:
        raise LedgerError(f"no person {pid}")
    return facts.person(row)


def _badge_of(s: Session, uid: str, person: str, option: str) -> str:
    uid = uid.strip().upper()
    if not _UID.fullmatch(uid):
        raise LedgerError(f"{option} {uid!r}: 8 to 20 hex digits")
    b = s.get(m.Badge, uid)
    if b is None or not b.active:
        raise LedgerError(f"{option} {uid}: no active badge")
    if b.person_id != person:
        raise LedgerError(f"{option} {uid} is {b.person_id}'s badge, not {person}'s")
    return uid
