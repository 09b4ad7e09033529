"""The tracker's MQTT process: ``python -m tracker.ingest.netproc``, started and fed by
:class:`tracker.ingest.link.NetLink` over its stdin and stdout (:mod:`tracker.ingest.wire`).

Reading, parsing and matching MQTT packets costs about as much CPU as applying the events;
in a process of its own it has a core of its own, and the tracker's worker keeps the
interpreter lock to itself. This process holds no state that matters: it never
acknowledges anything on its own, so when it dies the broker delivers again whatever the
tracker had not committed. It ends when the tracker tells it to or when its stdin closes
(the tracker is gone, even by kill -9); it ignores SIGINT and SIGTERM, which a terminal or
a service manager sends to the whole group, so that the tracker decides when it stops.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from typing import BinaryIO

from tracker.ingest import wire
from tracker.ingest.mqtt import Endpoint, Link

log = logging.getLogger("tracker.ingest.netproc")


class Outgoing:
    """What goes to the tracker, in arrival order. The network thread only appends; one
    writer thread sends everything waiting in one write, so a flood travels in large
    frames and a lone alarm goes at once."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._items: list[tuple[bytes, bytes, int, int] | bytes] = []
        self._cond = threading.Condition()
        self._closed = False

    def message(self, topic: bytes, payload: bytes, mid: int, qos: int) -> None:
        with self._cond:
            self._items.append((topic, payload, mid, qos))
            if len(self._items) == 1:
                self._cond.notify()

    def state(self, what: str, flag: bool) -> None:
        kind = {
            "connected": wire.CONNECTED,
            "disconnected": wire.DISCONNECTED,
            "subscribed": wire.SUBSCRIBED,
        }[what]
        with self._cond:
            self._items.append(wire.frame(kind, b"1" if flag else b"0"))
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closed:
                    self._cond.wait()
                items, self._items = self._items, []
                if not items and self._closed:
                    return
            self._write(_encode(items))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]


def _encode(items: list[tuple[bytes, bytes, int, int] | bytes]) -> bytes:
    out: list[bytes] = []
    run: list[tuple[bytes, bytes, int, int]] = []
    for item in items:
        if isinstance(item, bytes):
            if run:
                out.append(wire.encode_messages(run))
                run = []
            out.append(item)
        else:
            run.append(item)
    if run:
        out.append(wire.encode_messages(run))
    return b"".join(out)


def serve(inp: BinaryIO, out_fd: int) -> int:
    first = wire.read_frame(inp)
    if first is None:
        return 0
    kind, body = first
    if kind != wire.INIT:
        raise wire.WireError(f"expected the start frame, got {kind!r}")
    init = json.loads(body)
    logging.basicConfig(
        level=init.get("log_level", logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    outgoing = Outgoing(out_fd)
    link = Link(Endpoint(**init["endpoint"]), outgoing.message)
    link.on_state = outgoing.state
    writer = threading.Thread(target=outgoing.run, name="to-tracker", daemon=True)
    writer.start()
    link.start()
    try:
        while (got := wire.read_frame(inp)) is not None:
            kind, body = got
            if kind == wire.ACKS:
                link.ack(wire.decode_acks(body))
            elif kind == wire.PUBLISH_KIND:
                topic, payload, retain = wire.decode_publish(body)
                link.publish(topic, payload, retain=retain)
            elif kind == wire.QUIT:
                break
            else:
                raise wire.WireError(f"unknown frame {kind!r}")
    finally:
        link.stop()
        outgoing.close()
        writer.join(5)
    return 0


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The frames own the real stdout; anything else printed goes to stderr.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        return serve(sys.stdin.buffer, out_fd)
    except BrokenPipeError:
        return 0  # the tracker is gone
    except wire.WireError as exc:
        log.error("the tracker's MQTT process stops: %s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
