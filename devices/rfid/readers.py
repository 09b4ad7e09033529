"""Serial RFID reader drivers: open the port, run a background thread, call back per read.

The port is a pyserial URL (``/dev/ttyUSB0``, ``/dev/serial0``, a pty path from the
simulators, ``socket://host:port`` for a reader behind ser2net) or an already open
serial-like object with a read timeout. Prefer stable names such as
``/dev/serial/by-id/...``: if the port disappears (USB unplugged, ser2net restarted) the
driver reports it through ``on_error`` and keeps reopening the URL, backing off from
``retry_initial_s`` to ``retry_max_s``, until :meth:`stop`. A port object passed in cannot
be reopened: its failure ends the thread after ``on_error``.

Callbacks run in the reader's thread; ``t`` comes from the injected ``clock`` (monotonic
seconds by default). An exception raised by a callback is logged and the reader goes on.
"""

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Literal, Protocol

import serial

from devices.lifecycle import Running
from devices.rfid import m100, rdm6300
from devices.rfid.errors import ReaderConfigError, ReaderIOError, RfidError

log = logging.getLogger(__name__)

ReadCallback = Callable[[str, int | None, float], None]
RoundCallback = Callable[[float], None]
ErrorCallback = Callable[[Exception], None]
Clock = Callable[[], float]


class SerialPort(Protocol):
    """The part of ``serial.Serial`` the drivers use."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class _SerialReader(Running):
    """Port lifecycle, thread and reconnection shared by the drivers."""

    baudrate: int = 9600

    def __init__(
        self,
        port: str | SerialPort,
        *,
        on_read: ReadCallback,
        clock: Clock,
        on_error: ErrorCallback | None,
        read_timeout_s: float,
        retry_initial_s: float,
        retry_max_s: float,
    ) -> None:
        if isinstance(port, str):
            self._url: str | None = port
            self._given: SerialPort | None = None
        else:
            self._url = None
            self._given = port
        self._on_read = on_read
        self._clock = clock
        self._on_error = on_error
        self._read_timeout_s = read_timeout_s
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ser: SerialPort | None = None

    @property
    def port(self) -> str:
        """The URL this reader opens (or the repr of the port object it was given)."""
        return self._url if self._url is not None else repr(self._given)

    @property
    def running(self) -> bool:
        """True while the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, wait_for_port: bool = False) -> None:
        """Open the port and start the reading thread.

        Raises :class:`ReaderIOError` if the port cannot be opened, unless ``wait_for_port``
        is set: then the thread keeps trying in the background (a daemon started before the
        USB adapter enumerates).
        """
        if self._thread is not None:
            raise RuntimeError("reader already started")
        self._stop.clear()
        if not wait_for_port:
            self._ser = self._open()
        self._thread = threading.Thread(
            target=self._run, name=f"rfid-{type(self).__name__}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close the port (a port object passed in is left open)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        self._close()

    def _open(self) -> SerialPort:
        if self._given is not None:
            return self._given
        assert self._url is not None
        try:
            port: SerialPort = serial.serial_for_url(
                self._url, baudrate=self.baudrate, timeout=self._read_timeout_s
            )
        except ValueError as exc:
            raise ReaderConfigError(f"bad serial URL {self._url!r}: {exc}") from exc
        except OSError as exc:
            raise ReaderIOError(f"cannot open RFID reader port {self._url!r}: {exc}") from exc
        return port

    def _close(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None and ser is not self._given:
            try:
                ser.close()
            except OSError:
                log.debug("closing %s failed", self.port, exc_info=True)

    def _report(self, exc: Exception) -> None:
        log.warning("RFID reader %s: %s", self.port, exc)
        if self._on_error is not None:
            try:
                self._on_error(exc)
            except Exception:
                log.exception("on_error callback failed")

    def _emit(self, tag: str, rssi: int | None, t: float) -> None:
        try:
            self._on_read(tag, rssi, t)
        except Exception:
            log.exception("on_read callback failed for %s", tag)

    def _run(self) -> None:
        delay = self._retry_initial_s
        try:
            while not self._stop.is_set():
                if self._ser is None:
                    try:
                        self._ser = self._open()
                    except RfidError as exc:
                        self._report(exc)
                        self._stop.wait(delay)
                        delay = min(delay * 2, self._retry_max_s)
                        continue
                opened = time.monotonic()
                try:
                    self._session(self._ser)
                except OSError as exc:  # pyserial's SerialException is an OSError
                    self._report(ReaderIOError(f"lost RFID reader port {self.port!r}: {exc}"))
                    given = self._ser is self._given
                    self._close()
                    if given:
                        break
                    # A port that opens but fails at once must not be hammered in a loop.
                    if time.monotonic() - opened > self._retry_max_s:
                        delay = self._retry_initial_s
                    self._stop.wait(delay)
                    delay = min(delay * 2, self._retry_max_s)
        finally:
            self._close()

    def _read_chunk(self, ser: SerialPort) -> bytes:
        return ser.read(ser.in_waiting or 1)

    def _session(self, ser: SerialPort) -> None:
        """Talk to an open port until stopped; raise OSError if the port fails."""
        raise NotImplementedError


class Rdm6300Reader(_SerialReader):
    """RDM6300 / EM4100 125 kHz desk reader on a serial port (9600 8N1, receive only).

    Wire the module's TX to the adapter's RX and join the grounds; its RX stays unconnected.
    ``on_read(tag, None, t)`` is called for every valid frame, i.e. about every 65 ms while a
    card lies on the reader: feed it to a :class:`~devices.rfid.presence.PresenceTracker`
    with ``timeout_s`` around 0.4 s to get "present" once and "gone" after the card leaves.
    """

    baudrate = rdm6300.BAUDRATE

    def __init__(
        self,
        port: str | SerialPort,
        *,
        on_read: ReadCallback,
        clock: Clock = time.monotonic,
        on_error: ErrorCallback | None = None,
        read_timeout_s: float = 0.05,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 5.0,
    ) -> None:
        super().__init__(
            port,
            on_read=on_read,
            clock=clock,
            on_error=on_error,
            read_timeout_s=read_timeout_s,
            retry_initial_s=retry_initial_s,
            retry_max_s=retry_max_s,
        )
        self.parser = rdm6300.Rdm6300Parser()

    def _session(self, ser: SerialPort) -> None:
        self.parser.reset()
        while not self._stop.is_set():
            data = self._read_chunk(ser)
            if data:
                reads = self.parser.feed(data)
                if reads:
                    t = self._clock()
                    for read in reads:
                        self._emit(read.tag, None, t)


class M100Reader(_SerialReader):
    """MagicRF M100 / QM100 UHF reader (cabinets, portals) on a serial port, 115200 8N1.

    Cross TXD/RXD to the adapter and join the grounds. ``mode="single"`` sends a single-poll
    command every ``round_s`` and counts what comes back before the next poll as that round.
    ``mode="multi"`` starts a multi-poll of ``multi_count`` rounds, reissues it after
    ``reissue_s`` of silence (the module has finished it, or was power-cycled) and cuts the
    stream into rounds of ``round_s``. :meth:`stop` sends stop-multi-poll.

    ``on_read(epc, rssi_dbm, t)`` is called per tag notification (duplicates included) and
    ``on_round(t)`` at the end of every round: feed both to a
    :class:`~devices.rfid.presence.PresenceTracker`. Error 0x15 (no tag) is an empty round;
    other error codes are counted in ``error_counts`` and logged. ``framing="AA"`` sends the
    commands in ``AA..DD`` framing for units that use it (replies are accepted in both).
    """

    baudrate = m100.BAUDRATE

    def __init__(
        self,
        port: str | SerialPort,
        *,
        on_read: ReadCallback,
        on_round: RoundCallback | None = None,
        clock: Clock = time.monotonic,
        round_s: float = 0.1,
        mode: Literal["single", "multi"] = "single",
        multi_count: int = 10000,
        reissue_s: float = 1.0,
        framing: m100.Framing = "BB",
        on_error: ErrorCallback | None = None,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 5.0,
    ) -> None:
        if mode not in ("single", "multi"):
            raise ReaderConfigError(f"mode must be 'single' or 'multi', got {mode!r}")
        if round_s <= 0 or reissue_s <= 0:
            raise ReaderConfigError("round_s and reissue_s must be positive")
        super().__init__(
            port,
            on_read=on_read,
            clock=clock,
            on_error=on_error,
            read_timeout_s=min(0.02, round_s / 4),
            retry_initial_s=retry_initial_s,
            retry_max_s=retry_max_s,
        )
        self.mode = mode
        self.round_s = round_s
        self.reissue_s = reissue_s
        self._on_round = on_round
        self._single = m100.single_poll(framing=framing)
        self._multi = m100.multi_poll(multi_count, framing=framing)  # validates the count
        self._stop_multi = m100.stop_multi_poll(framing=framing)
        self.parser = m100.M100Parser()
        self.error_counts: Counter[int] = Counter()
        self.rounds = 0

    def _session(self, ser: SerialPort) -> None:
        self.parser.reset()
        if self.mode == "single":
            while not self._stop.is_set():
                ser.write(self._single)
                self._read_until(ser, time.monotonic() + self.round_s)
                if not self._stop.is_set():  # a round cut short by stop() proves nothing
                    self._end_round()
            return
        ser.write(self._multi)
        try:
            last_data = next_round = time.monotonic()
            next_round += self.round_s
            while not self._stop.is_set():
                if self._read_until(ser, next_round):
                    last_data = time.monotonic()
                now = time.monotonic()
                if self._stop.is_set():
                    break
                if now >= next_round:
                    self._end_round()
                    next_round = max(next_round + self.round_s, now)
                if now - last_data >= self.reissue_s:
                    ser.write(self._multi)
                    last_data = now
        finally:
            if self._stop.is_set():
                try:
                    ser.write(self._stop_multi)
                    ser.flush()
                except OSError:
                    log.debug("could not send stop-multi-poll to %s", self.port, exc_info=True)

    def _read_until(self, ser: SerialPort, deadline: float) -> bool:
        """Read and dispatch frames until ``deadline`` (or stop); True if anything came."""
        got = False
        while not self._stop.is_set() and time.monotonic() < deadline:
            data = self._read_chunk(ser)
            if not data:
                continue
            got = True
            frames = self.parser.feed(data)
            if frames:
                t = self._clock()
                for frame in frames:
                    self._dispatch(frame, t)
        return got

    def _dispatch(self, frame: m100.M100Frame, t: float) -> None:
        if isinstance(frame, m100.TagNotification):
            self._emit(frame.epc, frame.rssi, t)
        elif isinstance(frame, m100.ErrorFrame) and frame.code != m100.ERR_NO_TAG:
            self.error_counts[frame.code] += 1
            # The first of each code is worth a warning; a module repeating it is not news.
            level = logging.WARNING if self.error_counts[frame.code] == 1 else logging.DEBUG
            log.log(level, "M100 %s: error 0x%02X", self.port, frame.code)

    def _end_round(self) -> None:
        self.rounds += 1
        if self._on_round is not None:
            try:
                self._on_round(self._clock())
            except Exception:
                log.exception("on_round callback failed")


Reader = Rdm6300Reader | M100Reader
DRIVERS: dict[str, type[Rdm6300Reader] | type[M100Reader]] = {
    "rdm6300": Rdm6300Reader,
    "m100": M100Reader,
}


def open_reader(driver: str, port: str | SerialPort, **kw: object) -> Reader:
    """Build (not start) the driver named ``driver`` ("rdm6300" or "m100") on ``port``."""
    cls = DRIVERS.get(driver.lower())
    if cls is None:
        raise ReaderConfigError(
            f"unknown RFID driver {driver!r}; choose one of {', '.join(DRIVERS)}"
        )
    return cls(port, **kw)  # type: ignore[arg-type]
