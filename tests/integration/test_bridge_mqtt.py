"""The real bridge on the simulated room, against a real Mosquitto."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

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
    results = wait_until(
        lambda: len(_unique(col, key, "command.result")) >= 5 and _results(col, key),
        10,
        "five command results",
    )
    all_results = [e.data for e in _unique(col, key, "command.result")]
    good_results = [r for r in all_results if r["command_id"] == good]
    assert good_results[0] == {"command_id": good, "ok": True, "error": None}
    assert good_results[1]["ok"] is False and "replayed" in good_results[1]["error"]
    assert results[expired]["ok"] is False and results[expired]["error"] == "expired"
    assert results[forged]["ok"] is False and "signature" in results[forged]["error"]
    assert results["unreadable"]["ok"] is False
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
