"""The tracker's MQTT client (paho-mqtt 2, MQTT 5 persistent session).

It runs in a process of its own (:mod:`tracker.ingest.netproc`), so that reading and
decoding packets never competes with the worker for one interpreter lock. What arrives
goes to ``sink`` as ``(topic, payload, packet id, qos)``, nothing more. PUBACKs are sent
by hand (``manual_ack``), when the tracker says the batch holding the message has
committed, so a tracker killed mid-batch gets the message again from the broker.
"""

from __future__ import annotations

import logging
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol.topics import ROOT, VERSION

if TYPE_CHECKING:
    from tracker.config import MqttSettings

log = logging.getLogger(__name__)

#: Everything the controllers publish: events, state snapshots, status.
FILTERS = [
    (f"{ROOT}/{VERSION}/+/+/evt/+", 1),
    (f"{ROOT}/{VERSION}/+/+/state", 1),
    (f"{ROOT}/{VERSION}/+/+/status", 1),
]
#: The broker drops anything bigger than this for us; a bigger message that does arrive
#: is refused and counted by the pipeline (protocol.envelope.MAX_PAYLOAD is 64 KiB).
MAX_PACKET = 16 * 1024 * 1024
#: a PUBACK: packet type 4, remaining length 2, the packet id (reason omitted: success)
_PUBACK = struct.Struct("!BBH")
PUBACK = 0x40


#: what arrives: (topic, payload, packet id, qos)
Sink = Callable[[bytes, bytes, int, int], None]


@dataclass(frozen=True)
class Endpoint:
    """Everything the MQTT process needs to connect (the password read from its file),
    as plain values that travel as JSON."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    client_id: str
    keepalive_s: int
    session_expiry_s: int
    v5: bool

    @classmethod
    def of(cls, settings: MqttSettings) -> Endpoint:
        host, port, tls, user, password = settings.parts()
        return cls(
            host=host,
            port=port,
            tls=tls,
            username=user,
            password=password,
            ca_file=str(settings.ca_file) if settings.ca_file else None,
            cert_file=str(settings.cert_file) if settings.cert_file else None,
            key_file=str(settings.key_file) if settings.key_file else None,
            client_id=settings.client_id,
            keepalive_s=settings.keepalive_s,
            session_expiry_s=settings.session_expiry_s,
            v5=settings.protocol == "5",
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Link:
    """The paho client. ``on_state`` hears ``connected`` (with session present or not),
    ``disconnected`` and ``subscribed``."""

    def __init__(self, endpoint: Endpoint, sink: Sink) -> None:
        self.endpoint = settings = endpoint
        self.sink = sink
        self.on_state: Callable[[str, bool], None] = lambda what, flag: None
        self.connected = threading.Event()
        self._warned = False
        self._host, self._port = settings.host, settings.port
        self._v5 = settings.v5
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
            # 3.1.1: the persistent session is clean_session=False
            clean_session=None if self._v5 else False,
            manual_ack=True,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        if settings.username:
            self.client.username_pw_set(settings.username, settings.password)
        if settings.tls or settings.ca_file:
            self.client.tls_set(
                ca_certs=settings.ca_file,
                certfile=settings.cert_file,
                keyfile=settings.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_subscribe = self._on_subscribe

    def start(self) -> None:
        if self._v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.endpoint.session_expiry_s
            props.MaximumPacketSize = MAX_PACKET
            self.client.connect_async(
                self._host,
                self._port,
                keepalive=self.endpoint.keepalive_s,
                clean_start=False,
                properties=props,
            )
        else:
            self.client.connect_async(self._host, self._port, keepalive=self.endpoint.keepalive_s)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    # -- network thread -----------------------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("broker %s:%s refused the tracker: %s", self._host, self._port, reason)
            return
        log.info(
            "connected to %s:%s (session present: %s)",
            self._host,
            self._port,
            flags.session_present,
        )
        self._warned = False
        client.subscribe(FILTERS)
        self.connected.set()
        self.on_state("connected", bool(flags.session_present))

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        if any(r.is_failure for r in reasons):
            log.error("the broker refused the tracker's subscriptions: %s", reasons)
            return
        log.info(
            "subscribed to %s on %s:%s: ready",
            ", ".join(f for f, _ in FILTERS),
            self._host,
            self._port,
        )
        self.on_state("subscribed", True)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        if not self._warned:
            log.warning("cannot reach the broker at %s:%s; retrying", self._host, self._port)
            self._warned = True

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if self.connected.is_set():
            log.warning("disconnected from the broker: %s", reason)
        self.connected.clear()
        self.on_state("disconnected", False)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        # the topic as it came (paho's ``topic`` decodes it, and fails on bad UTF-8)
        self.sink(msg._topic, msg.payload, msg.mid, msg.qos)

    # -- any thread -----------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, retain: bool) -> bool:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.warning("could not publish on %s: %s", topic, mqtt.error_string(info.rc))
            return False
        return True

    def ack(self, acks: list[tuple[int, int]]) -> None:
        """PUBACK each QoS 1 message (and PUBCOMP a QoS 2 one) of a committed batch.

        paho sends each ``ack()`` as a write of its own and wakes its network thread for
        each; a batch of a thousand made that the costliest part of this process. So the
        PUBACKs of a batch go to paho's send queue as one write, through its private
        ``_packet_queue``, exactly as ``ack()`` would queue them one by one; without it
        (another paho), one by one."""
        ones = [mid for mid, qos in acks if qos == 1]
        queue = getattr(self.client, "_packet_queue", None)
        if ones and queue is not None:
            queue(PUBACK, b"".join(_PUBACK.pack(0x40, 2, mid) for mid in ones), 0, 1)
        else:
            for mid in ones:
                self.client.ack(mid, 1)
        for mid, qos in acks:
            if qos == 2:
                self.client.ack(mid, 2)
