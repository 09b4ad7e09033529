"""``ironroom demo``: the whole simulated room live on one machine.

An embedded amqtt broker (MQTT 3.1.1, good enough for one box) on 127.0.0.1, the real
bridge on the simulated room playing a scenario at a pace a person can follow, and a live
view in the terminal of every event on the wire, each one verified against the
controller's key before it is shown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
import threading
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from protocol.envelope import decode_event
from protocol.errors import ProtocolError

log = logging.getLogger(__name__)

RED, YELLOW, GREEN, DIM, RESET = "\033[31;1m", "\033[33m", "\033[32m", "\033[2m", "\033[0m"


class EmbeddedBroker:
    """amqtt in a thread of its own, listening on loopback only."""

    def __init__(self, port: int) -> None:
        from amqtt.broker import Broker

        self.port = port
        self._loop = asyncio.new_event_loop()
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        self._broker = Broker(config, loop=self._loop)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="amqtt", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._broker.start())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise RuntimeError(f"embedded broker did not start: {self._error}")

    def stop(self) -> None:
        # amqtt logs its own cancelled tasks as errors when it shuts down.
        logging.getLogger("amqtt").setLevel(logging.CRITICAL)
        if self._error is None and self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


def pick_port(preferred: int) -> int:
    """``preferred`` if it is free on loopback, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port on 127.0.0.1")


def describe(type_: str, data: dict[str, Any]) -> tuple[str, str]:
    """A colour and a short human line for one event."""
    d = data
    if type_ == "alarm.raised":
        colour = RED if d["severity"] == "critical" else YELLOW
        return colour, f"ALARM {d['cause']} at {d['point']} ({d['severity']})"
    if type_ == "alarm.cleared":
        return GREEN, f"alarm {d['alarm_id']} cleared by {d['by']}"
    if type_ == "sensor.changed":
        return "", f"{d['point']} {d['state']}"
    if type_ in ("tag.arrived", "tag.departed"):
        verb = "back in" if type_ == "tag.arrived" else "left"
        return "", f"folder {d['epc']} {verb} {d['reader']}"
    if type_ == "tag.seen":
        return "", f"tag {d['epc']} seen at the {d['reader']}"
    if type_ == "badge.presented":
        return "", f"badge {d['uid']} at {d['reader']}: {d['auth']}"
    if type_ == "lock.changed":
        return "", f"{d['point']} {d['state']} ({d['reason']})"
    if type_ == "command.result":
        ok = "ok" if d["ok"] else f"refused: {d['error']}"
        return ("" if d["ok"] else YELLOW), f"command {d['command_id'][:8]} {ok}"
    if type_ == "controller.heartbeat":
        return DIM, f"heartbeat, outbox {d['outbox_depth']}, armed {d['armed']}"
    if type_ == "controller.started":
        return GREEN, f"controller started ({len(d['points'])} points, {len(d['readers'])} readers)"
    return "", json.dumps(d, ensure_ascii=False)


class LiveView:
    """Prints every event on the wire, verified, one line each."""

    def __init__(
        self, port: int, key: bytes, zone: Any, clock: Any, out: TextIO = sys.stdout
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.key, self.zone, self.clock, self.out = key, zone, clock, out
        self.heartbeats = 0
        self.color = out.isatty()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="ironroom-demo-view", protocol=mqtt.MQTTv311
        )
        self.client.on_connect = lambda c, *a: c.subscribe("ironroom/v1/+/+/#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        if msg.topic.endswith("/status"):
            now = self.clock.now().astimezone(self.zone)
            self._line(GREEN, now, "", f"controller {msg.payload.decode(errors='replace')}")
            return
        if "/evt/" not in msg.topic:
            return
        try:
            ev = decode_event(self.key, msg.topic, msg.payload)
        except ProtocolError as exc:
            self._line(RED, self.clock.now().astimezone(self.zone), "", f"REJECTED: {exc}")
            return
        if ev.type == "controller.heartbeat":
            self.heartbeats += 1  # every 5 s: counted, not shown
            return
        when = datetime.fromisoformat(ev.ts.replace("Z", "+00:00")).astimezone(self.zone)
        colour, text = describe(ev.type, ev.data)
        self._line(colour, when, f"#{ev.seq:<4}", text)

    def _line(self, colour: str, when: datetime, tag: str, text: str) -> None:
        stamp = when.strftime("%a %H:%M:%S")
        line = f"{stamp}  {tag:6} {text}"
        if self.color and colour:
            line = f"{colour}{line}{RESET}"
        print(line, file=self.out, flush=True)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run_demo(*, port: int, data_dir: Path, scenario: str, seconds: float | None) -> int:
    from simulators.pcscd import PcscdError, ensure_pcscd
    from simulators.room import load_sim_config
    from simulators.scenarios import SCENARIOS, play

    chosen = SCENARIOS[scenario]
    # The live view is the output; the parts' own logs only when something goes wrong.
    for name in ("amqtt", "transitions", "firmware_bridge", "simulators", "devices"):
        logging.getLogger(name).setLevel(logging.WARNING)
    port = pick_port(port)
    broker = EmbeddedBroker(port)
    broker.start()
    cfg = load_sim_config(None, data_dir).with_overrides(broker=f"mqtt://127.0.0.1:{port}")
    cfg = replace(cfg, mqtt=replace(cfg.mqtt, protocol="3.1.1"))
    badges = True
    try:
        ensure_pcscd()
    except PcscdError as exc:
        print(f"(badges off: {exc})", file=sys.stderr)
        badges = False
    print(
        f"IronRoom demo: room {cfg.room} on the embedded broker 127.0.0.1:{port}, "
        f"scenario {chosen.name!r}. Ctrl-C to stop.",
        file=sys.stderr,
    )

    def show(room: Any) -> Any:
        view = LiveView(port, room.bridge.key, cfg.calendar.zone, room.clock)
        return view.stop

    stop = threading.Event()
    try:
        play(cfg, chosen, stop=stop, seconds=seconds, pace_s=1.0, badges=badges, on_room=show)
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    return 0
