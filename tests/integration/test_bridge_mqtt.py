"""The real bridge on the simulated room, against a real Mosquitto."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from pathlib import Path

import pytest

from protocol.envelope import decode_state, make_ack
from protocol.signing import sign
from simulators.clock import SimClock
from simulators.room import SimulatedRoom
from tests.integration.room_fixtures import FRIDAY_10, room_config, signed_command
from tests.support import Acker, Collector, Mosquitto, free_port, wait_until


def _results(col: Collector, key: bytes) -> dict[str, dict]:
    return {e.data["command_id"]: e.data for e in col.events(key) if e.type == "command.result"}


def _unique(col: Collector, key: bytes, type_: str) -> list:
    """Events of one type, each id once (no tracker acks here, so the outbox is resent)."""
    seen: dict[str, object] = {}
    for e in col.events(key):
        if e.type == type_:
            seen.setdefault(e.id, e)
    return sorted(seen.values(), key=lambda e: e.seq)


def test_started_status_and_retained_state(sim_room: SimulatedRoom, broker: Mosquitto) -> None:
    key = sim_room.bridge.key
    wait_until(lambda: sim_room.bridge.link.connected, 10, "the bridge to connect")
    col = Collector(broker)  # subscribes after the fact: retained messages only
    wait_until(lambda: col.on("/state") and col.on("/status"), 5, "retained state and status")
    assert col.on("/status")[-1].payload == b"online"
    assert col.on("/status")[-1].retain
    state = decode_state(key, col.on("/state")[-1].topic, col.on("/state")[-1].payload)
    assert state["data"]["points"]["door"] == "closed"
    assert state["data"]["points"]["lock:c1"] == "locked"
    assert state["data"]["alarms"] == []
    col.close()


def test_after_hours_door_drives_siren_and_events_in_order(
    sim_room: SimulatedRoom, broker: Mosquitto
) -> None:
    col = Collector(broker)
    key = sim_room.bridge.key
    sim_room.clock.advance_to(datetime.fromisoformat("2026-11-27T23:10:00+08:00"))
    assert not sim_room.gpio.siren
    sim_room.gpio.open("door")
    assert sim_room.gpio.siren, "the siren must be on when the edge callback returns"
    sim_room.gpio.close("door")
    assert sim_room.gpio.siren, "the alarm is latched: closing the door does not stop it"

    def interesting() -> list:  # by id: with no tracker acking, the outbox is resent
        evs = {e.id: e for e in col.events(key) if e.type in ("sensor.changed", "alarm.raised")}
        return list(evs.values())

    evs = wait_until(lambda: len(interesting()) >= 3 and interesting(), 10, "three events")
    evs.sort(key=lambda e: e.seq)
    assert [(e.type, e.data.get("state") or e.data.get("cause")) for e in evs] == [
        ("sensor.changed", "open"),
        ("alarm.raised", "after_hours_open"),
        ("sensor.changed", "closed"),
    ]
    assert evs[0].ts == "2026-11-27T15:10:00.000Z"
    assert evs[1].data["severity"] == "critical"
    col.close()


def test_commands_unlock_replay_expiry_and_forgery(
    sim_room: SimulatedRoom, broker: Mosquitto
) -> None:
    cfg, bridge = sim_room.cfg, sim_room.bridge
    wait_until(lambda: bridge.link.connected, 10, "the bridge to connect")
    col = Collector(broker)
    now = sim_room.clock.now()
    topic, payload, good = signed_command(
        cfg,
        bridge.command_key,
        "cabinet.unlock",
        {"cabinet": "c1", "seconds": 20, "badge": "04A1B2C3D4E5F6"},
        now=now,
        name="unlock",
    )
    col.client.publish(topic, payload, qos=1)
    wait_until(lambda: not sim_room.gpio.locked("c1"), 5, "lock c1 to open")
    # the same bytes again: a replay
    col.client.publish(topic, payload, qos=1)
    # an expired one
    t2, p2, expired = signed_command(
        cfg,
        bridge.command_key,
        "arming.set",
        {"state": "armed"},
        now=datetime.fromisoformat("2026-11-27T09:00:00+08:00"),
    )
    col.client.publish(t2, p2, qos=1)
    # a forged one: signed with another key
    t3, p3, forged = signed_command(cfg, bytes(32), "arming.set", {"state": "armed"}, now=now)
    col.client.publish(t3, p3, qos=1)
    # not JSON at all
    col.client.publish(topic, b"\xff not json", qos=1)
    # a valid signature moved to another room's topic
    moved = topic.replace("/room-101/", "/room-102/")
    col.client.publish(moved, payload, qos=1)

    key = bridge.key

    def unverified() -> list[dict]:
        return [
            e.data
            for e in _unique(col, key, "command.result")
            if e.data["command_id"] == "unreadable"
        ]

    # the forgery and the garbage are not verified: answered without an id, counted (the
    # moved command never arrives: the bridge subscribes to its own room only)
    wait_until(lambda: sum(r["refused"] for r in unverified()) == 2, 10, "the refusals")
    results = wait_until(
        lambda: len(_unique(col, key, "command.result")) >= 4 and _results(col, key),
        10,
        "the command results",
    )
    all_results = [e.data for e in _unique(col, key, "command.result")]
    good_results = [r for r in all_results if r["command_id"] == good]
    assert good_results[0] == {"command_id": good, "ok": True, "error": None}
    assert good_results[1]["ok"] is False and "replayed" in good_results[1]["error"]
    assert results[expired]["ok"] is False and results[expired]["error"] == "expired"
    assert forged not in results, "an unverified id is never quoted"
    assert all(r["ok"] is False for r in unverified())
    assert any("signature" in r["error"] for r in unverified())
    assert not bridge.controller.armed, "no refused command may take effect"
    locks = [e.data for e in _unique(col, key, "lock.changed")]
    assert locks == [{"point": "lock:c1", "state": "unlocked", "reason": f"command:{good}"}]
    col.close()


def test_forced_cabinet_reset_and_silence(sim_room: SimulatedRoom, broker: Mosquitto) -> None:
    bridge = sim_room.bridge
    wait_until(lambda: bridge.link.connected, 10, "the bridge to connect")
    col = Collector(broker)
    sim_room.gpio.open("cabinet:c2")  # locked: forced
    assert sim_room.gpio.siren
    alarms = wait_until(lambda: _unique(col, bridge.key, "alarm.raised"), 5, "the alarm")
    assert alarms[0].data["cause"] == "forced_open"
    assert alarms[0].data["point"] == "cabinet:c2"
    now = sim_room.clock.now()
    t, p, _ = signed_command(sim_room.cfg, bridge.command_key, "alarm.silence", {}, now=now)
    col.client.publish(t, p, qos=1)
    wait_until(lambda: not sim_room.gpio.siren, 5, "the siren to be silenced")
    assert bridge.controller.alarms, "silenced, still latched"
    t, p, _ = signed_command(sim_room.cfg, bridge.command_key, "alarm.reset", {}, now=now)
    col.client.publish(t, p, qos=1)
    cleared = wait_until(lambda: _unique(col, bridge.key, "alarm.cleared"), 5, "the clear")
    assert cleared[0].data == {"alarm_id": alarms[0].data["alarm_id"], "by": "tracker"}
    assert not bridge.controller.alarms
    col.close()


def test_acks_prune_the_outbox_and_forged_acks_do_not(
    sim_room: SimulatedRoom, broker: Mosquitto
) -> None:
    bridge, cfg = sim_room.bridge, sim_room.cfg
    wait_until(lambda: bridge.link.connected, 10, "the bridge to connect")
    for _ in range(5):
        sim_room.gpio.open("window:w1")
        sim_room.clock.advance(1)
        sim_room.gpio.close("window:w1")
        sim_room.clock.advance(1)
    depth = wait_until(lambda: bridge.outbox.depth() >= 11 and bridge.outbox.depth(), 5, "11 rows")
    forger = Collector(broker)
    t, p = make_ack(
        bytes(32),
        site=cfg.site,
        room=cfg.room,
        controller=cfg.controller,
        boot=bridge.boot,
        seq=10**6,
    )
    forger.client.publish(t, p, qos=1, retain=True).wait_for_publish(5)
    forger.close()
    acker = Acker(
        broker, key=bridge.key, command_key=bridge.command_key, site=cfg.site, room=cfg.room
    )
    wait_until(lambda: bridge.outbox.depth() == 0, 10, "the outbox to empty")
    assert acker.seqs(bridge.boot) == list(range(1, len(acker.seqs(bridge.boot)) + 1))
    assert len(acker.seqs(bridge.boot)) >= depth
    acker.close()


def test_starts_without_broker_then_delivers_in_order(tmp_path: Path) -> None:
    """A Pi that boots before its network: rules work at once, events follow later."""
    broker = Mosquitto(tmp_path / "late-broker")
    cfg = room_config(tmp_path, broker.url)
    clock = SimClock(datetime.fromisoformat("2026-11-27T23:00:00+08:00"))
    room = SimulatedRoom(cfg, clock=clock, badges=False)
    try:
        room.start()
        room.gpio.open("door")
        assert room.gpio.siren, "alarm with no broker"
        room.gpio.close("door")
        room.gpio.open("smoke:s1")
        assert not room.bridge.link.connected
        broker.start()
        acker = Acker(
            broker,
            key=room.bridge.key,
            command_key=room.bridge.command_key,
            site=cfg.site,
            room=cfg.room,
        )
        wait_until(lambda: room.bridge.outbox.depth() == 0, 20, "the outbox to drain")
        got = [json.loads(acker.by_id[i]) for i in acker.order]
        types = [g["type"] for g in got]
        # alarms first, each group in creation order
        n_alarms = sum(1 for t in types if t == "alarm.raised")
        assert n_alarms == 2 and types[:2] == ["alarm.raised", "alarm.raised"]
        assert [g["seq"] for g in got[:2]] == sorted(g["seq"] for g in got[:2])
        rest = [g["seq"] for g in got[2:]]
        assert rest == sorted(rest)
        assert sorted(g["seq"] for g in got) == list(range(1, len(got) + 1))
        acker.close()
    finally:
        room.close()
        broker.stop()


def test_will_is_offline_and_sig_covers_state(tmp_path: Path, broker: Mosquitto) -> None:
    cfg = room_config(tmp_path, broker.url)
    room = SimulatedRoom(
        cfg, clock=SimClock(datetime.fromisoformat("2026-11-27T10:00:00+08:00")), badges=False
    )
    room.start()
    wait_until(lambda: room.bridge.link.connected, 10, "the bridge to connect")
    room.close()
    col = Collector(broker)
    wait_until(lambda: col.on("/status"), 5, "the retained status")
    assert col.on("/status")[-1].payload == b"offline"
    state = json.loads(col.on("/state")[-1].payload)
    sig = state.pop("sig")
    assert sign(room.bridge.key, col.on("/state")[-1].topic, state) == sig
    col.close()


def test_falls_back_to_mqtt_311_on_a_broker_that_refuses_5(tmp_path: Path) -> None:
    """amqtt (the demo's broker, not ours) speaks 3.1.1 only."""
    from simulators.demo import EmbeddedBroker

    port = free_port()
    amqtt = EmbeddedBroker(port)
    amqtt.start()
    cfg = room_config(tmp_path, f"mqtt://127.0.0.1:{port}")
    assert cfg.mqtt.protocol == "auto"
    room = SimulatedRoom(cfg, clock=SimClock(datetime.fromisoformat(FRIDAY_10)), badges=False)
    try:
        room.start()
        wait_until(lambda: room.bridge.link.connected, 15, "a 3.1.1 connection")
        assert room.bridge.link.client.protocol == 4  # MQTTv311
    finally:
        room.close()
        amqtt.stop()


# -- acks the controller cannot have earned, a sender that survives, size, unreachable ------


def _toggle(room: SimulatedRoom, point: str = "window:w1") -> None:
    room.gpio.open(point)
    room.clock.advance(1)
    room.gpio.close(point)
    room.clock.advance(1)


def _seqs(col: Collector, key: bytes, boot: int) -> set[int]:
    return {e.seq for e in col.events(key) if e.boot == boot}


def test_a_retained_ack_from_a_wiped_controller_prunes_nothing(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """The data dir was wiped (or the Pi replaced): boot 1 again, and the broker still
    holds the ack of the former life's boot 1. Every new event is sent all the same."""
    cfg = room_config(tmp_path, broker.url)
    room = SimulatedRoom(cfg, clock=SimClock(datetime.fromisoformat(FRIDAY_10)), badges=False)
    col: Collector | None = None
    try:
        bridge = room.bridge
        assert bridge.boot == 1
        former = Collector(broker)
        t, p = make_ack(
            bridge.command_key,
            site=cfg.site,
            room=cfg.room,
            controller=cfg.controller,
            boot=1,
            seq=500,
        )
        former.client.publish(t, p, qos=1, retain=True).wait_for_publish(5)
        former.close()
        col = Collector(broker)
        room.start()
        assert bridge.link is not None
        wait_until(bridge.link._ack_seen.is_set, 10, "the retained ack")
        for _ in range(5):
            _toggle(room)
        made = bridge.controller.seq
        wait_until(
            lambda: _seqs(col, bridge.key, 1) >= set(range(1, made + 1)), 10, "every new event"
        )
        assert bridge.outbox.depth() >= made, "nothing was pruned"
        assert bridge.acks_ignored >= 1
    finally:
        room.close()
        if col is not None:
            col.close()


def test_an_ack_ahead_of_the_seq_does_not_hold_back_new_events(
    sim_room: SimulatedRoom, broker: Mosquitto
) -> None:
    """An ack for seq 129 while the controller is at seq 109: ignored, and the 20 events
    after 109 are sent like all the others."""
    bridge, cfg = sim_room.bridge, sim_room.cfg
    wait_until(lambda: bridge.link.connected, 10, "the bridge to connect")
    col = Collector(broker)
    while bridge.controller.seq < 109:
        _toggle(sim_room)
    at = bridge.controller.seq
    ahead = Collector(broker)
    t, p = make_ack(
        bridge.command_key,
        site=cfg.site,
        room=cfg.room,
        controller=cfg.controller,
        boot=bridge.boot,
        seq=at + 20,
    )
    ahead.client.publish(t, p, qos=1, retain=True).wait_for_publish(5)
    ahead.close()
    time.sleep(0.5)  # the bridge has it
    while bridge.controller.seq < at + 31:
        _toggle(sim_room)
    made = bridge.controller.seq
    wait_until(
        lambda: _seqs(col, bridge.key, bridge.boot) >= set(range(1, made + 1)),
        15,
        "every event, those after the ack's seq too",
    )
    assert bridge.acks_ignored >= 1
    col.close()


def test_no_error_ends_the_outbox_sender(sim_room: SimulatedRoom, broker: Mosquitto) -> None:
    """A state snapshot that cannot be made and a prune that fails (as an ack beyond
    SQLite's integers once did) are logged; the sender carries on and delivers."""
    bridge, cfg = sim_room.bridge, sim_room.cfg
    link = bridge.link
    wait_until(lambda: link.connected, 10, "the bridge to connect")
    left = {"state": 1, "prune": 1}
    real_state, real_ack = link.state_provider, bridge.outbox.ack

    def failing_state() -> tuple[str, bytes]:
        if left["state"]:
            left["state"] -= 1
            raise RuntimeError("snapshot failed")
        assert real_state is not None
        return real_state()

    def failing_ack(boot: int, seq: int) -> int:
        if left["prune"]:
            left["prune"] -= 1
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return real_ack(boot, seq)

    link.state_provider = failing_state
    bridge.outbox.ack = failing_ack  # type: ignore[method-assign]
    link.publish_state()
    acker = Acker(
        broker, key=bridge.key, command_key=bridge.command_key, site=cfg.site, room=cfg.room
    )
    try:
        for _ in range(3):
            _toggle(sim_room)
        wait_until(lambda: left == {"state": 0, "prune": 0}, 10, "both failures")
        for _ in range(3):
            _toggle(sim_room)
        made = bridge.controller.seq
        wait_until(
            lambda: set(acker.seqs(bridge.boot)) >= set(range(1, made + 1)), 15, "every event"
        )
        wait_until(lambda: bridge.outbox.depth() == 0, 15, "the outbox to be pruned")
        assert link._sender.is_alive()
    finally:
        acker.close()


def test_the_broker_never_sends_the_bridge_more_than_its_maximum_packet_size(
    sim_room: SimulatedRoom, broker: Mosquitto
) -> None:
    link, cfg = sim_room.bridge.link, sim_room.cfg
    wait_until(lambda: link.connected, 10, "the bridge to connect")
    assert link.client.protocol == 5  # MQTTv5: the limit is a CONNECT property
    sizes: list[int] = []
    real = link.on_command

    def counting(topic: str, payload: bytes) -> None:
        sizes.append(len(payload))
        real(topic, payload)

    link.on_command = counting
    sender = Collector(broker)
    topic = f"ironroom/v1/{cfg.site}/{cfg.room}/cmd/x"
    sender.client.publish(topic, b"x" * (4 * 1024 * 1024), qos=1).wait_for_publish(10)
    sender.client.publish(topic, b"small", qos=1).wait_for_publish(5)
    wait_until(lambda: 5 in sizes, 10, "the small message")
    assert sizes == [5], "the 4 MiB message reached the bridge"
    sender.close()


def test_an_unreachable_broker_is_logged_once_then_as_retries_back_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens there
    cfg = room_config(tmp_path, f"mqtt://127.0.0.1:{port}")
    room = SimulatedRoom(cfg, clock=SimClock(datetime.fromisoformat(FRIDAY_10)), badges=False)
    caplog.set_level(logging.INFO, logger="firmware_bridge.link")

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if "cannot reach broker" in r.getMessage()]

    try:
        room.start()
        link = room.bridge.link
        assert link is not None
        wait_until(said, 5, "the unreachable broker to be logged")
        assert f"127.0.0.1:{port}" in said()[0] and "refused" in said()[0].lower()
        wait_until(lambda: link._connect_failures >= 3, 10, "three failed attempts")
        failures = link._connect_failures
        assert len(said()) == len([n for n in (1, 2, 4, 8, 16) if n <= failures])
    finally:
        room.close()
