"""A room of GPIO points on gpiozero's MockFactory.

It drives the very pins the bridge's real :class:`devices.gpio.Input` objects read, with
the levels a real reed switch or detector would give for each configured point (the
``active`` level of the point means open/active), and reads back the siren, LED and lock
outputs. Use it from a test, a scenario or a REPL::

    room = GpioRoom(cfg, MockFactory())
    bridge = Bridge(cfg, pin_factory=room.factory, ...)
    room.settle()           # every contact closed, every detector quiet
    room.open("door")       # the door contact opens: the bridge sees an edge
"""

from __future__ import annotations

from typing import Any

from firmware_bridge.config import Config


class GpioRoom:
    def __init__(self, cfg: Config, factory: Any) -> None:
        self.cfg = cfg
        self.factory = factory
        self._inputs = {i.point: i for i in cfg.inputs}
        self._outputs = {o.name: o for o in cfg.outputs}
        self._locks = {lk.cabinet: lk for lk in cfg.locks}

    def pin(self, point: str) -> Any:
        return self.factory.pin(self._inputs[point].pin)

    def set(self, point: str, active: bool) -> None:
        """Drive a point: True = open (contacts) or active (detectors)."""
        if point not in self._inputs:
            raise KeyError(f"no input point {point!r} in this room; have {sorted(self._inputs)}")
        high = active == (self._inputs[point].active == "high")
        pin = self.pin(point)
        if high:
            pin.drive_high()
        else:
            pin.drive_low()

    def open(self, point: str) -> None:
        self.set(point, True)

    def close(self, point: str) -> None:
        self.set(point, False)

    activate = open
    deactivate = close

    def settle(self) -> None:
        """Every contact closed and every detector quiet: a room at rest."""
        for point in self._inputs:
            self.set(point, False)

    def cut_wire(self, point: str) -> None:
        """A cut wire with the pull-up: the pin floats to its pulled level."""
        i = self._inputs[point]
        pin = self.pin(point)
        if i.pull == "up":
            pin.drive_high()
        elif i.pull == "down":
            pin.drive_low()

    def output_on(self, name: str) -> bool:
        o = self._outputs[name]
        return bool(self.factory.pin(o.pin).state) == o.active_high

    @property
    def siren(self) -> bool:
        return "siren" in self._outputs and self.output_on("siren")

    def locked(self, cabinet: str) -> bool:
        lk = self._locks[cabinet]
        energised = bool(self.factory.pin(lk.pin).state) == lk.active_high
        return energised != (lk.fail == "secure")
