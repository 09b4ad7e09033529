"""A stand-in for the tracker's acknowledgements, run as its own process by the benchmark.

It subscribes to one room's events, verifies each with the controller key, and publishes
a signed, retained ``ack`` for the highest contiguous ``seq`` of each boot, as the tracker
does. Protocol on stdout: one line ``ready`` once the subscription is confirmed, and one
JSON line of counters when it stops (SIGTERM or SIGINT).

    python bench/_acker.py --port 1883 --key-file data/controller.key --site hq --room room-101
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocol.envelope import decode_event, make_ack
from protocol.errors import ProtocolError
from protocol.signing import parse_key


class AckState:
    """Per-boot contiguous tracking of the seqs received."""

    def __init__(self) -> None:
        self.received = 0
        self.duplicates = 0
        self.rejected = 0
        self.acks_sent = 0
        self.top: dict[int, int] = {}
        self._ahead: dict[int, set[int]] = {}

    def add(self, boot: int, seq: int) -> int | None:
        """Record one event; the new contiguous top of its boot if it moved, else None."""
        top = self.top.get(boot, 0)
        ahead = self._ahead.setdefault(boot, set())
        if seq <= top or seq in ahead:
            self.duplicates += 1
            return None
        self.received += 1
        ahead.add(seq)
        moved = top
        while moved + 1 in ahead:
            moved += 1
            ahead.discard(moved)
        if moved == top:
            return None
        self.top[boot] = moved
        return moved


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key-file", required=True, type=Path)
    ap.add_argument("--site", required=True)
    ap.add_argument("--room", required=True)
    args = ap.parse_args()

    key = parse_key(args.key_file.read_text(encoding="utf-8"))
    state = AckState()
    lock = threading.Lock()
    ready = threading.Event()
    stop = threading.Event()
    evt_filter = f"ironroom/v1/{args.site}/{args.room}/evt/+"

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-acker-{uuid.uuid4().hex[:8]}",
        clean_session=True,
    )

    def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        c.subscribe(evt_filter, qos=1)

    def on_subscribe(c: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        if not ready.is_set():
            ready.set()
            print("ready", flush=True)

    def on_message(c: Any, userdata: Any, msg: Any) -> None:
        try:
            ev = decode_event(key, msg.topic, bytes(msg.payload))
        except ProtocolError:
            with lock:
                state.rejected += 1
            return
        with lock:
            top = state.add(ev.boot, ev.seq)
        if top is None:
            return
        topic, payload = make_ack(
            key, site=args.site, room=args.room, controller=ev.controller, boot=ev.boot, seq=top
        )
        c.publish(topic, payload, qos=1, retain=True)
        with lock:
            state.acks_sent += 1

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    client.connect(args.host, args.port, keepalive=30)
    client.loop_start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        client.disconnect()
        client.loop_stop()
    with lock:
        stats = {
            "received": state.received,
            "duplicates": state.duplicates,
            "rejected": state.rejected,
            "acks_sent": state.acks_sent,
            "acked": {str(b): s for b, s in state.top.items()},
        }
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
