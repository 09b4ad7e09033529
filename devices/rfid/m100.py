"""MagicRF M100 / QM100 UHF EPC Gen2 frames: a pure parser, encoders and commands.

Wiring: the module's TXD/RXD crossed to a USB-UART adapter (or the Pi's GPIO14/15), grounds
joined, module powered from its own 5 V supply (it draws far more than a GPIO pin gives while
transmitting). The line runs at 115200 baud 8N1.

A frame is ``BB type cmd PL_hi PL_lo params checksum 7E`` with checksum =
``sum(type..last param) & 0xFF``; some units use ``AA .. DD`` around the same body. Types:
0x00 command (host to module), 0x01 response, 0x02 notification.
"""

import re
from dataclasses import dataclass
from typing import Literal

from devices.rfid.errors import FrameError
from devices.rfid.framing import FrameBuffer

BAUDRATE = 115200
Framing = Literal["BB", "AA"]

TYPE_COMMAND = 0x00
TYPE_RESPONSE = 0x01
TYPE_NOTICE = 0x02
CMD_SINGLE_POLL = 0x22
CMD_MULTI_POLL = 0x27
CMD_STOP_MULTI_POLL = 0x28
CMD_ERROR = 0xFF
ERR_NO_TAG = 0x15

MAX_PARAMS = 255  # longer PL values are treated as line noise, not waited for
_OVERHEAD = 7  # header, type, cmd, PL_hi, PL_lo, checksum, end
_END = {0xBB: 0x7E, 0xAA: 0xDD}
_START = {"BB": 0xBB, "AA": 0xAA}
_HEADER_RE = re.compile(rb"[\xaa\xbb]")
_CACHE_MAX = 4096


@dataclass(frozen=True, slots=True)
class TagNotification:
    """A tag read: ``epc`` and ``pc`` in uppercase hex, ``rssi`` in signed dBm."""

    epc: str
    rssi: int
    pc: str


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """An error response (type 0x01, cmd 0xFF); ``code`` 0x15 means no tag was found."""

    code: int


@dataclass(frozen=True, slots=True)
class Response:
    """Any other response (type 0x01), e.g. the ack of stop-multi-poll."""

    cmd: int
    params: bytes


@dataclass(frozen=True, slots=True)
class Notice:
    """A notification (type 0x02) that is not a tag read."""

    cmd: int
    params: bytes


@dataclass(frozen=True, slots=True)
class Command:
    """A host command (type 0x00); what a simulated module receives."""

    cmd: int
    params: bytes


M100Frame = TagNotification | ErrorFrame | Response | Notice | Command


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_genibus(data: bytes) -> int:
    """CRC-16/GENIBUS (poly 0x1021, init 0xFFFF, no reflection, xorout 0xFFFF)."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc ^ 0xFFFF


def encode_m100(
    frame_type: int,
    cmd: int,
    params: bytes = b"",
    *,
    framing: Framing = "BB",
    checksum: int | None = None,
) -> bytes:
    """Build one frame; ``checksum`` overrides the computed one (for simulated bad frames)."""
    if framing not in _START:
        raise FrameError(f"framing must be 'BB' or 'AA', got {framing!r}")
    if not (0 <= frame_type <= 0xFF and 0 <= cmd <= 0xFF):
        raise FrameError("frame type and command must fit in a byte")
    if len(params) > MAX_PARAMS:
        raise FrameError(f"at most {MAX_PARAMS} parameter bytes, got {len(params)}")
    body = bytes((frame_type, cmd, len(params) >> 8, len(params) & 0xFF)) + params
    cs = sum(body) & 0xFF if checksum is None else checksum
    if not 0 <= cs <= 0xFF:
        raise FrameError(f"checksum must fit in a byte, got {cs}")
    start = _START[framing]
    return bytes((start,)) + body + bytes((cs, _END[start]))


def single_poll(*, framing: Framing = "BB") -> bytes:
    """Command: one inventory round (``BB 00 22 00 00 22 7E``)."""
    return encode_m100(TYPE_COMMAND, CMD_SINGLE_POLL, framing=framing)


def multi_poll(count: int, *, framing: Framing = "BB") -> bytes:
    """Command: ``count`` inventory rounds in a row (1..65535)."""
    if not 1 <= count <= 0xFFFF:
        raise FrameError(f"multi-poll count must be 1..65535, got {count}")
    return encode_m100(
        TYPE_COMMAND, CMD_MULTI_POLL, bytes((0x22, count >> 8, count & 0xFF)), framing=framing
    )


def stop_multi_poll(*, framing: Framing = "BB") -> bytes:
    """Command: end a multi-poll early (``BB 00 28 00 00 28 7E``)."""
    return encode_m100(TYPE_COMMAND, CMD_STOP_MULTI_POLL, framing=framing)


def encode_m100_error(code: int, *, framing: Framing = "BB") -> bytes:
    """An error response as the module sends it (0x15: no tag found)."""
    return encode_m100(TYPE_RESPONSE, CMD_ERROR, bytes((code,)), framing=framing)


def default_pc(epc: bytes) -> int:
    """Protocol-control word for an EPC: its length in 16-bit words in bits 15..11."""
    return (len(epc) // 2) << 11


def encode_m100_notification(
    epc: str,
    rssi: int,
    pc: str | None = None,
    *,
    framing: Framing = "BB",
    cmd: int = CMD_SINGLE_POLL,
    checksum: int | None = None,
    crc: int | None = None,
) -> bytes:
    """A tag notification as the module sends it.

    ``pc`` defaults to the EPC's word count; ``checksum`` and ``crc`` override the computed
    values so a simulator can send corrupt frames.
    """
    try:
        epc_raw = bytes.fromhex(epc)
        pc_raw = bytes.fromhex(pc) if pc is not None else b""
    except ValueError as exc:
        raise FrameError(f"EPC and PC are hex strings: {exc}") from None
    if not epc_raw or len(epc_raw) % 2 or len(epc_raw) > 62:
        raise FrameError(f"an EPC is 1..31 whole 16-bit words, got {epc!r}")
    if pc is None:
        pc_raw = default_pc(epc_raw).to_bytes(2, "big")
    elif len(pc_raw) != 2:
        raise FrameError(f"PC is 2 bytes, got {pc!r}")
    if not -128 <= rssi <= 127:
        raise FrameError(f"RSSI is a signed byte in dBm, got {rssi}")
    tag = pc_raw + epc_raw
    check = crc16_genibus(tag) if crc is None else crc
    params = bytes((rssi & 0xFF,)) + tag + check.to_bytes(2, "big")
    return encode_m100(TYPE_NOTICE, cmd, params, framing=framing, checksum=checksum)


def _decode(frame_type: int, cmd: int, params: bytes) -> M100Frame | None:
    """Interpret a frame whose checksum is good; None if its content is invalid."""
    if frame_type == TYPE_NOTICE:
        if cmd != CMD_SINGLE_POLL and cmd != CMD_MULTI_POLL:
            return Notice(cmd, params)
        size = len(params)
        if size < 7:
            return None
        pc = (params[1] << 8) | params[2]
        if size != 5 + (pc >> 11) * 2:
            return None
        if crc16_genibus(params[1:-2]) != (params[-2] << 8) | params[-1]:
            return None
        rssi = params[0] - 256 if params[0] >= 128 else params[0]
        return TagNotification(params[3:-2].hex().upper(), rssi, params[1:3].hex().upper())
    if frame_type == TYPE_RESPONSE:
        if cmd == CMD_ERROR:
            return ErrorFrame(params[0]) if params else None
        return Response(cmd, params)
    return Command(cmd, params)


_NEED_MORE = -1
_BAD = -2


class M100Parser(FrameBuffer[M100Frame]):
    """Turns the module's byte stream into typed frames; no I/O.

    Accepts ``BB..7E`` and ``AA..DD`` framing, in any chunking. Resynchronises after garbage,
    split frames and bad checksums; a PL above :data:`MAX_PARAMS` is treated as garbage rather
    than waited for. A tag notification whose PC length or CRC-16 is wrong is a bad frame:
    no tag is ever yielded from it.

    Counters: ``frames_ok`` valid frames; ``frames_bad`` complete frames (end byte in place)
    with a bad checksum, length or CRC; ``bytes_skipped`` every byte not part of a valid frame.
    """

    __slots__ = ()

    def _frame_at(self, buf: bytearray, j: int, n: int) -> tuple[int, M100Frame | None]:
        """Look at a header at ``j``: (end, frame), (end, None) for a bad complete frame,
        or (_NEED_MORE | _BAD, None)."""
        avail = n - j
        if avail > 1 and buf[j + 1] > TYPE_NOTICE:
            return _BAD, None
        if avail > 3 and buf[j + 3]:  # PL_hi: a PL above 255 is noise
            return _BAD, None
        if avail < 5:
            return _NEED_MORE, None
        end = j + _OVERHEAD + buf[j + 4]
        if n < end:
            return _NEED_MORE, None
        if buf[end - 1] != _END[buf[j]]:
            return _BAD, None
        key = bytes(buf[j + 1 : end - 1])  # type..checksum
        frame = self._cache.get(key)
        if frame is not None:
            return end, frame
        if sum(key, -key[-1]) & 0xFF != key[-1]:
            return end, None
        frame = _decode(key[0], key[1], key[4:-1])
        if frame is not None:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[key] = frame
        return end, frame

    def _complete_frame_after(self, buf: bytearray, j: int, n: int) -> bool:
        """True if a valid frame is complete somewhere after ``j``: the partial candidate at
        ``j`` is then noise, and waiting for its PL bytes would only delay real frames."""
        for m in _HEADER_RE.finditer(buf, j + 1, n):
            end, frame = self._frame_at(buf, m.start(), n)
            if frame is not None:
                return True
        return False

    def feed(self, data: bytes) -> list[M100Frame]:
        """Consume ``data`` and return the frames it completed, in order."""
        buf = self._buf
        buf += data
        n = len(buf)
        out: list[M100Frame] = []
        i = 0
        search = _HEADER_RE.search
        while True:
            m = search(buf, i)
            if m is None:
                self.bytes_skipped += n - i
                i = n
                break
            j = m.start()
            self.bytes_skipped += j - i
            end, frame = self._frame_at(buf, j, n)
            if frame is not None:
                out.append(frame)
                self.frames_ok += 1
                i = end
                continue
            if end == _NEED_MORE:
                if not self._complete_frame_after(buf, j, n):
                    i = j
                    break
            elif end != _BAD:
                self.frames_bad += 1
            # Skip only the header byte: a real frame may start inside the rejected bytes.
            self.bytes_skipped += 1
            i = j + 1
        if i:
            del buf[:i]
        return out
