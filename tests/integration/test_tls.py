"""The bridge against a Mosquitto that wants TLS and a password, as in deploy/mosquitto."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import ssl
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from protocol.envelope import MAX_PAYLOAD, decode_event
from simulators.clock import SimClock
from simulators.room import SimulatedRoom
from tests.integration.room_fixtures import FRIDAY_10, room_config
from tests.integration.test_deploy import deployed_broker
from tests.support import Mosquitto, wait_until


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certs(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "IronRoom test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.crt", folder / "broker.crt", folder / "broker.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_pem_key(key))
    return paths


def _passwords(folder: Path, users: dict[str, str]) -> Path:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.fail("mosquitto_passwd is missing: apt-get install mosquitto")
    path = folder / "passwd"
    path.touch(mode=0o600)
    for user, password in users.items():
        subprocess.run([tool, "-b", str(path), user, password], check=True)
    return path


@pytest.fixture
def tls_broker(tmp_path: Path):
    folder = tmp_path / "pki"
    folder.mkdir()
    tls = _certs(folder)
    passwd = _passwords(folder, {"room-101-ctl": "s3cret-ctl", "tracker": "s3cret-trk"})
    mq = Mosquitto(tmp_path / "mosquitto", tls=tls, password_file=passwd)
    mq.start()
    try:
        yield mq, tls[0]
    finally:
        mq.stop()


def _room(tmp_path: Path, port: int, ca: Path, password: str) -> SimulatedRoom:
    cfg = room_config(tmp_path, f"mqtts://room-101-ctl@127.0.0.1:{port}")
    secret = tmp_path / "mqtt.password"
    secret.write_text(password + "\n")
    cfg = replace(cfg, mqtt=replace(cfg.mqtt, ca_file=ca, password_file=secret))
    return SimulatedRoom(cfg, clock=SimClock(dt.datetime.fromisoformat(FRIDAY_10)), badges=False)


def test_tls_and_password(tmp_path: Path, tls_broker) -> None:
    broker, ca = tls_broker
    got: list[tuple[str, bytes]] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="tracker-test")
    sub.username_pw_set("tracker", "s3cret-trk")
    sub.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
    sub.on_connect = lambda c, *a: c.subscribe("ironroom/#", qos=1)
    sub.on_message = lambda c, u, m: got.append((m.topic, bytes(m.payload)))
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    room = _room(tmp_path, broker.port, ca, "s3cret-ctl")
    try:
        room.start()
        wait_until(lambda: room.bridge.link.connected, 15, "a TLS connection")
        started = wait_until(
            lambda: [p for t, p in got if t.endswith("/evt/controller")], 10, "the started event"
        )
        ev = decode_event(room.bridge.key, "ironroom/v1/hq/room-101/evt/controller", started[0])
        assert ev.type == "controller.started"
    finally:
        room.close()
        sub.disconnect()
        sub.loop_stop()


def test_wrong_password_is_refused_and_rules_still_work(
    tmp_path: Path, tls_broker, caplog: pytest.LogCaptureFixture
) -> None:
    broker, ca = tls_broker
    room = _room(tmp_path, broker.port, ca, "wrong")
    try:
        room.start()
        room.clock.advance_to(dt.datetime.fromisoformat("2026-11-27T23:30:00+08:00"))
        room.gpio.open("door")
        assert room.gpio.siren
        wait_until(lambda: room.bridge.outbox.depth() >= 3, 5, "events kept in the outbox")
        assert not room.bridge.link.connected
        wait_until(lambda: "refused the connection" in caplog.text, 10, "the refusal")
        # A refused login is not a reason to give up MQTT 5.
        assert room.bridge.link.client.protocol == 5
    finally:
        room.close()


# -- the deployed broker config ------------------------------------------------------------

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
EVT = "ironroom/v1/hq/room-101/evt/controller"


def _deployed_broker(tmp_path: Path, tls: tuple[Path, Path, Path], passwd: Path) -> Mosquitto:
    """deploy/mosquitto/ironroom.conf and ironroom.acl as shipped, laid out as on a Debian
    host (tests/integration/test_deploy.py), with this test's certificates and passwords."""
    etc = tmp_path / "etc"
    (etc / "certs").mkdir(parents=True)
    for path, name in zip(tls, ("ca.crt", "broker.crt", "broker.key"), strict=True):
        shutil.copyfile(path, etc / "certs" / name)
    shutil.copyfile(passwd, etc / "ironroom.passwd")
    shutil.copyfile(DEPLOY / "ironroom.acl", etc / "ironroom.acl")
    return deployed_broker(etc, tmp_path / "var", tmp_path / "mosquitto")


def _client(name: str, password: str, port: int, ca: Path) -> tuple[mqtt.Client, threading.Event]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{port}")
    client.username_pw_set(name, password)
    client.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
    gone = threading.Event()
    client.on_disconnect = lambda *a: gone.set()
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert connected.wait(10), f"{name} could not connect"
    return client, gone


def test_the_deployed_broker_config_refuses_oversized_messages(tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    folder.mkdir()
    tls = _certs(folder)
    passwd = _passwords(folder, {"room-101-ctl": "s3cret-ctl", "tracker": "s3cret-trk"})
    broker = _deployed_broker(tmp_path, tls, passwd)
    broker.start()
    got: list[bytes] = []
    subscribed = threading.Event()
    tracker, _ = _client("tracker", "s3cret-trk", broker.port, tls[0])
    controller, controller_gone = _client("room-101-ctl", "s3cret-ctl", broker.port, tls[0])
    try:
        tracker.on_message = lambda c, u, m: got.append(bytes(m.payload))
        tracker.on_subscribe = lambda *a: subscribed.set()
        tracker.subscribe("ironroom/v1/+/+/evt/+", qos=1)
        assert subscribed.wait(10)

        largest = b"a" * MAX_PAYLOAD  # the largest message IronRoom sends
        over = b"b" * (MAX_PAYLOAD + 1)
        for payload in (b"small", largest, over, b"after"):
            controller.publish(EVT, payload, qos=1).wait_for_publish(10)
        # in order from one client: once "after" is there, "over" would have been too
        wait_until(lambda: b"after" in got, 10, "the message after the oversized one")
        assert got == [b"small", largest, b"after"], [len(p) for p in got]
        assert not controller_gone.is_set()

        # a packet over max_packet_size: the sender is cut off, nothing reaches anyone
        controller.publish(EVT, b"c" * (200 * 1024), qos=1)
        assert controller_gone.wait(10), "the broker kept a client sending 200 KiB"
        late, _ = _client("room-101-ctl", "s3cret-ctl", broker.port, tls[0])
        late.publish(EVT, b"later", qos=1).wait_for_publish(10)
        wait_until(lambda: b"later" in got, 10, "a message from the reconnected controller")
        assert got == [b"small", largest, b"after", b"later"], [len(p) for p in got]
        late.disconnect()
        late.loop_stop()
    finally:
        for client in (tracker, controller):
            client.disconnect()
            client.loop_stop()
        broker.stop()
