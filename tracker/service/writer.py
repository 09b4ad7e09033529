"""One transaction's worth of ledger changes, each with its audit entry."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from protocol.timefmt import format_ts
from tracker.domain import model as dm
from tracker.service.facts import open_loan_row
from tracker.store import models as m
from tracker.store.audit import Auditor, snapshot

#: Condition alarms: they end by themselves when the condition goes ("cleared").
CONDITION_CAUSES = frozenset({"controller_silent", "clock_skew"})


def new_alarm_id(room: m.Room | None) -> str:
    where = f"{room.site}/{room.room}" if room is not None else "unknown"
    return f"trk:{where}:{uuid.uuid4().hex[:12]}"


class Writer:
    """Writes ledger rows and their audit entries inside ``session``'s transaction.

    ``actor`` says who made the change (``tracker`` for the ingest, ``cli:<user>``);
    ``cause`` which event or command line did (it goes into every entry's reason).
    Commands made here are collected in :attr:`commands` to be published after commit.
    """

    def __init__(self, session: Session, *, actor: str, at: datetime, cause: str | None) -> None:
        self.s = session
        self.at = format_ts(at)
        self.audit = Auditor(session, actor=actor, ts=self.at, reason=cause)
        self.cause = cause
        self.commands: list[str] = []

    def add(self, action: str, row: m.Base, reason: str | None = None) -> m.Base:
        self.s.add(row)
        self.audit.record(action, row, None, reason=reason)
        return row

    def change(self, action: str, row: m.Base, reason: str | None = None, **values: Any) -> bool:
        """Set ``values`` on ``row``; an entry only when something really changed."""
        before = snapshot(row)
        for k, v in values.items():
            setattr(row, k, v)
        if snapshot(row) == before:
            return False
        self.audit.record(action, row, before, reason=reason)
        return True

    # -- alarms and commands ------------------------------------------------------------

    def raise_alarm(
        self,
        room: m.Room | None,
        cause: str,
        severity: str,
        *,
        raised: datetime,
        point: str | None = None,
        document_id: int | None = None,
        detail: dict[str, Any] | None = None,
        source: str = "tracker",
        alarm_id: str | None = None,
        event_id: str | None = None,
    ) -> m.Alarm:
        alarm = m.Alarm(
            alarm_id=alarm_id or new_alarm_id(room),
            room_id=room.id if room is not None else None,
            source=source,
            cause=cause,
            point=point,
            severity=severity,
            raised=format_ts(raised),
            state="active",
            document_id=document_id,
            detail=json.dumps(detail or {}, sort_keys=True, ensure_ascii=False, default=str),
            count=1,
            event_id=event_id,
        )
        self.add("alarm.raise", alarm)
        if source == "tracker" and cause in dm.SIREN_CAUSES and room is not None:
            self.command(
                room,
                "siren.set",
                {"state": "on", "alarm_id": alarm.alarm_id},
                reason=f"alarm {alarm.alarm_id}",
            )
        return alarm

    def end_alarm(
        self, alarm: m.Alarm, state: str, by: str, reason: str | None, room: m.Room | None
    ) -> None:
        """``reset`` (by a person, with a reason) or ``cleared`` (the condition went)."""
        before = snapshot(alarm)
        alarm.state, alarm.ended, alarm.ended_by, alarm.reason = state, self.at, by, reason
        self.audit.record(f"alarm.{state}", alarm, before, reason=reason)
        if alarm.source == "tracker" and alarm.cause in dm.SIREN_CAUSES and room is not None:
            self.command(
                room,
                "siren.set",
                {"state": "off", "alarm_id": alarm.alarm_id},
                reason=f"alarm {alarm.alarm_id} {state}",
            )

    def command(self, room: m.Room, type_: str, data: dict[str, Any], *, reason: str) -> str:
        """Queue a command for ``room``: signed and published once this commits."""
        cid = str(uuid.uuid4())
        self.s.add(
            m.Command(
                id=cid,
                room_id=room.id,
                type=type_,
                data=json.dumps(data, sort_keys=True, ensure_ascii=False),
                created=self.at,
                reason=reason,
            )
        )
        self.commands.append(cid)
        return cid

    # -- the domain's decisions -----------------------------------------------------------

    def execute(
        self,
        room: m.Room,
        decisions: list[dm.Decision],
        *,
        cabinet_ids: dict[str, int],
        event_id: str | None,
        when: datetime,
    ) -> bool:
        """Carry out decisions; True when a document moved (the policy may change)."""
        moved = False
        for d in decisions:
            if isinstance(d, dm.OpenLoan):
                self.add(
                    "loan.open",
                    m.Loan(
                        document_id=d.document_id,
                        person_id=d.person_id,
                        kind=d.kind,
                        opened=format_ts(d.opened),
                        due=format_ts(d.due),
                        opened_by=event_id,
                    ),
                )
            elif isinstance(d, dm.CloseLoan):
                loan = open_loan_row(self.s, d.document_id)
                if loan is not None:
                    self.change(
                        "loan.close",
                        loan,
                        closed=format_ts(d.closed),
                        misplaced=d.misplaced,
                        closed_by=event_id,
                    )
            elif isinstance(d, dm.Move):
                doc = self.s.get(m.Document, d.document_id)
                if doc is not None:
                    moved |= self.change(
                        "document.move",
                        doc,
                        status=d.status,
                        location_cabinet_id=cabinet_ids.get(d.location) if d.location else None,
                        holder_id=d.holder,
                    )
            elif isinstance(d, dm.RaiseAlarm):
                self.raise_alarm(
                    room,
                    d.cause,
                    d.severity,
                    raised=when,
                    point=d.point,
                    document_id=d.document_id,
                    detail=dict(d.detail),
                    event_id=event_id,
                )
            elif isinstance(d, dm.Record):
                self.add(
                    f"incident.{d.kind}",
                    m.Incident(
                        room_id=room.id,
                        kind=d.kind,
                        ts=format_ts(when),
                        epc=d.epc,
                        document_id=d.document_id,
                        person_id=d.person_id,
                        detail=json.dumps(d.detail, sort_keys=True, ensure_ascii=False),
                        event_id=event_id,
                    ),
                )
            elif isinstance(d, dm.OpenSession):
                ses = d.session
                self.s.add(
                    m.BadgeSession(
                        room_id=room.id,
                        person_id=ses.person_id,
                        uid=ses.uid,
                        reader=ses.reader,
                        cabinets=json.dumps(sorted(ses.cabinets)),
                        opened=format_ts(ses.opened),
                        until=format_ts(ses.until),
                        event_id=event_id,
                    )
                )
            elif isinstance(d, dm.Unlock):
                self.command(
                    room,
                    "cabinet.unlock",
                    {"cabinet": d.cabinet, "seconds": d.seconds, "badge": d.badge},
                    reason=f"badge {d.badge} ({event_id})",
                )
        return moved
