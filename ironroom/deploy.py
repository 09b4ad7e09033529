"""What a site needs before its broker starts: the TLS certificates and the broker's
credentials and ACL (``ironroom deploy certs`` and ``ironroom deploy broker``).

Certificates: one CA of the site's own (ECDSA P-256), a broker certificate whose subject
alternative names are the host names and addresses clients connect to, and one client
certificate per controller and for the tracker (CN = the MQTT user name), for a broker
that also asks clients for a certificate (``require_certificate``). Every private key is
written mode 0600, and an existing key is never replaced without ``force``; an existing
CA is reused to sign new certificates (a room added later), never replaced.

Credentials: one random password per MQTT user, in ``USER.mqtt.password`` (mode 0600,
one line, the file ``[mqtt] password_file`` of the bridge and the tracker names), the
broker's password file with Mosquitto's ``$7$`` PBKDF2-SHA512 hashes of them, and the ACL
that keeps each controller to its own room. Existing password files are kept (so a room
added later leaves the other rooms' controllers alone) unless ``force``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import ipaddress
import json
import os
import secrets
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from protocol.errors import TopicError
from protocol.names import check_name
from protocol.topics import ROOT, VERSION

#: mosquitto_passwd's own defaults for ``$7$`` hashes (Mosquitto 2.0): PBKDF2-SHA512,
#: 101 iterations, a 12-byte salt. The passwords are 256-bit random strings, so the hash
#: is not what keeps them from being guessed.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
#: Default certificate lifetime: long enough for a site, short enough to be renewed.
DEFAULT_DAYS = 825
#: The CA's lifetime (made once, reused for every certificate after).
CA_DAYS = 3650
TRACKER_USER = "tracker"


class DeployError(ValueError):
    """Bad input or a file that must not be replaced; the message is one line."""


@dataclass(frozen=True)
class Written:
    path: Path
    what: str
    secret: bool  # mode 0600


# -- files --------------------------------------------------------------------------------


def _write(path: Path, data: bytes, *, secret: bool, replace: bool = True) -> None:
    """Write ``data`` to ``path`` (0600 when ``secret``, else 0644) through a temporary
    file in the same folder, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = 0o600 if secret else 0o644
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # whatever the umask
        if not replace and path.exists():
            raise DeployError(f"{path} exists; refusing to overwrite it (use --force)")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _name(text: str, what: str) -> str:
    try:
        return check_name(text, what)
    except TopicError as exc:
        raise DeployError(str(exc)) from None


# -- certificates -------------------------------------------------------------------------


def _pem_key(key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san_entries(hosts: Sequence[str], ips: Sequence[str]) -> list[object]:
    from cryptography import x509

    entries: list[object] = []
    for host in hosts:
        if not host or not host.isascii() or any(c.isspace() or c in "/:@" for c in host):
            raise DeployError(f"--broker-host {host!r} is not a host name (IDNs in xn-- form)")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            entries.append(x509.DNSName(host))
        else:
            raise DeployError(f"--broker-host {host!r} is an address: give it with --broker-ip")
    for ip in ips:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError:
            raise DeployError(f"--broker-ip {ip!r} is not an IP address") from None
    return entries


def make_certs(
    out: Path,
    *,
    now: dt.datetime,
    broker_hosts: Sequence[str] = (),
    broker_ips: Sequence[str] = (),
    clients: Sequence[str] = (),
    days: int = DEFAULT_DAYS,
    force: bool = False,
    organisation: str = "IronRoom",
) -> list[Written]:
    """The site's PKI in ``out``: ``ca.crt``/``ca.key`` (made once, then reused),
    ``broker.crt``/``broker.key`` when ``broker_hosts`` or ``broker_ips`` are given, and
    ``NAME.crt``/``NAME.key`` for each client. Nothing is written when anything is wrong."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not 1 <= days <= 3650:
        raise DeployError(f"--days must be from 1 to 3650, got {days}")
    if not broker_hosts and not broker_ips and not clients:
        raise DeployError("nothing to make: give --broker-host/--broker-ip or --client")
    names = [_name(c, "client") for c in clients]
    if len(set(names)) != len(names) or any(n in ("ca", "broker") for n in names):
        raise DeployError("--client names must be unique and not 'ca' or 'broker'")
    san = _san_entries(broker_hosts, broker_ips)
    broker = bool(san)

    ca_crt, ca_key = out / "ca.crt", out / "ca.key"
    if ca_crt.exists() != ca_key.exists():
        have, lack = (ca_crt, ca_key) if ca_crt.exists() else (ca_key, ca_crt)
        raise DeployError(f"{have} exists but {lack} does not: restore it or remove both")
    planned = (["broker"] if broker else []) + names
    if not force:
        for stem in planned:
            if (out / f"{stem}.key").exists():
                raise DeployError(f"{out / (stem + '.key')} exists; refusing to overwrite it")

    start = now - dt.timedelta(minutes=5)  # a client whose clock is a little behind
    written: list[Written] = []
    if ca_key.exists():
        try:
            ca_private = serialization.load_pem_private_key(ca_key.read_bytes(), None)
            ca = x509.load_pem_x509_certificate(ca_crt.read_bytes())
        except (ValueError, TypeError) as exc:
            raise DeployError(f"{ca_key} or {ca_crt}: cannot be read: {exc}") from None
        if not isinstance(ca_private, ec.EllipticCurvePrivateKey):
            raise DeployError(f"{ca_key}: not an EC key of this project's CA")
    else:
        ca_private = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} MQTT CA"),
            ]
        )
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_private.public_key()), critical=False
            )
            .sign(ca_private, hashes.SHA256())
        )
        _write(ca_key, _pem_key(ca_private), secret=True, replace=False)
        _write(ca_crt, ca.public_bytes(serialization.Encoding.PEM), secret=False)
        written += [Written(ca_key, "CA key", True), Written(ca_crt, "CA certificate", False)]

    def issue(stem: str, common_name: str, usage: object, alt: list[object] | None) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                    ]
                )
            )
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            # never past the CA's own end: such a certificate would not verify then
            .not_valid_after(min(now + dt.timedelta(days=days), ca.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)  # type: ignore[list-item]
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_private.public_key()),
                critical=False,
            )
        )
        if alt:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(alt),  # type: ignore[arg-type]
                critical=False,
            )
        cert = builder.sign(ca_private, hashes.SHA256())
        _write(out / f"{stem}.key", _pem_key(key), secret=True, replace=force)
        _write(out / f"{stem}.crt", cert.public_bytes(serialization.Encoding.PEM), secret=False)
        written.append(Written(out / f"{stem}.key", f"{stem} key", True))
        written.append(Written(out / f"{stem}.crt", f"{stem} certificate", False))

    if broker:
        first = (list(broker_hosts) + list(broker_ips))[0]
        issue("broker", first, ExtendedKeyUsageOID.SERVER_AUTH, san)
    for name in names:
        issue(name, name, ExtendedKeyUsageOID.CLIENT_AUTH, None)
    return written


# -- credentials and ACL ------------------------------------------------------------------


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    """A Mosquitto 2 password-file hash: ``$7$ITERATIONS$SALT$HASH`` (base64)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, PBKDF2_ITERATIONS)
    b64 = base64.b64encode
    return f"$7${PBKDF2_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def parse_rooms(specs: Iterable[str]) -> list[tuple[str, str]]:
    """``ROOM=CONTROLLER`` pairs, checked: names by the protocol's grammar, each room and
    each controller once."""
    rooms: list[tuple[str, str]] = []
    for spec in specs:
        room, sep, controller = spec.partition("=")
        if not sep:
            raise DeployError(
                f"--room {spec!r}: expected ROOM=CONTROLLER, e.g. room-101=room-101-ctl"
            )
        rooms.append((_name(room, "room"), _name(controller, "controller")))
    if not rooms:
        raise DeployError("give at least one --room ROOM=CONTROLLER")
    for i, what in ((0, "room"), (1, "controller")):
        seen: set[str] = set()
        for pair in rooms:
            if pair[i] in seen:
                raise DeployError(f"{what} {pair[i]!r} is given twice")
            seen.add(pair[i])
    return rooms


def acl_text(site: str, rooms: Sequence[tuple[str, str]], tracker: str = TRACKER_USER) -> str:
    """The Mosquitto ACL: each controller writes its own room's events, state and status
    and reads its own commands and ack; the tracker reads every room's events, state and
    status and writes commands and acks. Nothing else is allowed to anyone."""
    lines = [
        "# IronRoom broker ACL (written by `ironroom deploy broker`).",
        "# One block per controller: it writes its own room's events, state and status, and reads",
        "# its own commands and acks. The tracker reads every room and writes commands and acks.",
    ]
    for room, controller in rooms:
        p = f"{ROOT}/{VERSION}/{site}/{room}"
        lines += [
            "",
            f"user {controller}",
            f"topic write {p}/evt/+",
            f"topic write {p}/state",
            f"topic write {p}/status",
            f"topic read {p}/cmd/+",
            f"topic read {p}/ack",
        ]
    any_room = f"{ROOT}/{VERSION}/+/+"
    lines += [
        "",
        f"user {tracker}",
        f"topic read {any_room}/evt/+",
        f"topic read {any_room}/state",
        f"topic read {any_room}/status",
        f"topic write {any_room}/cmd/+",
        f"topic write {any_room}/ack",
    ]
    return "\n".join(lines) + "\n"


def _password(path: Path, force: bool) -> tuple[str, bool]:
    """The password kept in ``path``, or a new one; ``(password, new)``."""
    if path.exists() and not force:
        text = path.read_text(encoding="utf-8").strip()
        if not text or any(c in text for c in ":\n\r"):
            raise DeployError(f"{path}: not a password file of this command (use --force)")
        return text, False
    return secrets.token_urlsafe(32), True


def make_broker(
    out: Path,
    *,
    site: str,
    rooms: Sequence[tuple[str, str]],
    tracker: str = TRACKER_USER,
    force: bool = False,
) -> list[Written]:
    """``ironroom.acl``, ``ironroom.passwd`` and one ``USER.mqtt.password`` per user in
    ``out``."""
    site = _name(site, "site")
    tracker = _name(tracker, "tracker user")
    if tracker in {c for _, c in rooms}:
        raise DeployError(f"the tracker user {tracker!r} is also a controller")
    users = [c for _, c in rooms] + [tracker]
    passwords: dict[str, str] = {}
    written: list[Written] = []
    fresh: list[tuple[Path, str]] = []
    for user in users:
        path = out / f"{user}.mqtt.password"
        passwords[user], new = _password(path, force)
        if new:
            fresh.append((path, user))
    for path, user in fresh:
        _write(path, (passwords[user] + "\n").encode(), secret=True)
        written.append(Written(path, f"MQTT password of {user}", True))
    passwd = "".join(f"{u}:{mosquitto_hash(passwords[u])}\n" for u in users)
    _write(out / "ironroom.passwd", passwd.encode(), secret=True)
    _write(out / "ironroom.acl", acl_text(site, rooms, tracker).encode(), secret=False)
    written += [
        Written(out / "ironroom.passwd", "Mosquitto password file", True),
        Written(out / "ironroom.acl", "Mosquitto ACL", False),
    ]
    return written


# -- command line -------------------------------------------------------------------------


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``ironroom deploy certs`` and ``ironroom deploy broker``."""
    d = sub.add_parser("deploy", help="a site's broker: certificates, credentials, ACL")
    dsub = d.add_subparsers(dest="deploy", required=True, metavar="ACTION")
    c = dsub.add_parser("certs", help="the site's CA, the broker's and the clients' certificates")
    c.add_argument("--out", required=True, help="folder for ca.crt, ca.key, broker.*, NAME.*")
    c.add_argument(
        "--broker-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a DNS name clients use for the broker (repeat for more)",
    )
    c.add_argument(
        "--broker-ip",
        action="append",
        default=[],
        metavar="IP",
        help="an address clients use for the broker (repeat for more)",
    )
    c.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="NAME",
        help="a client certificate for this MQTT user (a controller id, tracker)",
    )
    c.add_argument(
        "--days",
        type=int,
        default=DEFAULT_DAYS,
        help=f"lifetime of the broker and client certificates (default {DEFAULT_DAYS})",
    )
    c.add_argument("--force", action="store_true", help="replace existing broker/client keys")
    b = dsub.add_parser("broker", help="passwords, Mosquitto password file and ACL of a site")
    b.add_argument("--out", required=True, help="folder for ironroom.acl, ironroom.passwd, ...")
    b.add_argument("--site", required=True)
    b.add_argument(
        "--room",
        action="append",
        default=[],
        metavar="ROOM=CONTROLLER",
        help="a room and its controller id (repeat for every room)",
    )
    b.add_argument(
        "--tracker-user",
        default=TRACKER_USER,
        help=f"the tracker's MQTT user (default {TRACKER_USER})",
    )
    b.add_argument("--force", action="store_true", help="new passwords for every user")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    try:
        if args.deploy == "certs":
            written = make_certs(
                out,
                now=dt.datetime.now(dt.UTC),
                broker_hosts=args.broker_host,
                broker_ips=args.broker_ip,
                clients=args.client,
                days=args.days,
                force=args.force,
            )
        else:
            written = make_broker(
                out,
                site=args.site,
                rooms=parse_rooms(args.room),
                tracker=args.tracker_user,
                force=args.force,
            )
    except DeployError as exc:
        print(f"ironroom: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"ironroom: {exc}", file=sys.stderr)
        return 2
    for w in written:
        mode = "0600" if w.secret else "0644"
        print(json.dumps({"file": str(w.path), "what": w.what, "mode": mode}), flush=True)
    return 0
