"""GPIO points on gpiozero's MockFactory, with an injected clock: levels, pulls, the
debounce window, outputs, fail-secure and fail-safe locks, and the simulated room."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from devices.gpio import GpioConfigError, Input, Lock, Output, make_pin_factory
from firmware_bridge.config import Config, parse_config
from simulators.gpio_room import GpioRoom

ROOT = Path(__file__).resolve().parents[2]
DEBOUNCE = 0.02


class Clock:
    """A list-backed clock: tests set ``clock.t[0]``; the device reads ``clock()``."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = [start]
        self.read: Callable[[], float] = lambda: self.t[0]

    def set(self, value: float) -> None:
        self.t[0] = value


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_input(
    factory: MockFactory,
    clock: Clock,
    reports: list[tuple[bool, float]],
    *,
    active: str = "high",
    pull: str = "down",
    debounce_s: float = DEBOUNCE,
    pin: int = 17,
) -> Input:
    def on_change(inp: Input, is_active: bool, t: float) -> None:
        assert inp.name == "door"
        reports.append((is_active, t))

    return Input(
        "door",
        pin,
        pin_factory=factory,
        active=active,
        pull=pull,
        debounce_s=debounce_s,
        clock=clock.read,
        on_change=on_change,
    )


# -- levels and pulls -------------------------------------------------------------------

# (active, pull) -> (state at rest as pulled, state driven low, state driven high)
LEVELS = [
    ("high", "up", True, False, True),  # reed to ground: a cut wire floats high = open
    ("low", "up", False, True, False),
    ("high", "down", False, False, True),
    ("low", "down", True, True, False),
    ("high", "none", False, False, True),
    ("low", "none", True, True, False),
]


@pytest.mark.parametrize(("active", "pull", "at_rest", "low", "high"), LEVELS)
def test_input_levels(
    factory: MockFactory, active: str, pull: str, at_rest: bool, low: bool, high: bool
):
    reports: list[tuple[bool, float]] = []
    inp = make_input(factory, Clock(), reports, active=active, pull=pull, debounce_s=0)
    assert inp.active is at_rest
    inp.pin.drive_low()
    assert inp.active is low
    inp.pin.drive_high()
    assert inp.active is high
    # a report for every change of the debounced state, none for a level it already had
    expected = [v for prev, v in ((at_rest, low), (low, high)) if prev != v]
    assert [a for a, _ in reports] == expected
    inp.close()


# -- debouncing -------------------------------------------------------------------------

# Steps: ("high"|"low", t) drives the pin at time t; ("poll", t) polls at time t.
DEBOUNCE_CASES: list[tuple[str, list[tuple[str, float]], list[tuple[bool, float]]]] = [
    ("leading edge at once", [("high", 1.0)], [(True, 1.0)]),
    (
        "bounces inside the window ignored",
        [("high", 1.0), ("low", 1.005), ("high", 1.01), ("low", 1.015), ("high", 1.019)],
        [(True, 1.0)],
    ),
    (
        "level back to the reported state: nothing at window end",
        [("high", 1.0), ("low", 1.005), ("high", 1.01), ("poll", 1.02), ("poll", 1.5)],
        [(True, 1.0)],
    ),
    (
        "change inside the window reported when it ends",
        [("high", 1.0), ("low", 1.01), ("poll", 1.015), ("poll", 1.02)],
        [(True, 1.0), (False, 1.02)],
    ),
    (
        "late report opens a new window",
        [
            ("high", 1.0),
            ("low", 1.01),
            ("poll", 1.02),
            ("high", 1.03),
            ("poll", 1.035),
            ("poll", 1.04),
        ],
        [(True, 1.0), (False, 1.02), (True, 1.04)],
    ),
    (
        "edge after the window, polled",
        [("high", 1.0), ("poll", 1.03), ("low", 1.05)],
        [(True, 1.0), (False, 1.05)],
    ),
    (
        "edge after the window, not polled",
        [("high", 1.0), ("low", 1.02)],
        [(True, 1.0), (False, 1.02)],
    ),
    (
        "edge just inside the window",
        [("high", 1.0), ("low", 1.0199), ("high", 1.5)],
        [(True, 1.0)],
    ),
    ("poll with no window open", [("poll", 5.0)], []),
    (
        "open and close far apart",
        [("high", 1.0), ("low", 2.0), ("high", 3.0), ("low", 4.0)],
        [(True, 1.0), (False, 2.0), (True, 3.0), (False, 4.0)],
    ),
]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [(s, e) for _, s, e in DEBOUNCE_CASES],
    ids=[name for name, _, _ in DEBOUNCE_CASES],
)
def test_debounce(
    factory: MockFactory,
    clock: Clock,
    steps: list[tuple[str, float]],
    expected: list[tuple[bool, float]],
):
    reports: list[tuple[bool, float]] = []
    inp = make_input(factory, clock, reports)  # active high, pull down: closed at rest
    assert inp.active is False
    for op, t in steps:
        clock.set(t)
        if op == "high":
            inp.pin.drive_high()
        elif op == "low":
            inp.pin.drive_low()
        else:
            inp.poll(t)
    assert reports == expected
    if expected:
        assert inp.active is expected[-1][0]


def test_poll_reads_the_injected_clock(factory: MockFactory, clock: Clock):
    reports: list[tuple[bool, float]] = []
    inp = make_input(factory, clock, reports)
    clock.set(10.0)
    inp.pin.drive_high()
    clock.set(10.01)
    inp.pin.drive_low()
    inp.poll()
    assert reports == [(True, 10.0)]
    clock.set(10.02)
    inp.poll()
    assert reports == [(True, 10.0), (False, 10.02)]


def test_no_debounce_reports_every_edge(factory: MockFactory, clock: Clock):
    reports: list[tuple[bool, float]] = []
    inp = make_input(factory, clock, reports, debounce_s=0)
    for i, level in enumerate(["high", "low", "high"]):
        clock.set(1.0 + i * 0.0001)
        getattr(inp.pin, f"drive_{level}")()
    assert reports == [(True, 1.0), (False, 1.0001), (True, 1.0002)]
    inp.poll(5.0)
    assert len(reports) == 3


def test_without_a_callback_the_state_still_follows(factory: MockFactory, clock: Clock):
    inp = Input("door", 17, pin_factory=factory, pull="down", clock=clock.read)
    inp.pin.drive_high()
    assert inp.active is True
    clock.set(0.01)
    inp.pin.drive_low()
    inp.poll(0.02)
    assert inp.active is False


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"active": "middle"}, "active"),
        ({"pull": "sideways"}, "pull"),
        ({"debounce_s": -0.001}, "debounce"),
    ],
)
def test_bad_input_settings(factory: MockFactory, kwargs: dict[str, Any], word: str):
    with pytest.raises(GpioConfigError, match=word) as info:
        Input("door", 17, pin_factory=factory, clock=lambda: 0.0, **kwargs)
    assert "door" in str(info.value)


def test_a_pin_used_twice_names_the_point(factory: MockFactory):
    first = Input("door", 17, pin_factory=factory, clock=lambda: 0.0)
    with pytest.raises(GpioConfigError, match="window:w1"):
        Input("window:w1", 17, pin_factory=factory, clock=lambda: 0.0)
    with pytest.raises(GpioConfigError, match="siren"):
        Output("siren", 17, pin_factory=factory)
    first.close()


# -- outputs and locks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("active_high", "off_level", "on_level"), [(True, False, True), (False, True, False)]
)
def test_output(factory: MockFactory, active_high: bool, off_level: bool, on_level: bool):
    out = Output("siren", 18, pin_factory=factory, active_high=active_high)
    assert (out.is_on, out.pin.state) == (False, off_level)
    out.on()
    assert (out.is_on, out.pin.state) == (True, on_level)
    out.off()
    assert (out.is_on, out.pin.state) == (False, off_level)
    out.set(True)
    assert out.pin.state == on_level
    out.set(False)
    assert out.pin.state == off_level
    out.close()


# (fail, active_high) -> pin level when locked, when unlocked
LOCKS = [
    ("secure", True, False, True),  # energise (high) to unlock
    ("secure", False, True, False),  # energise (low) to unlock
    ("safe", True, True, False),  # energise (high) to lock
    ("safe", False, False, True),  # energise (low) to lock
]


@pytest.mark.parametrize(("fail", "active_high", "locked_level", "unlocked_level"), LOCKS)
def test_lock_levels(
    factory: MockFactory, fail: str, active_high: bool, locked_level: bool, unlocked_level: bool
):
    lock = Lock("lock:c1", 16, pin_factory=factory, active_high=active_high, fail=fail)
    assert lock.locked is True  # starts locked either way
    assert lock.pin.state == locked_level
    lock.unlock()
    assert lock.locked is False
    assert lock.pin.state == unlocked_level
    lock.lock()
    assert lock.locked is True
    assert lock.pin.state == locked_level
    lock.close()


def test_bad_lock_fail_mode(factory: MockFactory):
    with pytest.raises(GpioConfigError, match="fail"):
        Lock("lock:c1", 16, pin_factory=factory, fail="open")


def test_make_pin_factory():
    a, b = make_pin_factory("mock"), make_pin_factory("mock")
    assert isinstance(a, MockFactory) and a is not b
    with pytest.raises(GpioConfigError, match="'nope'"):
        make_pin_factory("nope")
    a.close()
    b.close()


# -- the simulated room -----------------------------------------------------------------


def sim_config(tmp_path: Path, extra: str = "") -> Config:
    text = (ROOT / "simulators" / "room-sim.toml").read_text(encoding="utf-8")
    return parse_config(text.replace("{data_dir}", str(tmp_path)) + extra)


class Wired:
    """Every point of a config built on one MockFactory, as the bridge would."""

    def __init__(self, cfg: Config, factory: MockFactory, clock: Clock) -> None:
        self.reports: list[tuple[str, bool]] = []
        self.inputs = {
            i.point: Input(
                i.point,
                i.pin,
                pin_factory=factory,
                active=i.active,
                pull=i.pull,
                debounce_s=0,
                clock=clock.read,
                on_change=lambda inp, a, t: self.reports.append((inp.name, a)),
            )
            for i in cfg.inputs
        }
        self.outputs = {
            o.name: Output(o.name, o.pin, pin_factory=factory, active_high=o.active_high)
            for o in cfg.outputs
        }
        self.locks = {
            lk.cabinet: Lock(
                lk.point, lk.pin, pin_factory=factory, active_high=lk.active_high, fail=lk.fail
            )
            for lk in cfg.locks
        }

    def close(self) -> None:
        for dev in [*self.inputs.values(), *self.outputs.values(), *self.locks.values()]:
            dev.close()


def test_gpio_room_drives_every_point(tmp_path: Path, factory: MockFactory, clock: Clock):
    cfg = sim_config(tmp_path)
    room = GpioRoom(cfg, factory)
    wired = Wired(cfg, factory, clock)
    # pulled up and wired active-high: with nothing driving them every point reads open
    assert all(inp.active for inp in wired.inputs.values())
    room.settle()
    assert not any(inp.active for inp in wired.inputs.values())
    wired.reports.clear()
    room.open("door")
    room.activate("smoke:s1")
    room.open("cabinet:c2")
    room.close("door")
    room.deactivate("smoke:s1")
    assert wired.reports == [
        ("door", True),
        ("smoke:s1", True),
        ("cabinet:c2", True),
        ("door", False),
        ("smoke:s1", False),
    ]
    assert wired.inputs["cabinet:c2"].active and not wired.inputs["door"].active
    room.cut_wire("window:w1")
    assert wired.inputs["window:w1"].active
    wired.close()


def test_gpio_room_reads_siren_led_and_locks(tmp_path: Path, factory: MockFactory, clock: Clock):
    cfg = sim_config(tmp_path)
    room = GpioRoom(cfg, factory)
    wired = Wired(cfg, factory, clock)
    assert room.siren is False and room.output_on("led") is False
    wired.outputs["siren"].on()
    assert room.siren is True and room.output_on("led") is False
    wired.outputs["led"].on()
    wired.outputs["siren"].off()
    assert room.siren is False and room.output_on("led") is True
    assert room.locked("c1") and room.locked("c2")
    wired.locks["c1"].unlock()
    assert not room.locked("c1") and room.locked("c2")
    wired.locks["c1"].lock()
    assert room.locked("c1")
    wired.close()


def test_gpio_room_unknown_point(tmp_path: Path, factory: MockFactory):
    room = GpioRoom(sim_config(tmp_path), factory)
    with pytest.raises(KeyError, match="gate"):
        room.open("gate")


INVERTED = """
[[input]]
point = "cabinet:c3"
pin = 7
active = "low"
pull = "up"

[[input]]
point = "motion:m2"
pin = 8
active = "low"
pull = "none"

[[lock]]
cabinet = "c3"
pin = 21
active_high = false
fail = "safe"
"""


def test_gpio_room_follows_active_low_points_and_locks(
    tmp_path: Path, factory: MockFactory, clock: Clock
):
    cfg = sim_config(tmp_path, INVERTED)
    room = GpioRoom(cfg, factory)
    wired = Wired(cfg, factory, clock)
    room.settle()
    assert not wired.inputs["cabinet:c3"].active and not wired.inputs["motion:m2"].active
    assert factory.pin(7).state is True  # at rest an active-low point sits high
    room.open("cabinet:c3")
    room.activate("motion:m2")
    assert wired.inputs["cabinet:c3"].active and wired.inputs["motion:m2"].active
    assert factory.pin(7).state is False
    # fail-safe, active-low relay: locked means energised means a low pin
    assert room.locked("c3") and wired.locks["c3"].locked
    assert factory.pin(21).state is False
    wired.locks["c3"].unlock()
    assert not room.locked("c3") and factory.pin(21).state is True
    # a cut wire on an active-low, pulled-up point reads closed/quiet; with no pull, as is
    room.cut_wire("cabinet:c3")
    room.cut_wire("motion:m2")
    assert not wired.inputs["cabinet:c3"].active and wired.inputs["motion:m2"].active
    wired.close()
