"""Exceptions of the serial RFID layer.

Each one also inherits the builtin it refines, so ``except OSError`` around a reader still
catches a lost port and ``except ValueError`` around an encoder still catches a bad tag.
"""


class RfidError(Exception):
    """Base of every RFID error."""


class ReaderIOError(RfidError, OSError):
    """The reader's serial port could not be opened, or failed while in use."""


class ReaderConfigError(RfidError, ValueError):
    """A reader was configured with an unknown driver, URL scheme or option."""


class FrameError(RfidError, ValueError):
    """A frame could not be built: the tag number, RSSI or field is out of range."""
