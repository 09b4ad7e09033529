"""The controller core with no broker: local alarms, the siren, latching, silence and reset,
offline badge unlocks, commands and their validity, durable settings, heartbeat and state.

The bridge is built on gpiozero's MockFactory and never started, so nothing touches the
network; the controller is driven directly and its events are read back from the outbox.
Time comes from a SimClock that only moves when a test moves it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from firmware_bridge.config import Config, parse_config
from firmware_bridge.controller import Controller
from firmware_bridge.daemon import Bridge
from firmware_bridge.outbox import OutboxError
from protocol.envelope import (
    Command,
    Event,
    decode_command,
    decode_event,
    decode_state,
    make_ack,
    make_command,
)
from protocol.errors import ProtocolError
from protocol.timefmt import format_ts
from simulators.clock import SimClock
from tests.support import wait_until

KEY = bytes(range(32))
COMMAND_KEY = bytes(range(100, 132))
BADGE = "04A1B2C3D4E5F6"  # may use cabinet c1
RESET_BADGE = "04DEADBEEF0001"  # may reset alarms
STRANGER = "04000000000099"
EPC_1 = "30751FEB705C5904E3D50D70"
EPC_2 = "E20000172211010218905459"

# Beijing time; 2026-11-27 is a Friday.
DAY = "2026-11-27T10:00:00+08:00"
NIGHT = "2026-11-27T23:10:00+08:00"

ROOM_TOML = f"""
[controller]
id = "room-7-ctl"
site = "hq"
room = "room-7"
pin_factory = "mock"

[hours]
timezone = "Asia/Shanghai"
mon = ["08:30-12:00", "13:30-17:30"]
tue = ["08:30-12:00", "13:30-17:30"]
wed = ["08:30-12:00", "13:30-17:30"]
thu = ["08:30-12:00", "13:30-17:30"]
fri = ["08:30-12:00", "13:30-17:30"]

[alarms]
held_open_s = {{ door = 120, cabinet = 600, window = 0 }}

[policy]
cabinets = {{ c1 = ["{BADGE}"] }}
reset_badges = ["{RESET_BADGE}"]

[[input]]
point = "door"
pin = 17

[[input]]
point = "window:w1"
pin = 27

[[input]]
point = "cabinet:c1"
pin = 22

[[input]]
point = "cabinet:c2"
pin = 23

[[input]]
point = "tamper:t1"
pin = 24

[[input]]
point = "motion:m1"
pin = 25

[[input]]
point = "panic:p1"
pin = 5

[[input]]
point = "smoke:s1"
pin = 6

[[input]]
point = "water:f1"
pin = 13

[[output]]
point = "siren"
pin = 18

[[lock]]
cabinet = "c1"
pin = 16
unlock_s = 20

[[rfid]]
reader = "cabinet:c1"
driver = "m100"
port = "/dev/null"
"""


def local(text: str) -> datetime:
    return datetime.fromisoformat(text)


class Rig:
    """Builds bridges (never started) on one data dir and a clock only the test moves."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.cfg: Config = replace(parse_config(ROOM_TOML), data_dir=data_dir)
        self.clock = SimClock(local(DAY), real=lambda: 0.0)
        self.bridge: Bridge | None = None

    def open(self, cfg: Config | None = None, *, start: dict[str, bool] | None = None) -> Bridge:
        """A new bridge (a controller restart when one ran before), its controller started
        with every point closed or quiet unless ``start`` says otherwise."""
        self.close()
        self.bridge = Bridge(
            cfg or self.cfg,
            clock=self.clock,
            pin_factory=MockFactory(),
            key=KEY,
            command_key=COMMAND_KEY,
        )
        initial = {point: False for point in self.ctl.kinds}
        initial.update(start or {})
        self.ctl.start(initial)
        return self.bridge

    @property
    def ctl(self) -> Controller:
        assert self.bridge is not None
        return self.bridge.controller

    @property
    def siren(self) -> bool:
        """The siren output pin as driven, not the controller's idea of it."""
        assert self.bridge is not None and self.bridge.siren is not None
        return self.bridge.siren.is_on

    def locked(self, cabinet: str) -> bool:
        assert self.bridge is not None
        return self.bridge.locks[cabinet].locked

    def at(self, when: str) -> None:
        self.clock.advance_to(local(when))

    def events(self) -> list[Event]:
        """Every event of every boot in the outbox, verified, in (boot, seq) order."""
        assert self.bridge is not None
        rows = sorted(self.bridge.outbox.all(), key=lambda r: (r.boot, r.seq))
        return [decode_event(KEY, r.topic, r.payload) for r in rows]

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [e.data for e in self.events() if e.type == type_]

    def causes(self) -> list[tuple[str, str | None, str]]:
        return [(d["cause"], d["point"], d["severity"]) for d in self.of("alarm.raised")]

    def command(
        self,
        type_: str,
        data: dict[str, Any],
        *,
        issued: datetime | None = None,
        lifetime_s: float = 30,
        cid: str | None = None,
    ) -> Command:
        issued = issued or self.clock.now()
        topic, payload = make_command(
            COMMAND_KEY,
            site=self.cfg.site,
            room=self.cfg.room,
            id=cid or str(uuid.uuid4()),
            issued=issued,
            expires=issued + timedelta(seconds=lifetime_s),
            type=type_,
            data=data,
        )
        return decode_command(COMMAND_KEY, topic, payload)

    def run(self, type_: str, data: dict[str, Any], **kw: Any) -> dict[str, Any]:
        """Execute one command and return its ``command.result`` data."""
        cmd = self.command(type_, data, **kw)
        self.ctl.execute(cmd)
        return self.result(cmd.id)[-1]

    def result(self, command_id: str) -> list[dict[str, Any]]:
        return [d for d in self.of("command.result") if d["command_id"] == command_id]

    def close(self) -> None:
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path / "data")
    try:
        yield r
    finally:
        r.close()


def armed(cfg: Config) -> Config:
    return replace(cfg, policy=replace(cfg.policy, armed=True))


# -- local alarm causes ----------------------------------------------------------------

CRIT, WARN = "critical", "warning"

# (when, armed, point) -> alarms raised when the point opens or goes active, and the siren
CAUSES: list[tuple[str, str, bool, str, list[tuple[str, str]], bool]] = [
    ("door-night", NIGHT, False, "door", [("after_hours_open", CRIT)], True),
    ("window-night", NIGHT, False, "window:w1", [("after_hours_open", CRIT)], True),
    ("lockless-cabinet-night", NIGHT, False, "cabinet:c2", [("after_hours_open", CRIT)], True),
    (
        "locked-cabinet-night",
        NIGHT,
        False,
        "cabinet:c1",
        [("after_hours_open", CRIT), ("forced_open", CRIT)],
        True,
    ),
    ("locked-cabinet-day", DAY, False, "cabinet:c1", [("forced_open", CRIT)], True),
    ("lockless-cabinet-day", DAY, False, "cabinet:c2", [], False),
    ("door-day", DAY, False, "door", [], False),
    ("window-day", DAY, False, "window:w1", [], False),
    ("door-day-armed", DAY, True, "door", [("forced_open", CRIT)], True),
    ("window-day-armed", DAY, True, "window:w1", [("forced_open", CRIT)], True),
    (
        "door-night-armed",
        NIGHT,
        True,
        "door",
        [("after_hours_open", CRIT), ("forced_open", CRIT)],
        True,
    ),
    *[
        (f"{point}-{'armed' if arm else 'disarmed'}", when, arm, point, [(cause, sev)], siren)
        for point, cause, sev, siren in [
            ("tamper:t1", "tamper", CRIT, True),
            ("smoke:s1", "fire", CRIT, True),
            ("panic:p1", "panic", CRIT, True),
            ("water:f1", "water", WARN, False),
        ]
        for when, arm in [(DAY, False), (NIGHT, True)]
    ],
    ("motion-day-disarmed", DAY, False, "motion:m1", [], False),
    ("motion-night-disarmed", NIGHT, False, "motion:m1", [], False),
    ("motion-day-armed", DAY, True, "motion:m1", [("motion_armed", CRIT)], True),
]


@pytest.mark.parametrize(
    ("when", "is_armed", "point", "expected", "siren"),
    [row[1:] for row in CAUSES],
    ids=[row[0] for row in CAUSES],
)
def test_each_local_cause(
    rig: Rig,
    when: str,
    is_armed: bool,
    point: str,
    expected: list[tuple[str, str]],
    siren: bool,
) -> None:
    rig.at(when)
    rig.open(armed(rig.cfg) if is_armed else rig.cfg)
    rig.ctl.on_input(point, True)
    assert [(c, s) for c, p, s in rig.causes()] == expected
    assert all(p == point for _, p, _ in rig.causes())
    assert rig.siren is siren
    assert rig.ctl.siren_on is siren
    assert sorted(a.cause for a in rig.ctl.alarms.values()) == sorted(c for c, _ in expected)
    # the change itself comes first, and its alarms carry the same timestamp
    evs = rig.events()
    changed = [i for i, e in enumerate(evs) if e.type == "sensor.changed"]
    raised = [i for i, e in enumerate(evs) if e.type == "alarm.raised"]
    assert len(changed) == 1 and all(i > changed[0] for i in raised)
    assert {evs[i].ts for i in raised} <= {evs[changed[0]].ts}


def test_water_sounds_the_siren_when_configured_to(rig: Rig) -> None:
    alarms = replace(rig.cfg.alarms, siren_causes=(*rig.cfg.alarms.siren_causes, "water"))
    rig.open(replace(rig.cfg, alarms=alarms))
    rig.ctl.on_input("water:f1", True)
    assert rig.causes() == [("water", "water:f1", WARN)]
    assert rig.siren


def test_an_input_that_does_not_change_is_ignored(rig: Rig) -> None:
    rig.at(NIGHT)
    rig.open()
    rig.ctl.on_input("door", False)
    assert [e.type for e in rig.events()] == ["controller.started"]


# -- held open and working hours ending --------------------------------------------------


@pytest.mark.parametrize(
    ("point", "limit_s"),
    [("door", 120.0), ("cabinet:c2", 600.0), ("window:w1", None)],
)
def test_held_open_after_the_limit(rig: Rig, point: str, limit_s: float | None) -> None:
    rig.open()
    rig.ctl.on_input(point, True)
    rig.ctl.tick()
    assert rig.causes() == []
    if limit_s is None:  # a limit of 0 means never
        rig.clock.advance(3000)
        rig.ctl.tick()
        assert rig.causes() == []
        return
    rig.clock.advance(limit_s - 0.5)
    rig.ctl.tick()
    assert rig.causes() == []
    rig.clock.advance(0.5)
    rig.ctl.tick()
    rig.ctl.tick()
    assert rig.causes() == [("held_open", point, WARN)]
    assert not rig.siren, "held_open is a warning: no siren by default"
    raised = rig.events()[-1]
    assert raised.type == "alarm.raised"
    assert raised.ts == format_ts(rig.clock.now())


def test_closing_before_the_limit_raises_nothing(rig: Rig) -> None:
    rig.open()
    rig.ctl.on_input("door", True)
    rig.clock.advance(100)
    rig.ctl.on_input("door", False)
    rig.clock.advance(100)
    rig.ctl.on_input("door", True)
    rig.clock.advance(100)
    rig.ctl.tick()
    assert rig.causes() == []


def test_after_hours_raised_by_tick_when_hours_end_with_the_door_open(rig: Rig) -> None:
    rig.at("2026-11-27T17:29:00+08:00")
    rig.open()
    rig.ctl.on_input("door", True)
    rig.ctl.tick()
    assert rig.causes() == []
    rig.at("2026-11-27T17:30:01+08:00")
    rig.ctl.tick()
    rig.ctl.tick()
    assert rig.causes() == [("after_hours_open", "door", CRIT)]
    assert rig.siren
    assert rig.events()[-1].ts == "2026-11-27T09:30:01.000Z"


# -- latching, silence, reset --------------------------------------------------------------


def test_an_alarm_latches_once_per_cause_and_point(rig: Rig) -> None:
    rig.at(NIGHT)
    rig.open()
    rig.ctl.on_input("door", True)
    rig.ctl.on_input("door", False)
    assert rig.siren, "closing the door does not stop a latched alarm"
    assert [a.cause for a in rig.ctl.alarms.values()] == ["after_hours_open"]
    rig.ctl.on_input("door", True)
    rig.clock.advance(600)
    rig.ctl.tick()
    rig.ctl.on_input("door", False)
    rig.ctl.on_input("window:w1", True)
    assert rig.causes() == [
        ("after_hours_open", "door", CRIT),
        ("held_open", "door", WARN),
        ("after_hours_open", "window:w1", CRIT),
    ]
    ids = [d["alarm_id"] for d in rig.of("alarm.raised")]
    assert len(set(ids)) == 3


def test_silence_stops_the_siren_but_keeps_the_alarm(rig: Rig) -> None:
    rig.at(NIGHT)
    rig.open()
    rig.ctl.on_input("door", True)
    assert rig.siren
    result = rig.run("alarm.silence", {})
    assert result["ok"] is True and result["count"] == 1
    assert not rig.siren
    [alarm] = rig.ctl.alarms.values()
    assert alarm.silenced and alarm.cause == "after_hours_open"
    assert rig.of("alarm.cleared") == []
    rig.ctl.on_input("window:w1", True)
    assert rig.siren, "a new alarm sounds again"


def test_silence_one_alarm_by_id(rig: Rig) -> None:
    rig.at(NIGHT)
    rig.open()
    rig.ctl.on_input("door", True)
    rig.ctl.on_input("window:w1", True)
    door_id, window_id = (d["alarm_id"] for d in rig.of("alarm.raised"))
    assert rig.run("alarm.silence", {"alarm_id": door_id})["count"] == 1
    assert rig.siren, "the window's alarm still sounds"
    assert rig.run("alarm.silence", {"alarm_id": "no-such-alarm"})["count"] == 0
    assert rig.run("alarm.silence", {"alarm_id": window_id})["count"] == 1
    assert not rig.siren
    assert len(rig.ctl.alarms) == 2


def test_reset_clears_by_tracker_and_the_siren_stops(rig: Rig) -> None:
    rig.at(NIGHT)
    rig.open()
    rig.ctl.on_input("door", True)
    rig.ctl.on_input("door", False)
    alarm_id = rig.of("alarm.raised")[0]["alarm_id"]
    result = rig.run("alarm.reset", {})
    assert result["ok"] is True and result["count"] == 1
    assert rig.of("alarm.cleared") == [{"alarm_id": alarm_id, "by": "tracker"}]
    assert rig.ctl.alarms == {}
    assert not rig.siren
    rig.ctl.on_input("door", True)
    assert len(rig.of("alarm.raised")) == 2, "after a reset the same cause raises again"


def test_reset_of_one_alarm_leaves_the_others(rig: Rig) -> None:
    rig.at(NIGHT)
    rig.open()
    rig.ctl.on_input("door", True)
    rig.ctl.on_input("window:w1", True)
    door_id, window_id = (d["alarm_id"] for d in rig.of("alarm.raised"))
    assert rig.run("alarm.reset", {"alarm_id": door_id})["count"] == 1
    assert list(rig.ctl.alarms) == [window_id]
    assert rig.siren


@pytest.mark.parametrize(
    ("point", "cause"),
    [("smoke:s1", "fire"), ("tamper:t1", "tamper"), ("panic:p1", "panic"), ("water:f1", "water")],
)
def test_reset_with_the_detector_still_active_raises_again(
    rig: Rig, point: str, cause: str
) -> None:
    rig.open()
    rig.ctl.on_input(point, True)
    first = rig.of("alarm.raised")[0]["alarm_id"]
    rig.run("alarm.reset", {})
    evs = [e for e in rig.events() if e.type.startswith("alarm.")]
    assert [(e.type, e.data["alarm_id"] == first) for e in evs] == [
        ("alarm.raised", True),
        ("alarm.cleared", True),
        ("alarm.raised", False),
    ]
    assert evs[2].data["cause"] == cause
    assert [a.cause for a in rig.ctl.alarms.values()] == [cause]
    assert rig.siren is (cause != "water")


@pytest.mark.parametrize(
    ("uid", "auth", "resets"),
    [
        (RESET_BADGE, "verified", True),
        (RESET_BADGE, "failed", False),
        (RESET_BADGE, "uid-only", False),
        (STRANGER, "verified", False),
        (BADGE, "verified", False),
    ],
)
def test_a_reset_badge_clears_alarms(rig: Rig, uid: str, auth: str, resets: bool) -> None:
    rig.at(NIGHT)
    rig.open()
    rig.ctl.on_input("door", True)
    alarm_id = rig.of("alarm.raised")[0]["alarm_id"]
    rig.ctl.on_badge("desk", uid, auth)
    assert rig.of("badge.presented") == [{"reader": "desk", "uid": uid, "auth": auth}]
    if resets:
        assert rig.of("alarm.cleared") == [{"alarm_id": alarm_id, "by": uid}]
        assert rig.ctl.alarms == {} and not rig.siren
    else:
        assert rig.of("alarm.cleared") == []
        assert list(rig.ctl.alarms) == [alarm_id] and rig.siren


# -- boot ------------------------------------------------------------------------------------


def test_alarms_at_boot_for_what_is_already_active(rig: Rig) -> None:
    rig.at(NIGHT)
    rig.open(start={"smoke:s1": True, "door": True, "cabinet:c1": True})
    evs = rig.events()
    assert evs[0].type == "controller.started" and evs[0].seq == 1
    assert evs[0].data["points"] == rig.cfg.points
    assert evs[0].data["readers"] == ["cabinet:c1"]
    assert sorted(rig.causes()) == [
        ("after_hours_open", "cabinet:c1", CRIT),
        ("after_hours_open", "door", CRIT),
        ("fire", "smoke:s1", CRIT),
    ], "no forced_open at boot: the lock's state before it is unknown"
    assert rig.siren
    rig.ctl.tick()
    assert len(rig.causes()) == 3, "tick does not raise them a second time"


def test_boot_in_working_hours_with_a_quiet_room_raises_nothing(rig: Rig) -> None:
    rig.open(start={"door": True})
    assert rig.causes() == [] and not rig.siren
    rig.clock.advance(120)
    rig.ctl.tick()
    assert rig.causes() == [("held_open", "door", WARN)], "held open counts from boot"


def test_a_latched_alarm_survives_a_controller_restart(rig: Rig) -> None:
    """Latched until a person resets it: cutting the controller's power is not a reset.
    The door is closed again before the restart, so nothing at boot raises it anew."""
    rig.at(NIGHT)
    rig.open()
    rig.ctl.on_input("door", True)
    rig.ctl.on_input("door", False)
    raised = rig.of("alarm.raised")[0]["alarm_id"]
    rig.open()
    assert list(rig.ctl.alarms) == [raised]
    assert rig.siren
    topic, payload = rig.ctl.state_message()
    assert [a["alarm_id"] for a in decode_state(KEY, topic, payload)["data"]["alarms"]] == [raised]


# -- the outbox --------------------------------------------------------------------------------


def test_events_in_seq_order_with_clock_timestamps(rig: Rig) -> None:
    rig.at(NIGHT)
    rig.open()
    rig.clock.advance(1.25)
    rig.ctl.on_input("door", True)
    rig.clock.advance(2)
    rig.ctl.on_input("door", False)
    evs = rig.events()
    assert [(e.boot, e.seq) for e in evs] == [(1, 1), (1, 2), (1, 3), (1, 4)]
    assert [e.type for e in evs] == [
        "controller.started",
        "sensor.changed",
        "alarm.raised",
        "sensor.changed",
    ]
    assert [e.ts for e in evs] == [
        "2026-11-27T15:10:00.000Z",
        "2026-11-27T15:10:01.250Z",
        "2026-11-27T15:10:01.250Z",
        "2026-11-27T15:10:03.250Z",
    ]
    assert evs[1].data == {"point": "door", "kind": "door", "state": "open"}
    assert evs[3].data == {"point": "door", "kind": "door", "state": "closed"}
    assert all(e.controller == "room-7-ctl" for e in evs)
    assert all(e.topic == f"ironroom/v1/hq/room-7/evt/{e.type.split('.')[0]}" for e in evs)
    assert rig.bridge is not None
    flagged = {(r.seq, r.alarm) for r in rig.bridge.outbox.all()}
    assert flagged == {(1, False), (2, False), (3, True), (4, False)}


def test_a_restart_is_a_new_boot_with_seq_from_one(rig: Rig) -> None:
    rig.open()
    rig.ctl.on_input("door", True)
    rig.open()
    assert [(e.boot, e.seq, e.type) for e in rig.events()] == [
        (1, 1, "controller.started"),
        (1, 2, "sensor.changed"),
        (2, 1, "controller.started"),
    ]


# -- offline badge unlock -------------------------------------------------------------------

# (reader, uid, auth, when, allow_uid_only, online) -> cabinet c1 unlocked
UNLOCKS: list[tuple[str, str, str, str, str, bool, bool, bool]] = [
    ("own-reader", "cabinet:c1", BADGE, "verified", DAY, False, False, True),
    ("desk", "desk", BADGE, "verified", DAY, False, False, True),
    ("portal", "portal", BADGE, "verified", DAY, False, False, False),
    ("after-hours", "cabinet:c1", BADGE, "verified", NIGHT, False, False, False),
    (
        "lunch-break",
        "cabinet:c1",
        BADGE,
        "verified",
        "2026-11-27T12:30:00+08:00",
        False,
        False,
        False,
    ),
    ("failed-auth", "cabinet:c1", BADGE, "failed", DAY, False, False, False),
    ("uid-only", "cabinet:c1", BADGE, "uid-only", DAY, False, False, False),
    ("uid-only-allowed", "cabinet:c1", BADGE, "uid-only", DAY, True, False, True),
    ("not-in-policy", "cabinet:c1", STRANGER, "verified", DAY, False, False, False),
    ("online", "cabinet:c1", BADGE, "verified", DAY, False, True, False),
]


@pytest.mark.parametrize(
    ("reader", "uid", "auth", "when", "allow_uid_only", "online", "unlocks"),
    [row[1:] for row in UNLOCKS],
    ids=[row[0] for row in UNLOCKS],
)
def test_offline_badge_unlock(
    rig: Rig,
    reader: str,
    uid: str,
    auth: str,
    when: str,
    allow_uid_only: bool,
    online: bool,
    unlocks: bool,
) -> None:
    rig.at(when)
    rig.open(replace(rig.cfg, allow_uid_only=allow_uid_only))
    rig.ctl.online = lambda: online
    rig.ctl.on_badge(reader, uid, auth)
    assert rig.of("badge.presented") == [{"reader": reader, "uid": uid, "auth": auth}]
    assert rig.locked("c1") is not unlocks
    expected = [{"point": "lock:c1", "state": "unlocked", "reason": f"badge:{uid}"}]
    assert rig.of("lock.changed") == (expected if unlocks else [])


def test_badge_unlock_relocks_after_unlock_s_and_opening_is_not_forced(rig: Rig) -> None:
    rig.open()
    rig.ctl.on_badge("cabinet:c1", BADGE, "verified")
    assert not rig.locked("c1")
    rig.ctl.on_input("cabinet:c1", True)
    rig.ctl.on_input("cabinet:c1", False)
    assert rig.causes() == [], "opening an unlocked cabinet is not forced"
    rig.clock.advance(19.5)
    rig.ctl.tick()
    assert not rig.locked("c1")
    rig.clock.advance(0.5)
    rig.ctl.tick()
    assert rig.locked("c1")
    assert [d["reason"] for d in rig.of("lock.changed")] == [f"badge:{BADGE}", "timeout"]
    assert [d["state"] for d in rig.of("lock.changed")] == ["unlocked", "locked"]
    rig.ctl.on_input("cabinet:c1", True)
    assert rig.causes() == [("forced_open", "cabinet:c1", CRIT)]


# -- commands: validity and replay ------------------------------------------------------------

# issued (seconds from now), lifetime -> accepted, or the error
VALIDITY: list[tuple[str, float, float, str | None]] = [
    ("fresh", 0, 30, None),
    ("expired", -120, 60, "expired"),
    ("future-within-skew", 240, 60, None),
    ("future-beyond-skew", 600, 60, "issued in the future"),
    ("lifetime-one-hour", 0, 3600, None),
    ("lifetime-over-an-hour", 0, 3601, "lifetime over one hour"),
]


@pytest.mark.parametrize(
    ("issued_s", "lifetime_s", "error"),
    [row[1:] for row in VALIDITY],
    ids=[row[0] for row in VALIDITY],
)
def test_command_validity(rig: Rig, issued_s: float, lifetime_s: float, error: str | None) -> None:
    rig.open()
    issued = rig.clock.now() + timedelta(seconds=issued_s)
    cmd = rig.command("arming.set", {"state": "armed"}, issued=issued, lifetime_s=lifetime_s)
    rig.ctl.execute(cmd)
    [result] = rig.result(cmd.id)
    if error is None:
        assert result == {"command_id": cmd.id, "ok": True, "error": None}
        assert rig.ctl.armed
    else:
        assert result["ok"] is False and error in result["error"]
        assert not rig.ctl.armed, "a refused command has no effect"


def test_cabinet_unlock_command(rig: Rig) -> None:
    rig.open()
    cmd = rig.command("cabinet.unlock", {"cabinet": "c1", "seconds": 5, "badge": BADGE})
    rig.ctl.execute(cmd)
    assert rig.result(cmd.id) == [{"command_id": cmd.id, "ok": True, "error": None}]
    assert not rig.locked("c1")
    evs = rig.events()
    assert [e.type for e in evs[-2:]] == ["lock.changed", "command.result"]
    assert evs[-2].data == {"point": "lock:c1", "state": "unlocked", "reason": f"command:{cmd.id}"}
    rig.clock.advance(5)
    rig.ctl.tick()
    assert rig.locked("c1")


def test_cabinet_unlock_of_an_unknown_cabinet_is_an_error(rig: Rig) -> None:
    rig.open()
    for cabinet in ("c9", "c2"):  # c2 has a door contact but no lock
        result = rig.run("cabinet.unlock", {"cabinet": cabinet, "seconds": 5})
        assert result["ok"] is False and repr(cabinet) in result["error"]
    assert rig.of("lock.changed") == []
    assert rig.locked("c1")


def test_a_replayed_command_is_refused_also_after_a_restart(rig: Rig) -> None:
    rig.open()
    cmd = rig.command("cabinet.unlock", {"cabinet": "c1", "seconds": 5})
    rig.ctl.execute(cmd)
    rig.clock.advance(5)
    rig.ctl.tick()
    rig.ctl.execute(cmd)
    first, second = rig.result(cmd.id)
    assert first["ok"] is True
    assert second["ok"] is False and "replayed" in second["error"]
    assert rig.locked("c1")
    rig.open()  # the controller restarts on the same outbox
    rig.ctl.execute(cmd)
    results = rig.result(cmd.id)
    assert len(results) == 3
    assert results[-1]["ok"] is False and "replayed" in results[-1]["error"]
    assert rig.locked("c1")
    assert len(rig.of("lock.changed")) == 2, "one unlock and its relock, nothing more"


def test_arming_is_kept_across_a_restart(rig: Rig) -> None:
    rig.open()
    assert not rig.ctl.armed
    assert rig.run("arming.set", {"state": "armed"})["ok"] is True
    rig.open()
    assert rig.ctl.armed
    rig.ctl.on_input("door", True)
    assert rig.causes() == [("forced_open", "door", CRIT)]
    assert rig.run("arming.set", {"state": "disarmed"})["ok"] is True
    rig.open()
    assert not rig.ctl.armed


# -- inventory -----------------------------------------------------------------------------------


def test_inventory_run_returns_the_tags_present(rig: Rig) -> None:
    rig.open()
    t = rig.clock.monotonic()
    rig.ctl.on_tag_read("cabinet:c1", EPC_1, -50, t)
    rig.ctl.on_tag_read("cabinet:c1", EPC_2, -60, t)
    rig.ctl.on_round("cabinet:c1", t + 0.1)
    result = rig.run("inventory.run", {"reader": "cabinet:c1"})
    assert result["ok"] is True
    assert result["reader"] == "cabinet:c1"
    assert result["tags"] == sorted([EPC_1, EPC_2])
    assert rig.of("tag.arrived") == [
        {"reader": "cabinet:c1", "epc": EPC_1, "rssi": -50},
        {"reader": "cabinet:c1", "epc": EPC_2, "rssi": -60},
    ]
    for i in range(2, 6):  # EPC_2 leaves: missed for three rounds
        rig.ctl.on_tag_read("cabinet:c1", EPC_1, -50, t + i * 0.1)
        rig.ctl.on_round("cabinet:c1", t + i * 0.1 + 0.05)
    assert rig.of("tag.departed") == [{"reader": "cabinet:c1", "epc": EPC_2}]
    assert rig.run("inventory.run", {"reader": "cabinet:c1"})["tags"] == [EPC_1]


def test_inventory_run_on_a_reader_not_here_is_an_error(rig: Rig) -> None:
    rig.open()
    result = rig.run("inventory.run", {"reader": "cabinet:c2"})
    assert result["ok"] is False and "cabinet:c2" in result["error"]


# -- policy ----------------------------------------------------------------------------------------

EVENINGS = {d: ["18:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri")}


def test_policy_hours_change_what_counts_as_working_time(rig: Rig) -> None:
    rig.at(NIGHT)
    rig.open()
    assert not rig.ctl.working()
    assert rig.run("policy.update", {"hours": EVENINGS})["ok"] is True
    assert rig.ctl.working()
    rig.ctl.on_input("door", True)
    assert rig.causes() == []
    rig.open()  # kept on disk
    assert rig.ctl.working()
    assert not rig.ctl.working(local(DAY))


@pytest.mark.parametrize(
    ("update", "words"),
    [
        ({"hours": {"fri": ["25:00-26:00"]}}, ["policy.hours.fri", "25:00-26:00"]),
        ({"hours": {"fri": ["17:00-09:00"]}}, ["ends before it starts"]),
        ({"hours": {"funday": ["08:00-17:00"]}}, ["funday"]),
        ({"holidays": ["2026-13-01"]}, ["2026-13-01"]),
        ({"timezone": "Mars/Olympus_Mons"}, ["Mars/Olympus_Mons"]),
    ],
    ids=["hour-25", "backwards", "unknown-day", "bad-date", "bad-zone"],
)
def test_bad_policy_is_refused_whole(rig: Rig, update: dict[str, Any], words: list[str]) -> None:
    rig.open()
    before = rig.ctl.policy
    result = rig.run("policy.update", {**update, "reset_badges": [STRANGER]})
    assert result["ok"] is False
    assert all(w in result["error"] for w in words), result["error"]
    assert rig.ctl.policy == before
    assert rig.ctl.working()
    rig.open()
    assert rig.ctl.policy["reset_badges"] == (RESET_BADGE,)


def test_policy_holiday_makes_a_weekday_after_hours(rig: Rig) -> None:
    rig.open()
    assert rig.ctl.working()
    assert rig.run("policy.update", {"holidays": ["2026-11-27"]})["ok"] is True
    assert not rig.ctl.working()
    rig.ctl.on_input("door", True)
    assert rig.causes() == [("after_hours_open", "door", CRIT)]
    rig.open()
    assert not rig.ctl.working()
    assert rig.ctl.working(local("2026-11-30T10:00:00+08:00")), "the Monday after works"


def test_policy_extended_hours_grant(rig: Rig) -> None:
    rig.at(NIGHT)  # 15:10 UTC
    rig.open()
    grant = {"start": "2026-11-27T14:00:00.000Z", "end": "2026-11-27T16:00:00.000Z", "by": "boss"}
    assert rig.run("policy.update", {"extended": [grant]})["ok"] is True
    rig.ctl.on_input("door", True)
    assert rig.causes() == []
    rig.at("2026-11-28T00:00:00+08:00")  # the grant is over, the door still open
    rig.ctl.tick()
    assert ("after_hours_open", "door", CRIT) in rig.causes()


def test_policy_cabinets_change_who_unlocks_offline(rig: Rig) -> None:
    rig.open()
    assert rig.run("policy.update", {"cabinets": {"c1": [STRANGER]}})["ok"] is True
    rig.ctl.on_badge("cabinet:c1", BADGE, "verified")
    assert rig.locked("c1")
    rig.open()
    rig.ctl.on_badge("cabinet:c1", STRANGER, "verified")
    assert not rig.locked("c1")


# -- refused, heartbeat, state ---------------------------------------------------------------------


def test_refuse_answers_an_unreadable_command(rig: Rig) -> None:
    rig.open()
    rig.ctl.refuse("unreadable", "rejected: payload is not JSON")
    assert rig.of("command.result") == [
        {
            "command_id": "unreadable",
            "ok": False,
            "error": "rejected: payload is not JSON",
            "refused": 1,
        }
    ]


def test_the_bridge_refuses_garbage_and_forgeries(rig: Rig) -> None:
    bridge = rig.open()
    cmd = rig.command("arming.set", {"state": "armed"})
    forged_id = str(uuid.uuid4())
    topic, forged = make_command(
        bytes(32),
        site="hq",
        room="room-7",
        id=forged_id,
        issued=rig.clock.now(),
        expires=rig.clock.now() + timedelta(seconds=30),
        type="arming.set",
        data={"state": "armed"},
    )
    bridge._on_command(cmd.topic, b"\xff not json")
    rig.clock.advance(1)
    bridge._on_command(topic, forged)
    results = rig.of("command.result")
    # the forger's id is not quoted: a signed answer names only ids the tracker signed
    assert [(r["command_id"], r["ok"]) for r in results] == [
        ("unreadable", False),
        ("unreadable", False),
    ]
    assert all(r["error"].startswith("rejected:") for r in results)
    assert "signature" in results[1]["error"]
    assert forged_id not in str(rig.events())
    assert not rig.ctl.armed


def test_heartbeat_data(rig: Rig) -> None:
    rig.open()
    rig.clock.advance(42.7)
    rig.ctl.heartbeat()
    beat = rig.events()[-1]
    assert beat.type == "controller.heartbeat"
    assert beat.data == {"uptime_s": 42, "outbox_depth": 1, "armed": False}
    assert beat.ts == format_ts(rig.clock.now())


def test_state_message_is_signed_and_lists_points_locks_and_alarms(rig: Rig) -> None:
    rig.at(NIGHT)
    rig.open()
    rig.ctl.on_input("door", True)
    topic, payload = rig.ctl.state_message()
    assert topic == "ironroom/v1/hq/room-7/state"
    env = decode_state(KEY, topic, payload)
    data = env["data"]
    assert data["points"] == {
        "cabinet:c1": "closed",
        "cabinet:c2": "closed",
        "door": "open",
        "lock:c1": "locked",
        "motion:m1": "inactive",
        "panic:p1": "inactive",
        "smoke:s1": "inactive",
        "tamper:t1": "inactive",
        "water:f1": "inactive",
        "window:w1": "closed",
    }
    assert data["armed"] is False and data["siren"] is True
    [alarm] = data["alarms"]
    raised = rig.of("alarm.raised")[0]
    assert alarm["alarm_id"] == raised["alarm_id"]
    assert (alarm["cause"], alarm["point"], alarm["silenced"]) == (
        "after_hours_open",
        "door",
        False,
    )
    assert (env["controller"], env["boot"], env["seq"]) == ("room-7-ctl", 1, rig.ctl.seq)
    assert env["ts"] == format_ts(rig.clock.now())
    with pytest.raises(ProtocolError):
        decode_state(COMMAND_KEY, topic, payload)


# -- the outbox writer: nothing lost on a write error, one transaction, no lock on disk -----


def _refuse_writes(box: Any, table: str, when: str = "1") -> None:
    """Make SQLite refuse inserts into ``table`` (a disk that cannot take them)."""
    with box._lock:
        box._db.execute(
            f"CREATE TEMP TRIGGER refuse_{table} BEFORE INSERT ON {table} WHEN {when} "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )


def _allow_writes(box: Any, table: str) -> None:
    with box._lock:
        box._db.execute(f"DROP TRIGGER refuse_{table}")


def _on_disk(path: Path) -> tuple[list[Event], list[str]]:
    """What a restart would find: the events and the latched alarm ids in the file."""
    import sqlite3

    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT topic, payload FROM events ORDER BY boot, seq").fetchall()
        latch = db.execute("SELECT value FROM meta WHERE key='alarms'").fetchone()
    finally:
        db.close()
    import json

    alarms = [a["alarm_id"] for a in json.loads(latch[0])] if latch else []
    return [decode_event(KEY, t, bytes(p)) for t, p in rows], alarms


def test_a_write_error_loses_no_event_and_no_latch(rig: Rig, caplog: Any) -> None:
    """The disk refuses every write for a while, then recovers: every event made in the
    meantime is stored once, seq without a gap, and the latch is saved."""
    rig.at(NIGHT)
    rig.open()
    box, ctl = rig.bridge.outbox, rig.ctl  # type: ignore[union-attr]
    ctl.retry_s = 0.01
    ctl.start_writer()
    try:
        _refuse_writes(box, "events")
        ctl.on_input("door", True)  # after hours: an alarm and its latch
        for _ in range(20):
            ctl.on_input("window:w1", True)
            ctl.on_input("window:w1", False)
        wait_until(lambda: any(r.levelname == "ERROR" for r in caplog.records), 5, "a failure")
        time.sleep(0.05)  # a few more attempts fail
        assert box.depth() == 1, "nothing got through while the disk refused"
        _allow_writes(box, "events")
        wait_until(lambda: box.depth() == ctl.seq, 5, "every event written")
    finally:
        ctl.stop_writer()
    evs, latched = _on_disk(box.path)
    assert [e.seq for e in evs] == list(range(1, ctl.seq + 1))
    assert len(evs) == 1 + 2 + 40 + 1  # started, door, 20 x window open/close, 2 alarms
    raised = [e.data["alarm_id"] for e in evs if e.type == "alarm.raised"]
    assert len(raised) == 2 and sorted(latched) == sorted(raised)
    assert "outbox writable again" in caplog.text


def test_a_write_error_without_the_writer_raises_and_keeps_the_events(rig: Rig) -> None:
    rig.at(NIGHT)
    rig.open()
    box, ctl = rig.bridge.outbox, rig.ctl  # type: ignore[union-attr]
    _refuse_writes(box, "events")
    with pytest.raises(OutboxError):
        ctl.on_input("door", True)
    _allow_writes(box, "events")
    ctl.on_input("door", False)  # the next write takes the earlier events along
    assert [(e.seq, e.type) for e in rig.events()] == [
        (1, "controller.started"),
        (2, "sensor.changed"),
        (3, "alarm.raised"),
        (4, "sensor.changed"),
    ]
    assert [a["alarm_id"] for a in box.get("alarms")] == list(ctl.alarms)


def test_an_alarm_and_its_latch_are_saved_in_one_transaction(rig: Rig) -> None:
    """A failure (or a power cut) between the two must not leave an alarm on disk without
    its latch: after a restart the siren would stay off."""
    rig.at(NIGHT)
    rig.open()
    box, ctl = rig.bridge.outbox, rig.ctl  # type: ignore[union-attr]
    _refuse_writes(box, "meta", "NEW.key = 'alarms'")
    with pytest.raises(Exception):  # noqa: B017 (what matters is what is on disk)
        ctl.on_input("door", True)
    evs, latched = _on_disk(box.path)  # what a restart right now would find
    raised = [e.data["alarm_id"] for e in evs if e.type == "alarm.raised"]
    assert raised == latched == [], "the alarm's event went to disk without its latch"
    _allow_writes(box, "meta")
    ctl.heartbeat()
    evs, latched = _on_disk(box.path)
    raised = [e.data["alarm_id"] for e in evs if e.type == "alarm.raised"]
    assert raised == latched == list(ctl.alarms)
    assert [e.seq for e in evs] == list(range(1, ctl.seq + 1))


def test_the_state_lock_is_free_while_the_disk_is_busy(rig: Rig) -> None:
    """Heartbeats, arming and policy updates do not hold the state lock across the disk:
    a GPIO edge still drives the siren at once while a commit is stuck in fsync."""
    import threading

    rig.at(NIGHT)
    rig.open()
    box, ctl = rig.bridge.outbox, rig.ctl  # type: ignore[union-attr]
    ctl.start_writer()
    arm = rig.command("arming.set", {"state": "armed"})
    box._lock.acquire()  # the disk is busy (a long fsync)
    try:
        busy = [
            threading.Thread(target=ctl.heartbeat),
            threading.Thread(target=ctl.apply_policy, args=({"reset_badges": [STRANGER]},)),
            threading.Thread(target=ctl.execute, args=(arm,)),
        ]
        for t in busy:
            t.start()
        time.sleep(0.2)
        edge = threading.Thread(target=ctl.on_input, args=("door", True))
        edge.start()
        edge.join(2)
        assert not edge.is_alive(), "the GPIO edge waited for the disk"
        assert rig.siren
    finally:
        box._lock.release()
    for t in busy:
        t.join(5)
    ctl.stop_writer()
    rig.open()  # the settings reached the disk all the same
    assert rig.ctl.armed and rig.ctl.policy["reset_badges"] == (STRANGER,)


def test_events_made_from_many_threads_while_the_writer_runs_land_in_order(rig: Rig) -> None:
    import threading

    rig.open()
    ctl = rig.ctl
    ctl.start_writer()
    points = ["door", "window:w1", "cabinet:c2", "motion:m1"]

    def toggle(point: str) -> None:
        for _ in range(50):
            ctl.on_input(point, True)
            ctl.on_input(point, False)

    threads = [threading.Thread(target=toggle, args=(p,)) for p in points]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ctl.stop_writer()  # drains what is still queued
    assert ctl.seq == 1 + 4 * 100
    assert rig.bridge is not None
    by_row = sorted(rig.bridge.outbox.all(), key=lambda r: r.rowid)
    assert [r.seq for r in by_row] == list(range(1, ctl.seq + 1)), "written in seq order"
    per_point = [e.data["point"] for e in rig.events() if e.type == "sensor.changed"]
    assert all(per_point.count(p) == 100 for p in points)


def test_stop_writer_writes_everything_made_before_it(rig: Rig) -> None:
    rig.open()
    box, ctl = rig.bridge.outbox, rig.ctl  # type: ignore[union-attr]
    ctl.start_writer()
    box._lock.acquire()  # hold the writer back so events queue up
    try:
        for _ in range(30):
            ctl.on_input("window:w1", True)
            ctl.on_input("window:w1", False)
        assert len(ctl._pending) > 0
    finally:
        box._lock.release()
    ctl.stop_writer()
    assert ctl._writer is None and not ctl._pending
    assert [e.seq for e in rig.events()] == list(range(1, 62))


def test_the_bridge_outbox_is_durable(rig: Rig) -> None:
    rig.open()
    assert rig.bridge is not None
    assert rig.bridge.outbox.synchronous == 2  # FULL: every commit fsync'd


# -- acks: only for what this controller made ----------------------------------------------


def _ack(rig: Rig, boot: int, seq: int, controller: str = "room-7-ctl") -> Any:
    assert rig.bridge is not None
    topic, payload = make_ack(
        COMMAND_KEY, site="hq", room="room-7", controller=controller, boot=boot, seq=seq
    )
    return rig.bridge._on_ack(topic, payload)


def test_an_ack_for_a_boot_not_started_or_a_seq_not_made_is_ignored(rig: Rig, caplog: Any) -> None:
    rig.open()
    for _ in range(4):
        rig.ctl.on_input("window:w1", True)
    rig.ctl.on_input("window:w1", False)
    first_boot_high = rig.ctl.seq  # 3
    rig.open()  # boot 2
    rig.ctl.on_input("door", True)
    assert (rig.ctl.boot, rig.ctl.seq) == (2, 2)
    assert _ack(rig, 2, 2) == (2, 2)
    assert _ack(rig, 2, 0) == (2, 0)
    assert _ack(rig, 1, first_boot_high) == (1, first_boot_high)
    assert rig.bridge is not None and rig.bridge.acks_ignored == 0
    ignored = [(2, 3), (2, 2**53 - 1), (3, 1), (1, first_boot_high + 1), (1, 500)]
    for boot, seq in ignored:
        assert _ack(rig, boot, seq) is None, (boot, seq)
    assert _ack(rig, 3, 1) is None  # a retained ack comes back at every reconnect
    assert rig.bridge.acks_ignored == len(ignored) + 1
    lines = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(lines) == len(ignored), "logged once each"
    assert "boot 3 is not started" in lines[2]
    assert "seq 3 is not made" in lines[0]


def test_a_wiped_controller_ignores_the_ack_of_its_former_life(rig: Rig) -> None:
    rig.open()  # a fresh data dir: boot 1 again
    assert rig.ctl.boot == 1
    assert _ack(rig, 1, 500) is None
    assert _ack(rig, 1, rig.ctl.seq) == (1, rig.ctl.seq)


# -- refusals: ids quoted only when verified, a flood answered once a second ------------------


def _signed_raw(rig: Rig, env: dict[str, Any], name: str = "x") -> tuple[str, bytes]:
    """A command envelope signed with the command key whatever its content."""
    from protocol.canonical import canonical
    from protocol.signing import sign

    topic = f"ironroom/v1/hq/room-7/cmd/{name}"
    env = dict(env)
    env["sig"] = sign(COMMAND_KEY, topic, env)
    return topic, canonical(env)


def test_a_verified_command_with_bad_data_is_answered_with_its_id(rig: Rig) -> None:
    bridge = rig.open()
    cid = str(uuid.uuid4())
    now = rig.clock.now()
    env = {
        "v": 1,
        "id": cid,
        "issuer": "tracker",
        "ts": format_ts(now),
        "expires": format_ts(now + timedelta(seconds=30)),
        "type": "cabinet.unlock",
        "data": {"cabinet": "c1", "seconds": 99999},
    }
    topic, payload = _signed_raw(rig, env)
    bridge._on_command(topic, payload)
    [result] = rig.result(cid)
    assert result["ok"] is False and "seconds" in result["error"]
    assert rig.locked("c1")


def test_an_unverified_id_is_never_quoted_nor_logged_raw(rig: Rig, caplog: Any) -> None:
    bridge = rig.open()
    genuine = rig.command("arming.set", {"state": "armed"})
    lure = b'{"id": "' + genuine.id.encode() + b'", "type": "arming.set"}'
    bridge._on_command(genuine.topic, lure)
    rig.clock.advance(1)
    bridge._on_command(genuine.topic + "\nFAKE log line", b'{"id": "a\\nINFO forged"}')
    rig.ctl.execute(genuine)
    results = rig.of("command.result")
    assert [(r["command_id"], r["ok"]) for r in results] == [
        ("unreadable", False),
        ("unreadable", False),
        (genuine.id, True),
    ], "one genuine command, one answer with its id"
    assert all("\n" not in r.getMessage() for r in caplog.records)


def test_a_flood_of_garbage_is_answered_once_a_second_with_a_count(rig: Rig) -> None:
    bridge = rig.open()
    topic = "ironroom/v1/hq/room-7/cmd/x"
    for i in range(500):
        bridge._on_command(topic, b"garbage %d" % i)
    results = rig.of("command.result")
    assert [r["refused"] for r in results] == [1], "the first is answered at once"
    rig.clock.advance(0.5)
    rig.ctl.tick()
    assert len(rig.of("command.result")) == 1
    rig.clock.advance(0.5)
    rig.ctl.tick()
    rig.ctl.tick()
    results = rig.of("command.result")
    assert [r["refused"] for r in results] == [1, 499]
    assert all(r["command_id"] == "unreadable" and r["ok"] is False for r in results)
    assert results[1]["error"].startswith("rejected: ")
    assert len(rig.events()) == 3  # started and two summaries, not 500 rows
    rig.clock.advance(5)
    rig.ctl.tick()
    assert len(rig.of("command.result")) == 2, "nothing more to report"


# -- siren.set: the tracker's siren requests ---------------------------------------------------


def test_siren_set_holds_the_siren_until_released(rig: Rig) -> None:
    rig.open()
    assert not rig.siren
    result = rig.run("siren.set", {"state": "on", "alarm_id": "trk:a1"})
    assert result == {"command_id": result["command_id"], "ok": True, "error": None, "siren": True}
    assert rig.siren
    assert rig.run("siren.set", {"state": "on", "alarm_id": "trk:a2"})["ok"] is True
    assert rig.run("siren.set", {"state": "on", "alarm_id": "trk:a1"})["ok"] is True  # again
    topic, payload = rig.ctl.state_message()
    data = decode_state(KEY, topic, payload)["data"]
    assert data["siren_requests"] == ["trk:a1", "trk:a2"] and data["siren"] is True
    assert rig.run("siren.set", {"state": "off", "alarm_id": "trk:a1"})["siren"] is True
    assert rig.siren, "trk:a2 still holds it"
    assert rig.run("siren.set", {"state": "off", "alarm_id": "trk:a2"})["siren"] is False
    assert not rig.siren
    assert rig.run("siren.set", {"state": "off", "alarm_id": "trk:none"})["ok"] is True


def test_siren_requests_survive_a_restart(rig: Rig) -> None:
    rig.open()
    rig.run("siren.set", {"state": "on", "alarm_id": "trk:a1"})
    rig.open()
    assert rig.ctl.siren_requests == {"trk:a1": None}
    assert rig.siren, "the siren comes back on at boot"
    rig.run("siren.set", {"state": "off", "alarm_id": "trk:a1"})
    rig.open()
    assert not rig.siren and rig.ctl.siren_requests == {}


def test_siren_requests_and_local_alarms_each_hold_the_siren(rig: Rig) -> None:
    rig.at(NIGHT)
    rig.open()
    rig.ctl.on_input("door", True)  # a local critical alarm
    rig.run("siren.set", {"state": "on", "alarm_id": "trk:a1"})
    rig.run("alarm.silence", {})
    assert rig.siren, "silencing the local alarms leaves the tracker's request"
    rig.run("siren.set", {"state": "off", "alarm_id": "trk:a1"})
    assert not rig.siren
    rig.ctl.on_input("window:w1", True)  # a new local alarm
    assert rig.siren
    rig.run("siren.set", {"state": "off", "alarm_id": "trk:none"})
    assert rig.siren, "a release does not stop a local alarm"
