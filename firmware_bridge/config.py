"""The controller's TOML config, loaded and validated with messages that name the key.

See ``deploy/examples/room.toml`` for every key with a comment. Relative paths are
taken from the config file's folder. Command-line options (``--broker``, ``--key-file``,
``--data-dir``) override the file.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from firmware_bridge.errors import BridgeError
from protocol.errors import TopicError
from protocol.hours import (
    Calendar,
    HoursError,
    parse_dates,
    parse_spans,
    parse_weekly,
)
from protocol.names import SENSOR_KINDS, check_name, check_reader, point_kind
from protocol.schema import CONTROLLER_CAUSES

CRITICAL_BY_DEFAULT = (
    "after_hours_open",
    "forced_open",
    "tamper",
    "fire",
    "panic",
    "motion_armed",
)


class ConfigError(BridgeError, ValueError):
    """The config cannot be used; the message names the file once, then the key:
    ``/etc/ironroom/room.toml: mqtt.ca_file: /etc/ironroom/nope.crt: no such file``."""


@dataclass(frozen=True)
class InputCfg:
    point: str
    kind: str
    pin: int | str
    active: str = "high"
    pull: str = "up"
    debounce_s: float = 0.02


@dataclass(frozen=True)
class OutputCfg:
    name: str  # "siren" or "led"
    pin: int | str
    active_high: bool = True


@dataclass(frozen=True)
class LockCfg:
    cabinet: str
    pin: int | str
    active_high: bool = True
    fail: str = "secure"
    unlock_s: int = 20

    @property
    def point(self) -> str:
        return f"lock:{self.cabinet}"


@dataclass(frozen=True)
class RfidCfg:
    reader: str
    driver: str
    port: str
    mode: str = "single"


@dataclass(frozen=True)
class BadgeCfg:
    reader: str
    pcsc: str
    profile: str = "internal-auth"
    cipher: str = "aes"
    master_key_file: Path | None = None


@dataclass(frozen=True)
class MqttCfg:
    broker: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    protocol: str = "auto"
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 24 * 3600
    retry_max_s: float = 30.0
    resend_s: float = 60.0


@dataclass(frozen=True)
class PresenceCfg:
    missing_rounds: int = 3
    round_s: float = 0.1
    timeout_s: float = 0.5
    window_rounds: int = 5
    hysteresis_db: float = 6.0


@dataclass(frozen=True)
class AlarmCfg:
    held_open_s: dict[str, float] = field(
        default_factory=lambda: {"door": 120.0, "cabinet": 600.0, "window": 0.0}
    )
    siren_causes: tuple[str, ...] = CRITICAL_BY_DEFAULT
    critical: tuple[str, ...] = CRITICAL_BY_DEFAULT


@dataclass(frozen=True)
class PolicyCfg:
    """What the controller needs to decide alone when offline; ``policy.update`` replaces
    it at run time (kept in the data dir)."""

    cabinets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    reset_badges: tuple[str, ...] = ()
    armed: bool = False


@dataclass(frozen=True)
class Config:
    path: Path | None
    controller: str
    site: str
    room: str
    key_file: Path | None
    command_key_file: Path | None
    data_dir: Path
    pin_factory: str
    heartbeat_s: float
    mqtt: MqttCfg
    calendar: Calendar
    presence: PresenceCfg
    alarms: AlarmCfg
    policy: PolicyCfg
    allow_uid_only: bool
    inputs: tuple[InputCfg, ...]
    outputs: tuple[OutputCfg, ...]
    locks: tuple[LockCfg, ...]
    rfid: tuple[RfidCfg, ...]
    badges: tuple[BadgeCfg, ...]
    digest: str
    #: the fields set from the command line (``with_overrides``), named in errors by option
    overridden: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def points(self) -> list[str]:
        names = [i.point for i in self.inputs] + [lk.point for lk in self.locks]
        names += [o.name for o in self.outputs if o.name == "siren"]
        return names

    @property
    def readers(self) -> list[str]:
        return [r.reader for r in self.rfid] + [b.reader for b in self.badges]

    def with_overrides(
        self,
        *,
        broker: str | None = None,
        key_file: str | Path | None = None,
        data_dir: str | Path | None = None,
    ) -> Config:
        cfg = self
        if broker:
            check_broker_url(broker, "--broker")
            cfg = replace(cfg, mqtt=replace(cfg.mqtt, broker=broker))
        if key_file:
            cfg = replace(cfg, key_file=Path(key_file), overridden=cfg.overridden | {"key_file"})
        if data_dir:
            cfg = replace(cfg, data_dir=Path(data_dir), overridden=cfg.overridden | {"data_dir"})
        return cfg

    def check_files(self) -> Config:
        """Check, before anything starts, that every file the config names can be read and
        that the data folder exists or can be made; returns the config.

        The error names the key (or the command-line option) and the path:
        ``room.toml: mqtt.password_file: /etc/ironroom/mqtt.password: no such file``.
        """
        prefix = f"{self.path}: " if self.path else ""

        def key(name: str, option: str) -> str:
            return option if name in self.overridden else f"{prefix}controller.{name}"

        files: list[tuple[str, Path | None]] = [
            (key("key_file", "--key-file"), self.key_file),
            (f"{prefix}controller.command_key_file", self.command_key_file),
            (f"{prefix}mqtt.password_file", self.mqtt.password_file),
            (f"{prefix}mqtt.ca_file", self.mqtt.ca_file),
            (f"{prefix}mqtt.cert_file", self.mqtt.cert_file),
            (f"{prefix}mqtt.key_file", self.mqtt.key_file),
        ]
        files += [
            (f"{prefix}badge[{i}].master_key_file", b.master_key_file)
            for i, b in enumerate(self.badges)
        ]
        for where, path in files:
            problem = None if path is None else _file_problem(path)
            if problem:
                raise ConfigError(f"{where}: {path}: {problem}")
        problem = _folder_problem(self.data_dir)
        if problem:
            raise ConfigError(f"{key('data_dir', '--data-dir')}: {self.data_dir}: {problem}")
        return self


def _file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file, or None. Never opens it (a FIFO would block)."""
    try:
        if path.is_dir():
            return "a folder, not a file"
        if not path.exists():
            return "no such file"
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    if not os.access(path, os.R_OK):
        return "not readable (permission denied)"
    return None


def _folder_problem(path: Path) -> str | None:
    """Why ``path`` cannot serve as the data folder (exist or be made, and be written)."""
    try:
        if path.exists():
            if not path.is_dir():
                return "not a folder"
            if not os.access(path, os.W_OK | os.X_OK):
                return "not writable"
            return None
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            return f"cannot be made: {parent} is not a folder"
        if not os.access(parent, os.W_OK | os.X_OK):
            return f"cannot be made: {parent} is not writable"
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    return None


def _join(where: str, key: str) -> str:
    """The key path of ``key`` inside the table at ``where`` ("" is the top level)."""
    return f"{where}.{key}" if where else key


def _at(where: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {message}" if where else message)


class _Table:
    """Typed access to one TOML table, with the key path in every error."""

    def __init__(self, data: Any, where: str, base: Path) -> None:
        if not isinstance(data, dict):
            raise _at(where, "expected a table")
        self.data = data
        self.where = where
        self.base = base
        self.used: set[str] = set()

    def _error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{_join(self.where, key)}: {message}")

    def _get(self, key: str, default: Any, kinds: tuple[type, ...], what: str) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                raise self._error(key, f"missing (expected {what})")
            return default
        value = self.data[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise self._error(key, f"expected {what}, got {value!r}")
        return value

    def text(self, key: str, default: Any = None) -> Any:
        return self._get(key, default, (str,), "a string")

    def integer(self, key: str, default: Any = None, lo: int = 0, hi: int = 10**9) -> Any:
        value = self._get(key, default, (int,), "an integer")
        if isinstance(value, int) and not lo <= value <= hi:
            raise self._error(key, f"must be between {lo} and {hi}, got {value}")
        return value

    def num(self, key: str, default: Any = None, lo: float = 0.0, hi: float = 1e9) -> Any:
        value = self._get(key, default, (int, float), "a number")
        if isinstance(value, int | float) and not lo <= value <= hi:
            raise self._error(key, f"must be between {lo} and {hi}, got {value}")
        return None if value is None else float(value)

    def flag(self, key: str, default: Any = None) -> Any:
        return self._get(key, default, (bool,), "true or false")

    def choice(self, key: str, choices: tuple[str, ...], default: Any = None) -> Any:
        value = self._get(key, default, (str,), f"one of {list(choices)}")
        if value is not None and value not in choices:
            raise self._error(key, f"expected one of {list(choices)}, got {value!r}")
        return value

    def path(self, key: str, default: Any = None) -> Path | None:
        value = self.text(key, default)
        if value is None or value == "":
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base / p

    def pin(self, key: str) -> int | str:
        value = self._get(key, _REQUIRED, (int, str), "a BCM number or a pin name like 'GPIO17'")
        if isinstance(value, int) and not 0 <= value <= 53:
            raise self._error(key, f"BCM pin {value} out of range 0-53")
        return value  # type: ignore[no-any-return]

    def table(self, key: str) -> _Table:
        self.used.add(key)
        return _Table(self.data.get(key, {}), _join(self.where, key), self.base)

    def tables(self, key: str) -> list[_Table]:
        self.used.add(key)
        value = self.data.get(key, [])
        if not isinstance(value, list):
            raise self._error(key, f"expected [[{key}]] tables")
        return [_Table(v, f"{_join(self.where, key)}[{i}]", self.base) for i, v in enumerate(value)]

    def done(self) -> None:
        unknown = set(self.data) - self.used
        if unknown:
            raise _at(self.where, f"unknown keys {sorted(unknown)}")


_REQUIRED = object()


def check_broker_url(url: str, where: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise ConfigError(
            f"{where}: broker must look like mqtt://host:1883 or mqtts://host:8883, got {url!r}"
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(f"{where}: the port must be a number from 1 to 65535, got {url!r}")


def broker_parts(url: str) -> tuple[str, int, bool, str | None, str | None]:
    """``(host, port, tls, username, password)`` from a broker URL."""
    parts = urlsplit(url)
    tls = parts.scheme in ("mqtts", "ssl")
    port = parts.port or (8883 if tls else 1883)
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname or "127.0.0.1", port, tls, user, password


def load_config(path: str | Path) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config: {exc.strerror or exc}") from None
    return parse_config(text, source=p)


def parse_config(text: str, *, source: Path | None = None) -> Config:
    label = str(source) if source else "<config>"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: not valid TOML: {exc}") from None
    base = source.parent.resolve() if source else Path.cwd()
    try:
        return _build(_Table(raw, "", base), source, hashlib.sha256(text.encode()).hexdigest())
    except (ConfigError, HoursError, TopicError) as exc:
        # The file once, then the key path the message starts with.
        raise ConfigError(f"{label}: {exc}") from None


def _build(top: _Table, source: Path | None, digest: str) -> Config:
    ctl = top.table("controller")
    controller = _name(ctl, "id", "controller id")
    site = _name(ctl, "site", "site")
    room = _name(ctl, "room", "room")
    key_file = ctl.path("key_file")
    command_key_file = ctl.path("command_key_file")
    data_dir = ctl.path("data_dir") or Path("/var/lib/ironroom")
    pin_factory = ctl.choice("pin_factory", ("lgpio", "rpigpio", "mock"), "lgpio")
    heartbeat_s = ctl.num("heartbeat_s", 5.0, lo=0.05, hi=3600)
    ctl.done()

    m = top.table("mqtt")
    broker = m.text("broker", "mqtt://127.0.0.1:1883")
    check_broker_url(broker, _join(m.where, "broker"))
    mqtt = MqttCfg(
        broker=broker,
        username=m.text("username"),
        password_file=m.path("password_file"),
        ca_file=m.path("ca_file"),
        cert_file=m.path("cert_file"),
        key_file=m.path("key_file"),
        protocol=m.choice("protocol", ("auto", "5", "3.1.1"), "auto"),
        keepalive_s=m.integer("keepalive_s", 30, lo=5, hi=3600),
        session_expiry_s=m.integer("session_expiry_s", 7 * 24 * 3600, lo=0, hi=2**32 - 1),
        retry_max_s=m.num("retry_max_s", 30.0, lo=0.1, hi=3600),
        resend_s=m.num("resend_s", 60.0, lo=1, hi=86400),
    )
    m.done()

    h = top.table("hours")
    timezone = h.text("timezone", "Asia/Shanghai")
    weekly_raw = {
        d: h.data[d] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun") if d in h.data
    }
    h.used.update(weekly_raw)
    if not weekly_raw:
        weekly_raw = {
            d: ["08:30-12:00", "13:30-17:30"] for d in ("mon", "tue", "wed", "thu", "fri")
        }
    h.used.update(("holidays", "workdays", "makeup"))
    calendar = Calendar(
        timezone=timezone,
        weekly=parse_weekly(weekly_raw, h.where),
        holidays=parse_dates(h.data.get("holidays", []), f"{h.where}.holidays"),
        workdays=parse_dates(h.data.get("workdays", []), f"{h.where}.workdays"),
        makeup_hours=parse_spans(h.data["makeup"], f"{h.where}.makeup")
        if "makeup" in h.data
        else None,
    )
    try:
        calendar.zone  # noqa: B018
    except HoursError as exc:
        raise ConfigError(f"{h.where}.timezone: {exc}") from None
    h.done()

    pr = top.table("presence")
    presence = PresenceCfg(
        missing_rounds=pr.integer("missing_rounds", 3, lo=1, hi=1000),
        round_s=pr.num("round_ms", 100, lo=10, hi=60000) / 1000,
        timeout_s=pr.num("timeout_ms", 500, lo=50, hi=600000) / 1000,
        window_rounds=pr.integer("window_rounds", 5, lo=1, hi=1000),
        hysteresis_db=pr.num("hysteresis_db", 6.0, lo=0, hi=100),
    )
    pr.done()

    a = top.table("alarms")
    held = dict(AlarmCfg().held_open_s)
    held_t = a.table("held_open_s")
    for kind in list(held_t.data):
        if kind not in ("door", "cabinet", "window"):
            raise ConfigError(f"{held_t.where}: unknown kind {kind!r} (door, cabinet, window)")
        held[kind] = held_t.num(kind, lo=0, hi=86400 * 7)
    siren_causes = a._get("siren_causes", list(CRITICAL_BY_DEFAULT), (list,), "a list of causes")
    critical = a._get("critical", list(CRITICAL_BY_DEFAULT), (list,), "a list of causes")
    for cause in list(siren_causes) + list(critical):
        if cause not in CONTROLLER_CAUSES:
            raise ConfigError(
                f"{a.where}: unknown alarm cause {cause!r}; use {list(CONTROLLER_CAUSES)}"
            )
    default_debounce = a.num("debounce_ms", 20, lo=0, hi=5000) / 1000
    alarms = AlarmCfg(held_open_s=held, siren_causes=tuple(siren_causes), critical=tuple(critical))
    a.done()

    b = top.table("badges")
    allow_uid_only = b.flag("allow_uid_only", False)
    b.done()

    pol = top.table("policy")
    cab_t = pol.table("cabinets")
    cabinets = {}
    for cab, uids in cab_t.data.items():
        try:
            check_name(cab, "cabinet")
        except TopicError as exc:
            raise ConfigError(f"{cab_t.where}: {exc}") from None
        if not isinstance(uids, list) or not all(isinstance(u, str) for u in uids):
            raise ConfigError(f"{cab_t.where}.{cab}: expected a list of badge UIDs in hex")
        cabinets[cab] = tuple(_uid(u, f"{cab_t.where}.{cab}") for u in uids)
    reset = pol._get("reset_badges", [], (list,), "a list of badge UIDs in hex")
    policy = PolicyCfg(
        cabinets=cabinets,
        reset_badges=tuple(_uid(u, f"{pol.where}.reset_badges") for u in reset),
        armed=pol.flag("armed", False),
    )
    pol.done()

    inputs: list[InputCfg] = []
    for t in top.tables("input"):
        point = t.text("point", _REQUIRED)
        try:
            kind = point_kind(point)
        except TopicError as exc:
            raise ConfigError(f"{t.where}.point: {exc}") from None
        if kind not in SENSOR_KINDS:
            raise ConfigError(
                f"{t.where}.point: {point!r} is not an input kind {list(SENSOR_KINDS)}"
            )
        inputs.append(
            InputCfg(
                point=point,
                kind=kind,
                pin=t.pin("pin"),
                active=t.choice("active", ("high", "low"), "high"),
                pull=t.choice("pull", ("up", "down", "none"), "up"),
                debounce_s=t.num("debounce_ms", default_debounce * 1000, lo=0, hi=5000) / 1000,
            )
        )
        t.done()

    outputs: list[OutputCfg] = []
    for t in top.tables("output"):
        outputs.append(
            OutputCfg(
                name=t.choice("point", ("siren", "led"), _REQUIRED),
                pin=t.pin("pin"),
                active_high=t.flag("active_high", True),
            )
        )
        t.done()

    locks: list[LockCfg] = []
    for t in top.tables("lock"):
        locks.append(
            LockCfg(
                cabinet=_name(t, "cabinet", "cabinet id"),
                pin=t.pin("pin"),
                active_high=t.flag("active_high", True),
                fail=t.choice("fail", ("secure", "safe"), "secure"),
                unlock_s=t.integer("unlock_s", 20, lo=1, hi=600),
            )
        )
        t.done()

    rfid: list[RfidCfg] = []
    for t in top.tables("rfid"):
        reader = t.text("reader", _REQUIRED)
        _reader(reader, f"{t.where}.reader")
        rfid.append(
            RfidCfg(
                reader=reader,
                driver=t.choice("driver", ("rdm6300", "m100"), _REQUIRED),
                port=t.text("port", _REQUIRED),
                mode=t.choice("mode", ("single", "multi"), "single"),
            )
        )
        t.done()

    badges: list[BadgeCfg] = []
    for t in top.tables("badge"):
        reader = t.text("reader", _REQUIRED)
        _reader(reader, f"{t.where}.reader")
        profile = t.choice("profile", ("internal-auth", "uid"), "internal-auth")
        key = t.path("master_key_file")
        if profile == "uid" and not allow_uid_only:
            raise ConfigError(
                f"{t.where}.profile: 'uid' badges are clonable; switch them on explicitly "
                "with [badges] allow_uid_only = true"
            )
        if profile == "internal-auth" and key is None:
            raise ConfigError(f"{t.where}.master_key_file: needed for profile 'internal-auth'")
        badges.append(
            BadgeCfg(
                reader=reader,
                pcsc=t.text("pcsc", _REQUIRED),
                profile=profile,
                cipher=t.choice("cipher", ("aes", "sm4"), "aes"),
                master_key_file=key,
            )
        )
        t.done()
    top.done()

    _unique([i.point for i in inputs], "input point")
    _unique([o.name for o in outputs], "output point")
    _unique([lk.cabinet for lk in locks], "lock cabinet")
    _unique([r.reader for r in rfid], "rfid reader")
    _unique([b.reader for b in badges], "badge reader")
    _unique_pins(
        [(f"input[{n}] ({i.point!r})", i.pin) for n, i in enumerate(inputs)]
        + [(f"output[{n}] ({o.name!r})", o.pin) for n, o in enumerate(outputs)]
        + [(f"lock[{n}] ({lk.cabinet!r})", lk.pin) for n, lk in enumerate(locks)]
    )
    cabinet_inputs = {i.point.split(":", 1)[1] for i in inputs if i.kind == "cabinet"}
    for lk in locks:
        if lk.cabinet not in cabinet_inputs:
            raise ConfigError(
                f"lock for cabinet {lk.cabinet!r} has no [[input]] point 'cabinet:{lk.cabinet}' "
                "(its door contact is needed to detect a forced opening)"
            )
    return Config(
        path=source,
        controller=controller,
        site=site,
        room=room,
        key_file=key_file,
        command_key_file=command_key_file,
        data_dir=data_dir,
        pin_factory=pin_factory,
        heartbeat_s=heartbeat_s,
        mqtt=mqtt,
        calendar=calendar,
        presence=presence,
        alarms=alarms,
        policy=policy,
        allow_uid_only=allow_uid_only,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        locks=tuple(locks),
        rfid=tuple(rfid),
        badges=tuple(badges),
        digest=digest,
    )


def _name(t: _Table, key: str, what: str) -> str:
    value = t.text(key, _REQUIRED)
    try:
        return check_name(value, what)
    except TopicError as exc:
        raise ConfigError(f"{t.where}.{key}: {exc}") from None


def _reader(value: str, where: str) -> None:
    try:
        check_reader(value)
    except TopicError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _uid(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: badge UID must be a hex string, got {value!r}")
    text = value.replace(" ", "").replace(":", "").upper()
    try:
        if not text or len(text) % 2:
            raise ValueError
        bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a badge UID in hex") from None
    return text


def _pin_key(pin: int | str) -> str:
    """17, "17", "GPIO17" and "BCM17" are one pin; "BOARD11" is kept as written."""
    text = str(pin).strip().upper()
    for prefix in ("GPIO", "BCM"):
        if text.startswith(prefix) and text[len(prefix) :].isdigit():
            text = text[len(prefix) :]
    return f"GPIO{int(text)}" if text.isdigit() else text


def _unique_pins(uses: list[tuple[str, int | str]]) -> None:
    seen: dict[str, str] = {}
    for where, pin in uses:
        key = _pin_key(pin)
        if key in seen:
            raise ConfigError(f"{where}: pin {pin!r} is already used by {seen[key]}")
        seen[key] = where


def _unique(names: list[str], what: str) -> None:
    seen = set()
    for n in names:
        if n in seen:
            raise ConfigError(f"{what} {n!r} is configured twice")
        seen.add(n)
