"""ironroom.deploy without a broker: the certificates it makes, Mosquitto's hash format,
the ACL, and the shipped systemd units."""

from __future__ import annotations

import base64
import configparser
import datetime as dt
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ironroom.cli import build_parser
from ironroom.deploy import DeployError, acl_text, make_broker, make_certs, mosquitto_hash

ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_certificates_chain_to_the_ca_with_the_names_clients_use(tmp_path: Path) -> None:
    make_certs(
        tmp_path,
        now=NOW,
        broker_hosts=["broker.hq.internal", "localhost"],
        broker_ips=["10.1.2.3", "::1"],
        clients=["room-101-ctl", "tracker"],
        days=30,
    )
    ca, broker = _cert(tmp_path / "ca.crt"), _cert(tmp_path / "broker.crt")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["broker.hq.internal", "localhost"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.1.2.3", "::1"]
    eku = broker.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert broker.not_valid_after_utc == NOW + dt.timedelta(days=30)
    assert broker.not_valid_before_utc <= NOW
    for name in ("broker", "room-101-ctl", "tracker"):
        cert = _cert(tmp_path / f"{name}.crt")
        cert.verify_directly_issued_by(ca)
        key = tmp_path / f"{name}.key"
        assert key.stat().st_mode & 0o777 == 0o600
    client = _cert(tmp_path / "room-101-ctl.crt")
    cn = client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "room-101-ctl"  # the MQTT user, for use_identity_as_username
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert isinstance(client.public_key(), ec.EllipticCurvePublicKey)


def test_half_a_ca_is_refused(tmp_path: Path) -> None:
    make_certs(tmp_path, now=NOW, broker_ips=["127.0.0.1"])
    (tmp_path / "ca.key").unlink()
    with pytest.raises(DeployError, match="ca.crt exists but .*ca.key does not"):
        make_certs(tmp_path, now=NOW, clients=["tracker"])
    assert not (tmp_path / "tracker.key").exists()


def test_the_hash_is_the_one_mosquitto_passwd_makes(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.fail("mosquitto_passwd is missing: apt-get install mosquitto")
    path = tmp_path / "passwd"
    path.touch(mode=0o600)
    subprocess.run([tool, "-b", str(path), "u", "pässwörd"], check=True)
    user, theirs = path.read_text().strip().split(":", 1)
    salt = base64.b64decode(theirs.split("$")[3])
    assert mosquitto_hash("pässwörd", salt) == theirs
    assert mosquitto_hash("pässwörd", salt) != mosquitto_hash("password", salt)
    assert mosquitto_hash("x") != mosquitto_hash("x")  # a new salt each time


def test_acl_blocks_name_the_site_and_each_room() -> None:
    text = acl_text("branch-2", [("r1", "r1-ctl")], tracker="ledger")
    blocks = [b.splitlines() for b in text.split("\n\n")[1:]]
    assert blocks == [
        [
            "user r1-ctl",
            "topic write ironroom/v1/branch-2/r1/evt/+",
            "topic write ironroom/v1/branch-2/r1/state",
            "topic write ironroom/v1/branch-2/r1/status",
            "topic read ironroom/v1/branch-2/r1/cmd/+",
            "topic read ironroom/v1/branch-2/r1/ack",
        ],
        [
            "user ledger",
            "topic read ironroom/v1/+/+/evt/+",
            "topic read ironroom/v1/+/+/state",
            "topic read ironroom/v1/+/+/status",
            "topic write ironroom/v1/+/+/cmd/+",
            "topic write ironroom/v1/+/+/ack",
        ],
    ]


def test_a_password_file_that_is_not_ours_is_not_reused(tmp_path: Path) -> None:
    (tmp_path / "tracker.mqtt.password").write_text("a:b\n")
    with pytest.raises(DeployError, match="not a password file of this command"):
        make_broker(tmp_path, site="hq", rooms=[("r1", "r1-ctl")])
    make_broker(tmp_path, site="hq", rooms=[("r1", "r1-ctl")], force=True)
    assert ":" not in (tmp_path / "tracker.mqtt.password").read_text()


# -- systemd units ------------------------------------------------------------------------

UNITS = {
    "ironroom-bridge.service": ("bridge", "/etc/ironroom/room.toml"),
    "ironroom-tracker.service": ("tracker", "/etc/ironroom/tracker.toml"),
}


def _unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "deploy" / "systemd" / name)
    return unit


@pytest.mark.parametrize("name", sorted(UNITS))
def test_units_run_the_project_command_hardened(name: str) -> None:
    unit = _unit(name)
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/opt/ironroom/.venv/bin/ironroom"
    args = build_parser().parse_args(argv[1:])
    command, config = UNITS[name]
    assert args.command == command and args.config == config
    assert service["User"] == "ironroom" and service["UMask"] == "0077"
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "ProtectKernelModules"):
        assert service[key] == "true", key
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == service["WorkingDirectory"] == "/var/lib/ironroom"
    assert service["CapabilityBoundingSet"] == ""
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_bridge_starts_without_a_network_and_reaches_its_devices() -> None:
    unit = _unit("ironroom-bridge.service")
    assert "network-online.target" not in unit["Unit"].get("After", "")
    assert set(unit["Service"]["SupplementaryGroups"].split()) == {"gpio", "dialout"}
    assert "PrivateDevices" not in unit["Service"]
    assert "ProcSubset" not in unit["Service"]


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    fake = tmp_path / "ironroom"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    for name in UNITS:  # the one change: the program they start is this test's
        text = (ROOT / "deploy" / "systemd" / name).read_text()
        (tmp_path / name).write_text(text.replace("/opt/ironroom/.venv/bin/ironroom", str(fake)))
    res = subprocess.run(
        [tool, "verify", *(str(tmp_path / n) for n in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0 and res.stderr == "", res.stderr


def test_no_certificate_outlives_the_ca(tmp_path: Path) -> None:
    make_certs(tmp_path, now=NOW, clients=["tracker"])
    ca_end = _cert(tmp_path / "ca.crt").not_valid_after_utc
    later = NOW + dt.timedelta(days=3600)  # a room added near the CA's end
    make_certs(tmp_path, now=later, clients=["room-9-ctl"], days=825)
    assert _cert(tmp_path / "room-9-ctl.crt").not_valid_after_utc == ca_end


def test_the_examples_name_the_files_deploy_writes(tmp_path: Path) -> None:
    """room.toml and tracker.toml point at the files `deploy broker` and `deploy certs`
    write, under the names docs/deploy.md installs them as."""
    from firmware_bridge.config import load_config
    from tracker.config import load_tracker_config

    written = {
        w.path.name for w in make_broker(tmp_path, site="hq", rooms=[("room-101", "room-101-ctl")])
    }
    written |= {w.path.name for w in make_certs(tmp_path, now=NOW, broker_ips=["127.0.0.1"])}
    tracker = load_tracker_config(ROOT / "deploy/examples/tracker.toml").mqtt
    assert tracker.username == "tracker" and tracker.password_file is not None
    assert {tracker.password_file.name, tracker.ca_file.name} <= written  # type: ignore[union-attr]
    room = load_config(ROOT / "deploy/examples/room.toml")
    assert room.mqtt.username == room.controller == "room-101-ctl"
    assert f"{room.controller}.mqtt.password" in written  # installed as mqtt.password
    assert room.mqtt.password_file is not None and room.mqtt.password_file.name == "mqtt.password"
    assert room.mqtt.ca_file is not None and room.mqtt.ca_file.name in written
    assert room.mqtt.broker.startswith("mqtts://") and tracker.broker.startswith("mqtts://")
