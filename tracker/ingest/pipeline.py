"""The ingest pipeline: verified events applied once, in seq order per controller boot,
committed in batches, then acknowledged.

The MQTT side (a process of its own, :mod:`tracker.ingest.link`) only appends what
arrives to an :class:`Inbox`; one worker thread (:class:`Processor`) owns the database.
A batch is one transaction; only after it committed are the broker's PUBACKs sent, the
signed ``P/ack`` published and the commands the batch decided on published. Alarms have
a lane of their own and are taken first, so an alarm is never committed behind a batch of
bulk events.

Delivery rules (PROTOCOL.md, tracker side):

* duplicate id with identical bytes: dropped quietly; with other bytes: forged;
* bad signature, unknown controller, an event of a closed boot: forged. A boot closes
  when a newer boot of the same controller reports an empty outbox (``outbox_depth`` 0
  in a heartbeat: everything older was acknowledged), or when the room is re-enrolled.
  An older boot that is not closed is accepted: after a restart the controller sends its
  new boot's alarms first, then what the old boot left unacknowledged;
* a gap in seq is held ``reorder_window_s``, then recorded as ``event_gap`` and
  acknowledged past; an event that fills a skipped gap later is still applied;
* alarms are applied on arrival, ahead of any gap.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import (
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker

from protocol.envelope import MAX_PAYLOAD, Event, decode_event, decode_state, make_ack
from protocol.errors import BadSignature, ProtocolError
from protocol.timefmt import format_ts, parse_ts
from protocol.topics import parse_topic
from tracker.clock import Clock
from tracker.domain import rules
from tracker.domain.calendar import closings_between
from tracker.service import facts, workflows
from tracker.service.apply import LEDGER_TYPES, Rules, apply_event, live_row
from tracker.service.writer import Writer
from tracker.store import models as m

log = logging.getLogger(__name__)

#: One ``forged_message`` alarm per controller per this long (the rest are records).
FORGED_EVERY = timedelta(minutes=1)
#: How much of a refused message is kept in its security record.
HEAD_BYTES = 512
#: A batch checks this often whether an alarm came meanwhile; if one did, it commits what
#: it applied so far and leaves the rest for after the alarm.
YIELD_EVERY = 25
#: Failures of the database itself (not of what is written): wait and try again.
DB_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError)


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    received: datetime
    mono: float
    mid: int = 0
    qos: int = 0


class Inbox:
    """What the MQTT side hands to the worker: alarms in a lane of their own."""

    def __init__(self) -> None:
        self._alarms: deque[Message] = deque()
        self._bulk: deque[Message] = deque()
        self._cond = threading.Condition()

    def _lane(self, msg: Message) -> deque[Message]:
        return self._alarms if msg.topic.endswith("/evt/alarm") else self._bulk

    def put(self, msg: Message) -> None:
        self.put_many([msg])

    def has_alarms(self) -> bool:
        return bool(self._alarms)

    def unget(self, msgs: list[Message]) -> None:
        """Put back, in front of their lanes and in order, what a batch left untouched."""
        with self._cond:
            for msg in reversed(msgs):
                self._lane(msg).appendleft(msg)
            self._cond.notify()

    def put_many(self, msgs: list[Message]) -> None:
        with self._cond:
            for msg in msgs:
                self._lane(msg).append(msg)
            self._cond.notify()

    def take(self, limit: int, timeout: float) -> list[Message]:
        """Every waiting alarm, or else up to ``limit`` bulk messages (waits up to
        ``timeout`` for the first)."""
        with self._cond:
            if not self._alarms and not self._bulk:
                self._cond.wait(timeout)
            if self._alarms:
                out = list(self._alarms)
                self._alarms.clear()
                return out
            n = min(limit, len(self._bulk))
            return [self._bulk.popleft() for _ in range(n)]


class Publisher:
    """What the worker needs of MQTT (the real one is :class:`tracker.ingest.link.NetLink`)."""

    def publish(self, topic: str, payload: bytes, *, retain: bool) -> bool:  # pragma: no cover
        raise NotImplementedError

    def ack(self, messages: Iterable[Message]) -> None:  # pragma: no cover
        raise NotImplementedError


@dataclass
class BootMem:
    high: int = 0
    closed: bool = False
    #: seq -> payload of events stored but not yet contiguous (``applied`` alarms too)
    held: dict[int, bytes] = field(default_factory=dict)
    held_applied: set[int] = field(default_factory=set)
    gap_since: float | None = None


@dataclass
class RoomMem:
    id: int
    site: str
    room: str
    controller: str
    event_key: bytes
    command_key: bytes
    generation: int
    boots: dict[int, BootMem] = field(default_factory=dict)
    last_heard: float | None = None
    offline: bool = False
    newest_ts: datetime | None = None
    offset: timedelta | None = None
    forged_last: datetime | None = None
    silent_alarm: str | None = None
    skew_alarm: str | None = None


@dataclass
class _Batch:
    """What one transaction did, to be announced after it commits."""

    taken: int = 0  # how many of the batch's messages it went through
    acks: set[tuple[int, int]] = field(default_factory=set)  # (room id, boot)
    commands: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    events: list[dict[str, Any]] = field(default_factory=list)
    marks: list[tuple[int, int, int, int]] = field(default_factory=list)  # set applied
    #: boots whose row is written once, at the end of the batch: (room, boot) -> memory
    boots: dict[tuple[int, int], tuple[RoomMem, BootMem]] = field(default_factory=dict)
    #: rooms whose clock offset is written once, at the end: room -> (memory, received)
    offsets: dict[int, tuple[RoomMem, datetime]] = field(default_factory=dict)


class Processor:
    """The worker: owns the database; everything it does is one transaction per batch."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        rules_cfg: Rules,
        *,
        clock: Clock,
        publisher: Publisher,
        heartbeat_s: float = 5.0,
        reorder_window_s: float = 30.0,
        command_ttl_s: int = 60,
    ) -> None:
        self.sessions = sessions
        self.rules = rules_cfg
        self.clock = clock
        self.pub = publisher
        self.heartbeat_s = heartbeat_s
        self.window = reorder_window_s
        self.ttl = timedelta(seconds=command_ttl_s)
        self.rooms: dict[tuple[str, str], RoomMem] = {}
        self.by_id: dict[int, RoomMem] = {}
        self.counts: Counter[str] = Counter()
        self.started_mono = clock.monotonic()
        self.on_commit: Callable[[int], None] = lambda n: None
        self._forged_last: dict[str, datetime] = {}
        self.retry_s = 1.0  # between attempts while the database is unavailable

    # -- state from the database ---------------------------------------------------------

    def load(self, session: Session | None = None) -> None:
        """(Re)build the in-memory view from the database: rooms, boots, held events
        (inside ``session``'s transaction when one is open)."""
        if session is None:
            with self.sessions() as s:
                self._load(s)
        else:
            self._load(session)

    def _load(self, s: Session) -> None:
        rooms = s.scalars(select(m.Room)).all()
        old = self.by_id
        self.rooms, self.by_id = {}, {}
        for r in rooms:
            prev = old.get(r.id)
            mem = RoomMem(
                r.id,
                r.site,
                r.room,
                r.controller,
                bytes.fromhex(r.event_key),
                bytes.fromhex(r.command_key),
                r.generation,
            )
            if prev is not None and prev.generation == r.generation:
                mem.boots, mem.last_heard, mem.offline = (
                    prev.boots,
                    prev.last_heard,
                    prev.offline,
                )
                mem.newest_ts, mem.offset, mem.forged_last = (
                    prev.newest_ts,
                    prev.offset,
                    prev.forged_last,
                )
            else:
                self._load_boots(s, mem)
                live = s.get(m.RoomLive, r.id)
                if live is not None and live.offset_at:
                    mem.offset = timedelta(milliseconds=live.offset_ms)
            for a in s.scalars(
                select(m.Alarm).where(
                    m.Alarm.room_id == r.id,
                    m.Alarm.state == "active",
                    m.Alarm.cause.in_(("controller_silent", "clock_skew")),
                )
            ):
                if a.cause == "controller_silent":
                    mem.silent_alarm = a.alarm_id
                else:
                    mem.skew_alarm = a.alarm_id
            self.rooms[(r.site, r.room)] = mem
            self.by_id[r.id] = mem

    def _load_boots(self, s: Session, mem: RoomMem) -> None:
        mem.boots = {}
        for b in s.scalars(
            select(m.Boot).where(m.Boot.room_id == mem.id, m.Boot.generation == mem.generation)
        ):
            mem.boots[b.boot] = BootMem(high=b.high, closed=b.closed)
        rows = s.execute(
            select(m.Event.boot, m.Event.seq, m.Event.payload, m.Event.applied)
            .where(
                m.Event.room_id == mem.id,
                m.Event.generation == mem.generation,
            )
            .where(
                m.Event.seq
                > select(m.Boot.high)
                .where(
                    m.Boot.room_id == m.Event.room_id,
                    m.Boot.generation == m.Event.generation,
                    m.Boot.boot == m.Event.boot,
                )
                .scalar_subquery()
            )
        )
        for boot, seq, payload, applied in rows:
            bm = mem.boots.setdefault(boot, BootMem())
            bm.held[seq] = bytes(payload)
            if applied:
                bm.held_applied.add(seq)
            bm.gap_since = self.clock.monotonic()

    # -- one batch ------------------------------------------------------------------------

    def process(
        self, batch: list[Message], interrupt: Callable[[], bool] | None = None
    ) -> list[Message]:
        """Apply a batch in one transaction; after commit, acknowledge and publish.

        ``interrupt`` (an alarm is waiting) is asked every :data:`YIELD_EVERY` messages:
        when it says yes, the transaction ends there, and what was not applied is
        returned, to be taken again after the alarm."""
        if not batch:
            return []
        try:
            done = self._transaction(batch, interrupt)
        except IntegrityError:
            # Another tracker on the same database got there first: see what it did.
            log.warning("events already stored by another writer; reloading and retrying")
            self.load()
            done = self._transaction(batch, interrupt)
        self._after_commit(done)
        self.pub.ack(batch[: done.taken])
        return batch[done.taken :]

    def ingest(
        self,
        batch: list[Message],
        stop: threading.Event,
        interrupt: Callable[[], bool] | None = None,
    ) -> list[Message]:
        """:meth:`process`, never skipping a message.

        A database that cannot be reached or written (down, locked, disk full) is retried
        until it works: nothing is acknowledged meanwhile. A batch that fails for any other
        reason (a value the database refuses, a fault in a rule) is applied message by
        message, and a message that still fails alone is set aside: kept as a security
        record with the error, counted (``failed.apply``) and acknowledged at the broker.
        Its event id stays unacknowledged to the controller, so the gap rules cover it,
        and the room carries on. Returns what an ``interrupt`` left (see :meth:`process`)."""
        while not stop.is_set():
            try:
                return self.process(batch, interrupt)
            except DB_UNAVAILABLE:
                log.exception("the database is unavailable; %d messages wait", len(batch))
                stop.wait(self.retry_s)
            except Exception as exc:
                if len(batch) > 1:
                    log.exception("a batch failed; applying its %d messages one by one", len(batch))
                    for msg in batch:
                        self.ingest([msg], stop)
                    return []
                self._set_aside(batch[0], exc)
                return []
        return []

    def _set_aside(self, msg: Message, exc: Exception) -> None:
        log.error("a message on %r could not be applied and is set aside: %s", msg.topic[:200], exc)
        try:
            with self.sessions.begin() as s:
                s.add(
                    m.SecurityRecord(
                        room_id=None,
                        received=format_ts(msg.received),
                        topic=msg.topic[:500],
                        reason=f"could not be applied: {type(exc).__name__}: {exc}"[:1000],
                        size=len(msg.payload),
                        head=msg.payload[:HEAD_BYTES],
                    )
                )
                self._write_counts(s, Counter({"failed.apply": 1}))
        except Exception:
            log.exception("could not even record it; the broker will deliver it again")
            return
        self.counts["failed.apply"] += 1
        self.pub.ack([msg])

    def _transaction(
        self, batch: list[Message], interrupt: Callable[[], bool] | None = None
    ) -> _Batch:
        done = _Batch()
        try:
            with self.sessions.begin() as s:
                _prefetch_tags(s, batch)
                for i, msg in enumerate(batch):
                    if interrupt is not None and i and i % YIELD_EVERY == 0 and interrupt():
                        break
                    self._one(s, msg, done)
                    done.taken = i + 1
                self._write_events(s, done)
                self._write_counts(s, done.counts)
        except SQLAlchemyError:
            self.load()  # memory may be ahead of what was rolled back
            raise
        return done

    def _after_commit(self, done: _Batch) -> None:
        self.counts.update(done.counts)
        for room_id, boot in sorted(done.acks):
            mem = self.by_id.get(room_id)
            if mem is None or boot not in mem.boots or mem.boots[boot].high <= 0:
                continue
            topic, payload = make_ack(
                mem.command_key,
                site=mem.site,
                room=mem.room,
                controller=mem.controller,
                boot=boot,
                seq=mem.boots[boot].high,
            )
            self.pub.publish(topic, payload, retain=True)
        if done.commands:
            self.publish_commands(done.commands)
        self.on_commit(len(done.events))

    def _one(self, s: Session, msg: Message, done: _Batch) -> None:
        try:
            topic = parse_topic(msg.topic)
        except ProtocolError:
            done.counts["refused.topic"] += 1
            return
        if topic.kind not in ("evt", "state", "status"):
            done.counts["refused.topic"] += 1
            return
        mem = self.rooms.get((topic.site, topic.room))
        if mem is None:
            self.load(s)
            mem = self.rooms.get((topic.site, topic.room))
        if len(msg.payload) > MAX_PAYLOAD:
            done.counts["refused.oversized"] += 1
            return
        if mem is None:
            self._forged(s, None, f"{topic.site}/{topic.room}", msg, "unknown controller", done)
            return
        if topic.kind == "status":
            self._status(s, mem, msg, done)
            return
        if topic.kind == "state":
            try:
                state = decode_state(mem.event_key, msg.topic, msg.payload)
            except BadSignature:
                self._forged(s, mem, mem.controller, msg, "bad signature on state", done)
                return
            except ProtocolError:
                done.counts["refused.malformed"] += 1
                return
            live = mem_live(s, mem)
            live.state = json.dumps(state.get("data"), sort_keys=True)
            live.state_ts = str(state.get("ts"))
            return
        try:
            ev = decode_event(mem.event_key, msg.topic, msg.payload)
        except BadSignature as exc:
            self._forged(s, mem, mem.controller, msg, f"bad signature: {exc}", done)
            return
        except ProtocolError as exc:
            done.counts["refused.malformed"] += 1
            log.debug("refused %s: %s", msg.topic, exc)
            return
        if ev.controller != mem.controller:
            self._forged(s, mem, ev.controller, msg, "unknown controller for this room", done)
            return
        self._event(s, mem, ev, msg, done)

    def _event(self, s: Session, mem: RoomMem, ev: Event, msg: Message, done: _Batch) -> None:
        bm = mem.boots.get(ev.boot)
        if bm is None:
            stored = s.get(m.Boot, (mem.id, mem.generation, ev.boot))
            if stored is None:
                s.add(m.Boot(room_id=mem.id, generation=mem.generation, boot=ev.boot, high=0))
                bm = BootMem()
            else:
                bm = BootMem(high=stored.high, closed=stored.closed)
            mem.boots[ev.boot] = bm
        # Duplicates first: a late copy of an event already applied is harmless.
        if ev.seq <= bm.high or ev.seq in bm.held:
            previous = bm.held.get(ev.seq)
            if previous is None:
                previous = self._stored_payload(s, mem, ev, done)
            if previous == msg.payload:
                done.counts["duplicate"] += 1
                done.acks.add((mem.id, ev.boot))  # a resend: the ack it missed goes again
                return
            if previous is not None:
                self._forged(
                    s, mem, mem.controller, msg, f"event {ev.id} again with other bytes", done
                )
                return
        if bm.closed:
            self._forged(s, mem, mem.controller, msg, f"event of closed boot {ev.boot}", done)
            return
        self._heard(s, mem, ev, msg, done)
        late = ev.seq <= bm.high  # fills a gap already skipped
        alarm = ev.type.startswith("alarm.")
        if late or alarm or ev.seq == bm.high + 1:
            self._apply(s, mem, ev, done)
            done.events.append(self._row(mem, ev, msg, applied=True))
            if not late and ev.seq == bm.high + 1:
                bm.high = ev.seq
                self._drain(s, mem, ev.boot, bm, done)
            elif not late:
                bm.held[ev.seq] = msg.payload
                bm.held_applied.add(ev.seq)
        else:
            bm.held[ev.seq] = msg.payload
            done.events.append(self._row(mem, ev, msg, applied=False))
            if bm.gap_since is None:
                bm.gap_since = msg.mono
        done.acks.add((mem.id, ev.boot))
        done.boots[(mem.id, ev.boot)] = (mem, bm)
        if ev.type == "controller.heartbeat" and ev.data.get("outbox_depth") == 0:
            self._close_older(s, mem, ev.boot)

    def _drain(self, s: Session, mem: RoomMem, boot: int, bm: BootMem, done: _Batch) -> None:
        """Apply the held events that are contiguous now."""
        while bm.high + 1 in bm.held:
            seq = bm.high + 1
            payload = bm.held.pop(seq)
            if seq in bm.held_applied:
                bm.held_applied.discard(seq)
            else:
                ev = self._decode_held(mem, boot, seq, payload)
                if ev is not None:
                    self._apply(s, mem, ev, done)
                    done.marks.append((mem.id, mem.generation, boot, seq))
            bm.high = seq
        bm.gap_since = None if not bm.held else self.clock.monotonic()

    def _decode_held(self, mem: RoomMem, boot: int, seq: int, payload: bytes) -> Event | None:
        try:
            return decode_event(mem.event_key, _topic_of(payload, mem), payload)
        except ProtocolError:  # it was verified when it came: the key changed since
            log.error("held event %s:%s:%s no longer verifies; skipped", mem.controller, boot, seq)
            return None

    def _apply(self, s: Session, mem: RoomMem, ev: Event, done: _Batch) -> None:
        done.counts["applied"] += 1
        if ev.type not in LEDGER_TYPES:
            return
        room = mem_room(s, mem)
        w = Writer(s, actor="tracker", at=self.clock.now(), cause=f"event {ev.id}")
        apply_event(w, room, ev, self.rules)
        done.commands += w.commands

    def _row(self, mem: RoomMem, ev: Event, msg: Message, *, applied: bool) -> dict[str, Any]:
        return {
            "room_id": mem.id,
            "generation": mem.generation,
            "boot": ev.boot,
            "seq": ev.seq,
            "ts": ev.ts,
            "type": ev.type,
            "data": json.dumps(ev.data, sort_keys=True, ensure_ascii=False),
            "payload": msg.payload,
            "received": format_ts(msg.received),
            "applied": applied,
        }

    def _stored_payload(self, s: Session, mem: RoomMem, ev: Event, done: _Batch) -> bytes | None:
        for row in done.events:  # earlier in this batch
            if (row["room_id"], row["boot"], row["seq"]) == (mem.id, ev.boot, ev.seq):
                return bytes(row["payload"])
        got = s.execute(
            select(m.Event.payload).where(
                m.Event.room_id == mem.id,
                m.Event.generation == mem.generation,
                m.Event.boot == ev.boot,
                m.Event.seq == ev.seq,
            )
        ).first()
        return bytes(got[0]) if got else None

    def _boot_row(self, s: Session, mem: RoomMem, boot: int, bm: BootMem) -> None:
        s.flush()  # a boot row added in this transaction is written first
        s.execute(_SET_BOOT, [_boot_params(mem, boot, bm)])

    def _close_older(self, s: Session, mem: RoomMem, boot: int) -> None:
        for b, bm in mem.boots.items():
            if b < boot and not bm.closed:
                bm.closed = True
                self._boot_row(s, mem, b, bm)
        s.execute(
            update(m.Boot)
            .where(
                m.Boot.room_id == mem.id, m.Boot.generation == mem.generation, m.Boot.boot < boot
            )
            .values(closed=True)
        )

    def _write_events(self, s: Session, done: _Batch) -> None:
        """The batch's rows of events and boots, as plain statements run once for the
        whole batch (the ORM's unit of work costs more than the writes themselves)."""
        for mem, received in done.offsets.values():
            if mem.offset is not None:
                live = mem_live(s, mem)
                live.offset_ms = int(mem.offset / timedelta(milliseconds=1))
                live.offset_at = format_ts(received)
        s.flush()  # boot rows added in this transaction, before they are updated
        if done.boots:
            s.execute(
                _SET_BOOT,
                [_boot_params(mem, boot, bm) for (_, boot), (mem, bm) in done.boots.items()],
            )
        if done.events:
            s.execute(_EVENTS.insert(), done.events)
        if done.marks:
            s.execute(
                _MARK_APPLIED,
                [{"k_room": r, "k_gen": g, "k_boot": b, "k_seq": q} for r, g, b, q in done.marks],
            )

    def _write_counts(self, s: Session, counts: Counter[str]) -> None:
        for name, n in sorted(counts.items()):
            if s.execute(_ADD_COUNT, {"k_name": name, "k_n": n}).rowcount == 0:  # type: ignore[attr-defined]
                s.execute(_COUNTERS.insert(), {"name": name, "value": n})

    # -- liveness, clocks, forgeries ------------------------------------------------------

    def _heard(self, s: Session, mem: RoomMem, ev: Event, msg: Message, done: _Batch) -> None:
        mem.last_heard = msg.mono
        ts = parse_ts(ev.ts)
        if mem.newest_ts is None or ts > mem.newest_ts:
            # Only the newest physical event tells the controller's clock: an old event
            # resent after an outage was made long before it arrived.
            mem.newest_ts = ts
            mem.offset = rules.clock_offset(ts, msg.received)
            done.offsets[mem.id] = (mem, msg.received)
            self._skew(s, mem, msg.received, done)
        if mem.silent_alarm is not None and not mem.offline:
            self._end_condition(s, mem, "silent", "heard from the controller again", done)

    def _skew(self, s: Session, mem: RoomMem, now: datetime, done: _Batch) -> None:
        assert mem.offset is not None
        skewed = rules.is_skewed(mem.offset)
        if skewed and mem.skew_alarm is None:
            w = Writer(s, actor="tracker", at=now, cause="clock offset")
            a = w.raise_alarm(
                mem_room(s, mem),
                "clock_skew",
                "warning",
                raised=now,
                detail={"offset_s": round(mem.offset.total_seconds(), 3)},
            )
            mem.skew_alarm = a.alarm_id
            done.commands += w.commands
        elif not skewed and mem.skew_alarm is not None:
            self._end_condition(s, mem, "skew", "the controller's clock is back within 60 s", done)

    def _end_condition(self, s: Session, mem: RoomMem, which: str, why: str, done: _Batch) -> None:
        alarm_id = mem.silent_alarm if which == "silent" else mem.skew_alarm
        if which == "silent":
            mem.silent_alarm = None
        else:
            mem.skew_alarm = None
        alarm = s.scalars(select(m.Alarm).where(m.Alarm.alarm_id == alarm_id)).first()
        if alarm is not None and alarm.state == "active":
            w = Writer(s, actor="tracker", at=self.clock.now(), cause=why)
            w.end_alarm(alarm, "cleared", "tracker", why, mem_room(s, mem))
            done.commands += w.commands

    def _status(self, s: Session, mem: RoomMem, msg: Message, done: _Batch) -> None:
        text = msg.payload.decode("utf-8", "replace").strip()
        if text not in ("online", "offline"):
            done.counts["refused.malformed"] += 1
            return
        live_row(s, mem_room(s, mem)).status = text
        mem.offline = text == "offline"
        if mem.offline:
            self._silent(s, mem, "the controller said offline", done)
        else:
            mem.last_heard = msg.mono
            if mem.silent_alarm is not None:
                self._end_condition(s, mem, "silent", "the controller is online again", done)

    def _silent(self, s: Session, mem: RoomMem, why: str, done: _Batch) -> None:
        if mem.silent_alarm is not None:
            return
        now = self.clock.now()
        w = Writer(s, actor="tracker", at=now, cause=why)
        a = w.raise_alarm(
            mem_room(s, mem), "controller_silent", "critical", raised=now, detail={"why": why}
        )
        mem.silent_alarm = a.alarm_id
        done.commands += w.commands

    def _forged(
        self, s: Session, mem: RoomMem | None, who: str, msg: Message, reason: str, done: _Batch
    ) -> None:
        done.counts["refused.forged"] += 1
        s.add(
            m.SecurityRecord(
                room_id=mem.id if mem else None,
                received=format_ts(msg.received),
                topic=msg.topic[:500],
                reason=reason[:1000],
                size=len(msg.payload),
                head=msg.payload[:HEAD_BYTES],
            )
        )
        log.warning("refused a message on %r: %s", msg.topic[:200], reason[:200])
        # One limit per room the topic names, and one for every unknown room together:
        # room and controller names in a forgery are the sender's to choose, and an alarm
        # per invented name would let a flood flood the ledger.
        key = f"forged:room:{mem.id}" if mem is not None else "forged:unknown-room"
        last = self._forged_last.get(key)
        if rules.rate_limited(last, msg.received, FORGED_EVERY):
            return
        self._forged_last[key] = msg.received
        w = Writer(s, actor="tracker", at=msg.received, cause="refused message")
        w.raise_alarm(
            mem_room(s, mem) if mem else None,
            "forged_message",
            "critical",
            raised=msg.received,
            detail={"controller": who, "reason": reason[:300], "topic": msg.topic[:200]},
        )
        done.commands += w.commands

    # -- time-driven work ------------------------------------------------------------------

    def tick(self) -> None:
        """Gaps past their window, silent controllers, closing times, and commands queued
        by other processes (the command line). Called about every half second."""
        now, mono = self.clock.now(), self.clock.monotonic()
        done = _Batch()
        with self.sessions.begin() as s:
            self._reload_if_changed(s)
            for mem in self.by_id.values():
                for boot, bm in sorted(mem.boots.items()):
                    if bm.held and bm.gap_since is not None and mono - bm.gap_since >= self.window:
                        self._skip_gap(s, mem, boot, bm, done)
                if mem.silent_alarm is None and (
                    mem.offline
                    or rules.is_silent(mem.last_heard, mono, self.heartbeat_s, self.started_mono)
                ):
                    why = (
                        "the controller said offline"
                        if mem.offline
                        else (f"no heartbeat for {3 * self.heartbeat_s:g} s")
                    )
                    self._silent(s, mem, why, done)
                if mem.offset is not None:
                    self._closing(s, mem, now + mem.offset, done)
            room_now = {
                i: now + (mem.offset if mem.offset is not None else timedelta(0))
                for i, mem in self.by_id.items()
            }
            done.commands += workflows.on_tick(s, now, room_now, self.rules)
            self._write_events(s, done)
        self._after_commit(done)
        workflows.after_commit(self.sessions, now, self.rules)
        self.publish_commands(None)

    def _reload_if_changed(self, s: Session) -> None:
        gens = {i: g for i, g in s.execute(select(m.Room.id, m.Room.generation))}
        if gens != {i: r.generation for i, r in self.by_id.items()}:
            self.load(s)

    def _skip_gap(self, s: Session, mem: RoomMem, boot: int, bm: BootMem, done: _Batch) -> None:
        first_held = min(bm.held)
        missing = (bm.high + 1, first_held - 1)
        now = self.clock.now()
        w = Writer(s, actor="tracker", at=now, cause="reorder window passed")
        w.raise_alarm(
            mem_room(s, mem),
            "event_gap",
            "warning",
            raised=now,
            detail={
                "controller": mem.controller,
                "boot": boot,
                "from": missing[0],
                "to": missing[1],
            },
        )
        done.commands += w.commands
        log.warning(
            "%s boot %d: events %d..%d never came; acknowledged past them",
            mem.controller,
            boot,
            *missing,
        )
        bm.high = first_held - 1
        self._drain(s, mem, boot, bm, done)
        self._boot_row(s, mem, boot, bm)
        done.acks.add((mem.id, boot))

    def _closing(self, s: Session, mem: RoomMem, room_now: datetime, done: _Batch) -> None:
        """End-of-day checks on the room's own clock."""
        room = mem_room(s, mem)
        live = live_row(s, room)
        if live.eod_checked is None:
            live.eod_checked = format_ts(room_now)
            return
        due = closings_between(self.rules.calendar, parse_ts(live.eod_checked), room_now)
        if not due:
            return
        key_of = facts.Keys(s).key_of
        cabs = facts.RoomCabinets(s, room)
        docs = [
            facts.document(d, key_of)
            for d in s.scalars(
                select(m.Document).where(m.Document.home_cabinet_id.in_(list(cabs.by_id)))
            )
        ]
        loans = {
            r.document_id: facts.loan(r)
            for r in s.scalars(
                select(m.Loan).where(
                    m.Loan.closed.is_(None), m.Loan.document_id.in_([d.id for d in docs])
                )
            )
        }
        for closing in due:
            w = Writer(
                s, actor="tracker", at=self.clock.now(), cause=f"closing time {format_ts(closing)}"
            )
            for alarm in rules.end_of_day_missing(docs, loans, closing):
                w.raise_alarm(
                    room,
                    alarm.cause,
                    alarm.severity,
                    raised=closing,
                    document_id=alarm.document_id,
                    detail=dict(alarm.detail),
                )
            done.commands += w.commands
        live.eod_checked = format_ts(room_now)

    # -- commands ----------------------------------------------------------------------

    def publish_commands(self, ids: list[str] | None) -> int:
        """Sign and publish queued commands (``ids``, or every unpublished one), in the
        controller's own time; then mark them published. A command that waited longer
        than its lifetime (the tracker was down) is dropped, except ``policy.update``."""
        from protocol.envelope import make_command

        sent = 0
        now = self.clock.now()
        with self.sessions.begin() as s:
            stmt = select(m.Command).where(m.Command.published.is_(None))
            if ids is not None:
                stmt = stmt.where(m.Command.id.in_(ids))
            for cmd in s.scalars(stmt.order_by(m.Command.created)):
                mem = self.by_id.get(cmd.room_id)
                if mem is None:
                    continue
                if cmd.type != "policy.update" and now - parse_ts(cmd.created) > self.ttl:
                    cmd.published, cmd.ok, cmd.error = format_ts(now), False, "expired unsent"
                    continue
                issued = now + (mem.offset or timedelta(0))
                topic, payload = make_command(
                    mem.command_key,
                    site=mem.site,
                    room=mem.room,
                    id=cmd.id,
                    issued=issued,
                    expires=issued + self.ttl,
                    type=cmd.type,
                    data=json.loads(cmd.data),
                    name=cmd.type.split(".", 1)[0],
                )
                if self.pub.publish(topic, payload, retain=False):
                    cmd.published = format_ts(now)
                    sent += 1
        return sent


_BOOTS = cast(Table, m.Boot.__table__)
_EVENTS = cast(Table, m.Event.__table__)
_COUNTERS = cast(Table, m.Counter.__table__)
_SET_BOOT = (
    update(_BOOTS)
    .where(
        _BOOTS.c.room_id == bindparam("k_room"),
        _BOOTS.c.generation == bindparam("k_gen"),
        _BOOTS.c.boot == bindparam("k_boot"),
    )
    .values(high=bindparam("k_high"), closed=bindparam("k_closed"))
)
_MARK_APPLIED = (
    update(_EVENTS)
    .where(
        _EVENTS.c.room_id == bindparam("k_room"),
        _EVENTS.c.generation == bindparam("k_gen"),
        _EVENTS.c.boot == bindparam("k_boot"),
        _EVENTS.c.seq == bindparam("k_seq"),
    )
    .values(applied=True)
)
_ADD_COUNT = (
    update(_COUNTERS)
    .where(_COUNTERS.c.name == bindparam("k_name"))
    .values(value=_COUNTERS.c.value + bindparam("k_n"))
)
#: the ``epc`` of a tag event, found without parsing: only a hint for loading the batch's
#: documents in one query (a tag it misses is looked up when its event is applied)
_EPC = re.compile(rb'"epc":"([0-9A-Za-z]{1,128})"')


def _boot_params(mem: RoomMem, boot: int, bm: BootMem) -> dict[str, Any]:
    return {
        "k_room": mem.id,
        "k_gen": mem.generation,
        "k_boot": boot,
        "k_high": bm.high,
        "k_closed": bm.closed,
    }


def _prefetch_tags(s: Session, batch: list[Message]) -> None:
    epcs = [
        found.group(1).decode("ascii")
        for msg in batch
        if msg.topic.endswith("/evt/tag") and (found := _EPC.search(msg.payload))
    ]
    if epcs:
        facts.prefetch_tags(s, epcs)


def mem_room(s: Session, mem: RoomMem) -> m.Room:
    """The room's row, loaded once per transaction: the session's identity map holds
    rows weakly, so without a reference of our own every event would load it again."""
    rooms = s.info.setdefault("ironroom.rooms", {})
    room = rooms.get(mem.id)
    if room is None:
        room = rooms[mem.id] = s.get(m.Room, mem.id)
        assert room is not None
    return room  # type: ignore[no-any-return]


def mem_live(s: Session, mem: RoomMem) -> m.RoomLive:
    """The room's live row, like :func:`mem_room` once per transaction."""
    lives = s.info.setdefault("ironroom.live", {})
    live = lives.get(mem.id)
    if live is None:
        live = lives[mem.id] = live_row(s, mem_room(s, mem))
    return live  # type: ignore[no-any-return]


def _type_in(payload: bytes) -> str:
    try:
        return str(json.loads(payload)["type"])
    except (ValueError, KeyError, TypeError):
        return "unknown.unknown"


def _topic_of(payload: bytes, mem: RoomMem) -> str:
    return f"ironroom/v1/{mem.site}/{mem.room}/evt/{_type_in(payload).split('.', 1)[0]}"
