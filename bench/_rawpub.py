"""A lean MQTT 5 publisher for the load generators: QoS 1 PUBLISH packets encoded before
the clock starts, written to the broker in large writes, their PUBACKs counted by a
reader thread.

Why not paho here: in paho every ``publish`` is a few tens of microseconds of Python,
plus a wake-up of its network thread and a write of its own, and each PUBACK walks the
in-flight messages. With four controllers flooding, the generators alone took about one
and a half of this machine's two cores, which left the tracker (the thing measured) and
the baseline subscriber what remained. The broker sees the same packets either way: a
CONNECT (MQTT 5, clean start), then QoS 1 PUBLISHes with distinct packet ids, each
answered by a PUBACK. ``--publisher paho`` in ``bench/ingest.py`` still runs the
paho-based publisher for comparison.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable

#: Packet ids cycle over 1..65535; fewer than this many may be unacknowledged at once,
#: so no id is reused while it is still in flight (mosquitto's receive maximum is
#: 65535 with ``max_inflight_messages 0``).
WINDOW = 20_000
CHUNK = 256 * 1024


def varint(n: int) -> bytes:
    """The MQTT variable byte integer."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(s: str) -> bytes:
    b = s.encode()
    return len(b).to_bytes(2, "big") + b


def connect_packet(client_id: str) -> bytes:
    # protocol name, level 5, flags: clean start; keep alive 0 (no PINGREQ needed); no
    # properties; payload: the client id
    var = _utf8("MQTT") + bytes([5, 0x02]) + (0).to_bytes(2, "big") + varint(0)
    body = var + _utf8(client_id)
    return b"\x10" + varint(len(body)) + body


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    body = _utf8(topic) + packet_id.to_bytes(2, "big") + varint(0) + payload
    return b"\x32" + varint(len(body)) + body  # PUBLISH, QoS 1


def _packets(data: bytearray) -> Iterable[tuple[int, int, int]]:
    """(type byte, start, end) of every whole packet at the front of ``data``."""
    pos = 0
    while pos + 2 <= len(data):
        n, shift, i = 0, 0, pos + 1
        while True:
            if i >= len(data):
                return
            b = data[i]
            n |= (b & 0x7F) << shift
            shift += 7
            i += 1
            if not b & 0x80:
                break
        if i + n > len(data):
            return
        yield data[pos], i, i + n
        pos = i + n


class RawPublisher:
    """One connection: ``connect()``, then ``send(messages)``; ``acked`` counts PUBACKs."""

    def __init__(self, host: str, port: int, client_id: str) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self.sock: socket.socket | None = None
        self.sent = 0
        self.acked = 0
        self.error: str | None = None
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None

    def connect(self, timeout: float = 10.0) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(connect_packet(self.client_id))
        buf = bytearray()
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("the broker closed the connection before CONNACK")
            buf += chunk
            for kind, start, end in _packets(buf):
                if kind != 0x20:
                    raise ConnectionError(f"expected CONNACK, got packet type {kind:#x}")
                if buf[start + 1] != 0:
                    raise ConnectionError(f"the broker refused the connection: {buf[start + 1]}")
                rest = buf[end:]
                sock.settimeout(None)
                self.sock = sock
                self._reader = threading.Thread(target=self._read, args=(rest,), daemon=True)
                self._reader.start()
                return

    def _read(self, buf: bytearray) -> None:
        assert self.sock is not None
        try:
            while True:
                got = 0
                used = 0
                for kind, _start, end in _packets(buf):
                    if kind & 0xF0 == 0x40:  # PUBACK
                        got += 1
                    elif kind & 0xF0 == 0xE0:  # DISCONNECT from the broker
                        raise ConnectionError("the broker sent DISCONNECT")
                    used = end
                del buf[:used]
                if got:
                    with self._cond:
                        self.acked += got
                        self._cond.notify_all()
                chunk = self.sock.recv(65536)
                if not chunk:
                    self.error = "the broker closed the connection"
                    return
                buf += chunk
        except OSError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        except ConnectionError as exc:
            self.error = str(exc)
        finally:
            with self._cond:
                self._cond.notify_all()

    def encode(self, messages: Iterable[tuple[str, bytes]], first: int = 0) -> list[bytes]:
        """The PUBLISH packets for ``messages``, numbered on from message ``first``."""
        return [
            publish_packet(topic, payload, (first + i) % 65535 + 1)
            for i, (topic, payload) in enumerate(messages)
        ]

    def send(self, packets: list[bytes]) -> None:
        """Write ``packets``, in large writes, never more than ``WINDOW`` unacknowledged."""
        assert self.sock is not None
        i = 0
        while i < len(packets):
            with self._cond:
                while self.sent - self.acked >= WINDOW and self.error is None:
                    self._cond.wait(1.0)
                if self.error is not None:
                    raise ConnectionError(self.error)
                room = WINDOW - (self.sent - self.acked)
            out = bytearray()
            j = i
            while j < len(packets) and j - i < room and len(out) < CHUNK:
                out += packets[j]
                j += 1
            self.sock.sendall(out)
            with self._cond:
                self.sent += j - i
            i = j

    def wait_acked(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.acked < self.sent and self.error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return self.acked >= self.sent

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.sendall(b"\xe0\x00")  # DISCONNECT, normal
            except OSError:
                pass
            self.sock.close()
            self.sock = None
