"""Simulated serial RFID readers on pseudo-terminals.

Each simulator opens a pty pair and plays the module on the master side; its ``port``
(e.g. ``/dev/pts/7``) is the slave, which the real driver opens with pyserial exactly like
``/dev/ttyUSB0``. Nothing in the driver knows it is talking to a simulator::

    with M100Sim(seed=1) as sim:
        sim.put("30751FEB705C5904E3D50D70", rssi=-55, read_rate=0.9)
        with M100Reader(sim.port, on_read=print, on_round=print):
            ...

Tags come and go with ``put``/``take``; ``inject_garbage(n)``, ``inject_bad_frame()`` and
``inject(raw_bytes)`` put line noise or unusual frames on the wire. Randomness (read misses,
garbage, RSSI jitter) comes from ``self.random``, seeded by ``seed`` for repeatable runs.
All methods are thread-safe. Linux/macOS only (needs ``os.openpty``).
"""

import os
import random
import select
import threading
import time
import tty
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from devices.lifecycle import Running
from devices.rfid import m100
from devices.rfid.rdm6300 import encode_rdm6300


@dataclass(slots=True)
class SimTag:
    """A tag in a simulated field: RSSI in dBm, chance of being read per poll or frame."""

    rssi: int = -55
    read_rate: float = 1.0
    pc: str | None = None


class _PtySim(Running):
    """A pty pair, a thread playing the module, and the shared knobs."""

    def __init__(self, *, seed: int | None) -> None:
        self.random = random.Random(seed)
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master = -1
        self._slave = -1
        self._port = ""
        self._tags: dict[str, SimTag] = {}
        self.bytes_dropped = 0

    @property
    def port(self) -> str:
        """Path of the pty slave for the driver to open; valid between start and stop."""
        if not self._port:
            raise RuntimeError("simulator not started")
        return self._port

    def start(self) -> None:
        """Open the pty pair and start playing the module."""
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        self._master, self._slave = os.openpty()
        # Raw slave: no echo of the driver's commands, no CR/LF mangling of binary frames.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self._port = os.ttyname(self._slave)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"sim-{type(self).__name__}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the module and close the pty; a driver still using it sees the port vanish."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(5.0)
        with self._write_lock:
            for fd in (self._master, self._slave):
                if fd >= 0:
                    os.close(fd)
            self._master = self._slave = -1
        self._port = ""

    def put(self, tag: str, rssi: int = -55, read_rate: float = 1.0, pc: str | None = None) -> None:
        """Place ``tag`` in the field (replacing its settings if already there)."""
        if not 0.0 <= read_rate <= 1.0:
            raise ValueError("read_rate is a probability")
        self._encode(tag, rssi, pc)  # a bad tag fails here, not in the simulator's thread
        with self._lock:
            self._tags[tag.upper()] = SimTag(rssi, read_rate, pc)

    def take(self, tag: str | None = None) -> None:
        """Remove ``tag`` from the field (every tag if None)."""
        with self._lock:
            if tag is None:
                self._tags.clear()
            else:
                self._tags.pop(tag.upper(), None)

    def tags(self) -> dict[str, SimTag]:
        """A copy of the tags now in the field."""
        with self._lock:
            return dict(self._tags)

    def inject(self, data: bytes) -> None:
        """Write raw bytes onto the line now (e.g. an error frame the module may send)."""
        self._write(data)

    def inject_garbage(self, n: int) -> None:
        """Write ``n`` random bytes onto the line now."""
        with self._lock:
            noise = self.random.randbytes(n)
        self._write(noise)

    def _write(self, data: bytes) -> None:
        """Send to the driver; bytes nobody reads are lost, like a UART with no listener."""
        with self._write_lock:
            if self._master < 0:
                return
            try:
                sent = os.write(self._master, data)
            except (BlockingIOError, OSError):
                sent = 0
            self.bytes_dropped += len(data) - sent

    def _encode(self, tag: str, rssi: int, pc: str | None) -> bytes:
        raise NotImplementedError

    def _run(self) -> None:
        raise NotImplementedError


class Rdm6300Sim(_PtySim):
    """An RDM6300 desk reader: sends the tag's frame every ``frame_interval_s`` while a
    card is in the field (``put(tag)``; ``take()`` lifts it). The module reads one card at a
    time; with several put, the most recent one is sent. ``rssi`` is ignored."""

    def __init__(self, *, frame_interval_s: float = 0.065, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        self.frame_interval_s = frame_interval_s
        self.frames_sent = 0

    def _encode(self, tag: str, rssi: int, pc: str | None) -> bytes:
        return encode_rdm6300(tag)

    def inject_bad_frame(self) -> None:
        """Send one frame whose checksum is off by one (for the card in the field, if any)."""
        with self._lock:
            tag = next(reversed(self._tags), "62E3086CED")
        good = encode_rdm6300(tag)
        checksum = (int(good[11:13], 16) + 1) & 0xFF
        self._write(encode_rdm6300(tag, checksum=checksum))

    def _run(self) -> None:
        while not self._stop.wait(self.frame_interval_s):
            with self._lock:
                if not self._tags:
                    continue
                tag, sim = next(reversed(self._tags.items()))
                if self.random.random() >= sim.read_rate:
                    continue
            self._write(encode_rdm6300(tag))
            self.frames_sent += 1


class M100Sim(_PtySim):
    """A MagicRF M100/QM100 module answering the driver's commands, framed ``BB..7E`` or
    ``AA..DD``.

    * single poll: one notification per tag read (each tag is read with its ``read_rate``,
      repeated 1..``max_duplicates`` times, RSSI jittered by ±``rssi_jitter_db``), or error
      0x15 when no tag was read;
    * multi poll (count): such a round every ``inventory_interval_s`` until ``count`` rounds
      are done or a stop command comes; an empty round sends nothing;
    * stop multi poll: ``BB 01 28 00 01 00 2A 7E``.

    Other commands are counted in ``commands`` and not answered.
    """

    def __init__(
        self,
        *,
        framing: m100.Framing = "BB",
        seed: int | None = None,
        inventory_interval_s: float = 0.01,
        max_duplicates: int = 1,
        rssi_jitter_db: int = 0,
    ) -> None:
        super().__init__(seed=seed)
        self.framing: m100.Framing = framing
        self.inventory_interval_s = inventory_interval_s
        self.max_duplicates = max_duplicates
        self.rssi_jitter_db = rssi_jitter_db
        self.commands: Counter[int] = Counter()
        self.notifications_sent = 0
        self._multi_left = 0
        self._parser = m100.M100Parser()

    @property
    def multi_polling(self) -> bool:
        """True while a multi-poll is running."""
        with self._lock:
            return self._multi_left > 0

    def _encode(self, tag: str, rssi: int, pc: str | None) -> bytes:
        return m100.encode_m100_notification(tag, rssi, pc, framing=self.framing)

    def inject_bad_frame(self, kind: Literal["checksum", "crc"] = "checksum") -> None:
        """Send one tag notification with a wrong frame checksum or a wrong tag CRC."""
        with self._lock:
            epc = next(iter(self._tags), "30751FEB705C5904E3D50D70")
        good = m100.encode_m100_notification(epc, -60, framing=self.framing)
        if kind == "checksum":
            frame = m100.encode_m100_notification(
                epc, -60, framing=self.framing, checksum=(good[-2] + 1) & 0xFF
            )
        else:
            crc = ((good[-4] << 8) | good[-3]) ^ 0x0001
            frame = m100.encode_m100_notification(epc, -60, framing=self.framing, crc=crc)
        self._write(frame)

    def _inventory(self, cmd: int) -> bytes:
        """One inventory round: notifications for the tags read, b'' if none."""
        frames = []
        with self._lock:
            rng = self.random
            for epc, sim in self._tags.items():
                if rng.random() >= sim.read_rate:
                    continue
                for _ in range(rng.randint(1, max(1, self.max_duplicates))):
                    jitter = rng.randint(-self.rssi_jitter_db, self.rssi_jitter_db)
                    rssi = max(-128, min(127, sim.rssi + jitter))
                    frames.append(
                        m100.encode_m100_notification(
                            epc, rssi, sim.pc, framing=self.framing, cmd=cmd
                        )
                    )
            self.notifications_sent += len(frames)
        return b"".join(frames)

    def _handle(self, command: m100.Command) -> None:
        with self._lock:
            self.commands[command.cmd] += 1
        if command.cmd == m100.CMD_SINGLE_POLL:
            reply = self._inventory(m100.CMD_SINGLE_POLL)
            self._write(reply or m100.encode_m100_error(m100.ERR_NO_TAG, framing=self.framing))
        elif command.cmd == m100.CMD_MULTI_POLL and len(command.params) == 3:
            with self._lock:
                self._multi_left = (command.params[1] << 8) | command.params[2]
        elif command.cmd == m100.CMD_STOP_MULTI_POLL:
            with self._lock:
                self._multi_left = 0
            self._write(
                m100.encode_m100(
                    m100.TYPE_RESPONSE, m100.CMD_STOP_MULTI_POLL, b"\x00", framing=self.framing
                )
            )

    def _run(self) -> None:
        next_inventory = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                multi = self._multi_left > 0
            now = time.monotonic()
            wait = max(0.0, next_inventory - now) if multi else self.inventory_interval_s
            try:
                ready, _, _ = select.select([self._master], [], [], wait)
                data = os.read(self._master, 4096) if ready else b""
            except BlockingIOError:
                data = b""
            except OSError:  # no slave side open right now (EIO): keep waiting
                data = b""
                self._stop.wait(self.inventory_interval_s)
            for frame in self._parser.feed(data) if data else ():
                if isinstance(frame, m100.Command):
                    self._handle(frame)
            now = time.monotonic()
            with self._lock:
                multi = self._multi_left > 0 and now >= next_inventory
                if multi:
                    self._multi_left -= 1
            if multi:
                next_inventory = now + self.inventory_interval_s
                reply = self._inventory(m100.CMD_MULTI_POLL)
                if reply:
                    self._write(reply)
