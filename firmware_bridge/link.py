"""The MQTT link (paho-mqtt 2): connection with retry in the background, last will on
``status``, the sender that drains the outbox, acks and commands coming back.

The controller's rules never wait for this: the link may be down for hours (a Pi often
boots before its network) and everything is sent, in order and alarms first, when it
comes back.
"""

from __future__ import annotations

import logging
import ssl
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware_bridge.config import Config, broker_parts
from firmware_bridge.outbox import Outbox
from protocol import topics
from protocol.envelope import MAX_PAYLOAD

log = logging.getLogger(__name__)

#: Published but not yet acknowledged by the broker (PUBACK), at most.
WINDOW = 200
#: How long the sender waits after connecting for the retained ack before resending
#: events that the tracker may already have.
ACK_GRACE_S = 5.0
#: With protocol "auto", how long an MQTT 5 CONNECT may go unanswered before 3.1.1 is tried.
CONNACK_WAIT_S = 5.0
#: MQTT 5 Maximum Packet Size asked of the broker: the largest payload the bridge reads
#: (protocol.envelope.MAX_PAYLOAD) plus room for the header, topic and properties. The
#: broker drops a bigger message rather than sending it, so none is ever read into memory.
MAX_PACKET = MAX_PAYLOAD + 4096


class Link:
    def __init__(
        self,
        cfg: Config,
        outbox: Outbox,
        *,
        on_command: Callable[[str, bytes], None],
        on_ack: Callable[[str, bytes], tuple[int, int] | None],
        on_connection: Callable[[bool], None] = lambda up: None,
        client_id: str | None = None,
        seen_before: int = 0,
    ) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.on_command = on_command
        self.on_ack = on_ack
        self.on_connection = on_connection
        self.status_topic = topics.status_topic(cfg.site, cfg.room)
        self.ack_topic = topics.ack_topic(cfg.site, cfg.room)
        self.cmd_filter = topics.command_filter(cfg.site, cfg.room)
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._dirty = True
        self._inflight: set[int] = set()
        self._acked: dict[int, int] = {}
        # Rows up to here may have reached the tracker: earlier boots' rows now, and
        # every row this process sends from then on.
        self._seen_high = seen_before
        self._grace_high = seen_before
        self._to_prune: dict[int, int] = {}
        self._early: set[int] = set()
        self._cursor = {True: 0, False: 0}
        self._connected_at = 0.0
        self._epoch = 0  # bumps at every (re)connect: resend from the start
        self.sent = 0
        self.state_provider: Callable[[], tuple[str, bytes]] | None = None
        self._state_dirty = threading.Event()
        self._ack_seen = threading.Event()
        self._now = time.monotonic
        self._outstanding_since: float | None = None
        self._socket_open_at: float | None = None
        self._connack_seen = False
        self._resend_after = cfg.mqtt.resend_s
        self._connect_failures = 0

        self._client_id = client_id or cfg.controller
        host, port, tls, user, password = broker_parts(cfg.mqtt.broker)
        self._host, self._port, self._tls = host, port, tls
        self._user = user or cfg.mqtt.username
        self._password = password
        if cfg.mqtt.password_file is not None:
            self._password = cfg.mqtt.password_file.read_text(encoding="utf-8").strip()
        # "auto" speaks MQTT 5 and falls back to 3.1.1 for a broker that refuses it.
        self._v5 = cfg.mqtt.protocol in ("5", "auto")
        self.client = self._make_client()
        self._sender = threading.Thread(target=self._send_loop, name="outbox-sender", daemon=True)

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
            clean_session=None if self._v5 else False,
        )
        client.max_inflight_messages_set(WINDOW)
        client.reconnect_delay_set(min_delay=1, max_delay=max(1, int(self.cfg.mqtt.retry_max_s)))
        client.will_set(self.status_topic, b"offline", qos=1, retain=True)
        if self._user:
            client.username_pw_set(self._user, self._password)
        mq = self.cfg.mqtt
        if self._tls or mq.ca_file:
            client.tls_set(
                ca_certs=str(mq.ca_file) if mq.ca_file else None,
                certfile=str(mq.cert_file) if mq.cert_file else None,
                keyfile=str(mq.key_file) if mq.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_socket_open = self._on_socket_open
        client.on_connect_fail = self._on_connect_fail
        return client

    # -- lifecycle --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        self._connect()
        self._sender.start()

    def _connect(self) -> None:
        props = None
        if self._v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.cfg.mqtt.session_expiry_s
            props.MaximumPacketSize = MAX_PACKET
        self.client.connect_async(
            self._host,
            self._port,
            keepalive=self.cfg.mqtt.keepalive_s,
            clean_start=False if self._v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=props,
        )
        self.client.loop_start()

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        """The broker could not be reached (paho retries with a growing delay). Said at
        the first failure, then at failures 2, 4, 8, ...: the log backs off too."""
        self._connect_failures += 1
        n = self._connect_failures
        if n & (n - 1):
            return
        exc = sys.exc_info()[1]  # paho calls this while handling the connect error
        log.warning(
            "cannot reach broker %s:%s (%s); %d failed attempts, retrying every %s s at most",
            self._host,
            self._port,
            repr(str(exc))[1:-1] if exc is not None else "connection failed",
            n,
            max(1, int(self.cfg.mqtt.retry_max_s)),
        )

    def _on_socket_open(self, client: Any, userdata: Any, sock: Any) -> None:
        self._socket_open_at = self._now()
        self._connack_seen = False

    def _check_connack(self) -> None:
        """Some 3.1.1-only brokers neither answer an MQTT 5 CONNECT nor close: give up
        waiting for the CONNACK after a few seconds."""
        opened = self._socket_open_at
        if opened is not None and not self.connected and self._now() - opened > CONNACK_WAIT_S:
            self._socket_open_at = None
            self._maybe_fall_back()

    def _maybe_fall_back(self) -> bool:
        """With ``protocol = "auto"``, a broker that will not take MQTT 5 gets 3.1.1."""
        if not self._v5 or self.cfg.mqtt.protocol != "auto" or self._stop.is_set():
            return False
        self._v5 = False
        # Not from the network thread: stopping its loop would join itself.
        threading.Thread(target=self._fall_back_to_311, daemon=True).start()
        return True

    def _fall_back_to_311(self) -> None:
        """The broker speaks MQTT 3.1.1 only (amqtt, older appliances): start again."""
        old = self.client
        old.disconnect()
        old.loop_stop()
        if self._stop.is_set():
            return
        log.warning("broker %s:%s refuses MQTT 5; using MQTT 3.1.1", self._host, self._port)
        self.client = self._make_client()
        self._connect()

    def stop(self, timeout: float = 3.0) -> None:
        """Publish ``offline`` (retained), then disconnect cleanly."""
        self._stop.set()
        self.notify()
        if self.connected:
            info = self.client.publish(self.status_topic, b"offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish offline status: %s", exc)
        self.client.disconnect()
        self.client.loop_stop()
        self._sender.join(timeout)

    def notify(self) -> None:
        """New events are in the outbox."""
        with self._wake:
            self._dirty = True
            self._wake.notify()

    def publish_state(self) -> None:
        self._state_dirty.set()
        self.notify()

    # -- paho callbacks (network thread) ----------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connack_seen = True
        if reason.is_failure:
            if reason.value == 0x84 and self._maybe_fall_back():  # unsupported version
                return
            log.warning("broker refused the connection: %s", reason)
            return
        if self._connect_failures:
            log.info(
                "connected to %s:%s after %d failed attempts",
                self._host,
                self._port,
                self._connect_failures,
            )
            self._connect_failures = 0
        else:
            log.info("connected to %s:%s", self._host, self._port)
        client.subscribe([(self.cmd_filter, 1), (self.ack_topic, 1)])
        client.publish(self.status_topic, b"online", qos=1, retain=True)
        with self._wake:
            self._inflight.clear()
            self._early.clear()
            self._cursor = {True: 0, False: 0}
            self._epoch += 1
            self._dirty = True
            self._outstanding_since = None
            self._ack_seen.clear()
            self._socket_open_at = None
            self._grace_high = self._seen_high
            self._connected_at = self._now()
            self._connected.set()
            self._state_dirty.set()
            self._wake.notify()
        self.on_connection(True)

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        was = self.connected
        self._connected.clear()
        with self._wake:
            self._inflight.clear()
            self._wake.notify()
        if not was and not self._connack_seen and client is self.client:
            # Closed after CONNECT without a CONNACK: some 3.1.1-only brokers do that.
            self._maybe_fall_back()
        if was and not self._stop.is_set():
            log.warning("disconnected from broker: %s", reason)
            self.on_connection(False)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._wake:
            if mid in self._inflight:
                self._inflight.discard(mid)
            else:  # PUBACK came before the sender recorded the mid, or an untracked one
                if len(self._early) > 1000:
                    self._early.clear()
                self._early.add(mid)
            self._wake.notify()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            if msg.topic == self.ack_topic:
                covered = self.on_ack(msg.topic, msg.payload)
                if covered is not None:
                    self._record_ack(*covered)
                if msg.retain:
                    # The retained ack is the newest; acks queued in the session while
                    # the bridge was away come before it and are older.
                    self._ack_seen.set()
                self.notify()
            else:
                self.on_command(msg.topic, msg.payload)
        except Exception:  # a bad message must not kill the network thread
            log.exception("message on %r could not be handled", msg.topic)

    # -- sender -----------------------------------------------------------------------

    def _send_loop(self) -> None:
        """No error ends the sender: it is logged and the loop carries on (a dead sender
        would leave the status ``online`` with nothing published ever again)."""
        while not self._stop.is_set():
            try:
                if not self._send_once():
                    return
            except Exception:
                log.exception("the outbox sender failed; carrying on")
                self._stop.wait(1.0)
                self.notify()

    def _send_once(self) -> bool:
        """One round of the sender; False once the link is stopping."""
        with self._wake:
            while not self._stop.is_set() and not (
                self.connected
                and (self._dirty or self._state_dirty.is_set())
                and len(self._inflight) < WINDOW
            ):
                self._wake.wait(0.5)
                self._maybe_resend()
                self._check_connack()
            if self._stop.is_set():
                return False
            epoch = self._epoch
        self._prune()
        if self._state_dirty.is_set() and self.state_provider is not None:
            self._state_dirty.clear()
            topic, payload = self.state_provider()
            self.client.publish(topic, payload, qos=1, retain=True)
        if self._in_ack_grace():
            self._ack_seen.wait(0.05)
            return True
        with self._wake:
            self._dirty = False
        self._send_batch(epoch)
        return True

    def _in_ack_grace(self) -> bool:
        """Right after a (re)connect, events sent before (by an earlier connection or an
        earlier boot) may already be acknowledged: hold them until the retained ack
        has come (or a few seconds passed), so they are pruned rather than sent again."""
        if self._ack_seen.is_set() or self._now() - self._connected_at >= ACK_GRACE_S:
            return False
        lowest, _ = self.outbox.rowid_range()
        return 0 < lowest <= self._grace_high

    def _record_ack(self, boot: int, seq: int) -> None:
        """Note a verified ack (network thread: cheap, no disk). The sender prunes the
        outbox and never sends what an ack already covers."""
        with self._wake:
            if seq > self._acked.get(boot, 0):
                self._acked[boot] = seq
                self._to_prune[boot] = seq
                if self._outstanding_since is not None:
                    self._outstanding_since = self._now()
                self._resend_after = self.cfg.mqtt.resend_s
                self._dirty = True
                self._wake.notify()

    def _prune(self) -> None:
        with self._wake:
            todo, self._to_prune = self._to_prune, {}
        for boot, seq in todo.items():
            try:
                self.outbox.ack(boot, seq)
            except Exception:
                with self._wake:  # pruned at the next round
                    self._to_prune[boot] = max(seq, self._to_prune.get(boot, 0))
                raise

    def _maybe_resend(self) -> None:
        # QoS 1 only reaches the broker; if no ack came for a while although events are
        # waiting, send them all again (the tracker drops identical duplicates). The
        # interval doubles while nothing answers, up to an hour. Called with _wake held.
        since = self._outstanding_since
        if not self.connected or since is None or self._now() - since < self._resend_after:
            return
        self._outstanding_since = None
        self._resend_after = min(self._resend_after * 2, 3600.0)
        if self.outbox.depth():
            log.info("no ack for %.0f s: resending the outbox", self._now() - since)
            self._cursor = {True: 0, False: 0}
            self._epoch += 1
            self._dirty = True

    def _send_batch(self, epoch: int) -> None:
        # Alarms first, then everything else, each in creation order.
        for alarm in (True, False):
            room = WINDOW - len(self._inflight)
            if room <= 0:
                self.notify()
                return
            rows = self.outbox.after(self._cursor[alarm], alarm=alarm, limit=room)
            for row in rows:
                if not self.connected or epoch != self._epoch:
                    return
                if row.seq <= self._acked.get(row.boot, 0):
                    self._cursor[alarm] = row.rowid  # covered by an ack not yet pruned
                    continue
                info = self.client.publish(row.topic, row.payload, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    return  # connection lost: everything is resent on reconnect
                with self._wake:
                    if epoch != self._epoch:
                        return
                    if info.mid in self._early:
                        self._early.discard(info.mid)
                    else:
                        self._inflight.add(info.mid)
                    self._cursor[alarm] = row.rowid
                    self._seen_high = max(self._seen_high, row.rowid)
                    if self._outstanding_since is None:
                        self._outstanding_since = self._now()
                self.sent += 1
            if len(rows) == room:
                self.notify()  # more to come
                return
