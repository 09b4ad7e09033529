"""The whole simulated room: the real bridge on simulated hardware.

* GPIO: gpiozero's MockFactory, driven by :class:`simulators.gpio_room.GpioRoom`.
* RFID: every reader whose port is ``"sim"`` gets a pseudo-terminal reader simulator
  (M100 or RDM6300) and the bridge's real driver opens that pty with pyserial.
* Badges: the project's virtual card on pcscd's vpcd reader named in the config.
* The tracker's part (granting an unlock, arming) is played by :class:`Commander`,
  which publishes signed commands over MQTT like the tracker does.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from firmware_bridge.clock import Clock
from firmware_bridge.config import Config, broker_parts, parse_config
from firmware_bridge.daemon import Bridge
from protocol.envelope import make_command
from simulators.gpio_room import GpioRoom

log = logging.getLogger(__name__)

VPCD_PORTS = {"Virtual PCD 00 00": 35963, "Virtual PCD 00 01": 35964}


def builtin_config_text() -> str:
    return resources.files("simulators").joinpath("room-sim.toml").read_text(encoding="utf-8")


def write_key(path: Path, nbytes: int) -> bytes:
    """A new random key in hex, readable by its owner only."""
    key = secrets.token_bytes(nbytes)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    return key


def load_sim_config(path: str | Path | None, data_dir: str | Path) -> Config:
    """Load a room config for simulation: ``{data_dir}`` is substituted, and keys that
    the config names inside the data dir are created when missing."""
    data = Path(data_dir).resolve()
    text = Path(path).read_text(encoding="utf-8") if path else builtin_config_text()
    text = text.replace("{data_dir}", str(data).replace("\\", "/"))
    cfg = parse_config(text, source=Path(path).resolve() if path else None)
    cfg = replace(cfg, data_dir=data, pin_factory="mock")
    return cfg


def ensure_keys(cfg: Config) -> None:
    """Create the controller key and badge master keys the config points at, if missing."""
    if cfg.key_file is not None and not cfg.key_file.exists():
        write_key(cfg.key_file, 32)
    for b in cfg.badges:
        if b.master_key_file is not None and not b.master_key_file.exists():
            write_key(b.master_key_file, 16)


class Commander:
    """Plays the tracker's part in a scenario: signed commands over MQTT."""

    def __init__(self, cfg: Config, command_key: bytes, clock: Clock) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.cfg = cfg
        self.key = command_key
        self.clock = clock
        v5 = cfg.mqtt.protocol == "5"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{cfg.controller}-scenario-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        )
        host, port, tls, user, password = broker_parts(cfg.mqtt.broker)
        if user:
            self.client.username_pw_set(user, password)
        if tls:
            self.client.tls_set()
        self._host, self._port = host, port
        self.connected = threading.Event()
        self.client.on_connect = lambda *a: self.connected.set()
        self.client.on_disconnect = lambda *a: self.connected.clear()

    def start(self) -> None:
        self.client.connect_async(self._host, self._port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def send(self, type_: str, data: dict[str, Any], *, name: str | None = None) -> str:
        now = self.clock.now()
        cid = str(uuid.uuid4())
        topic, payload = make_command(
            self.key,
            site=self.cfg.site,
            room=self.cfg.room,
            id=cid,
            issued=now,
            expires=now + timedelta(seconds=60),
            type=type_,
            data=data,
            name=name,
        )
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(5)
        return cid


class SimulatedRoom:
    """Builds the simulators, the bridge on them, and tears everything down."""

    def __init__(
        self,
        cfg: Config,
        *,
        clock: Clock,
        seed: int = 1,
        badges: bool = True,
    ) -> None:
        from gpiozero.pins.mock import MockFactory

        from simulators.rfid import M100Sim, Rdm6300Sim

        self.clock = clock
        self.sims: dict[str, Any] = {}
        rfid = []
        for i, r in enumerate(cfg.rfid):
            if r.port == "sim":
                sim: Any = (
                    M100Sim(seed=seed + i) if r.driver == "m100" else Rdm6300Sim(seed=seed + i)
                )
                sim.start()
                self.sims[r.reader] = sim
                r = replace(r, port=sim.port)
            rfid.append(r)
        if not badges:
            cfg = replace(cfg, badges=())
        self.cfg = replace(cfg, rfid=tuple(rfid))
        ensure_keys(self.cfg)
        self.factory = MockFactory()
        self.gpio = GpioRoom(self.cfg, self.factory)
        self.bridge = Bridge(self.cfg, clock=clock, pin_factory=self.factory)
        self.gpio.settle()
        self.cards: dict[str, Any] = {}
        self._stop = threading.Event()
        self._loop: threading.Thread | None = None

    @property
    def controller(self) -> Any:
        return self.bridge.controller

    def start(self) -> None:
        """Start the bridge and its rule loop (in a thread of its own)."""
        self.bridge.start()
        self._loop = threading.Thread(
            target=self.bridge.run, args=(self._stop,), name="bridge-loop"
        )
        self._loop.start()

    def present_badge(self, reader: str, uid: str, *, behaviour: str = "ok") -> Any:
        """Put a badge on the badge reader that serves ``reader``; returns the card."""
        from devices.badge.crypto import load_master_key
        from simulators.vcard import VirtualCard

        for b in self.cfg.badges:
            if b.reader == reader:
                key = load_master_key(b.master_key_file) if b.master_key_file else None
                card = VirtualCard(
                    bytes.fromhex(uid),
                    master_key=key,
                    cipher=b.cipher,
                    port=VPCD_PORTS.get(b.pcsc, 35963),
                    behaviour=behaviour,
                )
                card.insert()
                self.cards[reader] = card
                return card
        raise KeyError(f"no badge reader for {reader!r} in this room")

    def take_badge(self, reader: str) -> None:
        card = self.cards.pop(reader, None)
        if card is not None:
            card.remove()

    def close(self) -> None:
        for reader in list(self.cards):
            self.take_badge(reader)
        self._stop.set()
        if self._loop is not None:
            self._loop.join(10)
        self.bridge.close()
        for sim in self.sims.values():
            sim.stop()


@contextmanager
def simulated_room(cfg: Config, *, clock: Clock, **kw: Any) -> Iterator[SimulatedRoom]:
    room = SimulatedRoom(cfg, clock=clock, **kw)
    try:
        yield room
    finally:
        room.close()


def local_start(cfg: Config, day: str, at: str) -> datetime:
    """``day`` (YYYY-MM-DD) and ``at`` (HH:MM[:SS]) in the room's time zone."""
    return datetime.fromisoformat(f"{day}T{at}").replace(tzinfo=cfg.calendar.zone)
