"""The `day` scenario end to end: `ironroom sim room` in its own process, pcscd with the
project's virtual badge, a real Mosquitto, and mosquitto_sub (a client the project did not
write) recording every message on the wire."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from protocol.envelope import decode_event
from protocol.signing import parse_key, verify
from simulators.scenarios import DESK_TAG, FOLDER_1, FOLDER_2, FOLDER_3, SECRETARY
from tests.support import Mosquitto, wait_until

IRONROOM = [sys.executable, "-m", "ironroom.cli"]


class Sub:
    """mosquitto_sub writing `topic<TAB>hex payload` lines."""

    def __init__(self, broker: Mosquitto, out: Path) -> None:
        binary = shutil.which("mosquitto_sub")
        if binary is None:
            pytest.fail("mosquitto_sub is missing: apt-get install mosquitto-clients")
        self.out = out
        self._f = out.open("wb")
        # stdbuf: mosquitto_sub's stdout is a file here, line-buffer it
        stdbuf = shutil.which("stdbuf")
        self.proc = subprocess.Popen(
            [
                *([stdbuf, "-oL"] if stdbuf else []),
                binary,
                "-h",
                "127.0.0.1",
                "-p",
                str(broker.port),
                "-q",
                "1",
                "-t",
                "ironroom/#",
                "-F",
                "%t\t%r\t%x",
            ],
            stdout=self._f,
            stderr=subprocess.STDOUT,
        )

    def lines(self) -> list[tuple[str, bool, bytes]]:
        rows = []
        for line in self.out.read_text().splitlines():
            topic, retained, hexpayload = line.split("\t")
            rows.append((topic, retained == "1", bytes.fromhex(hexpayload)))
        return rows

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self._f.close()


def run_sim(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*IRONROOM, "sim", "room", *args], capture_output=True, text=True, timeout=timeout
    )


def _key(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "controller.key"
    res = subprocess.run([*IRONROOM, "keys", "generate", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    return path, parse_key(path.read_text())


def _summary(ev) -> tuple:
    d = ev.data
    match ev.type:
        case "sensor.changed":
            return (ev.type, d["point"], d["state"])
        case "tag.arrived" | "tag.departed":
            return (ev.type, d["reader"], d["epc"])
        case "tag.seen":
            return (ev.type, d["reader"], d["epc"])
        case "badge.presented":
            return (ev.type, d["reader"], d["uid"], d["auth"])
        case "lock.changed":
            return (ev.type, d["point"], d["state"], d["reason"].split(":")[0])
        case "command.result":
            return (ev.type, d["ok"])
        case "alarm.raised":
            return (ev.type, d["cause"], d["point"], d["severity"])
        case _:
            return (ev.type,)


def test_day_scenario_every_event_on_the_wire(
    tmp_path: Path, broker: Mosquitto, pcscd: list[str], request: pytest.FixtureRequest
) -> None:
    key_file, key = _key(tmp_path)
    sub = Sub(broker, tmp_path / "wire.txt")
    request.addfinalizer(sub.close)
    wait_until(lambda: broker.proc is not None, 5, "broker")
    # mosquitto_sub has no "subscribed" signal: a retained probe proves the subscription.
    probe = subprocess.run(
        [
            "mosquitto_pub",
            "-p",
            str(broker.port),
            "-t",
            "ironroom/probe",
            "-m",
            "x",
            "-q",
            "1",
            "-r",
        ],
        capture_output=True,
    )
    assert probe.returncode == 0
    wait_until(lambda: any(t == "ironroom/probe" for t, _, _ in sub.lines()), 10, "the probe")

    res = run_sim(
        "--scenario",
        "day",
        "--broker",
        broker.url,
        "--key-file",
        str(key_file),
        "--data-dir",
        str(tmp_path / "data"),
        "--seconds",
        "25",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "18 of 18 steps played, 0 failed" in res.stderr, res.stderr[-3000:]
    wait_until(
        lambda: any(t.endswith("/status") and p == b"offline" for t, _, p in sub.lines()),
        10,
        "status offline",
    )
    sub.close()
    lines = sub.lines()

    events = [decode_event(key, t, p) for t, _, p in lines if "/evt/" in t]
    assert len({e.id for e in events}) == len(events), "no event twice (no ack, no reconnect)"
    events.sort(key=lambda e: e.seq)
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "no gap"
    assert {e.boot for e in events} == {1}
    assert all(a.ts <= b.ts for a, b in zip(events, events[1:], strict=False)), "ts in order"
    assert events[0].type == "controller.started"

    story = [_summary(e) for e in events if e.type != "controller.heartbeat"]
    initial = story[1:4]
    assert sorted(initial) == sorted(
        [
            ("tag.arrived", "cabinet:c1", FOLDER_1),
            ("tag.arrived", "cabinet:c1", FOLDER_2),
            ("tag.arrived", "cabinet:c2", FOLDER_3),
        ]
    )
    badge = ("badge.presented", "cabinet:c1", SECRETARY, "verified")
    unlocked = ("lock.changed", "lock:c1", "unlocked", "command")
    relocked = ("lock.changed", "lock:c1", "locked", "timeout")
    assert story[4:] == [
        ("sensor.changed", "door", "open"),
        ("sensor.changed", "door", "closed"),
        badge,
        unlocked,
        ("command.result", True),
        ("sensor.changed", "cabinet:c1", "open"),
        ("tag.departed", "cabinet:c1", FOLDER_1),
        ("sensor.changed", "cabinet:c1", "closed"),
        relocked,
        ("tag.seen", "desk", DESK_TAG),
        badge,
        unlocked,
        ("command.result", True),
        ("sensor.changed", "cabinet:c1", "open"),
        ("tag.arrived", "cabinet:c1", FOLDER_1),
        ("sensor.changed", "cabinet:c1", "closed"),
        relocked,
        ("sensor.changed", "door", "open"),
        ("sensor.changed", "door", "closed"),
        ("command.result", True),
        ("sensor.changed", "tamper:t1", "active"),
        ("alarm.raised", "tamper", "tamper:t1", "critical"),
        ("sensor.changed", "tamper:t1", "inactive"),
    ]
    tamper = next(e for e in events if e.type == "alarm.raised")
    cause = events[events.index(tamper) - 1]
    assert tamper.ts == cause.ts, "an alarm carries the time of the edge that raised it"
    assert tamper.ts.startswith("2026-11-26T15:10:00.")  # 23:10 in Beijing
    assert any(e.type == "controller.heartbeat" for e in events)

    # retained state at the end: signed, armed, the tamper alarm still latched
    state_topic, _, state_payload = [x for x in lines if x[0].endswith("/state")][-1]
    state = json.loads(state_payload)
    verify(key, state_topic, state)
    assert state["data"]["armed"] is True
    assert [a["cause"] for a in state["data"]["alarms"]] == ["tamper"]
    assert state["data"]["siren"] is True


def test_two_runs_two_boots_and_clean_exit(tmp_path: Path, broker: Mosquitto) -> None:
    key_file, key = _key(tmp_path)
    data = str(tmp_path / "data")
    boots = []
    for _ in range(2):
        res = run_sim(
            "--scenario",
            "after-hours-door",
            "--broker",
            broker.url,
            "--key-file",
            str(key_file),
            "--data-dir",
            data,
            "--seconds",
            "2",
            "--no-badges",
        )
        assert res.returncode == 0, res.stderr[-2000:]
        out = subprocess.run(
            [
                "mosquitto_sub",
                "-p",
                str(broker.port),
                "-t",
                "ironroom/v1/hq/room-101/+",
                "-C",
                "2",
                "-W",
                "5",
                "-F",
                "%t\t%p",
            ],
            capture_output=True,
            text=True,
        ).stdout
        got = dict(line.split("\t", 1) for line in out.splitlines())
        assert got["ironroom/v1/hq/room-101/status"] == "offline"
        boots.append(json.loads(got["ironroom/v1/hq/room-101/state"])["boot"])
    assert boots[0] != boots[1] and boots[1] == boots[0] + 1


def test_unknown_scenario_and_bad_broker_are_clear_errors(tmp_path: Path) -> None:
    res = run_sim("--scenario", "nope", "--data-dir", str(tmp_path), "--seconds", "1")
    assert res.returncode == 2 and "unknown scenario 'nope'" in res.stderr
    res = run_sim(
        "--scenario", "day", "--broker", "http://x", "--data-dir", str(tmp_path), "--seconds", "1"
    )
    assert res.returncode == 2 and "broker must look like" in res.stderr
