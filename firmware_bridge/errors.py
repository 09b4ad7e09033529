"""The bridge's exceptions: one tree under :class:`BridgeError`, the root the command line
catches to turn a failure into one line.

Each class also inherits the builtin it refines (as gpiozero's ``exc.py`` does), so code
that only knows the builtin still catches it: ``except ValueError`` around a config,
``except OSError`` around the disk or a device.

    BridgeError
    ├── ConfigError   (ValueError)  firmware_bridge.config: a config that cannot be used
    ├── OutboxError   (OSError)     the outbox file cannot be opened, read or written
    └── DeviceError   (OSError)     a configured pin, reader or badge reader cannot be used

``ConfigError`` lives in ``firmware_bridge.config`` next to the checks that raise it. A
timetable's ``HoursError`` (a ``ValueError`` of the pure hours code) never leaves the
bridge as such: the config turns it into a ``ConfigError``, a ``policy.update`` into a
refused command. Device layers keep their own roots (``RfidError``, ``BadgeError``,
``GpioConfigError``); the bridge turns them into ``DeviceError`` or ``ConfigError`` where
it uses them, and ``simulators.pcscd.PcscdError`` is a ``BridgeError`` too.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error of the room controller."""


class OutboxError(BridgeError, OSError):
    """The outbox file cannot be opened, read or written (disk full, read-only, corrupt)."""


class DeviceError(BridgeError, OSError):
    """A configured device (GPIO pin, RFID reader, badge reader) cannot be used."""
