"""Inventory (清查): starting a run, taking the readers' answers, reconciling, and the
report.

A run is started by the command line (:func:`start_run`): one ``inventory.run`` command
per cabinet reader of the room, queued in the run's own transaction and published by
the running tracker. Each reader's ``command.result`` (``reader``, ``tags``) is taken by
:func:`on_event` inside that event's transaction; when every reader has answered, or the
room's clock passes the run's deadline (:func:`on_tick`), the run is reconciled
(:func:`tracker.domain.inventory.reconcile`): its items are stored, the register follows
the sweep, and the run is ``done``. Every row is written through the
:class:`~tracker.service.writer.Writer`, so all of it is in the audit chain.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from protocol.envelope import Event
from protocol.errors import SchemaError
from protocol.schema import _hex as check_epc
from protocol.timefmt import format_ts, parse_ts
from tracker.domain.inventory import OUTCOMES, reconcile
from tracker.domain.levels import Level
from tracker.service import facts
from tracker.service.ledger import Ledger, LedgerError, _room
from tracker.service.writer import Writer
from tracker.store import models as m

if TYPE_CHECKING:
    from tracker.service.apply import Rules

#: How long, on the room's clock, a run waits for its readers by default: a reader that
#: has not answered by then is reported in ``not_read`` and its cabinet left unchecked.
#: The controller refuses a command older than its lifetime (60 s) anyway.
READ_TIMEOUT_S = 60
TIMEOUT_RANGE = (5, 3600)
#: The most tags one reader's answer may hold (a cabinet holds a few hundred folders).
MAX_TAGS = 10_000


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def room_clock(s: Session, room: m.Room, now: datetime) -> datetime:
    """``now`` on the room's clock, as the tracker last estimated its offset."""
    live = s.get(m.RoomLive, room.id)
    if live is None or live.offset_at is None:
        return now
    return now + timedelta(milliseconds=live.offset_ms)


def cabinet_readers(s: Session, room: m.Room) -> list[str]:
    """The cabinet readers to sweep: the room's registered cabinets whose reader the
    controller named in ``controller.started`` (every registered cabinet until it has)."""
    names = sorted(facts.RoomCabinets(s, room).by_name)
    live = s.get(m.RoomLive, room.id)
    readers = [f"cabinet:{n}" for n in names]
    if live is not None and live.started:
        said = set(json.loads(live.started).get("readers", []))
        readers = [r for r in readers if r in said]
    return readers


# -- starting a run -----------------------------------------------------------------------


def start_run(
    ledger: Ledger, site: str, room: str, *, timeout_s: int = READ_TIMEOUT_S
) -> dict[str, Any]:
    """Create a run and queue ``inventory.run`` for each cabinet reader of the room."""
    lo, hi = TIMEOUT_RANGE
    if not lo <= timeout_s <= hi:
        raise LedgerError(f"--timeout {timeout_s}: between {lo} and {hi} seconds")
    with ledger.change() as w:
        r = _room(w.s, site, room)
        running = w.s.scalars(
            select(m.InventoryRun).where(
                m.InventoryRun.room_id == r.id, m.InventoryRun.state == "running"
            )
        ).first()
        if running is not None:
            raise LedgerError(f"inventory run {running.id} of {site}/{room} is still running")
        readers = cabinet_readers(w.s, r)
        if not readers:
            raise LedgerError(f"room {site}/{room} has no cabinet reader to sweep")
        started = room_clock(w.s, r, ledger.now)
        run = m.InventoryRun(
            room_id=r.id,
            state="running",
            started=format_ts(started),
            deadline=format_ts(started + timedelta(seconds=timeout_s)),
            readers=_json(readers),
            not_read="[]",
            summary="{}",
            requested_by=ledger.actor,
        )
        w.add("inventory.start", run)
        for reader in readers:
            cid = w.command(
                r, "inventory.run", {"reader": reader}, reason=f"inventory run {run.id}"
            )
            w.add("inventory.ask", m.InventoryRead(run_id=run.id, reader=reader, command_id=cid))
        out = run_dict(run, r)
    return out


def wait_done(
    readers: sessionmaker[Session],
    run_id: int,
    timeout_s: float,
    *,
    poll_s: float = 0.2,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Poll the database until the run is ``done``; a timeout is a LedgerError."""
    deadline = clock() + timeout_s
    while True:
        with readers() as s:
            state = s.scalar(select(m.InventoryRun.state).where(m.InventoryRun.id == run_id))
        if state == "done":
            return
        if clock() >= deadline:
            raise LedgerError(
                f"inventory run {run_id} not reconciled within {timeout_s:g} s "
                "(is the tracker running and the controller online?)"
            )
        time.sleep(poll_s)


# -- the readers' answers and the reconciliation -------------------------------------------


def on_event(w: Writer, room: m.Room, ev: Event, cfg: Rules, when: datetime) -> None:
    """A ``command.result`` answering one of a running run's commands: keep that
    reader's tags; the last answer reconciles the run."""
    if ev.type != "command.result":
        return
    s = w.s
    read = s.scalars(
        select(m.InventoryRead).where(m.InventoryRead.command_id == str(ev.data["command_id"]))
    ).first()
    if read is None or read.answered is not None:
        return
    run = s.get(m.InventoryRun, read.run_id)
    if run is None or run.state != "running" or run.room_id != room.id:
        return
    ok, error, tags = _answer(ev.data, read.reader)
    w.change(
        "inventory.answer",
        read,
        answered=format_ts(when),
        ok=ok,
        error=error,
        tags=_json(tags) if tags is not None else None,
    )
    if all(r.answered is not None for r in _reads(s, run.id)):
        finish(w, run, room, cfg, when)


def _answer(data: Any, reader: str) -> tuple[bool, str | None, list[str] | None]:
    if data.get("ok") is not True:
        return False, str(data.get("error") or "refused"), None
    tags = data.get("tags")
    if data.get("reader") != reader:
        return False, f"answered for reader {data.get('reader')!r}", None
    if not isinstance(tags, list) or len(tags) > MAX_TAGS:
        return False, f"the answer holds no list of at most {MAX_TAGS} tags", None
    for tag in tags:
        try:
            check_epc(tag)
        except SchemaError as exc:
            return False, f"the answer holds a bad tag: {exc}", None
    return True, None, sorted(set(tags))


def on_tick(s: Session, now: datetime, room_now: dict[int, datetime], cfg: Rules) -> list[str]:
    """Runs whose commands can no longer be answered (not sent in time) or whose
    deadline the room's clock has passed are reconciled with what came."""
    commands: list[str] = []
    for run in s.scalars(select(m.InventoryRun).where(m.InventoryRun.state == "running")).all():
        room = s.get(m.Room, run.room_id)
        if room is None:
            continue
        rnow = room_now.get(run.room_id, now)
        w: Writer | None = None
        reads = _reads(s, run.id)
        for read in reads:
            if read.answered is not None:
                continue
            cmd = s.get(m.Command, read.command_id)
            if cmd is not None and cmd.ok is not None:  # resolved with no answer: expired
                w = w or Writer(s, actor="tracker", at=now, cause=f"inventory run {run.id}")
                w.change(
                    "inventory.answer",
                    read,
                    answered=format_ts(rnow),
                    ok=False,
                    error=cmd.error or "no tags in the answer",
                )
        if all(r.answered is not None for r in reads) or rnow >= parse_ts(run.deadline):
            cause = f"inventory run {run.id}"
            if any(r.answered is None for r in reads):
                cause += ": past its deadline"
            w = w or Writer(s, actor="tracker", at=now, cause=cause)
            finish(w, run, room, cfg, rnow)
        if w is not None:
            commands += w.commands
    return commands


def _reads(s: Session, run_id: int) -> list[m.InventoryRead]:
    return list(
        s.scalars(
            select(m.InventoryRead)
            .where(m.InventoryRead.run_id == run_id)
            .order_by(m.InventoryRead.reader)
        )
    )


def finish(w: Writer, run: m.InventoryRun, room: m.Room, cfg: Rules, when: datetime) -> None:
    """Reconcile the run with the ledger, store its items, let the register follow the
    sweep, and close the run (``when``: the room's clock)."""
    from tracker.service.apply import queue_policy

    s = w.s
    cabs = facts.RoomCabinets(s, room)
    key_of = facts.Keys(s).key_of
    reads = _reads(s, run.id)
    swept: dict[str, list[str]] = {}
    for r in reads:
        if r.ok and r.tags is not None:
            swept[f"{room.site}/{room.room}/{r.reader.split(':', 1)[1]}"] = json.loads(r.tags)
    heard = {t for tags in swept.values() for t in tags}
    ids = list(cabs.by_id)
    clauses = [m.Document.home_cabinet_id.in_(ids), m.Document.location_cabinet_id.in_(ids)]
    if heard:
        clauses.append(m.Document.tag.in_(sorted(heard)))
    rows = s.scalars(select(m.Document).where(or_(*clauses)).order_by(m.Document.id)).all()
    # A document homed here but misplaced in another room is that room's to find.
    docs = [
        facts.document(d, key_of)
        for d in rows
        if d.tag in heard
        or d.location_cabinet_id in cabs.by_id
        or d.location_cabinet_id is None
        or d.status not in ("in_cabinet", "misplaced")
    ]
    result = reconcile(
        documents=docs,
        reads=swept,
        cabinets={key: c.general for key, c in cabs.by_key.items()},
        now=when,
    )
    for item in result.items:
        w.add(
            "inventory.item",
            m.InventoryItem(
                run_id=run.id,
                outcome=item.outcome,
                epc=item.epc,
                document_id=item.document_id,
                cabinet=item.cabinet,
                home=item.home,
                status_before=item.status_before,
                status_after=item.status_after,
                holder_id=item.holder,
                detail=_json(item.detail),
            ),
        )
    moved = w.execute(
        room, list(result.decisions), cabinet_ids=facts.cabinet_ids(s), event_id=None, when=when
    )
    counts = {o: n for o in OUTCOMES if (n := sum(1 for i in result.items if i.outcome == o))}
    not_read = [
        {"reader": r.reader, "error": r.error if r.answered is not None else "no answer"}
        for r in reads
        if not r.ok
    ]
    w.change(
        "inventory.done",
        run,
        state="done",
        finished=format_ts(when),
        not_read=_json(not_read),
        summary=_json(counts),
    )
    if moved:
        queue_policy(w, room, cfg, force=False)


# -- listings -------------------------------------------------------------------------------


def run_dict(run: m.InventoryRun, room: m.Room) -> dict[str, Any]:
    return {
        "run": run.id,
        "room": f"{room.site}/{room.room}",
        "state": run.state,
        "started": run.started,
        "deadline": run.deadline,
        "finished": run.finished,
        "readers": json.loads(run.readers),
        "not_read": json.loads(run.not_read),
        "summary": json.loads(run.summary),
        "requested_by": run.requested_by,
    }


def _run_row(s: Session, run_id: int) -> tuple[m.InventoryRun, m.Room]:
    run = s.get(m.InventoryRun, run_id)
    if run is None:
        raise LedgerError(f"no inventory run {run_id}")
    room = s.get(m.Room, run.room_id)
    assert room is not None
    return run, room


def inventory_report(s: Session, run_id: int) -> dict[str, Any]:
    """A run and its items: ``{"run": {...}, "items": [{...}, ...]}``, items in the
    order of :data:`tracker.domain.inventory.OUTCOMES` (what needs attention first)."""
    run, room = _run_row(s, run_id)
    rows = s.execute(
        select(m.InventoryItem, m.Document)
        .outerjoin(m.Document, m.Document.id == m.InventoryItem.document_id)
        .where(m.InventoryItem.run_id == run.id)
        .order_by(m.InventoryItem.id)
    ).all()
    items = [
        {
            "run": run.id,
            "outcome": item.outcome,
            "epc": item.epc,
            "document": doc.number if doc is not None else None,
            "copy": f"{doc.copy_no}/{doc.copies}" if doc is not None else None,
            "title": doc.title if doc is not None else None,
            "classification": Level(doc.classification).chinese if doc is not None else None,
            "cabinet": item.cabinet,
            "home": item.home,
            "status_before": item.status_before,
            "status_after": item.status_after,
            "holder": item.holder_id,
            "detail": json.loads(item.detail),
        }
        for item, doc in rows
    ]
    return {"run": run_dict(run, room), "items": items}


def list_runs(s: Session, room: str | None) -> list[dict[str, Any]]:
    stmt = select(m.InventoryRun, m.Room).join(m.Room, m.Room.id == m.InventoryRun.room_id)
    if room is not None:
        site, sep, name = room.partition("/")
        if not sep:
            raise LedgerError(f"--room {room!r}: expected SITE/ROOM")
        stmt = stmt.where(m.Room.id == _room(s, site, name).id)
    return [run_dict(r, rm) for r, rm in s.execute(stmt.order_by(m.InventoryRun.id)).all()]
