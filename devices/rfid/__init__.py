"""Serial RFID: frame parsers (pure), reader drivers (I/O) and presence tracking (pure).

* :mod:`devices.rfid.rdm6300` - 125 kHz EM4100 desk reader frames, 9600 8N1.
* :mod:`devices.rfid.m100` - MagicRF M100/QM100 UHF frames and commands, 115200 8N1.
* :mod:`devices.rfid.readers` - drivers opening a pyserial URL and calling back per read.
* :mod:`devices.rfid.presence` - arrivals/departures over rounds or timeouts, cross-reads.
* :mod:`devices.rfid.cli` - the installer's ``ironroom devices rfid`` check.
"""

from devices.rfid.errors import FrameError, ReaderConfigError, ReaderIOError, RfidError
from devices.rfid.m100 import (
    Command,
    ErrorFrame,
    M100Frame,
    M100Parser,
    Notice,
    Response,
    TagNotification,
    crc16_genibus,
    encode_m100,
    encode_m100_error,
    encode_m100_notification,
    multi_poll,
    single_poll,
    stop_multi_poll,
)
from devices.rfid.presence import PresenceChange, PresenceTracker
from devices.rfid.rdm6300 import Rdm6300Parser, TagRead, encode_rdm6300
from devices.rfid.readers import M100Reader, Rdm6300Reader, Reader, open_reader

__all__ = [
    "Command",
    "ErrorFrame",
    "FrameError",
    "M100Frame",
    "M100Parser",
    "M100Reader",
    "Notice",
    "PresenceChange",
    "PresenceTracker",
    "Rdm6300Parser",
    "Rdm6300Reader",
    "ReaderConfigError",
    "Reader",
    "ReaderIOError",
    "Response",
    "RfidError",
    "TagNotification",
    "TagRead",
    "crc16_genibus",
    "encode_m100",
    "encode_m100_error",
    "encode_m100_notification",
    "encode_rdm6300",
    "multi_poll",
    "open_reader",
    "single_poll",
    "stop_multi_poll",
]
