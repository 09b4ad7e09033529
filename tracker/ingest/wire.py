"""Frames between the tracker and its MQTT process (:mod:`tracker.ingest.netproc`).

Each frame is one kind byte, a 4-byte big-endian length, then the body. The two ends run
the same code from the same installation, so there is no versioning: a frame that does
not decode is a fault of the tracker itself (:class:`WireError`), never of the network.

To the tracker: ``M`` (messages: for each, topic length, payload length, packet id and
QoS, then the topic and the payload), ``C`` (connected; body ``1`` when the broker kept
the session), ``D`` (disconnected), ``S`` (subscribed).

To the MQTT process: ``I`` (start: the connection settings as JSON), ``A`` (PUBACKs to
send: packet id and QoS each), ``P`` (publish at QoS 1: retain flag, topic length, the
topic, the payload), ``Q`` (disconnect and exit).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO

HEADER = struct.Struct("!cI")
MESSAGE = struct.Struct("!HIHB")  # topic length, payload length, packet id, QoS
ACK = struct.Struct("!HB")  # packet id, QoS
PUBLISH = struct.Struct("!BH")  # retain, topic length

MESSAGES, CONNECTED, DISCONNECTED, SUBSCRIBED = b"M", b"C", b"D", b"S"
INIT, ACKS, PUBLISH_KIND, QUIT = b"I", b"A", b"P", b"Q"


class WireError(ValueError):
    """A frame that does not decode."""


def frame(kind: bytes, body: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(body)) + body


def read_frame(stream: BinaryIO) -> tuple[bytes, bytes] | None:
    """The next frame, or None at the end of the stream (the other end is gone)."""
    head = _read_exactly(stream, HEADER.size)
    if head is None:
        return None
    kind, size = HEADER.unpack(head)
    body = _read_exactly(stream, size) if size else b""
    if body is None:
        raise WireError(f"the stream ended inside a {kind!r} frame of {size} bytes")
    return kind, body


def _read_exactly(stream: BinaryIO, n: int) -> bytes | None:
    parts: list[bytes] = []
    got = 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            if got:
                raise WireError(f"the stream ended after {got} of {n} bytes")
            return None
        parts.append(chunk)
        got += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def encode_messages(items: Iterable[tuple[bytes, bytes, int, int]]) -> bytes:
    """One ``M`` frame for ``(topic, payload, packet id, qos)`` items."""
    parts: list[bytes] = []
    pack = MESSAGE.pack
    for topic, payload, mid, qos in items:
        parts += (pack(len(topic), len(payload), mid, qos), topic, payload)
    return frame(MESSAGES, b"".join(parts))


def decode_messages(body: bytes) -> Iterator[tuple[bytes, bytes, int, int]]:
    view = memoryview(body)
    at, end, size = 0, len(body), MESSAGE.size
    unpack = MESSAGE.unpack_from
    while at < end:
        if end - at < size:
            raise WireError("a message header is cut short")
        tlen, plen, mid, qos = unpack(view, at)
        at += size
        if at + tlen + plen > end:
            raise WireError("a message is cut short")
        topic = bytes(view[at : at + tlen])
        at += tlen
        payload = bytes(view[at : at + plen])
        at += plen
        yield topic, payload, mid, qos


def encode_acks(acks: Iterable[tuple[int, int]]) -> bytes:
    return frame(ACKS, b"".join(ACK.pack(mid, qos) for mid, qos in acks))


def decode_acks(body: bytes) -> list[tuple[int, int]]:
    if len(body) % ACK.size:
        raise WireError("an ack frame has a partial entry")
    return list(ACK.iter_unpack(body))


def encode_publish(topic: str, payload: bytes, *, retain: bool) -> bytes:
    t = topic.encode("utf-8")
    return frame(PUBLISH_KIND, PUBLISH.pack(1 if retain else 0, len(t)) + t + payload)


def decode_publish(body: bytes) -> tuple[str, bytes, bool]:
    if len(body) < PUBLISH.size:
        raise WireError("a publish frame is cut short")
    retain, tlen = PUBLISH.unpack_from(body)
    start = PUBLISH.size
    if len(body) < start + tlen:
        raise WireError("a publish frame's topic is cut short")
    try:
        topic = body[start : start + tlen].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError(f"a publish frame's topic is not UTF-8: {exc}") from None
    return topic, body[start + tlen :], bool(retain)
