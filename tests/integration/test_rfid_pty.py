"""The real RFID drivers, over pyserial, talking to the pty simulators."""

import io
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO, cast

import pytest
import serial

from devices.rfid import cli
from devices.rfid.errors import ReaderConfigError
from devices.rfid.m100 import encode_m100_error
from devices.rfid.presence import PresenceChange, PresenceTracker
from devices.rfid.readers import M100Reader, Rdm6300Reader, open_reader
from simulators.rfid import M100Sim, Rdm6300Sim

pytestmark = pytest.mark.timeout(30)

EPC_1 = "30751FEB705C5904E3D50D70"
EPC_2 = "E2801160600002AB"
CARD = "62E3086CED"
WAIT_S = 5.0


def eventually(predicate: Callable[[], bool], timeout: float = WAIT_S, what: str = "") -> None:
    """Wait until ``predicate()`` holds (for state the simulators change in their threads)."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what or predicate}"
        tick.wait(0.01)


class Events:
    """Records reader callbacks in order; tests wait on it with a condition."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.log: list[tuple[Any, ...]] = []  # ("read", tag, rssi, t) | ("round", t)
        self.errors: list[Exception] = []

    def on_read(self, tag: str, rssi: int | None, t: float) -> None:
        with self.cond:
            self.log.append(("read", tag, rssi, t))
            self.cond.notify_all()

    def on_round(self, t: float) -> None:
        with self.cond:
            self.log.append(("round", t))
            self.cond.notify_all()

    def on_error(self, exc: Exception) -> None:
        with self.cond:
            self.errors.append(exc)
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, timeout), f"timed out waiting for {what}"

    def reads(self, since: int = 0) -> list[tuple[Any, ...]]:
        with self.cond:
            return [e for e in self.log[since:] if e[0] == "read"]

    def tags(self, since: int = 0) -> set[str]:
        return {e[1] for e in self.reads(since)}

    def rounds(self) -> int:
        return self.rounds_before(None)

    def rounds_before(self, index: int | None) -> int:
        with self.cond:
            return sum(1 for e in self.log[:index] if e[0] == "round")

    def mark(self) -> int:
        with self.cond:
            return len(self.log)

    def next_full_round(self) -> int:
        """Wait for two round ends; returns the log index where the round between them
        starts, so everything logged from there on was polled after this call."""
        with self.cond:
            start = len(self.log)

            def ends() -> list[int]:
                return [i for i in range(start, len(self.log)) if self.log[i][0] == "round"]

            assert self.cond.wait_for(lambda: len(ends()) >= 2, WAIT_S), "rounds stopped"
            return ends()[0] + 1


# RDM6300


def test_rdm6300_reads_through_noise_with_the_injected_clock() -> None:
    events = Events()
    with Rdm6300Sim(seed=3, frame_interval_s=0.02) as sim:
        sim.put(CARD)
        with Rdm6300Reader(sim.port, on_read=events.on_read, clock=lambda: 42.0) as reader:
            events.wait(lambda: len(events.reads()) >= 3, "first frames")
            for _ in range(3):
                sim.inject_garbage(40)
                sim.inject_bad_frame()
            mark = events.mark()
            events.wait(lambda: len(events.reads(mark)) >= 5, "frames after the noise")
            eventually(lambda: reader.parser.frames_bad >= 3, what="bad frames counted")
    assert events.tags() == {CARD}
    assert {(rssi, t) for _, _, rssi, t in events.reads()} == {(None, 42.0)}
    assert reader.parser.bytes_skipped >= 3 * 40
    assert not reader.running


def test_rdm6300_present_then_gone() -> None:
    tracker = PresenceTracker(timeout_s=0.3)
    lock = threading.Lock()
    changes: list[PresenceChange] = []

    def on_read(tag: str, rssi: int | None, t: float) -> None:
        with lock:
            changes.extend(tracker.observe("desk", tag, rssi, t))

    def ticked() -> list[tuple[str, str]]:
        with lock:
            changes.extend(tracker.tick(time.monotonic()))
            return [(c.kind, c.epc) for c in changes]

    with Rdm6300Sim(seed=4) as sim, Rdm6300Reader(sim.port, on_read=on_read):
        sim.put(CARD)
        eventually(lambda: ticked() == [("arrived", CARD)], what="arrival")
        frames = sim.frames_sent
        eventually(lambda: sim.frames_sent >= frames + 8, what="card staying on the reader")
        assert ticked() == [("arrived", CARD)]
        sim.take()
        eventually(lambda: ticked() == [("arrived", CARD), ("departed", CARD)], what="departure")


# M100


@pytest.mark.parametrize("framing", ["BB", "AA"])
@pytest.mark.parametrize("mode", ["single", "multi"])
def test_m100_reader(mode: str, framing: str) -> None:
    events = Events()
    with M100Sim(framing=framing, seed=5, max_duplicates=3) as sim:  # type: ignore[arg-type]
        sim.put(EPC_1, rssi=-55)
        sim.put(EPC_2, rssi=-63, read_rate=0.7)
        reader = M100Reader(
            sim.port,
            on_read=events.on_read,
            on_round=events.on_round,
            round_s=0.05,
            mode=mode,  # type: ignore[arg-type]
        )
        with reader:
            events.wait(lambda: events.tags() == {EPC_1, EPC_2}, "both tags")
            sim.inject_garbage(60)
            sim.inject_bad_frame("checksum")
            sim.inject_bad_frame("crc")
            sim.inject(encode_m100_error(0x17, framing=framing))  # type: ignore[arg-type]
            eventually(lambda: reader.parser.frames_bad >= 2, what="bad frames counted")
            eventually(lambda: reader.error_counts[0x17] == 1, what="error 0x17 counted")

            sim.take(EPC_1)
            after = events.next_full_round()
            events.wait(lambda: EPC_2 in events.tags(after), "the remaining tag")
            assert EPC_1 not in events.tags(after)

            sim.take()  # empty field: rounds go on, "no tag" is not an error
            after = events.next_full_round()
            events.wait(lambda: events.rounds() >= 5 + events.rounds_before(after), "rounds")
            assert events.tags(after) == set()
        assert not reader.running

    rssi = {tag: r for _, tag, r, _ in events.reads()}
    assert rssi == {EPC_1: -55, EPC_2: -63}
    assert dict(reader.error_counts) == {0x17: 1}
    if mode == "single":
        assert sim.commands[0x22] >= 6 and sim.commands[0x27] == 0
    else:
        assert sim.commands[0x27] >= 1 and sim.commands[0x28] == 1 and sim.commands[0x22] == 0


def test_m100_multi_poll_is_reissued_when_it_ends() -> None:
    events = Events()
    with M100Sim(seed=6, inventory_interval_s=0.01) as sim:
        sim.put(EPC_1)
        with M100Reader(
            sim.port,
            on_read=events.on_read,
            on_round=events.on_round,
            mode="multi",
            multi_count=5,
            round_s=0.05,
            reissue_s=0.15,
        ):
            eventually(lambda: sim.commands[0x27] >= 3, what="multi-poll reissued")
            mark = events.mark()
            events.wait(lambda: len(events.reads(mark)) >= 3, "reads after a reissue")
        eventually(lambda: sim.commands[0x28] == 1 and not sim.multi_polling, what="stop")


def test_m100_cross_read_two_cabinets() -> None:
    tracker = PresenceTracker(missing_rounds=3, window_rounds=4, hysteresis_db=6.0)
    lock = threading.Lock()
    changes: list[PresenceChange] = []
    rounds = {"left": 0, "right": 0}

    def reader_for(name: str, sim: M100Sim) -> M100Reader:
        def on_read(epc: str, rssi: int | None, t: float) -> None:
            with lock:
                changes.extend(tracker.observe(name, epc, rssi, t))

        def on_round(t: float) -> None:
            with lock:
                rounds[name] += 1
                changes.extend(tracker.end_round(name, t))

        return M100Reader(sim.port, on_read=on_read, on_round=on_round, round_s=0.04)

    def state() -> tuple[dict[str, str], int]:
        with lock:
            return tracker.present(), min(rounds.values())

    with M100Sim(seed=7, rssi_jitter_db=2) as left, M100Sim(seed=8, rssi_jitter_db=2) as right:
        left.put(EPC_1, rssi=-45)
        right.put(EPC_1, rssi=-68)  # heard through the cabinet wall
        right.put(EPC_2, rssi=-50)
        with reader_for("left", left), reader_for("right", right):
            eventually(lambda: state()[0] == {EPC_1: "left", EPC_2: "right"}, what="placement")
            start = state()[1]
            eventually(lambda: state()[1] >= start + 10, what="ten more rounds")
            assert state()[0] == {EPC_1: "left", EPC_2: "right"}
            with lock:
                settled = len(changes)

            # The folder is moved to the right cabinet; the left one still hears it faintly.
            right.put(EPC_1, rssi=-44)
            left.put(EPC_1, rssi=-70)
            eventually(lambda: state()[0] == {EPC_1: "right", EPC_2: "right"}, what="the move")
            start = state()[1]
            eventually(lambda: state()[1] >= start + 10, what="ten more rounds")
            assert state()[0] == {EPC_1: "right", EPC_2: "right"}

    moves = [(c.kind, c.reader, c.epc) for c in changes[settled:]]
    assert moves == [("departed", "left", EPC_1), ("arrived", "right", EPC_1)]


def test_reader_reopens_a_port_that_came_back(tmp_path: Path) -> None:
    """A by-id style symlink repointed to a new pty stands for a USB adapter replugged."""
    link = tmp_path / "rfid-desk"
    events = Events()

    def point_to(target: str) -> None:
        tmp = tmp_path / "link.tmp"
        os.symlink(target, tmp)
        os.replace(tmp, link)

    first = Rdm6300Sim(seed=9, frame_interval_s=0.02)
    first.start()
    first.put(CARD)
    point_to(first.port)
    reader = Rdm6300Reader(
        str(link), on_read=events.on_read, on_error=events.on_error, retry_initial_s=0.02
    )
    with reader:
        events.wait(lambda: events.tags() == {CARD}, "a read from the first port")
        first.stop()
        events.wait(lambda: len(events.errors) >= 1, "the port failure reported")
        assert reader.running
        with Rdm6300Sim(seed=10, frame_interval_s=0.02) as second:
            second.put("0102030405")
            point_to(second.port)
            events.wait(lambda: "0102030405" in events.tags(), "a read from the new port")
    assert all(isinstance(exc, OSError) for exc in events.errors)


def test_start_fails_fast_on_a_missing_port(tmp_path: Path) -> None:
    reader = Rdm6300Reader(str(tmp_path / "ttyUSB9"), on_read=lambda *a: None)
    with pytest.raises(OSError, match="ttyUSB9"):
        reader.start()
    assert not reader.running


def test_reader_on_a_port_object_leaves_it_open() -> None:
    events = Events()
    with Rdm6300Sim(seed=13, frame_interval_s=0.02) as sim:
        sim.put(CARD)
        port = serial.serial_for_url(sim.port, baudrate=9600, timeout=0.05)
        try:
            reader = Rdm6300Reader(port, on_read=events.on_read, on_error=events.on_error)
            with reader:
                events.wait(lambda: events.tags() == {CARD}, "a read")
            assert port.is_open
            # A port object cannot be reopened: its failure ends the reader.
            reader.start()
            sim.stop()
            events.wait(lambda: len(events.errors) == 1, "the failure reported")
            eventually(lambda: not reader.running, what="the reader thread ending")
            reader.stop()
        finally:
            port.close()


def test_open_reader_factory() -> None:
    reader = open_reader("M100", "/dev/null", on_read=lambda *a: None, mode="multi")
    assert isinstance(reader, M100Reader) and reader.mode == "multi"
    assert isinstance(open_reader("rdm6300", "/dev/null", on_read=print), Rdm6300Reader)
    with pytest.raises(ReaderConfigError, match="em4100"):
        open_reader("em4100", "/dev/null", on_read=print)
    with pytest.raises(ValueError):
        M100Reader("/dev/null", on_read=print, mode="burst")  # type: ignore[arg-type]


# Installer CLI


class Lines(io.TextIOBase):
    """A text sink the CLI writes JSON lines to; tests wait for lines with a condition."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.text = ""

    def write(self, s: str) -> int:
        with self.cond:
            self.text += s
            self.cond.notify_all()
        return len(s)

    def events(self) -> list[dict[str, Any]]:
        with self.cond:
            return [json.loads(line) for line in self.text.splitlines()]

    def wait(self, predicate: Callable[[list[dict[str, Any]]], bool], what: str) -> None:
        with self.cond:
            ok = self.cond.wait_for(lambda: predicate(self.events()), WAIT_S)
        assert ok, f"timed out waiting for {what}; got {self.text!r}"


class Clock:
    """Monotonic time that a test can jump forward to end a timed run at once."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@pytest.fixture
def cli_run() -> Iterator[Callable[[str, str], tuple[Lines, Callable[[], int]]]]:
    threads: list[threading.Thread] = []
    clocks: list[Clock] = []

    def start(driver: str, port: str) -> tuple[Lines, Callable[[], int]]:
        out, clock, result = Lines(), Clock(), []
        thread = threading.Thread(
            target=lambda: result.append(
                cli.run(driver, port, 60.0, cast(TextIO, out), clock=clock)
            )
        )
        thread.start()
        threads.append(thread)
        clocks.append(clock)

        def finish() -> int:
            clock.offset += 3600  # past --seconds: run() returns after its next tick
            thread.join(WAIT_S)
            assert not thread.is_alive()
            return result[0]

        return out, finish

    yield start
    for clock in clocks:
        clock.offset += 3600
    for thread in threads:
        thread.join(WAIT_S)


def test_cli_rdm6300_present_once_then_gone(cli_run: Any) -> None:
    with Rdm6300Sim(seed=11, frame_interval_s=0.03) as sim:
        sim.put(CARD)
        out, finish = cli_run("rdm6300", sim.port)
        out.wait(lambda ev: len(ev) >= 1, "present")
        frames = sim.frames_sent
        eventually(lambda: sim.frames_sent >= frames + 10, what="card staying on the reader")
        assert out.events() == [{"event": "present", "tag": CARD}]
        sim.take()
        out.wait(lambda ev: len(ev) >= 2, "gone")
        assert finish() == 0
    assert out.events() == [{"event": "present", "tag": CARD}, {"event": "gone", "tag": CARD}]
    assert out.text.endswith("\n") and " " not in out.text


def test_cli_m100_reports_rssi(cli_run: Any) -> None:
    with M100Sim(seed=12, max_duplicates=3) as sim:
        sim.put(EPC_1, rssi=-61)
        out, finish = cli_run("m100", sim.port)
        out.wait(lambda ev: len(ev) >= 1, "present")
        polls = sim.commands[0x22]
        eventually(lambda: sim.commands[0x22] >= polls + 6, what="several rounds")
        sim.put(EPC_2, rssi=-70)
        out.wait(lambda ev: len(ev) >= 2, "second tag present")
        sim.take(EPC_1)
        out.wait(lambda ev: len(ev) >= 3, "gone")
        assert finish() == 0
    assert out.events() == [
        {"event": "present", "tag": EPC_1, "rssi": -61},
        {"event": "present", "tag": EPC_2, "rssi": -70},
        {"event": "gone", "tag": EPC_1},
    ]


@pytest.mark.parametrize("driver", ["rdm6300", "m100", "em4100"])
def test_cli_unopenable_port_or_unknown_driver(driver: str, tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    port = str(tmp_path / "ttyUSB7")
    assert cli.run(driver, port, 1.0, out, err=err) == 2
    assert out.getvalue() == ""
    message = err.getvalue()
    assert message.count("\n") == 1
    assert ("ttyUSB7" if driver != "em4100" else "em4100") in message
