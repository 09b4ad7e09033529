"""The tracker's side of its MQTT process (:mod:`tracker.ingest.netproc`).

:class:`NetLink` starts the process, stamps what it reads from it with the receipt time
of the tracker's own (injected) clock, and puts it in the :class:`Inbox`; the worker's
PUBACKs and publications go back the same way. When the process dies, it is started
again (the broker delivers again whatever was not acknowledged) and ``connected`` is
clear meanwhile, so nothing is reported published that was not handed to a client.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterable
from typing import IO

from tracker.clock import Clock
from tracker.config import MqttSettings
from tracker.ingest import wire
from tracker.ingest.mqtt import Endpoint
from tracker.ingest.pipeline import Inbox, Message, Publisher

log = logging.getLogger(__name__)


class NetLink(Publisher):
    def __init__(
        self,
        settings: MqttSettings,
        inbox: Inbox,
        clock: Clock,
        *,
        restart_s: float = 1.0,
    ) -> None:
        self.settings = settings
        self.inbox = inbox
        self.clock = clock
        self.restart_s = restart_s
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        #: how many times the MQTT process was started (1 while the first one lives)
        self.starts = 0
        self._stopping = threading.Event()
        self._wlock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._supervise, name="mqtt-link", daemon=True)

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None else None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._send(wire.frame(wire.QUIT))
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        self._thread.join(10)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)

    # -- the worker's side -----------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, retain: bool) -> bool:
        if not self.connected.is_set():
            log.warning("could not publish on %s: not connected to the broker", topic)
            return False
        return self._send(wire.encode_publish(topic, payload, retain=retain))

    def ack(self, messages: Iterable[Message]) -> None:
        acks = [(msg.mid, msg.qos) for msg in messages if msg.qos > 0]
        if acks:
            # A process that died takes these with it: the broker delivers them again.
            self._send(wire.encode_acks(acks))

    def _send(self, data: bytes) -> bool:
        with self._wlock:
            proc = self._proc
            if proc is None or proc.stdin is None or proc.stdin.closed:
                return False
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
            except (OSError, ValueError):
                return False
        return True

    # -- the reader thread -------------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            try:
                proc = self._spawn()
            except OSError:
                log.exception("could not start the MQTT process; trying again")
                self._stopping.wait(self.restart_s)
                continue
            try:
                assert proc.stdout is not None
                self._read(proc.stdout)
            except wire.WireError:
                log.exception("the MQTT process sent a frame that does not decode")
                proc.kill()
            finally:
                self.connected.clear()
                self.subscribed.clear()
            code = proc.wait()
            if self._stopping.is_set():
                break
            log.error("the MQTT process ended (exit %s); starting it again", code)
            self._stopping.wait(self.restart_s)

    def _spawn(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tracker.ingest.netproc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        init = {
            "endpoint": Endpoint.of(self.settings).to_dict(),
            "log_level": logging.getLogger().getEffectiveLevel(),
        }
        with self._wlock:
            self._proc = proc
            self.starts += 1
        self._send(wire.frame(wire.INIT, json.dumps(init).encode("utf-8")))
        log.info("MQTT process %d started", proc.pid)
        return proc

    def _read(self, stream: IO[bytes]) -> None:
        while (got := wire.read_frame(stream)) is not None:  # type: ignore[arg-type]
            kind, body = got
            if kind == wire.MESSAGES:
                received, mono = self.clock.now(), self.clock.monotonic()
                self.inbox.put_many(
                    [
                        Message(
                            topic=topic.decode("utf-8", "replace"),
                            payload=payload,
                            received=received,
                            mono=mono,
                            mid=mid,
                            qos=qos,
                        )
                        for topic, payload, mid, qos in wire.decode_messages(body)
                    ]
                )
            elif kind == wire.CONNECTED:
                self.connected.set()
            elif kind == wire.DISCONNECTED:
                self.connected.clear()
                self.subscribed.clear()
            elif kind == wire.SUBSCRIBED:
                self.subscribed.set()
            else:
                raise wire.WireError(f"unknown frame {kind!r}")
