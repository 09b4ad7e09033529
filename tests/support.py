"""Test support: condition waits, a real Mosquitto on a free port, MQTT collectors and a
stand-in for the tracker's acknowledgements."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocol.envelope import decode_event, make_ack
from protocol.topics import parse_topic
from simulators.broker import BrokerError, MosquittoProcess, free_port  # noqa: F401 (re-exported)


def wait_until(cond: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll ``cond`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


class Mosquitto(MosquittoProcess):
    """A real Mosquitto on 127.0.0.1 with a config this test writes; a broker that cannot
    start fails the test with what to install."""

    def __init__(self, workdir: Path, **kw: Any) -> None:
        try:
            super().__init__(workdir, **kw)
        except BrokerError as exc:
            pytest.fail(f"{exc} (run `make install`)")

    def start(self, timeout: float = 10.0) -> None:
        try:
            super().start(timeout)
        except BrokerError as exc:
            pytest.fail(str(exc))


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool


class Collector:
    """An independent MQTT subscriber that keeps everything it receives, in order."""

    def __init__(self, broker: Mosquitto, topic: str = "ironroom/#", *, persistent: bool = False):
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self.topic = topic
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"collector-{uuid.uuid4().hex[:8]}",
            clean_session=not persistent,
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect_async("127.0.0.1", broker.port, keepalive=10)
        self.client.loop_start()
        wait_until(self.subscribed.is_set, 10, "the collector's subscription")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe(self.topic, qos=1)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._lock:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain)))
        self.handle(msg.topic, bytes(msg.payload))

    def handle(self, topic: str, payload: bytes) -> None:
        """Hook for subclasses (runs in the network thread)."""

    def on(self, suffix: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic.endswith(suffix)]

    def events(self, key: bytes) -> list[Any]:
        """Every event received, verified and decoded (a bad one fails the test)."""
        with self._lock:
            msgs = [m for m in self.messages if "/evt/" in m.topic]
        return [decode_event(key, m.topic, m.payload) for m in msgs]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Acker(Collector):
    """Stands in for the tracker's delivery rules: verifies each event, keeps each id once,
    and acknowledges the highest contiguous seq of each boot (retained, signed)."""

    def __init__(self, broker: Mosquitto, *, key: bytes, command_key: bytes, site: str, room: str):
        self.key = key
        self.command_key = command_key
        self.site, self.room = site, room
        self.by_id: dict[str, bytes] = {}
        self.order: list[str] = []
        self.duplicates = 0
        self.acked: dict[int, int] = {}
        # what the broker has confirmed holding (PUBACK of the retained ack): from then
        # on the controller can know it
        self.confirmed: dict[int, int] = {}
        self._ack_mids: dict[int, tuple[int, int]] = {}
        self._seqs: dict[int, set[int]] = {}
        self.after_ack: list[str] = []  # ids received again after an ack covered them
        self.after_ack_at: list[float] = []
        self.enabled = True
        super().__init__(broker, f"ironroom/v1/{site}/{room}/evt/+", persistent=False)
        self.client.on_publish = self._on_publish

    def handle(self, topic: str, payload: bytes) -> None:
        parse_topic(topic)
        ev = decode_event(self.key, topic, payload)
        if ev.id in self.by_id:
            assert self.by_id[ev.id] == payload, f"{ev.id} came back with other bytes"
            self.duplicates += 1
            if ev.seq <= self.confirmed.get(ev.boot, 0):
                self.after_ack.append(ev.id)
                self.after_ack_at.append(time.monotonic())
            return
        self.by_id[ev.id] = payload
        self.order.append(ev.id)
        self._seqs.setdefault(ev.boot, set()).add(ev.seq)
        if not self.enabled:
            return
        seqs = self._seqs[ev.boot]
        top = self.acked.get(ev.boot, 0)
        while top + 1 in seqs:
            top += 1
        if top > self.acked.get(ev.boot, 0):
            self.acked[ev.boot] = top
            t, p = make_ack(
                self.command_key,
                site=self.site,
                room=self.room,
                controller=ev.controller,
                boot=ev.boot,
                seq=top,
            )
            info = self.client.publish(t, p, qos=1, retain=True)
            self._ack_mids[info.mid] = (ev.boot, top)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        boot_seq = self._ack_mids.pop(mid, None)
        if boot_seq is not None and boot_seq[1] > self.confirmed.get(boot_seq[0], 0):
            self.confirmed[boot_seq[0]] = boot_seq[1]

    def seqs(self, boot: int) -> list[int]:
        return sorted(self._seqs.get(boot, ()))
