"""Wires the bridge together (the one place that does) and runs it.

``Bridge`` owns the hardware drivers built from the config, the controller, the outbox
and the MQTT link. It starts its local rules first and the link second, so alarms work
from the first second even when the broker is unreachable.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devices.badge.errors import BadgeError
from devices.gpio import GpioConfigError, Input, Lock, Output, make_pin_factory
from devices.rfid.errors import RfidError
from firmware_bridge.clock import Clock, SystemClock
from firmware_bridge.config import Config, ConfigError
from firmware_bridge.controller import UNREADABLE, Controller
from firmware_bridge.errors import DeviceError
from firmware_bridge.link import Link
from firmware_bridge.outbox import Outbox
from protocol.envelope import decode_ack, decode_command, parse_json
from protocol.errors import ProtocolError
from protocol.schema import is_uuid
from protocol.signing import parse_key, verify

log = logging.getLogger(__name__)

TICK_S = 0.01


def read_key(path: Path | None, what: str) -> bytes:
    if path is None:
        raise ConfigError(f"no {what} given: set controller.key_file or pass --key-file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        key = parse_key(text)
    except ValueError as exc:
        raise ConfigError(f"{what} {path}: {exc}") from None
    mode = path.stat().st_mode
    if mode & 0o077:
        log.warning("%s %s is readable by others (mode %o): chmod 600 it", what, path, mode & 0o777)
    return key


class Bridge:
    def __init__(
        self,
        cfg: Config,
        *,
        clock: Clock | None = None,
        pin_factory: Any = None,
        key: bytes | None = None,
        command_key: bytes | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self.key = key if key is not None else read_key(cfg.key_file, "controller key file")
        if command_key is not None:
            self.command_key = command_key
        elif cfg.command_key_file is not None:
            self.command_key = read_key(cfg.command_key_file, "command key file")
        else:
            self.command_key = self.key
        try:
            self.pin_factory = (
                pin_factory if pin_factory is not None else make_pin_factory(cfg.pin_factory)
            )
        except GpioConfigError as exc:
            raise ConfigError(str(exc)) from exc
        self.outbox = Outbox(cfg.data_dir / "outbox.sqlite3")  # makes the folder
        #: boot -> highest seq made, for the boots before this one (an ack above is wrong)
        self.made_before = self.outbox.highest_seqs()
        self.boot = self.outbox.next_boot()
        #: rows made by earlier boots (possibly already with the tracker) end here
        self.earlier_rows = self.outbox.rowid_range()[1]
        self._stop = threading.Event()
        self._closers: list[Callable[[], None]] = []
        self.inputs: dict[str, Input] = {}
        self.link: Link | None = None
        #: counters for simulators and health checks
        self.badge_reads = 0
        self.ticks = 0
        self.acks_ignored = 0
        self._acks_logged: set[tuple[int, int]] = set()
        self.siren: Output | None = None
        self.led: Output | None = None
        self.locks: dict[str, Lock] = {}
        try:
            self._make_devices()
        except GpioConfigError as exc:
            self._close_devices()
            self.outbox.close()
            raise ConfigError(str(exc)) from exc

        self.controller = Controller(
            cfg,
            key=self.key,
            outbox=self.outbox,
            clock=self.clock,
            boot=self.boot,
            siren=self.siren,
            led=self.led,
            locks=self.locks,  # type: ignore[arg-type]
            presence=self._presence_trackers(),
            online=lambda: self.link is not None and self.link.connected,
        )

    def _make_devices(self) -> None:
        cfg = self.cfg
        for o in cfg.outputs:
            out = Output(o.name, o.pin, pin_factory=self.pin_factory, active_high=o.active_high)
            self._closers.append(out.close)
            if o.name == "siren":
                self.siren = out
            else:
                self.led = out
        for lk in cfg.locks:
            lock = Lock(
                lk.point,
                lk.pin,
                pin_factory=self.pin_factory,
                active_high=lk.active_high,
                fail=lk.fail,
            )
            self._closers.append(lock.close)
            self.locks[lk.cabinet] = lock

        for i in cfg.inputs:
            inp = Input(
                i.point,
                i.pin,
                pin_factory=self.pin_factory,
                active=i.active,
                pull=i.pull,
                debounce_s=i.debounce_s,
                clock=self.clock.monotonic,
            )
            self.inputs[i.point] = inp
            self._closers.append(inp.close)

    def _close_devices(self) -> None:
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:  # closing is best effort; report and go on
                log.exception("while closing")
        self._closers.clear()

    def _presence_trackers(self) -> dict[str, Any]:
        from devices.rfid.presence import PresenceTracker

        p = self.cfg.presence
        trackers: dict[str, Any] = {}
        shared = PresenceTracker(
            missing_rounds=p.missing_rounds,
            window_rounds=p.window_rounds,
            hysteresis_db=p.hysteresis_db,
        )
        for r in self.cfg.rfid:
            if r.reader.startswith("cabinet:"):
                trackers[r.reader] = shared
            elif r.driver == "m100":
                trackers[r.reader] = PresenceTracker(missing_rounds=p.missing_rounds)
            else:
                trackers[r.reader] = PresenceTracker(timeout_s=p.timeout_s)
        return trackers

    # -- running ----------------------------------------------------------------------

    def start(self) -> None:
        """Read the inputs' initial states, start the rules, the readers and the link."""
        ctl = self.controller
        ctl.start({p: inp.resync() for p, inp in self.inputs.items()})
        ctl.start_writer()
        for inp in self.inputs.values():
            inp.on_change = lambda inp, active, t: ctl.on_input(inp.name, active, t)
        try:
            self._start_readers()
            self._start_badges()
        except (RfidError, BadgeError) as exc:
            raise DeviceError(str(exc)) from exc
        self.link = Link(
            self.cfg,
            self.outbox,
            on_command=self._on_command,
            on_ack=self._on_ack,
            on_connection=lambda up: ctl.link_changed(),
            seen_before=self.earlier_rows,
        )
        self.link.state_provider = ctl.state_message
        ctl.on_events = self.link.notify
        ctl.on_state = self.link.publish_state
        self.link.start()
        log.info(
            "bridge %s started: boot %d, %d points, broker %s",
            self.cfg.controller,
            self.boot,
            len(self.inputs),
            self.cfg.mqtt.broker,
        )

    def _start_readers(self) -> None:
        from devices.rfid.readers import open_reader

        ctl = self.controller
        for r in self.cfg.rfid:
            kw: dict[str, Any] = {
                "on_read": lambda epc, rssi, t, name=r.reader: ctl.on_tag_read(name, epc, rssi, t),
                "clock": self.clock.monotonic,
                "on_error": lambda exc, name=r.reader: log.warning("reader %s: %s", name, exc),
            }
            if r.driver == "m100":
                kw["on_round"] = lambda t, name=r.reader: ctl.on_round(name, t)
                kw["round_s"] = self.cfg.presence.round_s
                kw["mode"] = r.mode
            reader = open_reader(r.driver, r.port, **kw)
            reader.start()
            self._closers.append(reader.stop)

    def _start_badges(self) -> None:
        if not self.cfg.badges:
            return
        from devices.badge.crypto import load_master_key
        from devices.badge.pcsc import BadgeWatcher

        for b in self.cfg.badges:
            key = load_master_key(b.master_key_file) if b.master_key_file else None
            watcher = BadgeWatcher(
                readers=[b.pcsc],
                profile=b.profile,
                master_key=key,
                cipher=b.cipher,
                allow_uid_only=self.cfg.allow_uid_only,
                on_badge=functools.partial(self._on_badge, b.reader),
            )
            watcher.start()
            self._closers.append(watcher.stop)

    def _on_badge(self, reader: str, presentation: Any) -> None:
        self.badge_reads += 1
        if not presentation.uid:
            # Nothing to identify: a card pulled away mid-read, or not a badge at all.
            log.warning("badge reader %s: unreadable card (%s)", reader, presentation.error)
            return
        self.controller.on_badge(reader, presentation.uid, presentation.auth)

    def _on_command(self, topic: str, payload: bytes) -> None:
        try:
            cmd = decode_command(self.command_key, topic, payload)
        except ProtocolError as exc:
            cid = _verified_id(self.command_key, topic, payload)
            self.controller.refuse(cid, f"rejected: {exc}")
            return
        self.controller.execute(cmd)

    def _on_ack(self, topic: str, payload: bytes) -> tuple[int, int] | None:
        """``(boot, seq)`` a verified ack covers, or None for one to ignore."""
        try:
            ack = decode_ack(self.command_key, topic, payload)
        except ProtocolError as exc:
            log.warning("ack rejected: %s", repr(str(exc))[1:-1])
            return None
        if ack.controller != self.cfg.controller:
            log.warning("ack for another controller %r ignored", ack.controller)
            return None
        # PROTOCOL.md: ignore an ack for a boot not started or a seq not made (a retained
        # ack left by a wiped or replaced controller must not prune new events).
        if ack.boot > self.boot:
            why = f"boot {ack.boot} is not started (this is boot {self.boot})"
        elif ack.boot == self.boot and ack.seq > self.controller.seq:
            why = f"seq {ack.seq} is not made (boot {ack.boot} is at seq {self.controller.seq})"
        elif ack.boot < self.boot and ack.seq > self.made_before.get(ack.boot, 0):
            made = self.made_before.get(ack.boot)
            why = f"boot {ack.boot} made {'no events' if made is None else f'seq {made} at most'}"
        else:
            return ack.boot, ack.seq
        self.acks_ignored += 1
        if (ack.boot, ack.seq) not in self._acks_logged:  # a retained one comes back often
            if len(self._acks_logged) > 1000:
                self._acks_logged.clear()
            self._acks_logged.add((ack.boot, ack.seq))
            log.warning("ack for boot %d seq %d ignored: %s", ack.boot, ack.seq, why)
        return None

    def run(self, stop: threading.Event | None = None, seconds: float | None = None) -> None:
        """Tick the rules until ``stop`` is set or ``seconds`` (real time) have passed."""
        stop = stop or self._stop
        deadline = None if seconds is None else time.monotonic() + seconds
        last_beat = self.clock.monotonic()
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            for inp in self.inputs.values():
                inp.poll()
            self.controller.tick()
            self.ticks += 1
            mono = self.clock.monotonic()
            if (
                self.link is not None
                and self.link.connected
                and mono - last_beat >= self.cfg.heartbeat_s
            ):
                last_beat = mono
                self.controller.heartbeat()
            stop.wait(TICK_S)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Stop the devices, write every event made, say ``offline``, disconnect."""
        self._close_devices()
        self.controller.stop_writer()
        if self.link is not None:
            self.link.stop()
        self.outbox.close()


def _verified_id(key: bytes, topic: str, payload: bytes) -> str:
    """The id of a refused command whose signature is right, else ``unreadable``: an id
    from an unverified message is never quoted in a signed answer."""
    try:
        env = parse_json(payload)
        verify(key, topic, env)
    except ProtocolError:
        return UNREADABLE
    cid = env.get("id")
    return cid if isinstance(cid, str) and is_uuid(cid) else UNREADABLE
