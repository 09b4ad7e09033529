"""The deployment as shipped: certificates and credentials made by `ironroom deploy`, run as
an operator runs it, and a Mosquitto started on deploy/mosquitto/ironroom.conf and
ironroom.acl themselves, only their /etc and /var paths moved into the test's folder."""

from __future__ import annotations

import base64
import contextlib
import getpass
import io
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ironroom.deploy import mosquitto_hash
from tests.support import Mosquitto, wait_until

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "mosquitto"
IRONROOM = [sys.executable, "-m", "ironroom.cli"]
ROOMS = {"room-101": "room-101-ctl", "room-102": "room-102-ctl"}
P101, P102 = "ironroom/v1/hq/room-101", "ironroom/v1/hq/room-102"


def ironroom(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*IRONROOM, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def deployed_broker(etc: Path, var: Path, workdir: Path, **switches: str) -> Mosquitto:
    """A Mosquitto (not started) laid out as on a Debian host: a main config like Debian's
    /etc/mosquitto/mosquitto.conf (persistence in ``var``, include_dir ``etc``/conf.d)
    and deploy/mosquitto/ironroom.conf in conf.d with /etc/mosquitto and
    /var/lib/mosquitto moved to ``etc`` and ``var`` and its one listener on a free loopback
    port; ``switches`` set options the shipped file documents (each must be there once).
    It runs as this user: as root, Mosquitto would switch to "mosquitto", who cannot read
    tmp_path."""
    var.mkdir(parents=True, exist_ok=True)
    (etc / "conf.d").mkdir(parents=True, exist_ok=True)
    main = [
        f"user {getpass.getuser()}",
        "persistence true",
        f"persistence_location {var}/",
        "log_dest stderr",
        f"include_dir {etc / 'conf.d'}",
    ]
    broker = Mosquitto(workdir, config="\n".join(main) + "\n")
    text = (DEPLOY / "ironroom.conf").read_text()
    assert text.count("\nlistener 8883\n") == 1, "the shipped listener changed: update this"
    text = text.replace("/etc/mosquitto", str(etc)).replace("/var/lib/mosquitto", str(var))
    text = text.replace("\nlistener 8883\n", f"\nlistener {broker.port} 127.0.0.1\n")
    for key, value in switches.items():
        lines = [line for line in text.splitlines() if line.split(" ", 1)[0] == key]
        assert len(lines) == 1, f"{key} is not in the shipped config once"
        text = text.replace(f"\n{lines[0]}\n", f"\n{key} {value}\n")
    (etc / "conf.d" / "ironroom.conf").write_text(text)
    return broker


@dataclass
class Site:
    broker: Mosquitto
    etc: Path
    pki: Path

    @property
    def ca(self) -> Path:
        return self.pki / "ca.crt"

    def password(self, user: str) -> str:
        return (self.etc / f"{user}.mqtt.password").read_text().strip()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("deploy")
    etc, var = base / "etc", base / "var"
    var.mkdir()
    pki = etc / "certs"
    made = ironroom(
        "deploy", "certs", "--out", pki, "--broker-host", "localhost",
        "--broker-ip", "127.0.0.1", "--client", "room-101-ctl", "--client", "tracker",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    rooms = [f"--room={room}={ctl}" for room, ctl in ROOMS.items()]
    made = ironroom("deploy", "broker", "--out", etc, "--site", "hq", *rooms)
    assert made.returncode == 0, made.stderr
    # the broker runs on the shipped ACL; the one written is compared with it below
    (etc / "ironroom.acl").rename(etc / "written.acl")
    shutil.copyfile(DEPLOY / "ironroom.acl", etc / "ironroom.acl")
    broker = deployed_broker(etc, var, base / "mosquitto")
    broker.start()
    try:
        yield Site(broker, etc, pki)
    finally:
        broker.stop()


# -- the commands -------------------------------------------------------------------------


def test_the_shipped_acl_is_what_deploy_broker_writes(site: Site) -> None:
    assert (site.etc / "written.acl").read_text() == (DEPLOY / "ironroom.acl").read_text()


def test_keys_and_passwords_are_private_and_hashed(site: Site) -> None:
    secret = [
        *site.pki.glob("*.key"),
        *site.etc.glob("*.mqtt.password"),
        site.etc / "ironroom.passwd",
    ]
    assert len(secret) == 4 + 3 + 1
    for path in secret:
        assert path.stat().st_mode & 0o777 == 0o600, path
    for path in site.pki.glob("*.crt"):
        assert path.stat().st_mode & 0o777 == 0o644, path
    users = {}
    for line in (site.etc / "ironroom.passwd").read_text().splitlines():
        user, hashed = line.split(":", 1)
        users[user] = hashed
        password = site.password(user)
        assert password not in hashed and len(password) >= 40
        salt = base64.b64decode(hashed.split("$")[3])
        assert mosquitto_hash(password, salt) == hashed
    assert sorted(users) == ["room-101-ctl", "room-102-ctl", "tracker"]


def test_existing_keys_are_not_overwritten_and_the_ca_is_reused(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    first = ironroom("deploy", "certs", "--out", pki, "--broker-ip", "127.0.0.1")
    assert first.returncode == 0, first.stderr
    keys = {p.name: p.read_bytes() for p in pki.glob("*.key")}
    assert sorted(keys) == ["broker.key", "ca.key"]
    again = ironroom("deploy", "certs", "--out", pki, "--broker-ip", "127.0.0.1")
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr == f"ironroom: {pki / 'broker.key'} exists; refusing to overwrite it\n"
    # a room added later: its certificate from the same CA, nothing else touched
    added = ironroom("deploy", "certs", "--out", pki, "--client", "room-103-ctl")
    assert added.returncode == 0, added.stderr
    assert [json.loads(line)["file"] for line in added.stdout.splitlines()] == [
        str(pki / "room-103-ctl.key"),
        str(pki / "room-103-ctl.crt"),
    ]
    assert {p.name: p.read_bytes() for p in pki.glob("*.key") if p.name in keys} == keys
    forced = ironroom("deploy", "certs", "--out", pki, "--broker-ip", "127.0.0.1", "--force")
    assert forced.returncode == 0, forced.stderr
    assert (pki / "broker.key").read_bytes() != keys["broker.key"]
    assert (pki / "ca.key").read_bytes() == keys["ca.key"]  # --force never replaces the CA


def test_passwords_are_kept_when_a_room_is_added(tmp_path: Path) -> None:
    out = tmp_path / "etc"
    assert ironroom("deploy", "broker", "--out", out, "--site", "hq",
                    "--room", "room-101=room-101-ctl").returncode == 0  # fmt: skip
    before = (out / "room-101-ctl.mqtt.password").read_text()
    two = ["--room", "room-101=room-101-ctl", "--room", "room-102=room-102-ctl"]
    more = ironroom("deploy", "broker", "--out", out, "--site", "hq", *two)
    assert more.returncode == 0, more.stderr
    assert (out / "room-101-ctl.mqtt.password").read_text() == before
    assert "user room-102-ctl" in (out / "ironroom.acl").read_text()
    forced = ironroom("deploy", "broker", "--out", out, "--site", "hq",
                      "--room", "room-101=room-101-ctl", "--force")  # fmt: skip
    assert forced.returncode == 0
    assert (out / "room-101-ctl.mqtt.password").read_text() != before
    assert "room-102" not in (out / "ironroom.acl").read_text()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["certs", "--out", "x"], "nothing to make: give --broker-host/--broker-ip or --client"),
        (["certs", "--out", "x", "--broker-ip", "host"], "--broker-ip 'host' is not an IP address"),
        (["certs", "--out", "x", "--broker-host", "机要.example"],
         "--broker-host '机要.example' is not a host name"),
        (["certs", "--out", "x", "--broker-host", "10.0.0.1"],
         "--broker-host '10.0.0.1' is an address: give it with --broker-ip"),
        (["certs", "--out", "x", "--client", "Room_1"], "client 'Room_1' is not valid"),
        (["certs", "--out", "x", "--client", "ca"], "--client names must be unique"),
        (["certs", "--out", "x", "--client", "t", "--days", "0"], "--days must be from 1 to 3650"),
        (["broker", "--out", "x", "--site", "hq"], "give at least one --room ROOM=CONTROLLER"),
        (["broker", "--out", "x", "--site", "hq", "--room", "room-1"],
         "--room 'room-1': expected ROOM=CONTROLLER"),
        (["broker", "--out", "x", "--site", "HQ", "--room", "r=c"], "site 'HQ' is not valid"),
        (["broker", "--out", "x", "--site", "hq", "--room", "r=c", "--room", "r=d"],
         "room 'r' is given twice"),
        (["broker", "--out", "x", "--site", "hq", "--room", "r=c", "--room", "s=c"],
         "controller 'c' is given twice"),
        (["broker", "--out", "x", "--site", "hq", "--room", "r=tracker"],
         "the tracker user 'tracker' is also a controller"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], error: str
) -> None:
    from ironroom.cli import main

    monkeypatch.chdir(tmp_path)
    rc, err = _stderr_of(main, ["deploy", *args])
    assert rc == 2
    assert err.startswith(f"ironroom: {error}") and err.count("\n") == 1, err
    assert not (tmp_path / "x").exists()


def test_an_out_folder_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    res = ironroom("deploy", "broker", "--out", tmp_path / "file", "--site", "hq",
                   "--room", "r=c")  # fmt: skip
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith("ironroom: ") and res.stderr.count("\n") == 1, res.stderr


def _stderr_of(main: Any, argv: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        rc = main(argv)
    return rc, buf.getvalue()


# -- the broker ---------------------------------------------------------------------------


@dataclass(eq=False)
class Peer:
    """One MQTT 5 client over TLS, verifying the broker against the site CA."""

    user: str | None
    password: str | None
    site: Site
    messages: list[tuple[str, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.connack = threading.Event()
        self.reason: Any = None
        self.suback = threading.Event()
        self.granted: list[Any] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{self.user or 'anon'}-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        if self.user is not None:
            self.client.username_pw_set(self.user, self.password)
        self.client.tls_set(ca_certs=str(self.site.ca), cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", self.site.broker.port)
        self.client.loop_start()
        assert self.connack.wait(10), f"no CONNACK for {self.user}"

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self.reason is None:
            self.reason = reason
        self.connack.set()
        if reason.is_failure:
            client.disconnect()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        self.granted = list(reasons)
        self.suback.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def subscribe(self, *filters: str) -> list[Any]:
        self.suback.clear()
        self.client.subscribe([(f, 1) for f in filters])
        assert self.suback.wait(10), "no SUBACK"
        return self.granted

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published(), topic

    def got(self) -> set[tuple[str, bytes]]:
        with self.lock:
            return set(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def peers(site: Site) -> Iterator[Any]:
    made: list[Peer] = []

    def make(user: str | None, password: str | None = None) -> Peer:
        peer = Peer(user, site.password(user) if password is None and user else password, site)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


@pytest.mark.parametrize(
    ("user", "password"),
    [
        (None, None),  # anonymous
        ("tracker", "wrong"),
        ("room-101-ctl", ""),
        ("nobody", "whatever"),
    ],
)
def test_logins_that_are_refused(site: Site, peers: Any, user: str | None, password: str) -> None:
    peer = peers(user, password)
    assert peer.reason.is_failure, peer.reason
    assert peer.reason.value in (0x86, 0x87), (
        peer.reason
    )  # bad user name or password / not authorized


def test_another_rooms_password_is_not_this_rooms(site: Site, peers: Any) -> None:
    peer = peers("room-101-ctl", site.password("room-102-ctl"))
    assert peer.reason.is_failure
    assert not peers("room-101-ctl").reason.is_failure  # its own works


def test_plain_tcp_to_the_tls_port_is_closed(site: Site) -> None:
    connect = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"  # MQTT 3.1.1 CONNECT, no TLS
    got = b""
    with socket.create_connection(("127.0.0.1", site.broker.port), timeout=10) as sock:
        sock.sendall(connect)
        try:
            while chunk := sock.recv(4096):
                got += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:
            pytest.fail("the broker kept a plain TCP connection open for 10 s")
    assert not got.startswith(b"\x20"), got  # no CONNACK


def test_tls_is_the_only_listener(site: Site) -> None:
    conf = (DEPLOY / "ironroom.conf").read_text().splitlines()
    words = [line.split()[0] for line in conf if line.strip() and not line.startswith("#")]
    assert words.count("listener") == 1 and "port" not in words and "bind_address" not in words
    after = conf[[line.split(" ")[0] for line in conf].index("listener") :]
    assert any(line.startswith("certfile ") for line in after)
    log = wait_until(
        lambda: "listen socket" in (t := site.broker.log.read_text(errors="replace")) and t,
        10,
        "the broker's listener in its log",
    )
    opened = {
        line.rsplit(" ", 1)[-1].rstrip(".")
        for line in log.splitlines()
        if "listen socket on port" in line
    }
    assert opened == {str(site.broker.port)}, log  # nothing on 1883 or anywhere else


def test_each_controller_stays_in_its_own_room(site: Site, peers: Any) -> None:
    """Table of publishes, each by its user; observers with every user's rights subscribe
    to everything. The refused publishes go first, then the allowed ones: once an observer
    has every allowed message it may read, a refused one would have come before it."""
    tracker_obs, c101_obs, c102_obs = peers("tracker"), peers("room-101-ctl"), peers("room-102-ctl")
    for obs in (tracker_obs, c101_obs, c102_obs):
        obs.subscribe("ironroom/#")
    c101_obs.subscribe(f"{P102}/cmd/+", f"{P102}/ack")  # another room's commands, by name
    c101, tracker = peers("room-101-ctl"), peers("tracker")

    refused = [
        (c101, f"{P102}/evt/sensor"),
        (c101, f"{P102}/state"),
        (c101, f"{P102}/status"),
        (c101, f"{P102}/cmd/cabinet.unlock"),
        (c101, f"{P102}/ack"),
        (c101, f"{P101}/cmd/cabinet.unlock"),  # not even commands to itself
        (c101, f"{P101}/ack"),
        (c101, "ironroom/v1/other/room-101/evt/sensor"),  # its room name on another site
        (c101, "elsewhere/evt"),
        (tracker, f"{P101}/evt/sensor"),  # the tracker cannot make events
        (tracker, f"{P102}/state"),
        (tracker, f"{P102}/status"),
    ]
    allowed = [
        (c101, f"{P101}/evt/sensor"),
        (c101, f"{P101}/state"),
        (c101, f"{P101}/status"),
        (tracker, f"{P101}/cmd/cabinet.unlock"),
        (tracker, f"{P101}/ack"),
        (tracker, f"{P102}/cmd/alarm.reset"),
        (tracker, f"{P102}/ack"),
    ]
    for who, topic in [*refused, *allowed]:
        who.publish(topic, f"{who.user} -> {topic}".encode())

    def sent(topic: str) -> tuple[str, bytes]:
        who = next(w for w, t in allowed if t == topic)
        return topic, f"{who.user} -> {topic}".encode()

    expect = {
        tracker_obs: {sent(f"{P101}/evt/sensor"), sent(f"{P101}/state"), sent(f"{P101}/status")},
        c101_obs: {sent(f"{P101}/cmd/cabinet.unlock"), sent(f"{P101}/ack")},
        c102_obs: {sent(f"{P102}/cmd/alarm.reset"), sent(f"{P102}/ack")},
    }
    for obs, want in expect.items():
        wait_until(lambda o=obs, w=want: w <= o.got(), 10, f"what {obs.user} may read")
    for obs, want in expect.items():
        assert obs.got() == want, obs.user


def test_a_controller_gets_its_retained_ack_and_state_survives(site: Site, peers: Any) -> None:
    """The tracker's retained ack reaches the controller when it (re)connects, as after
    a power cut; the controller's retained state reaches a tracker that connects later."""
    peers("tracker").publish(f"{P101}/ack", b"ack-1", retain=True)
    peers("room-101-ctl").publish(f"{P101}/state", b"state-1", retain=True)
    late_ctl, late_trk = peers("room-101-ctl"), peers("tracker")
    late_ctl.subscribe(f"{P101}/ack")
    late_trk.subscribe("ironroom/v1/+/+/state")
    wait_until(lambda: (f"{P101}/ack", b"ack-1") in late_ctl.got(), 10, "the retained ack")
    wait_until(lambda: (f"{P101}/state", b"state-1") in late_trk.got(), 10, "the retained state")
    # leave the module's broker with nothing retained
    peers("tracker").publish(f"{P101}/ack", b"", retain=True)
    peers("room-101-ctl").publish(f"{P101}/state", b"", retain=True)


def test_the_client_certificates_verify_against_the_site_ca(site: Site) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    for name in ("broker", "room-101-ctl", "tracker"):
        res = subprocess.run(
            [openssl, "verify", "-CAfile", str(site.ca), str(site.pki / f"{name}.crt")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert res.returncode == 0, res.stdout + res.stderr


# -- client certificates ------------------------------------------------------------------


def own_broker(site: Site, tmp_path: Path, **switches: str) -> Mosquitto:
    """Another broker on the site's files (a test of its own: nothing retained from the
    others), started."""
    broker = deployed_broker(tmp_path / "etc", tmp_path / "var", tmp_path / "mosquitto",
                             **switches)  # fmt: skip
    shutil.copytree(site.etc, tmp_path / "etc", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("conf.d"))  # fmt: skip
    broker.start()
    return broker


@pytest.fixture
def cert_broker(site: Site, tmp_path: Path) -> Iterator[Mosquitto]:
    """The shipped config with its one documented switch, require_certificate, turned on."""
    broker = own_broker(site, tmp_path, require_certificate="true")
    try:
        yield broker
    finally:
        broker.stop()


def _tls_login(site: Site, port: int, user: str, password: str, cert: str | None) -> Any:
    """The CONNACK reason, or the TLS error that came instead."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-{uuid.uuid4().hex[:6]}",
                         protocol=mqtt.MQTTv5)  # fmt: skip
    client.username_pw_set(user, password)
    certfile = keyfile = None
    if cert is not None:
        certfile, keyfile = str(site.pki / f"{cert}.crt"), str(site.pki / f"{cert}.key")
    client.tls_set(ca_certs=str(site.ca), certfile=certfile, keyfile=keyfile,
                   cert_reqs=ssl.CERT_REQUIRED)  # fmt: skip
    reasons: list[Any] = []
    done = threading.Event()
    client.on_connect = lambda c, u, f, reason, p: (reasons.append(reason), done.set())
    client.on_disconnect = lambda *a: done.set()
    try:
        client.connect("127.0.0.1", port)
        client.loop_start()
        assert done.wait(10), "neither CONNACK nor a closed connection"
        # TLS 1.3: a refused client certificate shows only as the connection closing
        return reasons[0] if reasons else "closed"
    except (ssl.SSLError, OSError) as exc:
        return exc
    finally:
        client.disconnect()
        client.loop_stop()


def test_with_client_certificates_a_client_needs_both(
    site: Site, cert_broker: Mosquitto, tmp_path: Path
) -> None:
    port = cert_broker.port
    ok = _tls_login(site, port, "room-101-ctl", site.password("room-101-ctl"), "room-101-ctl")
    assert not isinstance(ok, Exception | str) and not ok.is_failure, ok
    no_cert = _tls_login(site, port, "room-101-ctl", site.password("room-101-ctl"), None)
    assert isinstance(no_cert, Exception | str), no_cert
    wrong_password = _tls_login(site, port, "room-101-ctl", "wrong", "room-101-ctl")
    assert not isinstance(wrong_password, Exception | str) and wrong_password.is_failure
    # a certificate from another CA (made the same way, in another folder)
    other = tmp_path / "other-pki"
    made = ironroom("deploy", "certs", "--out", other, "--client", "room-101-ctl")
    assert made.returncode == 0, made.stderr
    foreign = _tls_login(
        Site(site.broker, site.etc, _mixed(tmp_path, site, other)),
        port,
        "room-101-ctl",
        site.password("room-101-ctl"),
        "room-101-ctl",
    )
    assert isinstance(foreign, Exception | str), foreign


def _mixed(tmp_path: Path, site: Site, other: Path) -> Path:
    """The site's CA (to verify the broker) with another CA's client certificate."""
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copyfile(site.ca, mixed / "ca.crt")
    for ext in ("crt", "key"):
        shutil.copyfile(other / f"room-101-ctl.{ext}", mixed / f"room-101-ctl.{ext}")
    return mixed


# -- the tracker and a room over the deployed broker --------------------------------------


def _wait_log(proc: subprocess.Popen[bytes], log: Path, text: str, what: str) -> None:
    def seen() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"exited while waiting for {what}:\n{log.read_text(errors='replace')}")
        return text in log.read_text(errors="replace")

    wait_until(seen, 30, what)


def test_the_tracker_and_a_room_work_through_the_deployed_broker(
    site: Site, tmp_path: Path
) -> None:
    """deploy/examples/tracker.toml as shipped (its broker moved here by --broker) with the
    credentials `deploy broker` wrote, and the simulated room on the site's TLS login: the
    room's start reaches the ledger, the tracker's policy.update reaches the room and its
    result comes back, and the audit chain verifies."""
    db = f"sqlite:///{tmp_path / 'tracker.db'}"
    etc = tmp_path / "etc-ironroom"
    etc.mkdir()
    shutil.copyfile(ROOT / "deploy/examples/tracker.toml", etc / "tracker.toml")
    shutil.copyfile(site.etc / "tracker.mqtt.password", etc / "tracker.mqtt.password")
    shutil.copyfile(site.ca, etc / "ca.crt")
    data = tmp_path / "room-data"
    key = data / "controller.key"
    for args in (
        ("keys", "generate", key),
        ("ledger", "init", "--db", db),
        ("ledger", "room", "add", "hq", "room-101", "--controller", "room-101-ctl",
         "--key-file", key, "--db", db),
    ):  # fmt: skip
        res = ironroom(*args)
        assert res.returncode == 0, res.stderr
    broker = own_broker(site, tmp_path / "broker")
    room_toml = tmp_path / "room.toml"
    sim = (ROOT / "simulators/room-sim.toml").read_text()
    plain = '[mqtt]\nbroker = "mqtt://127.0.0.1:1883"\n'
    assert sim.count(plain) == 1
    tls = "\n".join([
        "[mqtt]",
        f'broker = "mqtts://127.0.0.1:{broker.port}"',
        'username = "room-101-ctl"',
        f'password_file = "{site.etc / "room-101-ctl.mqtt.password"}"',
        f'ca_file = "{site.ca}"',
    ]) + "\n"  # fmt: skip
    room_toml.write_text(sim.replace(plain, tls))

    url = f"mqtts://127.0.0.1:{broker.port}"
    tracker_log, room_log = tmp_path / "tracker.log", tmp_path / "room.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with tracker_log.open("wb") as out:
            procs.append(subprocess.Popen(
                [*IRONROOM, "tracker", "--config", str(etc / "tracker.toml"), "--broker", url,
                 "--db", db], stdout=out, stderr=subprocess.STDOUT))  # fmt: skip
        _wait_log(procs[0], tracker_log, "ready", "the tracker's subscriptions")
        with room_log.open("wb") as out:
            procs.append(subprocess.Popen(
                [*IRONROOM, "sim", "room", "--config", str(room_toml), "--scenario", "idle",
                 "--data-dir", str(data), "--no-badges", "--tracker"],
                stdout=out, stderr=subprocess.STDOUT))  # fmt: skip

        def applied() -> set[str]:
            res = ironroom("ledger", "events", "--room", "hq/room-101", "--db", db)
            assert res.returncode == 0, res.stderr
            return {json.loads(line)["type"] for line in res.stdout.splitlines()}

        def both() -> bool:
            for proc, log in zip(procs, (tracker_log, room_log), strict=True):
                if proc.poll() is not None:
                    pytest.fail(f"exited:\n{log.read_text(errors='replace')[-3000:]}")
            return {"controller.started", "command.result"} <= applied()

        wait_until(both, 60, "the room's start and its policy.update result in the ledger")
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        broker.stop()
    assert "forged" not in tracker_log.read_text(errors="replace")
    verify = ironroom("audit", "verify", "--db", db)
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith("audit chain ok: ")
