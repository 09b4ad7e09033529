"""The tracker's MQTT side (paho-mqtt 2, MQTT 5 persistent session).

The network thread does nothing but stamp each message with its receipt time and put it
in the :class:`~tracker.ingest.pipeline.Inbox`. PUBACKs are sent by hand
(``manual_ack``) after the batch holding the message has committed, so a tracker killed
mid-batch gets the message again from the broker when it comes back.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol.topics import ROOT, VERSION
from tracker.clock import Clock
from tracker.config import MqttSettings
from tracker.ingest.pipeline import Inbox, Message, Publisher

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


class Link(Publisher):
    def __init__(self, settings: MqttSettings, inbox: Inbox, clock: Clock) -> None:
        self.settings = settings
        self.inbox = inbox
        self.clock = clock
        self.connected = threading.Event()
        self._warned = False
        host, port, tls, user, password = settings.parts()
        self._host, self._port = host, port
        self._v5 = settings.protocol == "5"
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
        if user:
            self.client.username_pw_set(user, password)
        if tls or settings.ca_file:
            self.client.tls_set(
                ca_certs=str(settings.ca_file) if settings.ca_file else None,
                certfile=str(settings.cert_file) if settings.cert_file else None,
                keyfile=str(settings.key_file) if settings.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = threading.Event()

    def start(self) -> None:
        if self._v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.settings.session_expiry_s
            props.MaximumPacketSize = MAX_PACKET
            self.client.connect_async(
                self._host,
                self._port,
                keepalive=self.settings.keepalive_s,
                clean_start=False,
                properties=props,
            )
        else:
            self.client.connect_async(self._host, self._port, keepalive=self.settings.keepalive_s)
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
        self.subscribed.set()

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

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        self.inbox.put(
            Message(
                topic=msg.topic,
                payload=bytes(msg.payload),
                received=self.clock.now(),
                mono=self.clock.monotonic(),
                mid=msg.mid,
                qos=msg.qos,
            )
        )

    # -- worker thread ------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, retain: bool) -> bool:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.warning("could not publish on %s: %s", topic, mqtt.error_string(info.rc))
            return False
        return True

    def ack(self, messages: Iterable[Message]) -> None:
        for msg in messages:
            if msg.qos > 0:
                self.client.ack(msg.mid, msg.qos)
