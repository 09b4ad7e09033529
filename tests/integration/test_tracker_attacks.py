"""Attacks on `ironroom tracker` from a raw MQTT client the project did not write
(mosquitto_pub): forged, replayed, tampered, oversized and malformed messages, a flood of
forgeries. Each is refused and recorded (tables `security`, `counters`), the ledger is
unchanged, the alarms do not flood, and the ingest carries on."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocol.canonical import canonical
from protocol.envelope import make_event
from protocol.signing import parse_key, sign
from protocol.timefmt import format_ts, parse_ts
from simulators.scenarios import FOLDER_1, FOLDER_2, FOLDER_3
from tests.support import Mosquitto
from tests.tracker_support import (
    CONTROLLER,
    ROOM,
    SITE,
    Cli,
    TrackerProcess,
    counters,
    query,
    setup_day_ledger,
    start_broker,
    write_config,
    write_key,
)

pytestmark = pytest.mark.integration

P = f"ironroom/v1/{SITE}/{ROOM}"


class RawPublisher:
    """mosquitto_pub, QoS 1: one message from a file, or one message per line of stdin."""

    def __init__(self, mq: Mosquitto, workdir: Path) -> None:
        binary = shutil.which("mosquitto_pub")
        if binary is None:
            pytest.fail("mosquitto_pub is missing: apt-get install mosquitto-clients")
        self.base = [binary, "-h", "127.0.0.1", "-p", str(mq.port), "-q", "1"]
        self.workdir = workdir
        self.n = 0

    def one(self, topic: str, payload: bytes) -> None:
        self.n += 1
        f = self.workdir / f"msg-{self.n}.bin"
        f.write_bytes(payload)
        res = subprocess.run([*self.base, "-t", topic, "-f", str(f)], capture_output=True)
        assert res.returncode == 0, res.stderr

    def lines(self, topic: str, payloads: list[bytes]) -> None:
        assert all(b"\n" not in p for p in payloads)
        res = subprocess.run(
            [*self.base, "-t", topic, "-l"], input=b"\n".join(payloads) + b"\n", capture_output=True
        )
        assert res.returncode == 0, res.stderr


def _now() -> str:
    return format_ts(datetime.now(UTC))


def _event(key: bytes, seq: int, *, boot: int = 1, state: str = "closed", room: str = ROOM):
    return make_event(
        key, site=SITE, room=room, controller=CONTROLLER, boot=boot, seq=seq, ts=_now(),
        type="sensor.changed", data={"point": "door", "kind": "door", "state": state},
    )  # fmt: skip


def _signed(key: bytes, topic: str, envelope: dict[str, Any]) -> bytes:
    """Any envelope, validly signed for ``topic``: make_event would refuse to build it."""
    env = dict(envelope)
    env["sig"] = sign(key, topic, env)
    return canonical(env)


class Attack:
    def __init__(self, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.mq = start_broker(tmp_path / "mosquitto")
        request.addfinalizer(self.mq.stop)
        self.db = tmp_path / "ledger.db"
        url = f"sqlite:///{self.db}"
        self.cli = Cli(url)
        key_file = write_key(tmp_path / "controller.key")
        self.key = parse_key(key_file.read_text())
        setup_day_ledger(self.cli, key_file, clearance="机密")
        cfg = write_config(tmp_path / "tracker.toml", self.mq, url, tracker={"heartbeat_s": 600})
        self.tracker = TrackerProcess(cfg, self.mq, url, tmp_path)
        request.addfinalizer(self.tracker.stop)
        self.raw = RawPublisher(self.mq, tmp_path)
        self.docs = self.documents()
        self.tracker.start()

    def documents(self) -> list[dict[str, Any]]:
        return [self.cli.rows("ledger", "show", tag)[0] for tag in (FOLDER_1, FOLDER_2, FOLDER_3)]

    def security(self) -> list[tuple[Any, ...]]:
        return query(self.db, "SELECT topic, reason, size, room_id FROM security ORDER BY id")

    def wait(self, cond: Any, what: str, timeout: float = 30) -> Any:
        return self.tracker.wait(cond, timeout, what)

    def count_is(self, name: str, n: int) -> None:
        self.wait(lambda: counters(self.db).get(name, 0) == n, f"counter {name} at {n}")

    def security_is(self, n: int) -> None:
        self.wait(lambda: len(self.security()) == n, f"{n} security records")

    def forged_alarms(self) -> list[dict[str, Any]]:
        return [a for a in self.cli.rows("ledger", "alarms") if a["cause"] == "forged_message"]


def test_forged_replayed_tampered_oversized_malformed_refused_ledger_unchanged(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    a = Attack(tmp_path, request)
    raw, key = a.raw, a.key
    other_key = os.urandom(32)

    # A real event first, so there is something to replay and tamper with.
    topic, first = _event(key, 1)
    raw.one(topic, first)
    a.count_is("applied", 1)

    # Replayed, byte for byte: dropped quietly, no security record.
    raw.one(topic, first)
    a.count_is("duplicate", 1)
    assert a.security() == []

    # Tampered in flight: the same id, other bytes, the old signature -> bad signature.
    tampered = first.replace(b'"state":"closed"', b'"state":"open"')
    assert tampered != first
    raw.one(topic, tampered)
    a.security_is(1)
    # The same id again with other bytes and a valid signature (a leaked key or a
    # controller that reused a seq): refused all the same.
    _, resigned = _event(key, 1, state="open")
    raw.one(topic, resigned)
    a.security_is(2)
    # Forged: signed with a key that is not the controller's.
    _, forged = _event(other_key, 2)
    raw.one(topic, forged)
    a.security_is(3)
    reasons = [r for _, r, _, _ in a.security()]
    assert reasons[0].startswith("bad signature") and reasons[2].startswith("bad signature")
    assert reasons[1] == f"event {CONTROLLER}:1:1 again with other bytes"

    # Oversized: 10 MB on an event topic.
    big = b'{"v":1,"pad":"' + b"x" * (10 * 1024 * 1024) + b'"}'
    raw.one(topic, big)
    a.count_is("refused.oversized", 1)

    # Malformed: not JSON; validly signed but the wrong schema; an unknown envelope field;
    # an event type on another category's topic; a status that is neither word.
    raw.one(topic, b"\xff\xfe not json {")
    a.count_is("refused.malformed", 1)
    base = {"v": 1, "controller": CONTROLLER, "boot": 1, "seq": 2, "ts": _now(),
            "type": "sensor.changed", "data": {"point": "door", "kind": "door"}}  # fmt: skip
    raw.one(topic, _signed(key, topic, {**base, "data": {**base["data"], "state": "ajar"}}))
    a.count_is("refused.malformed", 2)
    raw.one(topic, _signed(key, topic, {**base, "data": {**base["data"], "state": "open"},
                                        "extra": 1}))  # fmt: skip
    a.count_is("refused.malformed", 3)
    alarm_as_sensor = {**base, "type": "alarm.raised",
                       "data": {"alarm_id": "x:1:a1", "cause": "tamper", "point": "tamper:t1",
                                "severity": "critical"}}  # fmt: skip
    raw.one(topic, _signed(key, topic, alarm_as_sensor))
    a.count_is("refused.malformed", 4)
    raw.one(f"{P}/status", b"maybe")
    a.count_is("refused.malformed", 5)

    # Wrong topic shapes (still matching the tracker's subscriptions).
    raw.one(f"{P}/evt/bogus", first)
    a.count_is("refused.topic", 1)
    raw.one(f"ironroom/v1/HQ/{ROOM}/evt/sensor", first)
    a.count_is("refused.topic", 2)
    raw.one(f"ironroom/v1/{SITE}/room_101/state", b"{}")
    a.count_is("refused.topic", 3)

    # An unknown room: a security record of its own, not tied to any room.
    ghost_topic, ghost = _event(other_key, 1, room="room-999")
    raw.one(ghost_topic, ghost)
    a.security_is(4)
    assert a.security()[-1][1:] == ("unknown controller", len(ghost), None)

    # A flood of 200 forgeries.
    flood = [_event(other_key, seq)[1] for seq in range(3, 203)]
    raw.lines(topic, flood)
    a.security_is(204)

    # A boot older than one already closed: boot 2 reports an empty outbox (closing 1),
    # then a validly signed event of boot 1 comes.
    hb_topic, hb = make_event(
        key, site=SITE, room=ROOM, controller=CONTROLLER, boot=2, seq=1, ts=_now(),
        type="controller.heartbeat", data={"uptime_s": 1, "outbox_depth": 0, "armed": False},
    )  # fmt: skip
    raw.one(hb_topic, hb)
    a.count_is("applied", 2)
    _, old_boot = _event(key, 2, boot=1)
    raw.one(topic, old_boot)
    a.security_is(205)
    assert a.security()[-1][1] == "event of closed boot 1"

    # The ingest goes on: a valid event after all that is applied.
    _, after = _event(key, 2, boot=2, state="open")
    raw.one(topic, after)
    a.count_is("applied", 3)
    assert a.tracker.alive()

    # Recorded and counted, exactly.
    records = a.security()
    by_reason: dict[str, int] = {}
    for _, reason, _, _ in records:
        by_reason[reason.split(":")[0]] = by_reason.get(reason.split(":")[0], 0) + 1
    assert by_reason == {
        "bad signature": 202,
        f"event {CONTROLLER}": 1,
        "unknown controller": 1,
        "event of closed boot 1": 1,
    }, by_reason
    assert all(size < 1024 for _, _, size, _ in records)
    assert counters(a.db) == {
        "applied": 3,
        "duplicate": 1,
        "refused.forged": 205,
        "refused.oversized": 1,
        "refused.malformed": 5,
        "refused.topic": 3,
    }

    # One forged_message alarm per controller per minute, not one per message.
    alarms = a.cli.rows("ledger", "alarms")
    assert {x["cause"] for x in alarms} == {"forged_message"}, alarms
    room_alarms = [x for x in alarms if x["room"] == f"{SITE}/{ROOM}"]
    received = [parse_ts(r) for (r,) in query(a.db, "SELECT received FROM security WHERE room_id "
                                                  "IS NOT NULL ORDER BY id")]  # fmt: skip
    span = (received[-1] - received[0]).total_seconds()
    raised = sorted(parse_ts(x["raised"]) for x in room_alarms)
    assert all((b - c).total_seconds() >= 60 for c, b in zip(raised, raised[1:], strict=False))
    assert 1 <= len(room_alarms) <= 1 + int(span // 60), (span, room_alarms)
    assert all(x["severity"] == "critical" and x["source"] == "tracker" for x in room_alarms)
    assert room_alarms[0]["detail"]["controller"] == CONTROLLER
    ghosts = [x for x in alarms if x["room"] is None]
    assert len(ghosts) == 1 and ghosts[0]["detail"]["controller"] == f"{SITE}/room-999"
    assert len(alarms) == len(room_alarms) + 1

    # The ledger is unchanged: documents, loans; only the valid events were applied.
    assert a.documents() == a.docs
    assert a.cli.rows("ledger", "loans") == []
    events = a.cli.rows("ledger", "events")
    assert [(e["id"], e["data"].get("state")) for e in events] == [
        (f"{CONTROLLER}:1:1", "closed"),
        (f"{CONTROLLER}:2:1", None),
        (f"{CONTROLLER}:2:2", "open"),
    ]
    stored = query(a.db, "SELECT payload FROM events ORDER BY boot, seq")
    assert [bytes(p) for (p,) in stored] == [first, hb, after]
    res = a.cli.run("audit", "verify")
    assert res.returncode == 0, res.stderr
    assert a.tracker.stop() == 0


def test_a_flood_from_unknown_rooms_does_not_flood_the_alarms(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Forgeries for 200 rooms the ledger does not know (the topic is the attacker's to
    choose), from a plain paho client: every one recorded, but the alarms do not flood."""
    a = Attack(tmp_path, request)
    other_key = os.urandom(32)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="attacker")
    client.connect("127.0.0.1", a.mq.port)
    client.loop_start()
    request.addfinalizer(client.loop_stop)
    infos = []
    for i in range(200):
        topic, payload = _event(other_key, 1, room=f"ghost-{i}")
        infos.append(client.publish(topic, payload, qos=1))
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    a.security_is(200)
    assert {r[1] for r in a.security()} == {"unknown controller"}
    assert counters(a.db).get("refused.forged") == 200
    received = [parse_ts(r) for (r,) in query(a.db, "SELECT received FROM security")]
    span = (max(received) - min(received)).total_seconds()
    alarms = a.forged_alarms()
    assert 1 <= len(alarms) <= 1 + int(span // 60), (span, [x["detail"] for x in alarms][:5])
    assert all(x["room"] is None for x in alarms)
    assert a.documents() == a.docs
    res = a.cli.run("audit", "verify")
    assert res.returncode == 0, res.stderr
