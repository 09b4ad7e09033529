"""``ironroom demo``: the whole of IronRoom live on one machine.

An embedded amqtt broker (MQTT 3.1.1, good enough for one box) on 127.0.0.1 unless
``--broker`` names one, the real bridge on the simulated room playing a scenario on an
accelerated clock, the tracker with its ledger (SQLite in the data folder) deciding the
unlocks, and the web console on ``--port``. A demo account for each role is printed at
start, one line each: ``account ROLE USERNAME PASSWORD``. ``--live`` also prints every
event on the wire in the terminal, each verified against the controller's key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

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
        self, host: str, port: int, key: bytes, zone: Any, clock: Any, out: TextIO = sys.stdout
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
        self.client.connect(host, port, keepalive=30)
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


#: The demo's people, one per role: (role, person id = username, name, clearance, dept).
#: The secretary holds the scenario's badge.
DEMO_PEOPLE = (
    ("secretary", "secretary", "王秘书", "机密", "办公室"),
    ("approver", "approver", "李主任", "绝密", "办公室"),
    ("dept-head", "dept-head", "张处长", "机密", "综合处"),
    ("secrecy-office", "secrecy-office", "赵保密", "机密", "保密办"),
    ("borrower", "borrower", "刘同志", "秘密", "综合处"),
)
#: The scenario's folders: number, title, tag, home cabinet.
DEMO_FOLDERS = (
    ("机要〔2026〕1号", "关于年度保密检查的通知", "E28011700000020A1B2C3D01", "c1"),
    ("机要〔2026〕2号", "机要室值班安排", "E28011700000020A1B2C3D02", "c1"),
    ("机要〔2026〕3号", "涉密载体清查报告", "E28011700000020A1B2C3D03", "c2"),
)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML for {v!r}")


def tracker_config_text(*, db_url: str, broker: str, web_port: int, data_dir: Path) -> str:
    """The demo tracker's config: the simulated room's own working hours (the ``[hours]``
    of simulators/room-sim.toml), the data folder's ledger, the console on loopback."""
    import tomllib

    from simulators.room import builtin_config_text

    hours = tomllib.loads(builtin_config_text())["hours"]
    tables: dict[str, dict[str, Any]] = {
        "tracker": {"heartbeat_s": 5},
        "database": {"url": db_url},
        "mqtt": {"broker": broker, "client_id": "ironroom-demo-tracker", "protocol": "3.1.1"},
        "hours": hours,
        "web": {
            "host": "127.0.0.1",
            "port": web_port,
            "secret_key_file": str(data_dir / "console.key"),
        },
    }
    lines = []
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
        lines.append("")
    return "\n".join(lines)


def prepare_ledger(store: Any, *, key: bytes, command_key: bytes, now: datetime) -> bool:
    """Register the simulated room, its cabinets, a person for each role, the
    secretary's badge and the scenario's folders, unless the ledger has them already
    (a data folder used again). Returns whether anything was registered."""
    from sqlalchemy import select

    from simulators.scenarios import SECRETARY
    from tracker.bootstrap import rules_of
    from tracker.config import TrackerConfig
    from tracker.domain.levels import Level
    from tracker.service.ledger import DocumentIn, Ledger
    from tracker.store import models as m

    with store.readers() as s:
        if s.scalars(select(m.Room).where(m.Room.site == "hq", m.Room.room == "room-101")).first():
            return False
    ledger = Ledger(
        store.sessions, rules_of(TrackerConfig()), actor="demo", reason="ironroom demo", now=now
    )
    ledger.room_add("hq", "room-101", "room-101-ctl", key, command_key)
    for cabinet in ("c1", "c2"):
        ledger.cabinet_add("hq", "room-101", cabinet, False)
    for role, pid, name, clearance, dept in DEMO_PEOPLE:
        ledger.person_add(pid, name, Level.parse(clearance), [role], dept)
    ledger.badge_add(SECRETARY, "secretary")
    for number, title, tag, cabinet in DEMO_FOLDERS:
        ledger.document_add(
            DocumentIn.build(
                number=number,
                title=title,
                classification="机密",
                tag=tag,
                cabinet=f"hq/room-101/{cabinet}",
                issuer="市委办公室",
            )
        )
    return True


class DemoControls:
    """The console's controls on the simulated room (tracker.web.sim.RoomControls): the
    door, the window and the cabinets opened and closed, the secretary's badge presented,
    the folders taken out and put back, the tamper loop cut and restored. Each acts on the
    simulated hardware only; what follows is the real bridge's and tracker's doing."""

    def __init__(self) -> None:
        self.room: Any = None  # set when the room is built

    def actions(self) -> list[Any]:
        from simulators.scenarios import SECRETARY
        from tracker.web.sim import SimAction

        room = self.room
        if room is None:
            return []
        points = room.controller.points
        out: list[SimAction] = []
        for point in ("door", "window:w1", "cabinet:c1", "cabinet:c2"):
            if point in points:
                out.append(SimAction("close" if points[point] else "open", point, point))
        for b in room.cfg.badges:
            out.append(SimAction("badge", f"{b.reader}|{SECRETARY}", f"{b.reader} (王秘书)"))
        present = {
            r: set(room.controller.present_tags(r)) for r in room.sims if r.startswith("cabinet:")
        }
        for number, _title, tag, home in DEMO_FOLDERS:
            where = [r for r, tags in present.items() if tag in tags]
            if where:
                out.append(SimAction("take", f"{where[0]}|{tag}", f"{number} ← {where[0]}"))
            elif f"cabinet:{home}" in room.sims:
                out.append(SimAction("put", f"cabinet:{home}|{tag}", f"{number} → cabinet:{home}"))
        if "tamper:t1" in points:
            out.append(
                SimAction("restore" if points["tamper:t1"] else "cut", "tamper:t1", "tamper:t1")
            )
        return out

    def do(self, verb: str, target: str) -> str:
        if not any(a.verb == verb and a.target == target for a in self.actions()):
            raise ValueError(f"{verb} {target}: not something the simulated room offers now")
        room = self.room
        if verb in ("open", "close", "cut", "restore"):
            room.gpio.set(target, verb in ("open", "cut"))
        elif verb == "badge":
            reader, uid = target.split("|", 1)
            threading.Thread(target=self._badge, args=(reader, uid), daemon=True).start()
        else:
            reader, epc = target.split("|", 1)
            if verb == "take":
                room.sims[reader].take(epc)
            else:
                room.sims[reader].put(epc, rssi=-50)
        return f"{verb} {target}"

    def _badge(self, reader: str, uid: str) -> None:
        """The card on the reader until the bridge has read it (at most 5 s), then off."""
        room = self.room
        before = room.bridge.badge_reads
        room.present_badge(reader, uid)
        deadline = time.monotonic() + 5
        while room.bridge.badge_reads == before and time.monotonic() < deadline:
            time.sleep(0.05)
        room.take_badge(reader)


def demo_accounts(store: Any, now: datetime) -> list[tuple[str, str, str]]:
    """A console account for each role with a new random password (a data folder used
    again gets new passwords): ``(role, username, password)``."""
    import secrets

    from tracker.web.accounts import set_demo_account

    out = []
    for role, pid, *_ in DEMO_PEOPLE:
        password = secrets.token_urlsafe(9)
        set_demo_account(store, username=pid, role=role, person=pid, password=password, now=now)
        out.append((role, pid, password))
    return out


def run_demo(
    *,
    port: int,
    data_dir: Path,
    scenario: str,
    seconds: float | None,
    broker: str | None = None,
    live: bool = False,
    badges: bool = True,
    out: TextIO = sys.stdout,
) -> int:
    from simulators.pcscd import PcscdError, ensure_pcscd
    from simulators.room import ensure_keys, load_sim_config
    from simulators.scenarios import SCENARIOS, play
    from tracker.bootstrap import Tracker
    from tracker.clock import SystemClock
    from tracker.config import parse_tracker_config

    chosen = SCENARIOS[scenario]
    # The console and the account lines are the output; the parts' own logs only when
    # something goes wrong.
    for name in ("amqtt", "transitions", "firmware_bridge", "simulators", "devices", "tracker"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("uvicorn").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    web_port = port
    embedded: EmbeddedBroker | None = None
    if broker is None:
        bport = pick_port(1883)
        embedded = EmbeddedBroker(bport)
        embedded.start()
        broker = f"mqtt://127.0.0.1:{bport}"
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (systemd, a script, a test) stops it as cleanly as Ctrl-C does
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    worker: threading.Thread | None = None
    tracker: Any = None
    try:
        cfg = load_sim_config(None, data_dir).with_overrides(broker=broker)
        cfg = replace(cfg, mqtt=replace(cfg.mqtt, protocol="3.1.1"))
        ensure_keys(cfg)
        assert cfg.key_file is not None
        key = bytes.fromhex(cfg.key_file.read_text(encoding="utf-8").strip())
        command_key = key
        if cfg.command_key_file is not None and cfg.command_key_file.exists():
            command_key = bytes.fromhex(cfg.command_key_file.read_text(encoding="utf-8").strip())
        db_url = f"sqlite:///{data_dir / 'ironroom.db'}"
        text = tracker_config_text(
            db_url=db_url, broker=broker, web_port=web_port, data_dir=data_dir
        )
        (data_dir / "tracker.toml").write_text(text, encoding="utf-8")
        tcfg = parse_tracker_config(text, source=data_dir / "tracker.toml")
        clock = SystemClock()
        tracker = Tracker(tcfg, clock=clock)
        controls = DemoControls()
        tracker.sim = controls
        prepare_ledger(tracker.store, key=key, command_key=command_key, now=clock.now())
        accounts = demo_accounts(tracker.store, clock.now())
        worker = threading.Thread(target=tracker.run, args=(stop,), name="tracker", daemon=True)
        worker.start()
        # The tracker subscribes before the room says anything.
        if not tracker.link.subscribed.wait(30):
            raise RuntimeError(f"the tracker could not subscribe at {broker}")
        if badges:
            try:
                ensure_pcscd()
            except PcscdError as exc:
                print(f"(badges off: {exc})", file=sys.stderr)
                badges = False
        print(f"IronRoom demo: console http://127.0.0.1:{web_port}/", file=out)
        for role, username, password in accounts:
            print(f"account {role} {username} {password}", file=out)
        print(
            f"room hq/room-101 on {broker}, scenario {chosen.name!r}, data in {data_dir}. "
            "Ctrl-C to stop.",
            file=out,
            flush=True,
        )

        def on_room(room: Any) -> Any:
            controls.room = room
            if not live:
                return None
            u = urlsplit(broker)
            view = LiveView(u.hostname or "127.0.0.1", u.port or 1883, room.bridge.key,
                            cfg.calendar.zone, room.clock, out)  # fmt: skip
            return view.stop

        try:
            play(
                cfg,
                chosen,
                stop=stop,
                seconds=seconds,
                pace_s=1.0,
                badges=badges,
                on_room=on_room,
                tracker=True,
            )
        except KeyboardInterrupt:
            pass
    finally:
        stop.set()
        if worker is not None:
            worker.join(15)
        elif tracker is not None:
            tracker.store.engine.dispose()
        if embedded is not None:
            embedded.stop()
    return 0
