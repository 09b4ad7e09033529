"""GPIO points through gpiozero, with the pin factory passed in.

Wiring convention (HARDWARE.md): every contact is wired so that a cut wire reads as
"open"/"active". A reed switch goes between the GPIO pin and ground with the internal
pull-up on: a closed door pulls the pin low, an open door or a cut wire lets it float
high. For such a point configure ``active = "high"`` (the level that means open/active)
and ``pull = "up"``. A detector with a normally-closed alarm relay (PIR, smoke, water,
tamper loop) is wired the same way.

Debouncing is done here, not by gpiozero (its MockFactory does not emulate
``bounce_time``, and an alarm must not wait for a contact to settle): the first edge is
reported at once, further edges are ignored for ``debounce_s``, and when that window
ends the pin is sampled again (:meth:`Input.poll`) so a change that happened inside it is
reported late rather than lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from gpiozero import DigitalInputDevice, DigitalOutputDevice

log = logging.getLogger(__name__)

Clock = Callable[[], float]
OnChange = Callable[["Input", bool, float], None]


class GpioConfigError(ValueError):
    """A pin factory or a point that cannot be set up as configured."""


def make_pin_factory(name: str) -> Any:
    """``lgpio`` (every Pi, the only one on a Pi 5), ``rpigpio`` (RPi.GPIO, older Pis)
    or ``mock`` (gpiozero's MockFactory: tests and the simulated room)."""
    try:
        if name == "mock":
            from gpiozero.pins.mock import MockFactory

            return MockFactory()
        if name == "lgpio":
            from gpiozero.pins.lgpio import LGPIOFactory

            return LGPIOFactory()
        if name == "rpigpio":
            from gpiozero.pins.rpigpio import RPiGPIOFactory

            return RPiGPIOFactory()
    except ImportError as exc:
        extra = "pi" if name == "lgpio" else "pi-legacy"
        raise GpioConfigError(
            f"pin factory {name!r} needs a library that is not installed ({exc}); "
            f"install the project with the '{extra}' extra on the Pi"
        ) from None
    raise GpioConfigError(f"unknown pin factory {name!r}: use lgpio, rpigpio or mock")


class Input:
    """One input point: door, window, cabinet door, tamper, motion, panic, smoke, water.

    ``pin`` is a BCM number or a gpiozero pin name (``"GPIO17"``, ``"BOARD11"``).
    ``active`` is the level ("high"/"low") that means open (contacts) or active
    (detectors); ``pull`` is "up", "down" or "none" (external resistor).
    ``on_change(input, active, t)`` is called from the GPIO callback thread (or from
    :meth:`poll`) whenever the debounced state changes; ``t`` comes from ``clock``.
    """

    def __init__(
        self,
        name: str,
        pin: int | str,
        *,
        pin_factory: Any,
        active: str = "high",
        pull: str = "up",
        debounce_s: float = 0.02,
        clock: Clock,
        on_change: OnChange | None = None,
    ) -> None:
        if active not in ("high", "low"):
            raise GpioConfigError(f"{name}: active must be 'high' or 'low', got {active!r}")
        if pull not in ("up", "down", "none"):
            raise GpioConfigError(f"{name}: pull must be 'up', 'down' or 'none', got {pull!r}")
        if debounce_s < 0:
            raise GpioConfigError(f"{name}: debounce must be >= 0")
        self.name = name
        self._active_high = active == "high"
        self._debounce_s = debounce_s
        self._clock = clock
        self.on_change = on_change
        self._lock = threading.Lock()
        pull_up = {"up": True, "down": False, "none": None}[pull]
        try:
            self._dev = DigitalInputDevice(
                pin,
                pull_up=pull_up,
                active_state=True if pull_up is None else None,
                pin_factory=pin_factory,
            )
        except Exception as exc:  # gpiozero raises many kinds; say which point failed
            raise GpioConfigError(f"{name}: cannot use pin {pin!r}: {exc}") from exc
        # gpiozero's own "active" is low when pulled up; keep to raw levels here.
        self._gz_active_high = pull_up is not True
        self._state = self._read_active()
        self._lockout_until: float | None = None
        self._dev.when_activated = self._edge_gz_active
        self._dev.when_deactivated = self._edge_gz_inactive

    @property
    def active(self) -> bool:
        """The debounced state: True = open/active."""
        return self._state

    @property
    def pin(self) -> Any:
        return self._dev.pin

    def _read_active(self) -> bool:
        high = bool(self._dev.pin.state)
        return high == self._active_high

    def _edge_gz_active(self) -> None:
        self._edge(self._gz_active_high)

    def _edge_gz_inactive(self) -> None:
        self._edge(not self._gz_active_high)

    def _edge(self, level_high: bool) -> None:
        now = self._clock()
        new = level_high == self._active_high
        with self._lock:
            if self._lockout_until is not None and now < self._lockout_until:
                return  # inside the window: poll() samples again when it ends
            if new == self._state:
                return
            self._state = new
            self._lockout_until = now + self._debounce_s if self._debounce_s else None
        if self.on_change is not None:
            self.on_change(self, new, now)

    def resync(self) -> bool:
        """Take the pin's level as the current state, with no report and no debounce
        window (at start-up, before anything listens). Returns the state."""
        with self._lock:
            self._state = self._read_active()
            self._lockout_until = None
            return self._state

    def poll(self, now: float | None = None) -> None:
        """End an expired debounce window: report a change that happened inside it."""
        now = self._clock() if now is None else now
        with self._lock:
            if self._lockout_until is None or now < self._lockout_until:
                return
            current = self._read_active()
            if current == self._state:
                self._lockout_until = None
                return
            self._state = current
            self._lockout_until = now + self._debounce_s
        if self.on_change is not None:
            self.on_change(self, current, now)

    def close(self) -> None:
        self._dev.close()


class Output:
    """A siren, strobe or status LED on a relay or transistor.

    ``active_high`` False for the usual opto-isolated relay boards that switch on a low
    pin. Starts off.
    """

    def __init__(self, name: str, pin: int | str, *, pin_factory: Any, active_high: bool = True):
        self.name = name
        self._lock = threading.Lock()
        try:
            self._dev = DigitalOutputDevice(
                pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
            )
        except Exception as exc:
            raise GpioConfigError(f"{name}: cannot use pin {pin!r}: {exc}") from exc

    @property
    def is_on(self) -> bool:
        return bool(self._dev.value)

    @property
    def pin(self) -> Any:
        return self._dev.pin

    # gpiozero's blink thread is not safe to start and stop from two threads at once.
    def on(self) -> None:
        with self._lock:
            self._dev.on()

    def off(self) -> None:
        with self._lock:
            self._dev.off()

    def set(self, on: bool) -> None:
        with self._lock:
            if on:
                self._dev.on()
            else:
                self._dev.off()

    def blink(self, on_s: float, off_s: float) -> None:
        with self._lock:
            self._dev.blink(on_time=on_s, off_time=off_s, background=True)

    def close(self) -> None:
        with self._lock:
            self._dev.off()  # stops a blink thread before the pin goes away
            self._dev.close()


class Lock:
    """A cabinet lock relay.

    ``fail = "secure"``: the lock stays locked without power (energise to unlock);
    ``fail = "safe"``: it opens without power (energise to lock; fire-exit rules). Starts
    locked either way.
    """

    def __init__(
        self,
        name: str,
        pin: int | str,
        *,
        pin_factory: Any,
        active_high: bool = True,
        fail: str = "secure",
    ) -> None:
        if fail not in ("secure", "safe"):
            raise GpioConfigError(f"{name}: fail must be 'secure' or 'safe', got {fail!r}")
        self.name = name
        self._energise_unlocks = fail == "secure"
        self._out = Output(name, pin, pin_factory=pin_factory, active_high=active_high)
        self.lock()

    @property
    def locked(self) -> bool:
        return self._out.is_on != self._energise_unlocks

    @property
    def pin(self) -> Any:
        return self._out.pin

    def lock(self) -> None:
        self._out.set(not self._energise_unlocks)

    def unlock(self) -> None:
        self._out.set(self._energise_unlocks)

    def close(self) -> None:
        self._out.close()
