"""RDM6300 (EM4100, 125 kHz) frames: a pure parser and an encoder.

Wiring: the module's TX pin to the Pi's RX (GPIO15, ``/dev/serial0``) or to a USB-UART
adapter's RX, grounds joined, module powered from 5 V. The line runs at 9600 baud 8N1 and
only goes one way: the module sends, nothing is ever written to it.

A frame is ``02 | 10 ASCII hex digits | 2 ASCII hex checksum digits | 03``; the checksum is
the XOR of the 5 data bytes. The module repeats the frame about every 65 ms while a card
stays in the field.
"""

import binascii
from dataclasses import dataclass

from devices.rfid.errors import FrameError
from devices.rfid.framing import FrameBuffer

BAUDRATE = 9600
STX = 0x02
ETX = 0x03
FRAME_LEN = 14
_DATA_LEN = 12  # 10 tag digits + 2 checksum digits
_HEX = b"0123456789ABCDEFabcdef"
_CACHE_MAX = 1024


@dataclass(frozen=True, slots=True)
class TagRead:
    """One valid RDM6300 frame; ``tag`` is the 10-digit card number in uppercase hex."""

    tag: str


def _tag_bytes(tag: str) -> bytes:
    try:
        raw = binascii.unhexlify(tag.encode("ascii"))
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 5:
        raise FrameError(f"an EM4100 tag is 10 hex digits, got {tag!r}")
    return raw


def encode_rdm6300(tag: str, *, checksum: int | None = None) -> bytes:
    """Build the 14-byte frame the module sends for ``tag``.

    ``checksum`` overrides the computed one (simulators use it to send a bad frame).
    """
    raw = _tag_bytes(tag)
    cs = raw[0] ^ raw[1] ^ raw[2] ^ raw[3] ^ raw[4] if checksum is None else checksum
    if not 0 <= cs <= 0xFF:
        raise FrameError(f"checksum must fit in a byte, got {cs}")
    return b"\x02" + tag.upper().encode("ascii") + b"%02X\x03" % cs


def _decode(body: bytes) -> TagRead | None:
    """Validate the 12 characters between STX and ETX."""
    if body.translate(None, _HEX):
        return None
    raw = binascii.unhexlify(body)
    if raw[0] ^ raw[1] ^ raw[2] ^ raw[3] ^ raw[4] != raw[5]:
        return None
    return TagRead(body[:10].decode("ascii").upper())


class Rdm6300Parser(FrameBuffer[TagRead]):
    """Turns the module's byte stream into :class:`TagRead` values; no I/O.

    Feed it whatever the port returned, in any chunking. It resynchronises on the next STX
    after garbage or a broken frame and never yields a tag from a frame whose digits or
    checksum are wrong (lowercase hex digits are accepted).

    Counters: ``frames_ok`` valid frames; ``frames_bad`` frames with STX and ETX in place
    but a bad digit or checksum; ``bytes_skipped`` every byte not part of a valid frame.
    """

    __slots__ = ()

    def feed(self, data: bytes) -> list[TagRead]:
        """Consume ``data`` and return the tags of the frames it completed, in order."""
        buf = self._buf
        buf += data
        n = len(buf)
        out: list[TagRead] = []
        i = 0
        while True:
            j = buf.find(STX, i)
            if j < 0:
                self.bytes_skipped += n - i
                i = n
                break
            self.bytes_skipped += j - i
            if n - j < FRAME_LEN:
                # Wait for the rest only if what has come so far could still be a frame.
                if not buf[j + 1 : n].translate(None, _HEX):
                    i = j
                    break
            elif buf[j + FRAME_LEN - 1] == ETX:
                body = bytes(buf[j + 1 : j + 1 + _DATA_LEN])
                read = self._cache.get(body)
                if read is None:
                    read = _decode(body)
                    if read is not None:
                        if len(self._cache) >= _CACHE_MAX:
                            self._cache.clear()
                        self._cache[body] = read
                if read is not None:
                    out.append(read)
                    self.frames_ok += 1
                    i = j + FRAME_LEN
                    continue
                self.frames_bad += 1
            # Not a frame at j: skip the STX and look for the next one (it may be inside).
            self.bytes_skipped += 1
            i = j + 1
        if i:
            del buf[:i]
        return out
