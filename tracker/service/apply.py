"""Applying one verified controller event to the ledger (inside the caller's
transaction): the domain decides, the writer records."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.canonical import canonical
from protocol.envelope import Event
from protocol.hours import Calendar, is_working_time
from protocol.timefmt import format_ts, parse_ts
from tracker.domain import approvals, rules
from tracker.domain.calendar import closing_for
from tracker.domain.levels import Level
from tracker.domain.overdue import Schedule
from tracker.notify import LogNotifier, Notifier
from tracker.service import facts, workflows
from tracker.service.writer import Writer
from tracker.store import models as m


@dataclass(frozen=True)
class Rules:
    """The settings the rules take from the tracker config."""

    calendar: Calendar = field(default_factory=Calendar)
    policy_calendar: dict[str, Any] = field(default_factory=dict)
    loan_days: dict[Level, int | None] = field(
        default_factory=lambda: dict(rules.DEFAULT_LOAN_DAYS)
    )
    session_s: int = 120
    unlock_s: int = 20
    allow_uid_only: bool = False
    #: two witnesses' badges at the desk within this many seconds carry out a
    #: destruction (销毁); ``[destruction] window_s``
    destruction_window_s: int = 120
    destruction_reader: str = "desk"  # the designated place: "desk" or "cabinet:<id>"
    #: 催办: the reminder delays and escalation (``[overdue]``), and how they are sent
    overdue: Schedule = field(default_factory=Schedule)
    notifier: Notifier = field(default_factory=LogNotifier)


def live_row(s: Session, room: m.Room) -> m.RoomLive:
    live = s.get(m.RoomLive, room.id)
    if live is None:
        live = m.RoomLive(room_id=room.id, offset_ms=0)
        s.add(live)
    return live


#: Event types that mean something for the ledger; the rest (sensor changes, locks,
#: heartbeats) are kept in the events table only.
LEDGER_TYPES = frozenset(
    {
        "tag.departed",
        "tag.arrived",
        "tag.seen",
        "badge.presented",
        "alarm.raised",
        "alarm.cleared",
        "controller.started",
        "command.result",
    }
)


def apply_event(w: Writer, room: m.Room, ev: Event, cfg: Rules) -> None:
    """What one event means for the ledger (then for each workflow: inventory answers,
    witnesses' badges, ...). Types with no ledger meaning (sensor changes, locks,
    heartbeats) are kept in the events table only."""
    _apply(w, room, ev, cfg)
    workflows.on_event(w, room, ev, cfg, parse_ts(ev.ts))


def _apply(w: Writer, room: m.Room, ev: Event, cfg: Rules) -> None:
    s = w.s
    when = parse_ts(ev.ts)
    data = ev.data
    t = ev.type
    if t in ("tag.departed", "tag.arrived", "tag.seen", "badge.presented"):
        cabs = facts.room_cabinets(s, room)
        key_of = facts.keys(s).key_of
        if t == "badge.presented":
            _badge(w, room, ev, cfg, cabs, key_of, when)
            return
        epc = str(data["epc"])
        row = facts.document_by_tag(s, epc)
        doc = facts.document(row, key_of) if row is not None else None
        reader = str(data["reader"])
        if t == "tag.seen":
            # sessions matter only for a document on loan read at the desk (lateral pass)
            lateral = doc is not None and doc.holder is not None and reader == "desk"
            decisions = rules.tag_seen(
                doc=doc,
                epc=epc,
                reader=reader,
                sessions=facts.live_sessions(s, room.id, when) if lateral else (),
                # approved carry-out passes matter only at the portal
                passes=facts.carry_out_passes(s, when)
                if reader == "portal" and doc is not None
                else (),
                now=when,
            )
        else:
            cabinet = f"{room.site}/{room.room}/{reader.split(':', 1)[1]}"
            if t == "tag.arrived":
                decisions = rules.tag_arrived(doc=doc, epc=epc, cabinet=cabinet, now=when)
            else:
                sessions = facts.live_sessions(s, room.id, when)
                decisions = rules.tag_departed(
                    doc=doc,
                    epc=epc,
                    cabinet=cabinet,
                    sessions=sessions,
                    people=facts.people(s, [x.person_id for x in sessions]),
                    now=when,
                    closing=closing_for(cfg.calendar, when),
                    days=cfg.loan_days,
                )
        cabinet_ids = facts.cabinet_ids(s)
        if w.execute(room, decisions, cabinet_ids=cabinet_ids, event_id=ev.id, when=when):
            queue_policy(w, room, cfg, force=False)
    elif t == "alarm.raised":
        if s.scalars(select(m.Alarm).where(m.Alarm.alarm_id == data["alarm_id"])).first():
            return
        w.raise_alarm(
            room,
            str(data["cause"]),
            str(data["severity"]),
            raised=when,
            point=data.get("point"),
            source="controller",
            alarm_id=str(data["alarm_id"]),
            event_id=ev.id,
        )
    elif t == "alarm.cleared":
        alarm = s.scalars(select(m.Alarm).where(m.Alarm.alarm_id == data["alarm_id"])).first()
        if alarm is not None and alarm.state in ("active", "acknowledged"):
            w.end_alarm(
                alarm, "reset", str(data["by"]), f"cleared at the controller ({ev.id})", room
            )
    elif t == "controller.started":
        live_row(s, room).started = json.dumps(data, sort_keys=True)
        queue_policy(w, room, cfg, force=True)
    elif t == "command.result":
        cmd = s.get(m.Command, str(data["command_id"]))
        if cmd is not None and cmd.room_id == room.id:
            cmd.ok, cmd.error = bool(data["ok"]), data.get("error")


def _badge(
    w: Writer,
    room: m.Room,
    ev: Event,
    cfg: Rules,
    cabs: facts.RoomCabinets,
    key_of: dict[int, str],
    when: datetime,
) -> None:
    s = w.s
    reader, uid = str(ev.data["reader"]), str(ev.data["uid"])
    badge = s.get(m.Badge, uid)
    person_row = s.get(m.Person, badge.person_id) if badge is not None and badge.active else None
    person = facts.person(person_row) if person_row is not None else None
    if reader == "desk":
        covered = list(cabs.by_name.values())
    elif reader.startswith("cabinet:") and reader.split(":", 1)[1] in cabs.by_name:
        covered = [cabs.by_name[reader.split(":", 1)[1]]]
    else:
        covered = []
    docs = facts.docs_in_cabinets(s, [c.id for c in covered], key_of)
    ctx = rules.BadgeContext(
        reader=reader,
        uid=uid,
        auth=str(ev.data["auth"]),
        allow_uid_only=cfg.allow_uid_only,
        person=person,
        cabinets={cabs.key_of[c.id]: (c.name, docs[c.id]) for c in covered},
        locked_cabinets=_locks(s, room, cabs),
        working=is_working_time(cfg.calendar, when) or _granted(s, room, when),
        blocked=facts.blocked_people(s, when).get(person.id) if person else None,
        session_s=cfg.session_s,
        unlock_s=cfg.unlock_s,
    )
    w.execute(room, rules.badge_presented(ctx, when), cabinet_ids={}, event_id=ev.id, when=when)


def _granted(s: Session, room: m.Room, when: datetime) -> bool:
    """Inside an approved extended-hours grant for the room (DOMAIN.md rule 14)."""
    grants = facts.hours_grants(s, room.id) or []
    return approvals.in_grant((approvals.Grant(a, b) for a, b in grants), when)


def _locks(s: Session, room: m.Room, cabs: facts.RoomCabinets) -> frozenset[str]:
    """Cabinets with a lock, from the controller's ``controller.started`` points (every
    registered cabinet until the controller has said)."""
    live = s.get(m.RoomLive, room.id)
    if live is not None and live.started:
        points = json.loads(live.started).get("points", [])
        return frozenset(p.split(":", 1)[1] for p in points if p.startswith("lock:"))
    return frozenset(cabs.by_name)


#: Extended-hours grants a room's policy carries, at most (the latest).
POLICY_GRANTS = 32


def room_policy(s: Session, room: m.Room, cfg: Rules, now: datetime) -> dict[str, Any]:
    cabs = facts.room_cabinets(s, room)
    key_of = facts.keys(s).key_of
    docs = facts.docs_in_cabinets(s, list(cabs.by_id), key_of)
    calendar = cfg.policy_calendar
    grants = facts.hours_grants(s, room.id)
    if grants is not None:  # extended hours granted for the room: the controller's too
        # the latest ones, ended or not: the room's clock (not the tracker's) says which
        # still count, and a grant that has ended changes nothing there
        latest = grants[-POLICY_GRANTS:]
        extended = [{"start": format_ts(a), "end": format_ts(b)} for a, b in latest]
        calendar = {**calendar, "extended": extended}
    return rules.room_policy(
        cabinets={c.name: docs[c.id] for c in cabs.by_id.values()},
        people=facts.people(s),
        badges=facts.badge_map(s),
        calendar=calendar,
        blocked=frozenset(facts.blocked_people(s, now)),
    )


def queue_policy(w: Writer, room: m.Room, cfg: Rules, *, force: bool) -> bool:
    """Queue a ``policy.update`` when what the controller decides alone has changed (or
    always, ``force``: at every ``controller.started``)."""
    policy = room_policy(w.s, room, cfg, parse_ts(w.at))
    digest = hashlib.sha256(canonical(policy)).hexdigest()
    live = live_row(w.s, room)
    if not force and live.policy_hash == digest:
        return False
    live.policy_hash = digest
    w.command(
        room,
        "policy.update",
        policy,
        reason="policy changed" if not force else "controller started",
    )
    return True
