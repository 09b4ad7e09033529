"""The tracker's configuration (TOML), checked whole at start; every error names the file
and the key. Example: ``deploy/examples/tracker.toml``.

```toml
[tracker]
heartbeat_s = 5          # the controllers' heartbeat interval; silent after 3 of them
reorder_window_s = 30    # how long a gap in a boot's seq is held before it is skipped
session_s = 120          # how long after a badge a folder leaving counts as taken by it
unlock_s = 20
command_ttl_s = 60
allow_uid_only = false   # accept badges read by UID alone (no challenge-response)

[database]
url = "sqlite:///ironroom.db"   # or postgresql://user@host/db

[mqtt]
broker = "mqtt://127.0.0.1:1883"
client_id = "ironroom-tracker"

[hours]                 # the same keys as the bridge's [hours]
timezone = "Asia/Shanghai"
mon = ["08:30-12:00", "13:30-17:30"]

[loans]                 # days per classification; "in-room": due at closing time
top-secret = "in-room"
secret = 7

[destruction]           # 销毁: two witnesses' badges at the reader within window_s
window_s = 120
reader = "desk"         # the designated place: "desk" or "cabinet:<id>"

[overdue]               # 催办: reminders after the due time, then the escalation
remind_after = ["0h", "1d", "3d"]   # whole minutes, hours or days: "30m", "4h", "2d"
escalate_after = "7d"
check_s = 30            # how often the tracker looks for overdue loans

[notify]                # how reminders are sent: "log" (a log line) or "smtp"
kind = "smtp"
host = "127.0.0.1"
port = 25
from = "ironroom@localhost"
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from protocol.hours import (
    DAYS,
    Calendar,
    HoursError,
    parse_dates,
    parse_spans,
    parse_weekly,
)
from protocol.names import is_name
from tracker.domain.levels import Level
from tracker.domain.overdue import Schedule, parse_delay
from tracker.domain.rules import DEFAULT_LOAN_DAYS
from tracker.notify import NotifySettings


class TrackerConfigError(ValueError):
    """A tracker config that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class MqttSettings:
    broker: str = "mqtt://127.0.0.1:1883"
    client_id: str = "ironroom-tracker"
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 24 * 3600
    #: "5" (a persistent MQTT 5 session) or "3.1.1" (clean_session false), for a broker
    #: that speaks only 3.1.1 such as the demo's embedded amqtt
    protocol: str = "5"

    def parts(self) -> tuple[str, int, bool, str | None, str | None]:
        """``(host, port, tls, username, password)``; the password file wins."""
        u = urlsplit(self.broker)
        tls = u.scheme in ("mqtts", "ssl")
        port = u.port or (8883 if tls else 1883)
        user = unquote(u.username) if u.username else self.username
        password = unquote(u.password) if u.password else None
        if self.password_file is not None:
            password = self.password_file.read_text(encoding="utf-8").strip()
        return u.hostname or "127.0.0.1", port, tls, user, password


@dataclass(frozen=True)
class WebConfig:
    """``[web]``: the console served by the tracker (absent: no console)."""

    host: str = "127.0.0.1"
    port: int = 8080
    #: the key signing session cookies; made (mode 0600) at first start when missing
    secret_key_file: Path = Path("console.key")
    session_hours: float = 8.0
    cookie_secure: bool = False


@dataclass(frozen=True)
class TrackerConfig:
    db_url: str | None = None
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    calendar: Calendar = field(default_factory=Calendar)
    #: the ``[hours]`` table as written, sent to controllers in ``policy.update``
    hours: dict[str, Any] = field(default_factory=dict)
    loan_days: dict[Level, int | None] = field(default_factory=lambda: dict(DEFAULT_LOAN_DAYS))
    heartbeat_s: float = 5.0
    reorder_window_s: float = 30.0
    session_s: int = 120
    unlock_s: int = 20
    command_ttl_s: int = 60
    allow_uid_only: bool = False
    batch_max: int = 1000  # per transaction; an alarm that comes meanwhile cuts it short
    destruction_window_s: int = 120  # [destruction] window_s
    destruction_reader: str = "desk"  # [destruction] reader
    overdue: Schedule = field(default_factory=Schedule)  # [overdue]
    notify: NotifySettings = field(default_factory=NotifySettings)  # [notify]
    web: WebConfig | None = None  # [web]: the console
    source: Path | None = None

    def with_overrides(self, *, broker: str | None, db: str | None) -> TrackerConfig:
        cfg = self
        if broker:
            check_broker_url(broker, "--broker")
            cfg = replace(cfg, mqtt=replace(cfg.mqtt, broker=broker))
        if db:
            cfg = replace(cfg, db_url=db)
        return cfg

    def check_files(self) -> TrackerConfig:
        """Every file the config names can be read (checked before the tracker starts,
        so an example config loads anywhere); returns the config."""
        prefix = f"{self.source}: " if self.source else ""
        for key in ("password_file", "ca_file", "cert_file", "key_file"):
            path = getattr(self.mqtt, key)
            if path is not None and not path.is_file():
                raise TrackerConfigError(f"{prefix}mqtt.{key}: {path}: no such file")
        path = self.notify.password_file
        if path is not None and not path.is_file():
            raise TrackerConfigError(f"{prefix}notify.password_file: {path}: no such file")
        return self

    def policy_calendar(self) -> dict[str, Any]:
        """The calendar part of ``policy.update`` (the controller's ``[hours]`` keys)."""
        out: dict[str, Any] = {"timezone": self.calendar.timezone}
        if any(d in self.hours for d in DAYS):
            out["hours"] = {d: list(self.hours.get(d, [])) for d in DAYS}
        for key in ("holidays", "workdays", "makeup"):
            if key in self.hours:
                out[key] = list(self.hours[key])
        return out


def check_broker_url(url: str, where: str) -> None:
    u = urlsplit(url)
    if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not u.hostname:
        raise TrackerConfigError(
            f"{where}: broker must look like mqtt://host:1883 or mqtts://host:8883, got {url!r}"
        )
    try:
        port = u.port
    except ValueError:
        port = 0
    if port is not None and not 1 <= port <= 65535:
        raise TrackerConfigError(f"{where}: the port must be from 1 to 65535, got {url!r}")


_TRACKER_KEYS = {
    "heartbeat_s": (float, 0.1, 3600.0),
    "reorder_window_s": (float, 0.0, 3600.0),
    "session_s": (int, 1, 3600),
    "unlock_s": (int, 1, 600),
    "command_ttl_s": (int, 5, 3600),
    "batch_max": (int, 1, 100_000),
}


def load_tracker_config(path: str | Path) -> TrackerConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise TrackerConfigError(f"{p}: {(exc.strerror or str(exc)).lower()}") from None
    except UnicodeDecodeError:
        raise TrackerConfigError(f"{p}: not UTF-8 text") from None
    return parse_tracker_config(text, source=p)


def parse_tracker_config(text: str, *, source: Path | None = None) -> TrackerConfig:
    prefix = f"{source}: " if source else ""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TrackerConfigError(f"{prefix}not valid TOML: {exc}") from None
    try:
        return _build(data, source)
    except TrackerConfigError as exc:
        raise TrackerConfigError(f"{prefix}{exc}") from None
    except HoursError as exc:
        raise TrackerConfigError(f"{prefix}{exc}") from None


def _table(data: dict[str, Any], key: str, allowed: set[str]) -> dict[str, Any]:
    t = data.get(key, {})
    if not isinstance(t, dict):
        raise TrackerConfigError(f"{key}: expected a table")
    unknown = set(t) - allowed
    if unknown:
        raise TrackerConfigError(f"{key}: unknown keys {sorted(unknown)}")
    return t


def _build(data: dict[str, Any], source: Path | None) -> TrackerConfig:
    unknown = set(data) - {
        "tracker",
        "database",
        "mqtt",
        "hours",
        "loans",
        "destruction",
        "overdue",
        "notify",
        "web",
    }
    if unknown:
        raise TrackerConfigError(f"unknown tables {sorted(unknown)}")
    base = source.parent if source else Path.cwd()
    t = _table(data, "tracker", set(_TRACKER_KEYS) | {"allow_uid_only"})
    values: dict[str, Any] = {}
    for key, (kind, lo, hi) in _TRACKER_KEYS.items():
        if key not in t:
            continue
        v = t[key]
        ok = isinstance(v, int | float) if kind is float else isinstance(v, int)
        if not ok or isinstance(v, bool):
            raise TrackerConfigError(f"tracker.{key}: expected a number, got {v!r}")
        if not lo <= v <= hi:
            raise TrackerConfigError(f"tracker.{key}: must be between {lo} and {hi}, got {v}")
        values[key] = kind(v)
    if "allow_uid_only" in t:
        if not isinstance(t["allow_uid_only"], bool):
            raise TrackerConfigError("tracker.allow_uid_only: expected true or false")
        values["allow_uid_only"] = t["allow_uid_only"]

    d = _table(data, "database", {"url"})
    db_url = d.get("url")
    if db_url is not None and not isinstance(db_url, str):
        raise TrackerConfigError("database.url: expected a string")

    m = _table(
        data,
        "mqtt",
        {
            "broker",
            "client_id",
            "username",
            "password_file",
            "ca_file",
            "cert_file",
            "key_file",
            "keepalive_s",
            "session_expiry_s",
            "protocol",
        },
    )
    mq: dict[str, Any] = {}
    if "protocol" in m:
        if m["protocol"] not in ("5", "3.1.1"):
            raise TrackerConfigError(
                f'mqtt.protocol: expected "5" or "3.1.1", got {m["protocol"]!r}'
            )
        mq["protocol"] = m["protocol"]
    for key in ("broker", "client_id", "username"):
        if key in m:
            if not isinstance(m[key], str) or not m[key]:
                raise TrackerConfigError(f"mqtt.{key}: expected a non-empty string")
            mq[key] = m[key]
    if "broker" in mq:
        check_broker_url(mq["broker"], "mqtt.broker")
    for key in ("password_file", "ca_file", "cert_file", "key_file"):
        if key in m:
            if not isinstance(m[key], str):
                raise TrackerConfigError(f"mqtt.{key}: expected a path")
            mq[key] = (base / m[key]).resolve()
    for key, lo, hi in (("keepalive_s", 5, 3600), ("session_expiry_s", 0, 2**32 - 1)):
        if key in m:
            v = m[key]
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise TrackerConfigError(f"mqtt.{key}: expected an integer {lo}..{hi}")
            mq[key] = v

    if "hours" not in data:
        raise TrackerConfigError(
            "hours: missing: the rooms' working hours (the bridge's [hours] keys) decide "
            "badge unlocks and closing time"
        )
    h = _table(data, "hours", {"timezone", "holidays", "workdays", "makeup", *DAYS})
    tz = h.get("timezone", "Asia/Shanghai")
    if not isinstance(tz, str):
        raise TrackerConfigError("hours.timezone: expected an IANA name like 'Asia/Shanghai'")
    weekly = {k: v for k, v in h.items() if k in DAYS}
    calendar = Calendar(
        timezone=tz,
        weekly=parse_weekly(weekly, "hours") if weekly else {},
        holidays=parse_dates(h.get("holidays", []), "hours.holidays"),
        workdays=parse_dates(h.get("workdays", []), "hours.workdays"),
        makeup_hours=parse_spans(h["makeup"], "hours.makeup") if "makeup" in h else None,
    )
    calendar.zone  # noqa: B018  (an unknown zone fails here, at load)

    loans = _table(data, "loans", {lv.english for lv in Level} | {lv.chinese for lv in Level})
    loan_days = dict(DEFAULT_LOAN_DAYS)
    for key, v in loans.items():
        level = Level.parse(key)
        if v == "in-room":
            loan_days[level] = None
        elif isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 3650:
            loan_days[level] = v
        else:
            raise TrackerConfigError(f'loans.{key}: expected days 1..3650 or "in-room"')
    dz = _table(data, "destruction", {"window_s", "reader"})
    if "window_s" in dz:
        v = dz["window_s"]
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 3600:
            raise TrackerConfigError(f"destruction.window_s: expected seconds 1..3600, got {v!r}")
        values["destruction_window_s"] = v
    if "reader" in dz:
        v = dz["reader"]
        prefix_, _, cab = v.partition(":") if isinstance(v, str) else ("", "", "")
        if not (v == "desk" or (prefix_ == "cabinet" and is_name(cab))):
            raise TrackerConfigError(
                f'destruction.reader: expected "desk" or "cabinet:<id>", got {v!r}'
            )
        values["destruction_reader"] = v
    values["overdue"] = _overdue(data)
    values["notify"] = _notify(data, base)
    if "web" in data:
        values["web"] = _web(_table(data, "web", set(WebConfig.__dataclass_fields__)), base)
    return TrackerConfig(
        db_url=db_url,
        mqtt=MqttSettings(**mq),
        calendar=calendar,
        hours={k: v for k, v in h.items() if k != "timezone"},
        loan_days=loan_days,
        source=source,
        **values,
    )


def _overdue(data: dict[str, Any]) -> Schedule:
    """``[overdue]`` (催办): ``remind_after`` a list of delays, strictly increasing;
    ``escalate_after`` a delay; ``check_s`` seconds."""
    o = _table(data, "overdue", {"remind_after", "escalate_after", "check_s"})
    default = Schedule()
    delays, escalate, check_s = default.remind_after, default.escalate_after, default.check_s
    if "remind_after" in o:
        v = o["remind_after"]
        if not isinstance(v, list) or len(v) > 20:
            raise TrackerConfigError(
                f'overdue.remind_after: expected a list like ["0h", "1d", "3d"], got {v!r}'
            )
        try:
            delays = Schedule.build(v, "0h").remind_after
        except ValueError as exc:
            raise TrackerConfigError(f"overdue.remind_after: {exc}") from None
    if "escalate_after" in o:
        try:
            escalate = parse_delay(o["escalate_after"])
        except ValueError as exc:
            raise TrackerConfigError(f"overdue.escalate_after: {exc}") from None
    if "check_s" in o:
        v = o["check_s"]
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 86400:
            raise TrackerConfigError(f"overdue.check_s: expected seconds 1..86400, got {v!r}")
        check_s = v
    return Schedule(delays, escalate, check_s)


def _notify(data: dict[str, Any], base: Path) -> NotifySettings:
    """``[notify]``: ``kind`` "log" or "smtp"; for smtp ``host``, ``port``, ``from``,
    ``starttls``, ``username``, ``password_file``, ``timeout_s``."""
    keys = {"kind", "host", "port", "from", "starttls", "username", "password_file", "timeout_s"}
    n = _table(data, "notify", keys)
    out: dict[str, Any] = {}
    if "kind" in n:
        if n["kind"] not in ("log", "smtp"):
            raise TrackerConfigError(f'notify.kind: expected "log" or "smtp", got {n["kind"]!r}')
        out["kind"] = n["kind"]
    for key, attr in (("host", "host"), ("from", "sender"), ("username", "username")):
        if key in n:
            v = n[key]
            if not isinstance(v, str) or not v.strip() or any(c in v for c in "\r\n"):
                raise TrackerConfigError(f"notify.{key}: expected a non-empty string")
            out[attr] = v
    if "from" in n and "@" not in n["from"]:
        raise TrackerConfigError("notify.from: expected an address like ironroom@localhost")
    if "port" in n:
        v = n["port"]
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 65535:
            raise TrackerConfigError(f"notify.port: expected 1..65535, got {v!r}")
        out["port"] = v
    if "starttls" in n:
        if not isinstance(n["starttls"], bool):
            raise TrackerConfigError("notify.starttls: expected true or false")
        out["starttls"] = n["starttls"]
    if "timeout_s" in n:
        v = n["timeout_s"]
        if not isinstance(v, int | float) or isinstance(v, bool) or not 0.1 <= v <= 300:
            raise TrackerConfigError(f"notify.timeout_s: expected seconds 0.1..300, got {v!r}")
        out["timeout_s"] = float(v)
    if "password_file" in n:
        if not isinstance(n["password_file"], str):
            raise TrackerConfigError("notify.password_file: expected a path")
        out["password_file"] = (base / n["password_file"]).resolve()
    if "password_file" in out and "username" not in out:
        raise TrackerConfigError("notify.password_file: needs notify.username")
    if "username" in out and "password_file" not in out:
        raise TrackerConfigError("notify.username: needs notify.password_file")
    return NotifySettings(**out)


def _web(t: dict[str, Any], base: Path) -> WebConfig:
    """``[web]``: host, port, secret_key_file, session_hours, cookie_secure."""
    out: dict[str, Any] = {"secret_key_file": (base / "console.key").resolve()}
    if "host" in t:
        if not isinstance(t["host"], str) or not t["host"]:
            raise TrackerConfigError("web.host: expected an address like 127.0.0.1")
        out["host"] = t["host"]
    if "port" in t:
        v = t["port"]
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 65535:
            raise TrackerConfigError(f"web.port: expected a port 1..65535, got {v!r}")
        out["port"] = v
    if "secret_key_file" in t:
        if not isinstance(t["secret_key_file"], str) or not t["secret_key_file"]:
            raise TrackerConfigError("web.secret_key_file: expected a path")
        out["secret_key_file"] = (base / t["secret_key_file"]).resolve()
    if "session_hours" in t:
        v = t["session_hours"]
        if not isinstance(v, int | float) or isinstance(v, bool) or not 0.1 <= v <= 24 * 30:
            raise TrackerConfigError(f"web.session_hours: expected hours 0.1..720, got {v!r}")
        out["session_hours"] = float(v)
    if "cookie_secure" in t:
        if not isinstance(t["cookie_secure"], bool):
            raise TrackerConfigError("web.cookie_secure: expected true or false")
        out["cookie_secure"] = t["cookie_secure"]
    return WebConfig(**out)
