"""Ledger operations for people: registering rooms, cabinets, people, badges and
documents, importing a delivery, and the listings. Each change is one transaction with
its audit entries; anything that changes what a controller decides alone queues a
``policy.update`` for its room (published by the running tracker)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from protocol.names import is_name
from protocol.signing import parse_key
from protocol.timefmt import format_ts
from tracker.domain.levels import ROLES, Level
from tracker.domain.model import Scope
from tracker.service import facts
from tracker.service.apply import Rules, queue_policy
from tracker.service.writer import Writer
from tracker.store import models as m

#: Default secrecy periods (保密期限), years: 绝密 30, 机密 20, 秘密 10.
DEFAULT_PERIOD = {Level.TOP_SECRET: 30, Level.SECRET: 20, Level.CONFIDENTIAL: 10}
_EPC = re.compile(r"[0-9A-F]{8,64}")
_UID = re.compile(r"[0-9A-F]{8,20}")
#: an email address for reminders (催办): one @, no spaces, at most 320 characters
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}")


class LedgerError(ValueError):
    """A ledger request that cannot be carried out; the message says why."""


@dataclass
class Ledger:
    sessions: sessionmaker[Session]
    rules: Rules
    actor: str
    reason: str | None
    now: datetime

    @contextmanager
    def change(self) -> Iterator[Writer]:
        """One transaction: the changes, their audit entries, queued commands."""
        try:
            with self.sessions.begin() as s:
                yield Writer(s, actor=self.actor, at=self.now, cause=self.reason)
        except (IntegrityError, DataError) as exc:  # DataError: too long for PostgreSQL
            raise LedgerError(f"refused by the database: {_integrity(exc)}") from None

    # -- rooms and cabinets ----------------------------------------------------------------

    def room_add(
        self, site: str, room: str, controller: str, key: bytes, command_key: bytes | None
    ) -> dict[str, Any]:
        for what, name in (("site", site), ("room", room), ("controller", controller)):
            if not is_name(name):
                raise LedgerError(f"{what} {name!r}: use a-z, 0-9 and '-', at most 32")
        with self.change() as w:
            if _room(w.s, site, room, missing_ok=True):
                raise LedgerError(f"room {site}/{room} exists already")
            row = m.Room(
                site=site,
                room=room,
                controller=controller,
                event_key=key.hex(),
                command_key=(command_key or key).hex(),
                generation=1,
            )
            w.add("room.add", row)
        return {"site": site, "room": room, "controller": controller, "generation": 1}

    def room_reenrol(self, site: str, room: str, key: bytes | None) -> dict[str, Any]:
        """A replaced or wiped controller: its next boot is accepted as new; every boot
        of the old one is closed (its events stay in the ledger, its acks are history)."""
        with self.change() as w:
            row = _room(w.s, site, room)
            values: dict[str, Any] = {"generation": row.generation + 1}
            if key is not None:
                values["event_key"] = key.hex()
                if row.command_key == row.event_key:
                    values["command_key"] = key.hex()
            w.change("room.reenrol", row, **values)
            w.s.query(m.Boot).filter(m.Boot.room_id == row.id).update({"closed": True})
            gen = row.generation
        return {"site": site, "room": room, "generation": gen}

    def cabinet_add(self, site: str, room: str, cabinet: str, general: bool) -> dict[str, Any]:
        if not is_name(cabinet):
            raise LedgerError(f"cabinet {cabinet!r}: use a-z, 0-9 and '-', at most 32")
        with self.change() as w:
            r = _room(w.s, site, room)
            w.add("cabinet.add", m.Cabinet(room_id=r.id, name=cabinet, general=general))
            queue_policy(w, r, self.rules, force=False)
        return {"cabinet": f"{site}/{room}/{cabinet}", "general": general}

    # -- people and badges -----------------------------------------------------------------

    def person_add(
        self,
        pid: str,
        name: str,
        clearance: Level,
        roles: Sequence[str],
        dept: str | None,
        *,
        email: str | None = None,
    ) -> dict[str, Any]:
        if not pid.strip() or len(pid) > 64:
            raise LedgerError("person id: 1 to 64 characters")
        if email is not None and not _EMAIL.fullmatch(email):
            raise LedgerError(f"--email {email!r}: expected an address like name@example.org")
        bad = sorted(set(roles) - set(ROLES))
        if bad:
            raise LedgerError(f"unknown roles {bad}; use {', '.join(ROLES)}")
        with self.change() as w:
            if w.s.get(m.Person, pid) is not None:
                raise LedgerError(f"person {pid} exists already")
            w.add(
                "person.add",
                m.Person(
                    id=pid,
                    name=name,
                    dept=dept,
                    clearance=int(clearance),
                    roles=json.dumps(sorted(set(roles))),
                    active=True,
                    email=email,
                ),
            )
            self._policies(w)
        return {
            "id": pid,
            "name": name,
            "clearance": clearance.chinese,
            "roles": sorted(roles),
            "dept": dept,
        } | ({"email": email} if email is not None else {})

    def badge_add(self, uid: str, person: str) -> dict[str, Any]:
        uid = uid.upper()
        if not _UID.fullmatch(uid):
            raise LedgerError(f"badge uid {uid!r}: 8 to 20 hex digits")
        with self.change() as w:
            if w.s.get(m.Person, person) is None:
                raise LedgerError(f"no person {person}")
            if w.s.get(m.Badge, uid) is not None:
                raise LedgerError(f"badge {uid} is registered already")
            w.add("badge.add", m.Badge(uid=uid, person_id=person, active=True))
            self._policies(w)
        return {"uid": uid, "person": person}

    def _policies(self, w: Writer) -> None:
        for room in w.s.scalars(select(m.Room)):
            queue_policy(w, room, self.rules, force=False)

    # -- documents -------------------------------------------------------------------------

    def document_add(self, doc: DocumentIn) -> dict[str, Any]:
        with self.change() as w:
            row = self._document(w, doc)
        return {
            "id": row.id,
            "number": doc.number,
            "copy": f"{doc.copy_no}/{doc.copies}",
            "tag": doc.tag,
        }

    def _document(self, w: Writer, doc: DocumentIn) -> m.Document:
        cab = _cabinet(w.s, doc.cabinet)
        if cab.general and doc.classification.classified:
            raise LedgerError(
                f"{doc.cabinet} is a general cabinet: {doc.classification.chinese} documents "
                "are kept apart, in a classified cabinet"
            )
        if w.s.scalars(select(m.Document).where(m.Document.tag == doc.tag)).first():
            raise LedgerError(f"tag {doc.tag} is bound to another document already")
        if w.s.scalars(
            select(m.Document).where(
                m.Document.number == doc.number, m.Document.copy_no == doc.copy_no
            )
        ).first():
            raise LedgerError(f"{doc.number} copy {doc.copy_no} is registered already")
        row = m.Document(
            number=doc.number,
            title=doc.title,
            issuer=doc.issuer,
            classification=int(doc.classification),
            period_years=doc.period
            if doc.period is not None
            else DEFAULT_PERIOD.get(doc.classification),
            declassify_on=doc.declassify_on,
            copy_no=doc.copy_no,
            copies=doc.copies,
            scope=json.dumps([str(s) for s in doc.scope]),
            no_copying=doc.no_copying,
            home_cabinet_id=cab.id,
            return_by=doc.return_by,
            tag=doc.tag,
            status="in_cabinet",
            location_cabinet_id=cab.id,
            holder_id=None,
            registered=format_ts(self.now),
        )
        w.add("document.register", row)
        room = w.s.get(m.Room, cab.room_id)
        assert room is not None
        queue_policy(w, room, self.rules, force=False)
        return row

    def import_csv(self, path: Path) -> list[dict[str, Any]]:
        """A delivery (收文登记): every row or none. Errors name the line and column."""
        rows = read_delivery(path)
        out = []
        with self.change() as w:
            for line, doc in rows:
                try:
                    row = self._document(w, doc)
                except LedgerError as exc:
                    raise LedgerError(f"{path}: line {line}: {exc}") from None
                out.append(
                    {
                        "id": row.id,
                        "number": doc.number,
                        "tag": doc.tag,
                        "copy": f"{doc.copy_no}/{doc.copies}",
                    }
                )
        return out

    # -- alarms ----------------------------------------------------------------------------

    def alarm_reset(self, alarm_id: str, by: str, reason: str) -> dict[str, Any]:
        """A person resets a latched alarm, with a reason. A controller's alarm is reset on
        the controller too (``alarm.reset``)."""
        if not reason.strip():
            raise LedgerError("a reset needs a reason")
        with self.change() as w:
            if w.s.get(m.Person, by) is None:
                raise LedgerError(f"no person {by}")
            a = w.s.scalars(select(m.Alarm).where(m.Alarm.alarm_id == alarm_id)).first()
            if a is None:
                raise LedgerError(f"no alarm {alarm_id}")
            if a.state not in ("active", "acknowledged"):
                raise LedgerError(f"alarm {alarm_id} is {a.state} already")
            room = w.s.get(m.Room, a.room_id) if a.room_id is not None else None
            w.end_alarm(a, "reset", by, reason, room)
            if a.source == "controller" and room is not None:
                w.command(
                    room, "alarm.reset", {"alarm_id": alarm_id, "by": by}, reason=f"reset by {by}"
                )
            return alarm_dict(a, room)


@dataclass(frozen=True)
class DocumentIn:
    number: str
    title: str
    classification: Level
    tag: str
    cabinet: str  # SITE/ROOM/CABINET
    copy_no: int = 1
    copies: int = 1
    scope: tuple[Scope, ...] = ()
    no_copying: bool = False
    issuer: str | None = None
    period: int | None = None
    declassify_on: str | None = None
    return_by: str | None = None

    @classmethod
    def build(cls, **raw: Any) -> DocumentIn:
        """From text fields (command line or CSV); raises ``LedgerError(field, why)``."""

        def need(name: str) -> str:
            v = str(raw.get(name) or "").strip()
            if not v:
                raise FieldError(name, "missing")
            return v

        number, title, level_text = need("number"), need("title"), need("classification")
        try:
            level = Level.parse(level_text)
        except ValueError as exc:
            raise FieldError("classification", str(exc)) from None
        tag = need("tag").upper()
        if not _EPC.fullmatch(tag):
            raise FieldError("tag", f"{tag!r} is not an EPC in hex (8 to 64 digits)")
        cabinet = need("cabinet")
        if cabinet.count("/") != 2:
            raise FieldError("cabinet", f"{cabinet!r}: expected SITE/ROOM/CABINET")
        copy_no, copies = 1, 1
        copy = str(raw.get("copy") or "").strip()
        if copy:
            mt = re.fullmatch(r"([0-9]{1,5})/([0-9]{1,5})", copy)
            if not mt or not 1 <= int(mt[1]) <= int(mt[2]):
                raise FieldError("copy", f"{copy!r}: expected K/N with 1 <= K <= N")
            copy_no, copies = int(mt[1]), int(mt[2])
        scope_raw = raw.get("scope") or ()
        if isinstance(scope_raw, str):
            scope_raw = [x for x in re.split(r"[;；]", scope_raw) if x.strip()]
        try:
            scope = tuple(Scope.parse(x.strip()) for x in scope_raw)
        except ValueError as exc:
            raise FieldError("scope", str(exc)) from None
        period = raw.get("period")
        if isinstance(period, str):
            period = period.strip() or None
        if period is not None:
            try:
                period = int(period)
            except ValueError:
                raise FieldError("period", f"{period!r} is not a number of years") from None
            if not 1 <= period <= 100:
                raise FieldError("period", "years from 1 to 100")
        dates = {}
        for key in ("declassify_on", "return_by"):
            v = str(raw.get(key) or "").strip()
            if v:
                try:
                    # stored as YYYY-MM-DD whatever ISO form was typed (20261231, 2026-W53-4)
                    v = date.fromisoformat(v).isoformat()
                except ValueError:
                    raise FieldError(key, f"{v!r} is not a date YYYY-MM-DD") from None
            dates[key] = v or None
        flag = raw.get("no_copying")
        if isinstance(flag, str):
            low = flag.strip().lower()
            if low not in ("", "0", "1", "true", "false", "yes", "no", "是", "否"):
                raise FieldError("no_copying", f"{flag!r}: use true/false (or 是/否)")
            flag = low in ("1", "true", "yes", "是")
        issuer = str(raw.get("issuer") or "").strip() or None
        return cls(
            number,
            title,
            level,
            tag,
            cabinet,
            copy_no,
            copies,
            scope,
            bool(flag),
            issuer,
            period,
            dates["declassify_on"],
            dates["return_by"],
        )


class FieldError(LedgerError):
    """One field of a document that cannot be used: which field, and why."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


#: The columns of a delivery CSV (the first line names them; order is free).
CSV_COLUMNS = (
    "number",
    "title",
    "classification",
    "tag",
    "cabinet",
    "copy",
    "scope",
    "no_copying",
    "issuer",
    "period",
    "declassify_on",
    "return_by",
)
CSV_REQUIRED = ("number", "title", "classification", "tag", "cabinet")


def read_delivery(path: Path) -> list[tuple[int, DocumentIn]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LedgerError(f"{path}: {(exc.strerror or str(exc)).lower()}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LedgerError(f"{path}: not UTF-8 (byte {exc.start}); save the file as UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        return _rows(path, reader)
    except csv.Error as exc:  # a field over the csv module's limit, say
        raise LedgerError(f"{path}: line {reader.reader.line_num}: {exc}") from None


def _rows(path: Path, reader: csv.DictReader[str]) -> list[tuple[int, DocumentIn]]:
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise LedgerError(f"{path}: empty file: the first line must name the columns")
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        raise LedgerError(
            f"{path}: line 1: unknown columns {unknown}; known: {', '.join(CSV_COLUMNS)}"
        )
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise LedgerError(f"{path}: line 1: columns named twice {twice}")
    missing = [c for c in CSV_REQUIRED if c not in header]
    if missing:
        raise LedgerError(f"{path}: line 1: missing columns {missing}")
    reader.fieldnames = header
    out = []
    for rec in reader:
        line = reader.line_num
        if None in rec:
            raise LedgerError(f"{path}: line {line}: more fields than columns")
        if all(not (v or "").strip() for v in rec.values()):
            continue
        try:
            out.append((line, DocumentIn.build(**rec)))
        except FieldError as exc:
            raise LedgerError(f"{path}: line {line}, column {exc.field!r}: {exc.why}") from None
    if not out:
        raise LedgerError(f"{path}: no rows to import")
    return out


# -- listings ----------------------------------------------------------------------------


def show(s: Session, what: str) -> list[dict[str, Any]]:
    key = what.strip()
    rows = s.scalars(select(m.Document).where(m.Document.tag == key.upper())).all()
    if not rows:
        rows = s.scalars(
            select(m.Document).where(m.Document.number == key).order_by(m.Document.copy_no)
        ).all()
    if not rows:
        raise LedgerError(f"no document with tag or number {what!r}")
    keys = facts.Keys(s)
    out = []
    for d in rows:
        loan = facts.open_loan_row(s, d.id)
        out.append(
            {
                "number": d.number,
                "title": d.title,
                "classification": Level(d.classification).chinese,
                "tag": d.tag,
                "status": d.status,
                "cabinet": keys.get(d.location_cabinet_id),
                "holder": d.holder_id,
                "home": keys.get(d.home_cabinet_id),
                "copy": f"{d.copy_no}/{d.copies}",
                "issuer": d.issuer,
                "scope": json.loads(d.scope),
                "no_copying": d.no_copying,
                "period_years": d.period_years,
                "declassify_on": d.declassify_on,
                "return_by": d.return_by,
                "loan": None
                if loan is None
                else {
                    "person": loan.person_id,
                    "opened": loan.opened,
                    "due": loan.due,
                    "kind": loan.kind,
                },
            }
        )
    return out


def loans(s: Session, *, open_only: bool, person: str | None) -> list[dict[str, Any]]:
    stmt = select(m.Loan, m.Document).join(m.Document, m.Document.id == m.Loan.document_id)
    if open_only:
        stmt = stmt.where(m.Loan.closed.is_(None))
    if person:
        stmt = stmt.where(m.Loan.person_id == person)
    return [
        {
            "document": d.number,
            "copy": f"{d.copy_no}/{d.copies}",
            "tag": d.tag,
            "person": ln.person_id,
            "opened": ln.opened,
            "due": ln.due,
            "closed": ln.closed,
            "kind": ln.kind,
            "misplaced": ln.misplaced,
        }
        for ln, d in s.execute(stmt.order_by(m.Loan.id))
    ]


def alarm_dict(a: m.Alarm, room: m.Room | None) -> dict[str, Any]:
    return {
        "alarm_id": a.alarm_id,
        "cause": a.cause,
        "room": f"{room.site}/{room.room}" if room is not None else None,
        "point": a.point,
        "severity": a.severity,
        "raised": a.raised,
        "state": a.state,
        "source": a.source,
        "detail": json.loads(a.detail),
        "ended": a.ended,
        "ended_by": a.ended_by,
        "reason": a.reason,
    }


def alarms(s: Session, *, active: bool) -> list[dict[str, Any]]:
    rooms = {r.id: r for r in s.scalars(select(m.Room))}
    stmt = select(m.Alarm).order_by(m.Alarm.id)
    if active:
        stmt = stmt.where(m.Alarm.state.in_(("active", "acknowledged")))
    return [alarm_dict(a, rooms.get(a.room_id) if a.room_id else None) for a in s.scalars(stmt)]


def events(s: Session, room: str | None) -> Iterator[dict[str, Any]]:
    rooms = {r.id: r for r in s.scalars(select(m.Room))}
    stmt = select(m.Event).where(m.Event.applied)
    if room:
        site, _, name = room.partition("/")
        r = _room(s, site, name)
        stmt = stmt.where(m.Event.room_id == r.id)
    stmt = stmt.order_by(m.Event.room_id, m.Event.generation, m.Event.boot, m.Event.seq)
    for e in s.scalars(stmt.execution_options(yield_per=1000)):
        r = rooms[e.room_id]
        yield {
            "id": f"{r.controller}:{e.boot}:{e.seq}",
            "room": f"{r.site}/{r.room}",
            "generation": e.generation,
            "ts": e.ts,
            "type": e.type,
            "data": json.loads(e.data),
        }


# -- helpers -----------------------------------------------------------------------------


def read_key(path: str) -> bytes:
    try:
        return parse_key(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise LedgerError(f"{path}: {(exc.strerror or str(exc)).lower()}") from None
    except ValueError as exc:
        raise LedgerError(f"{path}: {exc}") from None


def _room(s: Session, site: str, room: str, *, missing_ok: bool = False) -> m.Room:
    row = s.scalars(select(m.Room).where(m.Room.site == site, m.Room.room == room)).first()
    if row is None and not missing_ok:
        raise LedgerError(f"no room {site}/{room} (add it with 'ironroom ledger room add')")
    return row  # type: ignore[return-value]


def _cabinet(s: Session, key: str) -> m.Cabinet:
    site, room, name = key.split("/", 2)
    r = _room(s, site, room)
    cab = s.scalars(
        select(m.Cabinet).where(m.Cabinet.room_id == r.id, m.Cabinet.name == name)
    ).first()
    if cab is None:
        raise LedgerError(f"no cabinet {key}")
    return cab


def _integrity(exc: IntegrityError | DataError) -> str:
    return str(exc.orig).splitlines()[0] if exc.orig else "constraint failed"
