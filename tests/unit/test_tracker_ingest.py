"""The ingest pipeline in-process: a real SQLite file, the real Processor, a clock and a
publisher the test holds. Delivery rules of PROTOCOL.md, tracker side."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from protocol.envelope import decode_ack, decode_command, make_event
from protocol.timefmt import format_ts
from tracker.bootstrap import open_store, rules_of
from tracker.config import parse_tracker_config
from tracker.domain.levels import Level
from tracker.ingest.pipeline import Message, Processor
from tracker.service.ledger import DocumentIn, Ledger
from tracker.store import models as m
from tracker.store.audit import verify

KEY = bytes(range(32))
OTHER = bytes(32)
SITE, ROOM, CTL = "hq", "room-101", "room-101-ctl"
SECRETARY = "04A1B2C3D4E5F6"
FOLDER = "E28011700000020A1B2C3D01"
T0 = datetime(2026, 11, 26, 0, 40, tzinfo=UTC)  # 08:40 in Shanghai, a Thursday
CONFIG = """
[tracker]
heartbeat_s = 5
reorder_window_s = 30
[hours]
timezone = "Asia/Shanghai"
thu = ["08:30-12:00", "13:30-17:30"]
"""


class Clock:
    def __init__(self) -> None:
        self.t = T0
        self.m = 1000.0

    def now(self) -> datetime:
        return self.t

    def monotonic(self) -> float:
        return self.m

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)
        self.m += seconds


@dataclass
class Pub:
    out: list[tuple[str, bytes, bool]] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)
    up: bool = True

    def publish(self, topic: str, payload: bytes, *, retain: bool) -> bool:
        if self.up:
            self.out.append((topic, payload, retain))
        return self.up

    def ack(self, messages: Any) -> None:
        self.acked += [msg.mid for msg in messages]

    def acks(self) -> list[tuple[int, int]]:
        return [
            (a.boot, a.seq)
            for t, p, _ in self.out
            if t.endswith("/ack")
            for a in [decode_ack(KEY, t, p)]
        ]

    def commands(self) -> list[Any]:
        return [decode_command(KEY, t, p) for t, p, _ in self.out if "/cmd/" in t]


class Room:
    """A controller of the test: makes signed events with its own boot and seq."""

    def __init__(self, clock: Clock, boot: int = 1, key: bytes = KEY) -> None:
        self.clock = clock
        self.boot = boot
        self.seq = 0
        self.key = key
        self.mid = 0

    def event(
        self,
        type_: str,
        data: dict[str, Any],
        *,
        ts: datetime | None = None,
        seq: int | None = None,
    ) -> Message:
        if seq is None:
            self.seq += 1
            seq = self.seq
        topic, payload = make_event(
            self.key,
            site=SITE,
            room=ROOM,
            controller=CTL,
            boot=self.boot,
            seq=seq,
            ts=ts or self.clock.now(),
            type=type_,
            data=data,
        )
        return self.raw(topic, payload)

    def raw(self, topic: str, payload: bytes) -> Message:
        self.mid += 1
        return Message(topic, payload, self.clock.now(), self.clock.monotonic(), self.mid, 1)

    def heartbeat(self, depth: int = 1) -> Message:
        return self.event(
            "controller.heartbeat", {"uptime_s": 1, "outbox_depth": depth, "armed": False}
        )

    def window(self, state: str = "open") -> Message:
        return self.event(
            "sensor.changed", {"point": "window:w1", "kind": "window", "state": state}
        )


@dataclass
class World:
    proc: Processor
    pub: Pub
    clock: Clock
    room: Room
    store: Any
    ledger: Ledger

    def scalar(self, stmt: Any) -> Any:
        with self.store.sessions() as s:
            return s.scalar(stmt)

    def rows(self, model: Any, *where: Any) -> list[Any]:
        with self.store.sessions() as s:
            return list(s.scalars(select(model).where(*where)))

    def alarms(self, cause: str) -> list[m.Alarm]:
        return self.rows(m.Alarm, m.Alarm.cause == cause)

    def events(self) -> list[tuple[int, int, bool]]:
        with self.store.sessions() as s:
            rows = s.execute(
                select(m.Event.boot, m.Event.seq, m.Event.applied).order_by(
                    m.Event.boot, m.Event.seq
                )
            )
            return [tuple(r) for r in rows]


def make_world(tmp_path: Path, clearance: Level = Level.SECRET) -> World:
    store = open_store(f"sqlite:///{tmp_path / 't.db'}")
    cfg = parse_tracker_config(CONFIG)
    clock = Clock()
    ledger = Ledger(store.sessions, rules_of(cfg), actor="test", reason="setup", now=T0)
    ledger.room_add(SITE, ROOM, CTL, KEY, None)
    ledger.cabinet_add(SITE, ROOM, "c1", False)
    ledger.cabinet_add(SITE, ROOM, "c2", False)
    ledger.person_add("sec", "王秘书", clearance, ["secretary"], None)
    ledger.badge_add(SECRETARY, "sec")
    ledger.document_add(
        DocumentIn.build(
            number="机要〔2026〕1号",
            title="文件一",
            classification="机密",
            tag=FOLDER,
            cabinet="hq/room-101/c1",
        )
    )
    pub = Pub()
    proc = Processor(
        store.sessions,
        rules_of(cfg),
        clock=clock,
        publisher=pub,
        heartbeat_s=5,
        reorder_window_s=30,
        command_ttl_s=60,
    )
    proc.load()
    return World(proc, pub, clock, Room(clock), store, ledger)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = make_world(tmp_path)
    yield w
    w.store.engine.dispose()


def borrow(w: World) -> None:
    r = w.room
    w.proc.process(
        [
            r.event(
                "badge.presented", {"reader": "cabinet:c1", "uid": SECRETARY, "auth": "verified"}
            ),
            r.event(
                "tag.departed",
                {"reader": "cabinet:c1", "epc": FOLDER},
                ts=w.clock.now() + timedelta(seconds=8),
            ),
        ]
    )


# -- order, acks, duplicates -----------------------------------------------------------


def test_events_applied_in_order_then_acked_after_commit(world: World) -> None:
    r = world.room
    batch = [r.window("open"), r.window("closed"), r.heartbeat()]
    world.proc.process(batch)
    assert world.events() == [(1, 1, True), (1, 2, True), (1, 3, True)]
    assert world.pub.acks() == [(1, 3)]
    assert all(retain for t, _, retain in world.pub.out if t.endswith("/ack"))
    assert world.pub.acked == [msg.mid for msg in batch]  # PUBACK only after the commit


def test_identical_duplicate_dropped_quietly_and_acked_again(world: World) -> None:
    first = world.room.window()
    world.proc.process([first])
    again = world.room.raw(first.topic, first.payload)
    world.proc.process([again])
    assert world.events() == [(1, 1, True)]
    assert world.rows(m.SecurityRecord) == []
    assert world.proc.counts["duplicate"] == 1
    assert world.pub.acks() == [(1, 1), (1, 1)]  # the resend gets the ack it missed


def test_same_id_other_bytes_is_forged(world: World) -> None:
    world.proc.process([world.room.window("open")])
    other = world.room.window("closed")
    other = world.room.event(
        "sensor.changed", {"point": "window:w1", "kind": "window", "state": "closed"}, seq=1
    )
    world.proc.process([other])
    records = world.rows(m.SecurityRecord)
    assert [r.reason for r in records] == ["event room-101-ctl:1:1 again with other bytes"]
    assert len(world.alarms("forged_message")) == 1
    assert world.events() == [(1, 1, True)]


def test_forged_flood_is_one_alarm_per_controller_per_minute(world: World) -> None:
    bad = Room(world.clock, key=OTHER)
    world.proc.process([bad.window() for _ in range(50)])
    assert len(world.rows(m.SecurityRecord)) == 50
    assert len(world.alarms("forged_message")) == 1
    world.clock.advance(61)
    world.proc.process([bad.window()])
    assert len(world.alarms("forged_message")) == 2
    assert world.events() == []
    # The ingest goes on: a genuine event after the flood is applied.
    world.proc.process([world.room.window()])
    assert world.events() == [(1, 1, True)]
    with world.store.sessions() as s:
        assert verify(s).ok


def test_unknown_room_and_malformed_messages(world: World) -> None:
    r = world.room
    topic, payload = make_event(
        KEY,
        site="hq",
        room="room-999",
        controller="x",
        boot=1,
        seq=1,
        ts=T0,
        type="sensor.changed",
        data={"point": "door", "kind": "door", "state": "open"},
    )
    world.proc.process(
        [
            r.raw(topic, payload),
            r.raw("ironroom/v1/hq/room-101/evt/sensor", b"not json"),
            r.raw("ironroom/v1/hq/room-101/nonsense", b"{}"),
            r.raw("elsewhere", b"{}"),
            r.raw("ironroom/v1/hq/room-101/evt/sensor", b"x" * (10 * 1024 * 1024)),
        ]
    )
    assert [x.reason for x in world.rows(m.SecurityRecord)] == ["unknown controller"]
    assert [a.room_id for a in world.alarms("forged_message")] == [None]
    c = world.proc.counts
    assert (c["refused.malformed"], c["refused.topic"], c["refused.oversized"]) == (1, 2, 1)
    with world.store.sessions() as s:
        stored = {x.name: x.value for x in s.scalars(select(m.Counter))}
    assert stored["refused.topic"] == 2


# -- gaps and alarms -------------------------------------------------------------------


def test_gap_held_for_the_window_then_recorded_and_acked_past(world: World) -> None:
    r = world.room
    one = r.window()
    r.seq += 1  # seq 2 is lost
    three = r.window("closed")
    world.proc.process([one, three])
    assert world.events() == [(1, 1, True), (1, 3, False)]
    assert world.pub.acks() == [(1, 1)]
    world.clock.advance(29)
    world.proc.tick()
    assert world.alarms("event_gap") == []
    world.clock.advance(2)
    world.proc.tick()
    gap = world.alarms("event_gap")
    assert [
        (a.severity, json.loads(a.detail)["from"], json.loads(a.detail)["to"]) for a in gap
    ] == [("warning", 2, 2)]
    assert world.pub.acks()[-1] == (1, 3)
    assert world.events() == [(1, 1, True), (1, 3, True)]
    # seq 2 arriving late is still applied, and changes no ack
    world.proc.process(
        [r.event("sensor.changed", {"point": "door", "kind": "door", "state": "open"}, seq=2)]
    )
    assert world.events() == [(1, 1, True), (1, 2, True), (1, 3, True)]


def test_alarm_applied_at_once_across_a_gap_and_not_twice(world: World) -> None:
    r = world.room
    one = r.window()
    two = r.window("closed")
    alarm = r.event(
        "alarm.raised",
        {
            "alarm_id": f"{CTL}:1:a1",
            "cause": "tamper",
            "point": "tamper:t1",
            "severity": "critical",
        },
    )
    world.proc.process([one, alarm])
    assert [a.alarm_id for a in world.alarms("tamper")] == [f"{CTL}:1:a1"]
    assert world.pub.acks()[-1] == (1, 1)
    world.proc.process([two])
    assert world.pub.acks()[-1] == (1, 3)
    assert len(world.alarms("tamper")) == 1
    assert world.events() == [(1, 1, True), (1, 2, True), (1, 3, True)]


def test_closed_boot_is_refused(world: World) -> None:
    old = world.room
    world.proc.process([old.window()])
    new = Room(world.clock, boot=2)
    world.proc.process([new.heartbeat(depth=0)])  # boot 2: nothing of boot 1 outstanding
    world.proc.process([old.window("closed")])
    assert [x.reason for x in world.rows(m.SecurityRecord)] == ["event of closed boot 1"]
    assert world.events() == [(1, 1, True), (2, 1, True)]


def test_an_older_open_boot_is_still_accepted(world: World) -> None:
    """After a restart the controller sends its new boot's alarms first, then what the
    old boot left unacknowledged."""
    new = Room(world.clock, boot=2)
    world.proc.process([new.window()])
    world.proc.process([world.room.window()])
    assert world.events() == [(1, 1, True), (2, 1, True)]
    assert world.rows(m.SecurityRecord) == []


def test_restart_reloads_held_events(world: World, tmp_path: Path) -> None:
    r = world.room
    one = r.window()
    r.seq += 1
    three = r.window("closed")
    world.proc.process([one, three])
    cfg = parse_tracker_config(CONFIG)
    again = Processor(
        world.store.sessions,
        rules_of(cfg),
        clock=world.clock,
        publisher=world.pub,
        reorder_window_s=30,
    )
    again.load()
    again.process(
        [r.event("sensor.changed", {"point": "door", "kind": "door", "state": "open"}, seq=2)]
    )
    assert world.events() == [(1, 1, True), (1, 2, True), (1, 3, True)]
    assert world.pub.acks()[-1] == (1, 3)


def test_reenrolled_room_accepts_boot_one_again(world: World) -> None:
    world.proc.process([world.room.window(), world.room.heartbeat()])
    world.ledger.room_reenrol(SITE, ROOM, None)
    world.proc.tick()  # sees the new generation
    fresh = Room(world.clock)
    world.proc.process([fresh.window()])
    with world.store.sessions() as s:
        gens = [
            tuple(r)
            for r in s.execute(
                select(m.Event.generation, m.Event.boot, m.Event.seq).order_by(m.Event.id)
            )
        ]
    assert gens == [(1, 1, 1), (1, 1, 2), (2, 1, 1)]
    assert world.rows(m.SecurityRecord) == []


# -- the ledger the events write ---------------------------------------------------------


def test_badge_then_departure_is_a_loan_with_an_unlock(world: World) -> None:
    borrow(world)
    loans = world.rows(m.Loan)
    assert [(ln.person_id, ln.opened, ln.closed, ln.kind) for ln in loans] == [
        ("sec", "2026-11-26T00:40:08.000Z", None, "badge")
    ]
    assert loans[0].due == "2026-12-03T00:40:08.000Z"  # 机密: 7 days by default
    unlocks = [c for c in world.pub.commands() if c.type == "cabinet.unlock"]
    assert [c.data for c in unlocks] == [{"badge": SECRETARY, "cabinet": "c1", "seconds": 20}]
    world.proc.process([world.room.event("tag.arrived", {"reader": "cabinet:c1", "epc": FOLDER})])
    assert [ln.closed for ln in world.rows(m.Loan)] == ["2026-11-26T00:40:00.000Z"]
    doc = world.rows(m.Document)[0]
    assert (doc.status, doc.holder_id) == ("in_cabinet", None)
    with world.store.sessions() as s:
        assert verify(s).ok


def test_low_clearance_gets_no_unlock_and_removal_sounds_the_siren(tmp_path: Path) -> None:
    w = make_world(tmp_path, clearance=Level.CONFIDENTIAL)
    borrow(w)
    assert [c for c in w.pub.commands() if c.type == "cabinet.unlock"] == []
    removal = w.alarms("unauthorized_removal")
    assert [(a.severity, a.state) for a in removal] == [("critical", "active")]
    sirens = [c.data for c in w.pub.commands() if c.type == "siren.set"]
    assert sirens == [{"state": "on", "alarm_id": removal[0].alarm_id}]
    assert w.rows(m.Document)[0].status == "missing"
    assert w.rows(m.Loan) == []
    w.ledger.alarm_reset(removal[0].alarm_id, "sec", "folder found on the desk")
    w.proc.publish_commands(None)
    sirens = [c.data for c in w.pub.commands() if c.type == "siren.set"]
    assert sirens[-1] == {"state": "off", "alarm_id": removal[0].alarm_id}
    w.store.engine.dispose()


def test_commands_in_the_controllers_time_and_expired_ones_dropped(world: World) -> None:
    ahead = world.clock.now() + timedelta(hours=2)
    world.proc.process(
        [
            world.room.event(
                "badge.presented",
                {"reader": "cabinet:c1", "uid": SECRETARY, "auth": "verified"},
                ts=ahead,
            )
        ]
    )
    # 10:40 in the room: outside hours? no, 10:40 Shanghai is inside the morning span
    unlock = [c for c in world.pub.commands() if c.type == "cabinet.unlock"]
    assert [c.ts for c in unlock] == [format_ts(ahead)]
    assert unlock[0].expires_at - unlock[0].issued_at == timedelta(seconds=60)
    # a command left unsent past its lifetime (the tracker was down) is not sent late
    world.pub.up = False
    world.proc.process(
        [
            world.room.event(
                "badge.presented",
                {"reader": "cabinet:c1", "uid": SECRETARY, "auth": "verified"},
                ts=ahead,
            )
        ]
    )
    world.pub.up = True
    world.clock.advance(120)
    world.proc.publish_commands(None)
    assert len([c for c in world.pub.commands() if c.type == "cabinet.unlock"]) == 1
    with world.store.sessions() as s:
        errors = [
            c.error for c in s.scalars(select(m.Command).where(m.Command.type == "cabinet.unlock"))
        ]
    assert errors == [None, "expired unsent"]


def test_policy_sent_at_controller_start(world: World) -> None:
    world.proc.process(
        [
            world.room.event(
                "controller.started",
                {
                    "version": "1",
                    "config_hash": "x",
                    "points": ["door", "lock:c1"],
                    "readers": ["cabinet:c1"],
                },
            )
        ]
    )
    policies = [c.data for c in world.pub.commands() if c.type == "policy.update"]
    assert policies[-1]["cabinets"] == {"c1": [SECRETARY], "c2": []}
    assert policies[-1]["reset_badges"] == [SECRETARY]
    assert policies[-1]["hours"]["thu"] == ["08:30-12:00", "13:30-17:30"]


# -- liveness, clocks, closing time ------------------------------------------------------


def test_silent_controller_then_back(world: World) -> None:
    world.proc.process([world.room.heartbeat()])
    world.clock.advance(14)
    world.proc.tick()
    assert world.alarms("controller_silent") == []
    world.clock.advance(2)
    world.proc.tick()
    assert [a.state for a in world.alarms("controller_silent")] == ["active"]
    world.proc.process([world.room.heartbeat()])
    assert [a.state for a in world.alarms("controller_silent")] == ["cleared"]


def test_offline_status_is_silent_at_once(world: World) -> None:
    world.proc.process([world.room.raw(f"ironroom/v1/{SITE}/{ROOM}/status", b"offline")])
    assert [a.state for a in world.alarms("controller_silent")] == ["active"]
    world.proc.process([world.room.raw(f"ironroom/v1/{SITE}/{ROOM}/status", b"online")])
    assert [a.state for a in world.alarms("controller_silent")] == ["cleared"]


def test_clock_skew_warning_and_clearing(world: World) -> None:
    world.proc.process([world.room.heartbeat()])
    assert world.alarms("clock_skew") == []
    world.proc.process(
        [
            world.room.event(
                "controller.heartbeat",
                {"uptime_s": 2, "outbox_depth": 1, "armed": False},
                ts=world.clock.now() + timedelta(seconds=61),
            )
        ]
    )
    assert [(a.severity, a.state) for a in world.alarms("clock_skew")] == [("warning", "active")]
    world.clock.advance(62)
    world.proc.process([world.room.heartbeat()])
    assert [a.state for a in world.alarms("clock_skew")] == ["cleared"]


def test_end_of_day_missing_on_the_rooms_clock(tmp_path: Path) -> None:
    w = make_world(tmp_path, clearance=Level.CONFIDENTIAL)
    borrow(w)  # unauthorized: the folder is missing
    w.proc.tick()  # first look at the room's clock: nothing checked yet
    w.clock.advance(9 * 3600)  # 17:40 in the room: closing time (17:30) has passed
    w.proc.process([w.room.heartbeat()])
    w.proc.tick()
    missing = w.alarms("end_of_day_missing")
    assert [(json.loads(a.detail)["number"], a.raised) for a in missing] == [
        ("机要〔2026〕1号", "2026-11-26T09:30:00.000Z")
    ]
    w.proc.tick()
    assert len(w.alarms("end_of_day_missing")) == 1  # once per closing time
    w.store.engine.dispose()


def test_audit_chain_covers_what_the_ingest_wrote(world: World) -> None:
    borrow(world)
    with world.store.sessions() as s:
        n = s.scalar(select(func.count()).select_from(m.AuditEntry))
        actions = list(s.scalars(select(m.AuditEntry.action).order_by(m.AuditEntry.id)))
        assert verify(s).ok
    assert "loan.open" in actions and "document.move" in actions
    assert n == len(actions)


# -- a failing database or rule never loses or stalls ---------------------------------


def test_database_unavailable_is_retried_and_nothing_acked_meanwhile(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from sqlalchemy.exc import OperationalError

    real = world.proc._transaction
    failures = []

    def flaky(batch: list[Message], interrupt: Any = None) -> Any:
        if len(failures) < 2:
            failures.append(world.pub.acked[:])
            raise OperationalError("BEGIN", {}, Exception("database or disk is full"))
        return real(batch, interrupt)

    monkeypatch.setattr(world.proc, "_transaction", flaky)
    world.proc.retry_s = 0.01
    batch = [world.room.window(), world.room.window("closed")]
    world.proc.ingest(batch, threading.Event())
    assert failures == [[], []]  # no PUBACK while the disk was full
    assert world.events() == [(1, 1, True), (1, 2, True)]
    assert world.pub.acked == [msg.mid for msg in batch]


def test_a_message_that_cannot_be_applied_is_set_aside_not_stalling_the_room(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import tracker.ingest.pipeline as pipeline

    real = pipeline.apply_event

    def faulty(w: Any, room: Any, ev: Any, cfg: Any) -> None:
        if ev.type == "tag.arrived":
            raise KeyError("a fault in a rule")
        real(w, room, ev, cfg)

    monkeypatch.setattr(pipeline, "apply_event", faulty)
    r = world.room
    batch = [
        r.window(),
        r.event("tag.arrived", {"reader": "cabinet:c1", "epc": FOLDER}),
        r.window("closed"),
    ]
    world.proc.ingest(batch, threading.Event())
    assert world.events() == [(1, 1, True), (1, 3, False)]  # 2 set aside, 3 waits for it
    reasons = [x.reason for x in world.rows(m.SecurityRecord)]
    assert reasons == ["could not be applied: KeyError: 'a fault in a rule'"]
    assert world.proc.counts["failed.apply"] == 1
    assert sorted(world.pub.acked) == [msg.mid for msg in batch]
    world.clock.advance(31)
    world.proc.tick()  # the gap rules cover the event set aside
    assert world.pub.acks()[-1] == (1, 3)
    assert world.events() == [(1, 1, True), (1, 3, True)]


def test_an_alarm_that_comes_mid_batch_cuts_the_batch_short(world: World) -> None:
    from tracker.ingest.pipeline import YIELD_EVERY

    batch = [world.room.window("open" if i % 2 else "closed") for i in range(3 * YIELD_EVERY)]
    asked: list[int] = []

    def alarm_waiting() -> bool:
        with world.store.readers() as s:  # nothing is committed while the batch runs
            asked.append(s.scalar(select(func.count()).select_from(m.Event)))
        return len(asked) == 2  # the alarm comes during the second stretch

    rest = world.proc.process(batch, alarm_waiting)
    assert asked == [0, 0]
    assert rest == batch[2 * YIELD_EVERY :]
    assert world.events() == [(1, s, True) for s in range(1, 2 * YIELD_EVERY + 1)]
    assert world.pub.acked == [msg.mid for msg in batch[: 2 * YIELD_EVERY]]  # only those
    assert world.proc.process(rest) == []
    assert world.events() == [(1, s, True) for s in range(1, 3 * YIELD_EVERY + 1)]
    assert world.pub.acked == [msg.mid for msg in batch]
    assert world.pub.acks()[-1] == (1, 3 * YIELD_EVERY)


def test_what_a_batch_left_goes_back_in_front_of_its_lane(world: World) -> None:
    from tracker.ingest.pipeline import Inbox

    inbox = Inbox()
    first = [world.room.window() for _ in range(3)]
    later = [world.room.window() for _ in range(2)]
    alarm = world.room.event(
        "alarm.raised",
        {
            "alarm_id": f"{CTL}:1:99",
            "cause": "forced_open",
            "point": "door",
            "severity": "critical",
        },
    )
    inbox.put_many(first + later)
    taken = inbox.take(3, timeout=0)
    assert taken == first
    inbox.put(alarm)
    assert inbox.has_alarms()
    inbox.unget(taken[1:])
    assert inbox.take(10, timeout=0) == [alarm]  # the alarm first
    assert not inbox.has_alarms()
    assert inbox.take(10, timeout=0) == first[1:] + later  # then the rest, in order


def test_a_batch_loads_its_tags_documents_in_one_query(world: World) -> None:
    from sqlalchemy import event

    epcs = [f"E28011700000020A1B2C3D{i:02X}" for i in range(2, 12)]
    for i, epc in enumerate(epcs):
        world.ledger.document_add(
            DocumentIn.build(
                number=f"机要〔2026〕{i + 2}号",
                title=f"文件{i + 2}",
                classification="机密",
                tag=epc,
                cabinet="hq/room-101/c2",
            )
        )
    batch = [world.room.event("tag.arrived", {"reader": "cabinet:c1", "epc": e}) for e in epcs]
    batch.append(world.room.event("tag.arrived", {"reader": "cabinet:c1", "epc": "E2AA01"}))
    reads: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        where = statement.partition("WHERE")[2]
        if statement.lstrip().startswith("SELECT") and "documents.tag" in where:
            reads.append(statement)

    event.listen(world.store.engine, "before_cursor_execute", seen)
    try:
        world.proc.process(batch)
    finally:
        event.remove(world.store.engine, "before_cursor_execute", seen)
    assert len(reads) == 1, reads  # one query for eleven tags, the unknown one included
    # and the rules decided with them: each folder arrived in a cabinet not its home
    with world.store.sessions() as s:
        statuses = s.scalars(select(m.Document.status).where(m.Document.tag.in_(epcs))).all()
    assert statuses == ["misplaced"] * len(epcs)
