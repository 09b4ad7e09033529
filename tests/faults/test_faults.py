"""Faults for real: kill -9 the bridge mid-stream, stop the broker for 30 s; then count."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from protocol.signing import parse_key
from simulators.clock import SimClock
from simulators.room import SimulatedRoom, builtin_config_text
from tests.integration.room_fixtures import room_config
from tests.support import Acker, Collector, Mosquitto, wait_until

pytestmark = pytest.mark.faults


def _fast_config(tmp_path: Path) -> Path:
    """The example room with a short keepalive (the will fires soon) and resend timer."""
    text = builtin_config_text().replace(
        '[mqtt]\nbroker = "mqtt://127.0.0.1:1883"',
        '[mqtt]\nbroker = "mqtt://127.0.0.1:1883"\nkeepalive_s = 5\nresend_s = 5',
    )
    assert "keepalive_s = 5" in text
    path = tmp_path / "room.toml"
    path.write_text(text)
    return path


def _start_bridge(cfg: Path, broker: Mosquitto, key_file: Path, data: Path, scenario: str):
    log = open(data.parent / f"bridge-{scenario}-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ironroom.cli",
            "sim",
            "room",
            "--config",
            str(cfg),
            "--scenario",
            scenario,
            "--broker",
            broker.url,
            "--key-file",
            str(key_file),
            "--data-dir",
            str(data),
            "--seconds",
            "120",
            "--no-badges",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _outbox_rows(data: Path) -> list[tuple[int, int]]:
    db = sqlite3.connect(data / "outbox.sqlite3")
    try:
        return db.execute("SELECT boot, seq FROM events").fetchall()
    finally:
        db.close()


def _made(data: Path) -> int:
    """How many events the controller committed to its outbox, counted by the outbox itself:
    SQLite's AUTOINCREMENT keeps the highest row id ever given out, rows acked and deleted
    since included. On a fresh data dir with one boot, row n is that boot's seq n (checked
    on the rows still there)."""
    db = sqlite3.connect(data / "outbox.sqlite3")
    try:
        (made,) = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        rows = db.execute("SELECT id, boot, seq FROM events").fetchall()
    finally:
        db.close()
    assert all((boot, seq) == (1, rowid) for rowid, boot, seq in rows), rows[:5]
    return int(made)


def test_kill_9_mid_stream_loses_and_duplicates_nothing(tmp_path: Path, broker: Mosquitto) -> None:
    key_file = tmp_path / "controller.key"
    key_file.write_text(os.urandom(32).hex())
    os.chmod(key_file, 0o600)
    key = parse_key(key_file.read_text())
    data = tmp_path / "data"
    cfg = _fast_config(tmp_path)
    acker = Acker(broker, key=key, command_key=key, site="hq", room="room-101")
    status = Collector(broker, "ironroom/v1/hq/room-101/status")

    first = _start_bridge(cfg, broker, key_file, data, "stream")
    try:
        wait_until(lambda: len(acker.seqs(1)) >= 300, 60, "300 events of boot 1")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at, acked_at_kill, dups_at_kill = (
            time.monotonic(),
            dict(acker.confirmed),
            len(acker.after_ack),
        )
    finally:
        if first.poll() is None:
            first.kill()
    # The broker tells everyone the controller is gone (last will), within 1.5 keepalives.
    wait_until(
        lambda: status.on("/status") and status.on("/status")[-1].payload == b"offline",
        15,
        "the last will",
    )
    left = [seq for boot, seq in _outbox_rows(data) if boot == 1]
    received = set(acker.seqs(1))
    made = _made(data)  # what the outbox holds or held, independent of what arrived
    assert made >= 300 and received <= set(range(1, made + 1)), "nothing arrived unmade"
    assert set(range(1, made + 1)) <= received | set(left), "every event is either sent or kept"

    second = _start_bridge(cfg, broker, key_file, data, "idle")
    try:
        wait_until(lambda: acker.seqs(2), 30, "the second boot's first event")
        wait_until(
            lambda: set(range(1, made + 1)) <= set(acker.seqs(1)),
            30,
            "every event of boot 1 after the restart",
        )
        wait_until(
            lambda: not [r for r in _outbox_rows(data) if r[0] == 1],
            30,
            "boot 1 to leave the outbox",
        )
    finally:
        second.terminate()
        second.wait(20)
    assert acker.seqs(1) == list(range(1, made + 1)), "no gap, nothing invented"
    assert acker.after_ack == [], (
        "an acknowledged event was delivered again",
        acked_at_kill,
        dups_at_kill,
        [round(t - killed_at, 3) for t in acker.after_ack_at[:3]],
        acker.after_ack[:3],
    )
    assert acker.seqs(2)[0] == 1
    assert status.on("/status")[-1].payload == b"offline"
    acker.close()
    status.close()


def test_broker_down_30s_siren_still_driven_then_delivered_in_order(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "mosquitto", persistence=True)
    broker.start()
    cfg = room_config(tmp_path, broker.url)
    clock = SimClock(datetime.fromisoformat("2026-11-27T16:00:00+08:00"))
    room = SimulatedRoom(cfg, clock=clock, badges=False)
    room.start()
    key = room.bridge.key
    acker = Acker(
        broker, key=key, command_key=room.bridge.command_key, site=cfg.site, room=cfg.room
    )
    try:
        wait_until(lambda: room.bridge.link.connected, 10, "the bridge to connect")
        wait_until(lambda: acker.seqs(room.bridge.boot), 10, "the started event")
        broker.stop()
        wait_until(lambda: not room.bridge.link.connected, 10, "the bridge to see the outage")
        outage_start = time.monotonic()
        clock.advance_to(datetime.fromisoformat("2026-11-27T23:10:00+08:00"))
        room.gpio.open("door")
        assert room.gpio.siren, "siren on with the broker down"
        room.gpio.close("window:w1")
        pause = threading.Event()
        toggles = 0
        while time.monotonic() - outage_start < 30:
            room.gpio.open("window:w1")
            clock.advance(1)
            room.gpio.close("window:w1")
            clock.advance(1)
            toggles += 1
            assert room.gpio.siren, "the latched alarm keeps the siren on"
            pause.wait(0.25)  # pacing the simulated window, not waiting for anything
        made = room.controller.seq
        assert room.bridge.outbox.depth() >= made - 2
        before = len(acker.order)
        broker.start()
        wait_until(lambda: room.bridge.outbox.depth() == 0, 30, "the outbox to drain")
        boot = room.bridge.boot
        assert (
            acker.seqs(boot)
            == list(range(1, made + 1 + (room.controller.seq - made)))[: len(acker.seqs(boot))]
        )
        assert set(range(1, made + 1)) <= set(acker.seqs(boot))
        # order after the outage: alarms first, then the rest, each in creation order
        after = acker.order[before:]
        seqs = [int(i.split(":")[2]) for i in after]
        kinds = [json.loads(acker.by_id[i])["type"] for i in after]
        alarm_seqs = [s for s, k in zip(seqs, kinds, strict=True) if k == "alarm.raised"]
        other = [s for s, k in zip(seqs, kinds, strict=True) if k != "alarm.raised"]
        causes = {
            (d["cause"], d["point"])
            for d in (json.loads(acker.by_id[i])["data"] for i in after)
            if "cause" in d
        }
        assert causes == {
            ("after_hours_open", "door"),
            ("after_hours_open", "window:w1"),
            ("held_open", "door"),
        }
        n = len(alarm_seqs)
        assert kinds[:n] == ["alarm.raised"] * n, "alarms are resent first"
        assert alarm_seqs == sorted(alarm_seqs)
        assert other == sorted(other)
        assert toggles >= 60
        assert room.gpio.siren
    finally:
        acker.close()
        room.close()
        broker.stop()
