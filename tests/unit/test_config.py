"""The controller's TOML config: the shipped simulated room loads, a minimal file gets the
defaults, and every mistake is a ConfigError that names the key."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from firmware_bridge.config import (
    CRITICAL_BY_DEFAULT,
    Config,
    ConfigError,
    broker_parts,
    load_config,
    parse_config,
)
from protocol.hours import is_working_time

ROOT = Path(__file__).resolve().parents[2]
SIM_CONFIGS = [
    ROOT / "simulators" / "room-sim.toml",
    ROOT / "deploy" / "examples" / "room-sim.toml",
]
UID = "04A1B2C3D4E5F6"

MINIMAL = """
[controller]
id = "ctl-1"
site = "hq"
room = "r1"
"""


def load_sim(source: Path, tmp_path: Path) -> tuple[Config, Path, str]:
    data_dir = tmp_path / "data"
    text = source.read_text(encoding="utf-8").replace("{data_dir}", str(data_dir))
    path = tmp_path / "room.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path), data_dir, text


@pytest.mark.parametrize("source", SIM_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_simulated_room_loads(source: Path, tmp_path: Path):
    cfg, data_dir, text = load_sim(source, tmp_path)
    assert (cfg.controller, cfg.site, cfg.room) == ("room-101-ctl", "hq", "room-101")
    assert cfg.pin_factory == "mock"
    assert cfg.heartbeat_s == 5.0
    assert cfg.data_dir == data_dir
    assert cfg.key_file == data_dir / "controller.key"
    assert cfg.path == tmp_path / "room.toml"
    assert cfg.digest == hashlib.sha256(text.encode()).hexdigest()
    assert cfg.mqtt.broker == "mqtt://127.0.0.1:1883"
    assert cfg.points == [
        "door",
        "window:w1",
        "cabinet:c1",
        "cabinet:c2",
        "tamper:t1",
        "motion:m1",
        "panic:p1",
        "smoke:s1",
        "water:f1",
        "lock:c1",
        "lock:c2",
        "siren",
    ]
    assert cfg.readers == ["cabinet:c1", "cabinet:c2", "portal", "desk", "cabinet:c1", "desk"]
    assert {i.point: i.pin for i in cfg.inputs} == {
        "door": 17,
        "window:w1": 27,
        "cabinet:c1": 22,
        "cabinet:c2": 23,
        "tamper:t1": 24,
        "motion:m1": 25,
        "panic:p1": 5,
        "smoke:s1": 6,
        "water:f1": 13,
    }
    assert {i.kind for i in cfg.inputs} == {
        "door",
        "window",
        "cabinet",
        "tamper",
        "motion",
        "panic",
        "smoke",
        "water",
    }
    assert all((i.active, i.pull, i.debounce_s) == ("high", "up", 0.02) for i in cfg.inputs)
    assert [(o.name, o.pin, o.active_high) for o in cfg.outputs] == [
        ("siren", 18, True),
        ("led", 12, True),
    ]
    assert [(lk.cabinet, lk.pin, lk.fail, lk.unlock_s, lk.point) for lk in cfg.locks] == [
        ("c1", 16, "secure", 20, "lock:c1"),
        ("c2", 20, "secure", 20, "lock:c2"),
    ]
    assert [(r.reader, r.driver, r.port, r.mode) for r in cfg.rfid] == [
        ("cabinet:c1", "m100", "sim", "single"),
        ("cabinet:c2", "m100", "sim", "single"),
        ("portal", "m100", "sim", "single"),
        ("desk", "rdm6300", "sim", "single"),
    ]
    assert [(b.reader, b.pcsc, b.profile, b.cipher) for b in cfg.badges] == [
        ("cabinet:c1", "Virtual PCD 00 00", "internal-auth", "aes"),
        ("desk", "Virtual PCD 00 01", "internal-auth", "aes"),
    ]
    assert {b.master_key_file for b in cfg.badges} == {data_dir / "badge-master.key"}
    assert cfg.policy.cabinets == {"c1": (UID,), "c2": (UID,)}
    assert cfg.policy.reset_badges == (UID,)
    assert cfg.allow_uid_only is False
    assert cfg.alarms.held_open_s == {"door": 120.0, "cabinet": 600.0, "window": 0.0}
    assert (cfg.presence.missing_rounds, cfg.presence.round_s, cfg.presence.timeout_s) == (
        3,
        0.1,
        0.5,
    )
    cal = cfg.calendar
    assert cal.timezone == "Asia/Shanghai"
    assert date(2026, 10, 1) in cal.holidays and date(2026, 10, 10) in cal.workdays
    assert is_working_time(cal, datetime(2026, 11, 27, 1, 0, tzinfo=UTC))  # Fri 09:00 local
    assert not is_working_time(cal, datetime(2026, 11, 27, 15, 10, tzinfo=UTC))  # 23:10
    assert not is_working_time(cal, datetime(2026, 10, 1, 2, 0, tzinfo=UTC))  # holiday
    assert is_working_time(cal, datetime(2026, 10, 10, 2, 0, tzinfo=UTC))  # make-up Sat


def test_minimal_config_gets_the_defaults():
    cfg = parse_config(MINIMAL)
    assert cfg.path is None
    assert (cfg.controller, cfg.site, cfg.room) == ("ctl-1", "hq", "r1")
    assert cfg.key_file is None and cfg.command_key_file is None
    assert cfg.data_dir == Path("/var/lib/ironroom")
    assert cfg.pin_factory == "lgpio"
    assert cfg.heartbeat_s == 5.0
    assert cfg.mqtt.broker == "mqtt://127.0.0.1:1883"
    assert (cfg.mqtt.protocol, cfg.mqtt.keepalive_s, cfg.mqtt.username) == ("auto", 30, None)
    assert cfg.calendar.timezone == "Asia/Shanghai"
    assert cfg.calendar.holidays == frozenset() and cfg.calendar.workdays == frozenset()
    assert cfg.calendar.makeup_hours is None
    assert [len(cfg.calendar.weekly[d]) for d in ("mon", "fri", "sat", "sun")] == [2, 2, 0, 0]
    assert is_working_time(cfg.calendar, datetime(2026, 11, 30, 1, 0, tzinfo=UTC))
    assert cfg.alarms.held_open_s == {"door": 120.0, "cabinet": 600.0, "window": 0.0}
    assert cfg.alarms.siren_causes == CRITICAL_BY_DEFAULT == cfg.alarms.critical
    assert cfg.allow_uid_only is False
    assert cfg.policy.cabinets == {} and cfg.policy.armed is False
    assert cfg.inputs == cfg.outputs == cfg.locks == cfg.rfid == cfg.badges == ()
    assert cfg.points == [] and cfg.readers == []


def test_relative_paths_are_taken_from_the_config_folder(tmp_path: Path):
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "room.toml"
    path.write_text(MINIMAL + 'key_file = "keys/ctl.key"\ndata_dir = "/srv/ironroom"\n')
    cfg = load_config(path)
    assert cfg.key_file == folder.resolve() / "keys" / "ctl.key"
    assert cfg.data_dir == Path("/srv/ironroom")


def test_values_are_converted():
    cfg = parse_config(
        MINIMAL
        + """
heartbeat_s = 2
[hours]
timezone = "UTC"
sat = "09:00-11:00"
makeup = ["10:00-11:00"]
workdays = ["2026-10-11"]
[alarms]
debounce_ms = 50
held_open_s = { door = 30 }
siren_causes = ["fire"]
[badges]
allow_uid_only = true
[policy]
cabinets = { c1 = ["04:a1:b2", "04 A1 B3"] }
armed = true
[[input]]
point = "cabinet:c1"
pin = "GPIO22"
active = "low"
pull = "none"
[[input]]
point = "door"
pin = 17
debounce_ms = 5
[[lock]]
cabinet = "c1"
pin = 16
fail = "safe"
active_high = false
[[badge]]
reader = "desk"
pcsc = "ACS"
profile = "uid"
"""
    )
    assert cfg.heartbeat_s == 2.0
    assert [i.debounce_s for i in cfg.inputs] == [0.05, 0.005]
    assert (cfg.inputs[0].pin, cfg.inputs[0].active, cfg.inputs[0].pull) == (
        "GPIO22",
        "low",
        "none",
    )
    assert cfg.alarms.held_open_s == {"door": 30.0, "cabinet": 600.0, "window": 0.0}
    assert cfg.alarms.siren_causes == ("fire",)
    assert cfg.policy.cabinets == {"c1": ("04A1B2", "04A1B3")}
    assert cfg.policy.armed is True
    assert (cfg.locks[0].fail, cfg.locks[0].active_high) == ("safe", False)
    assert cfg.badges[0].profile == "uid" and cfg.badges[0].master_key_file is None
    assert cfg.calendar.weekly["sat"] and not cfg.calendar.weekly["mon"]
    assert is_working_time(cfg.calendar, datetime(2026, 10, 11, 10, 30, tzinfo=UTC))
    assert not is_working_time(cfg.calendar, datetime(2026, 10, 11, 9, 30, tzinfo=UTC))


CAB_INPUT = '\n[[input]]\npoint = "cabinet:c1"\npin = 22\n'

# (name, config text, the whole message after the file name)
BAD_CONFIGS: list[tuple[str, str, str]] = [
    ("unknown top key", MINIMAL + "\n[colour]\nx = 1\n", "unknown keys ['colour']"),
    ("unknown controller key", MINIMAL + "debug = true\n", "controller: unknown keys ['debug']"),
    (
        "missing id",
        '[controller]\nsite = "hq"\nroom = "r1"\n',
        "controller.id: missing (expected a string)",
    ),
    (
        "bad controller id",
        MINIMAL.replace('"ctl-1"', '"Ctl 1"'),
        (
            "controller.id: controller id 'Ctl 1' is not valid: 1-32 characters of "
            "a-z, 0-9 and '-', starting with a letter or digit"
        ),
    ),
    (
        "bad site",
        MINIMAL.replace('"hq"', '"h_q"'),
        (
            "controller.site: site 'h_q' is not valid: 1-32 characters of a-z, 0-9 "
            "and '-', starting with a letter or digit"
        ),
    ),
    (
        "room not a string",
        MINIMAL.replace('"r1"', "101"),
        "controller.room: expected a string, got 101",
    ),
    (
        "unknown pin factory",
        MINIMAL + 'pin_factory = "wiringpi"\n',
        ("controller.pin_factory: expected one of ['lgpio', 'rpigpio', 'mock'], got 'wiringpi'"),
    ),
    (
        "heartbeat zero",
        MINIMAL + "heartbeat_s = 0\n",
        "controller.heartbeat_s: must be between 0.05 and 3600, got 0",
    ),
    (
        "heartbeat as bool",
        MINIMAL + "heartbeat_s = true\n",
        "controller.heartbeat_s: expected a number, got True",
    ),
    (
        "heartbeat nan",
        MINIMAL + "heartbeat_s = nan\n",
        ("controller.heartbeat_s: must be between 0.05 and 3600, got nan"),
    ),
    (
        "broker scheme",
        MINIMAL + '[mqtt]\nbroker = "http://host"\n',
        (
            "mqtt.broker: broker must look like mqtt://host:1883 or "
            "mqtts://host:8883, got 'http://host'"
        ),
    ),
    (
        "broker no host",
        MINIMAL + '[mqtt]\nbroker = "mqtt://:1883"\n',
        (
            "mqtt.broker: broker must look like mqtt://host:1883 or "
            "mqtts://host:8883, got 'mqtt://:1883'"
        ),
    ),
    (
        "broker bad port",
        MINIMAL + '[mqtt]\nbroker = "mqtt://host:99999"\n',
        ("mqtt.broker: the port must be a number from 1 to 65535, got 'mqtt://host:99999'"),
    ),
    (
        "broker port text",
        MINIMAL + '[mqtt]\nbroker = "mqtt://host:abc"\n',
        ("mqtt.broker: the port must be a number from 1 to 65535, got 'mqtt://host:abc'"),
    ),
    (
        "mqtt keepalive",
        MINIMAL + "[mqtt]\nkeepalive_s = 1\n",
        "mqtt.keepalive_s: must be between 5 and 3600, got 1",
    ),
    (
        "mqtt protocol",
        MINIMAL + '[mqtt]\nprotocol = "3"\n',
        ("mqtt.protocol: expected one of ['auto', '5', '3.1.1'], got '3'"),
    ),
    ("mqtt unknown key", MINIMAL + "[mqtt]\nqos = 2\n", "mqtt: unknown keys ['qos']"),
    (
        "pin out of range",
        MINIMAL + '[[input]]\npoint = "door"\npin = 54\n',
        "input[0].pin: BCM pin 54 out of range 0-53",
    ),
    (
        "pin negative",
        MINIMAL + '[[input]]\npoint = "door"\npin = -1\n',
        "input[0].pin: BCM pin -1 out of range 0-53",
    ),
    (
        "pin float",
        MINIMAL + '[[input]]\npoint = "door"\npin = 17.0\n',
        ("input[0].pin: expected a BCM number or a pin name like 'GPIO17', got 17.0"),
    ),
    (
        "pin missing",
        MINIMAL + '[[input]]\npoint = "door"\n',
        ("input[0].pin: missing (expected a BCM number or a pin name like 'GPIO17')"),
    ),
    (
        "input not a sensor",
        MINIMAL + '[[input]]\npoint = "siren"\npin = 4\n',
        (
            "input[0].point: 'siren' is not an input kind ['door', 'window', "
            "'cabinet', 'tamper', 'motion', 'panic', 'smoke', 'water']"
        ),
    ),
    (
        "input lock",
        MINIMAL + '[[input]]\npoint = "lock:c1"\npin = 4\n',
        (
            "input[0].point: 'lock:c1' is not an input kind ['door', 'window', "
            "'cabinet', 'tamper', 'motion', 'panic', 'smoke', 'water']"
        ),
    ),
    (
        "input bad name",
        MINIMAL + '[[input]]\npoint = "gate"\npin = 4\n',
        ("input[0].point: point 'gate': expected one of ('door', 'siren') or kind:<id>"),
    ),
    (
        "input bad active",
        MINIMAL + '[[input]]\npoint = "door"\npin = 4\nactive = "middle"\n',
        ("input[0].active: expected one of ['high', 'low'], got 'middle'"),
    ),
    (
        "input bad pull",
        MINIMAL + '[[input]]\npoint = "door"\npin = 4\npull = "sideways"\n',
        ("input[0].pull: expected one of ['up', 'down', 'none'], got 'sideways'"),
    ),
    (
        "input unknown key",
        MINIMAL + '[[input]]\npoint = "door"\npin = 4\ninverted = true\n',
        "input[0]: unknown keys ['inverted']",
    ),
    ("input not a table array", "input = 5\n" + MINIMAL, "input: expected [[input]] tables"),
    (
        "second input bad",
        MINIMAL + '[[input]]\npoint = "door"\npin = 4\n[[input]]\npoint = "window:w1"\npin = 99\n',
        "input[1].pin: BCM pin 99 out of range 0-53",
    ),
    (
        "duplicate point",
        MINIMAL + '[[input]]\npoint = "door"\npin = 4\n[[input]]\npoint = "door"\npin = 5\n',
        "input point 'door' is configured twice",
    ),
    (
        "output unknown",
        MINIMAL + '[[output]]\npoint = "horn"\npin = 18\n',
        ("output[0].point: expected one of ['siren', 'led'], got 'horn'"),
    ),
    (
        "duplicate output",
        MINIMAL + '[[output]]\npoint = "siren"\npin = 18\n[[output]]\npoint = "siren"\npin = 19\n',
        "output point 'siren' is configured twice",
    ),
    (
        "lock without cabinet input",
        MINIMAL + '[[lock]]\ncabinet = "c1"\npin = 16\n',
        (
            "lock for cabinet 'c1' has no [[input]] point 'cabinet:c1' (its door "
            "contact is needed to detect a forced opening)"
        ),
    ),
    (
        "lock of another cabinet",
        MINIMAL + CAB_INPUT + '[[lock]]\ncabinet = "c2"\npin = 16\n',
        (
            "lock for cabinet 'c2' has no [[input]] point 'cabinet:c2' (its door "
            "contact is needed to detect a forced opening)"
        ),
    ),
    (
        "lock bad fail mode",
        MINIMAL + CAB_INPUT + '[[lock]]\ncabinet = "c1"\npin = 16\nfail = "open"\n',
        "lock[0].fail: expected one of ['secure', 'safe'], got 'open'",
    ),
    (
        "lock unlock too long",
        MINIMAL + CAB_INPUT + '[[lock]]\ncabinet = "c1"\npin = 16\nunlock_s = 601\n',
        "lock[0].unlock_s: must be between 1 and 600, got 601",
    ),
    (
        "duplicate lock",
        MINIMAL
        + CAB_INPUT
        + '[[lock]]\ncabinet = "c1"\npin = 16\n[[lock]]\ncabinet = "c1"\npin = 20\n',
        "lock cabinet 'c1' is configured twice",
    ),
    (
        "uid profile not allowed",
        MINIMAL + '[[badge]]\nreader = "desk"\npcsc = "ACS"\nprofile = "uid"\n',
        (
            "badge[0].profile: 'uid' badges are clonable; switch them on explicitly "
            "with [badges] allow_uid_only = true"
        ),
    ),
    (
        "internal-auth without key",
        MINIMAL + '[[badge]]\nreader = "desk"\npcsc = "ACS"\n',
        "badge[0].master_key_file: needed for profile 'internal-auth'",
    ),
    (
        "badge bad reader",
        MINIMAL + '[[badge]]\nreader = "door"\npcsc = "ACS"\nmaster_key_file = "k"\n',
        ("badge[0].reader: reader 'door': expected 'desk', 'portal' or 'cabinet:<id>'"),
    ),
    (
        "badge bad cipher",
        MINIMAL + '[[badge]]\nreader = "desk"\npcsc = "A"\nmaster_key_file = "k"\ncipher = "des"\n',
        "badge[0].cipher: expected one of ['aes', 'sm4'], got 'des'",
    ),
    (
        "rfid bad reader",
        MINIMAL + '[[rfid]]\nreader = "door"\ndriver = "m100"\nport = "x"\n',
        ("rfid[0].reader: reader 'door': expected 'desk', 'portal' or 'cabinet:<id>'"),
    ),
    (
        "rfid bad driver",
        MINIMAL + '[[rfid]]\nreader = "desk"\ndriver = "rc522"\nport = "x"\n',
        ("rfid[0].driver: expected one of ['rdm6300', 'm100'], got 'rc522'"),
    ),
    (
        "duplicate rfid reader",
        MINIMAL
        + '[[rfid]]\nreader = "desk"\ndriver = "m100"\nport = "a"\n'
        + '[[rfid]]\nreader = "desk"\ndriver = "m100"\nport = "b"\n',
        "rfid reader 'desk' is configured twice",
    ),
    (
        "bad hours span",
        MINIMAL + '[hours]\nmon = ["8-12"]\n',
        "hours.mon: '8-12' is not HH:MM-HH:MM",
    ),
    (
        "hours span backwards",
        MINIMAL + '[hours]\ntue = ["17:00-08:00"]\n',
        "hours.tue: '17:00-08:00' ends before it starts",
    ),
    (
        "bad makeup span",
        MINIMAL + '[hours]\nmakeup = ["9-12"]\n',
        "hours.makeup: '9-12' is not HH:MM-HH:MM",
    ),
    (
        "bad holiday",
        MINIMAL + '[hours]\nholidays = ["2026-02-30"]\n',
        "hours.holidays: '2026-02-30' is not a date YYYY-MM-DD",
    ),
    (
        "bad workdays",
        MINIMAL + '[hours]\nworkdays = "2026-10-10"\n',
        "hours.workdays: expected a list of dates like ['2026-10-01']",
    ),
    (
        "hours unknown key",
        MINIMAL + '[hours]\nlunch = "12:00-13:30"\n',
        "hours: unknown keys ['lunch']",
    ),
    (
        "unknown time zone",
        MINIMAL + '[hours]\ntimezone = "Mars/Base"\n',
        ("hours.timezone: unknown time zone 'Mars/Base' (an IANA name like 'Asia/Shanghai')"),
    ),
    (
        "time zone is a folder",
        MINIMAL + '[hours]\ntimezone = "Asia"\n',
        ("hours.timezone: unknown time zone 'Asia' (an IANA name like 'Asia/Shanghai')"),
    ),
    (
        "alarm unknown cause",
        MINIMAL + '[alarms]\nsiren_causes = ["smoke"]\n',
        (
            "alarms: unknown alarm cause 'smoke'; use ['after_hours_open', "
            "'forced_open', 'held_open', 'tamper', 'fire', 'water', 'panic', "
            "'motion_armed']"
        ),
    ),
    (
        "alarm tracker cause",
        MINIMAL + '[alarms]\ncritical = ["classified_exit"]\n',
        (
            "alarms: unknown alarm cause 'classified_exit'; use "
            "['after_hours_open', 'forced_open', 'held_open', 'tamper', 'fire', "
            "'water', 'panic', 'motion_armed']"
        ),
    ),
    (
        "held open unknown kind",
        MINIMAL + "[alarms]\nheld_open_s = { gate = 5 }\n",
        ("alarms.held_open_s: unknown kind 'gate' (door, cabinet, window)"),
    ),
    (
        "held open text",
        MINIMAL + '[alarms]\nheld_open_s = { door = "2m" }\n',
        "alarms.held_open_s.door: expected a number, got '2m'",
    ),
    (
        "debounce too long",
        MINIMAL + "[alarms]\ndebounce_ms = 6000\n",
        "alarms.debounce_ms: must be between 0 and 5000, got 6000",
    ),
    (
        "presence zero rounds",
        MINIMAL + "[presence]\nmissing_rounds = 0\n",
        "presence.missing_rounds: must be between 1 and 1000, got 0",
    ),
    (
        "uid only as text",
        MINIMAL + '[badges]\nallow_uid_only = "yes"\n',
        "badges.allow_uid_only: expected true or false, got 'yes'",
    ),
    (
        "policy bad uid",
        MINIMAL + '[policy]\ncabinets = { c1 = ["XYZ"] }\n',
        "policy.cabinets.c1: 'XYZ' is not a badge UID in hex",
    ),
    (
        "policy odd uid",
        MINIMAL + '[policy]\ncabinets = { c1 = ["04A"] }\n',
        "policy.cabinets.c1: '04A' is not a badge UID in hex",
    ),
    (
        "policy uids not list",
        MINIMAL + '[policy]\ncabinets = { c1 = "04A1" }\n',
        "policy.cabinets.c1: expected a list of badge UIDs in hex",
    ),
    (
        "policy bad cabinet",
        MINIMAL + '[policy]\ncabinets = { C1 = ["04A1"] }\n',
        (
            "policy.cabinets: cabinet 'C1' is not valid: 1-32 characters of a-z, "
            "0-9 and '-', starting with a letter or digit"
        ),
    ),
    (
        "policy reset not list",
        MINIMAL + '[policy]\nreset_badges = "04A1"\n',
        ("policy.reset_badges: expected a list of badge UIDs in hex, got '04A1'"),
    ),
    (
        "policy reset bad uid",
        MINIMAL + "[policy]\nreset_badges = [4]\n",
        "policy.reset_badges: badge UID must be a hex string, got 4",
    ),
    ("policy unknown key", MINIMAL + "[policy]\nbadges = []\n", "policy: unknown keys ['badges']"),
]


@pytest.mark.parametrize(
    ("text", "message"),
    [(t, m) for _, t, m in BAD_CONFIGS],
    ids=[name for name, _, _ in BAD_CONFIGS],
)
def test_bad_config_names_the_key(text: str, message: str):
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert str(info.value) == f"<config>: {message}"


def test_text_that_is_not_toml():
    with pytest.raises(ConfigError) as info:
        parse_config("[controller\nid = 1")
    message = str(info.value)
    assert message.startswith("<config>: not valid TOML: ")  # then tomllib's words
    assert "line 1" in message


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("heartbeat_s = -1\n", "controller.heartbeat_s: must be between 0.05 and 3600, got -1"),
        ('[hours]\nmon = ["8-12"]\n', "hours.mon: '8-12' is not HH:MM-HH:MM"),
        ('[hours]\ntimezone = "Mars/Base"\n', "hours.timezone: unknown time zone 'Mars/Base'"),
        ('[policy]\ncabinets = { C1 = ["04A1"] }\n', "policy.cabinets: cabinet 'C1' is not valid"),
        ("input = 5\n", "input: expected [[input]] tables"),
    ],
    ids=["controller", "hours", "timezone", "policy", "top level"],
)
def test_errors_name_the_file_once_then_the_key(tmp_path: Path, extra: str, message: str):
    path = tmp_path / "room.toml"
    path.write_text(extra + MINIMAL if extra.startswith("input") else MINIMAL + extra)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert text.startswith(f"{path}: {message}")
    assert text.count(str(path)) == 1 and text.count("room.toml") == 1, text


def test_a_config_that_cannot_be_read_is_named(tmp_path: Path):
    path = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: cannot read config: No such file or directory"


@pytest.mark.parametrize("port", [0, 65536, 99999])
def test_a_broker_port_outside_1_to_65535_is_refused(port: int):
    url = f"mqtt://127.0.0.1:{port}"
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL + f'[mqtt]\nbroker = "{url}"\n')
    assert str(info.value) == (
        f"<config>: mqtt.broker: the port must be a number from 1 to 65535, got {url!r}"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL).with_overrides(broker=url)
    assert str(info.value) == f"--broker: the port must be a number from 1 to 65535, got {url!r}"


@pytest.mark.parametrize("port", [1, 1883, 65535])
def test_broker_ports_1_to_65535_are_taken(port: int):
    url = f"mqtt://127.0.0.1:{port}"
    cfg = parse_config(MINIMAL + f'[mqtt]\nbroker = "{url}"\n')
    assert cfg.mqtt.broker == url
    assert broker_parts(cfg.mqtt.broker)[1] == port


# -- the files and the folder the config names ----------------------------------------

FILE_KEYS = """
key_file = "ctl.key"
command_key_file = "cmd.key"
data_dir = "data"
[mqtt]
password_file = "mqtt.password"
ca_file = "ca.crt"
cert_file = "ctl.crt"
key_file = "ctl.pem"
[[badge]]
reader = "desk"
pcsc = "ACS"
master_key_file = "badge.key"
"""
NAMED_FILES = ["ctl.key", "cmd.key", "mqtt.password", "ca.crt", "ctl.crt", "ctl.pem", "badge.key"]


@pytest.fixture
def room_with_files(tmp_path: Path) -> Path:
    """A config naming every file it can, all present, and a data folder not made yet."""
    folder = tmp_path.resolve() / "etc"
    folder.mkdir()
    for name in NAMED_FILES:
        (folder / name).write_text("x\n")
    path = folder / "room.toml"
    path.write_text(MINIMAL + FILE_KEYS)
    return path


def test_check_files_passes_when_everything_is_there(room_with_files: Path):
    cfg = load_config(room_with_files)
    assert cfg.check_files() is cfg
    assert cfg.data_dir == room_with_files.parent / "data"
    assert not cfg.data_dir.exists(), "checking makes nothing"
    cfg.data_dir.mkdir()
    assert cfg.check_files() is cfg


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("ctl.key", "controller.key_file"),
        ("cmd.key", "controller.command_key_file"),
        ("mqtt.password", "mqtt.password_file"),
        ("ca.crt", "mqtt.ca_file"),
        ("ctl.crt", "mqtt.cert_file"),
        ("ctl.pem", "mqtt.key_file"),
        ("badge.key", "badge[0].master_key_file"),
    ],
)
def test_a_missing_file_names_the_key_and_the_path(room_with_files: Path, name: str, key: str):
    missing = room_with_files.parent / name
    missing.unlink()
    with pytest.raises(ConfigError) as info:
        load_config(room_with_files).check_files()
    assert str(info.value) == f"{room_with_files}: {key}: {missing}: no such file"


def test_a_folder_where_a_file_should_be(room_with_files: Path):
    secret = room_with_files.parent / "mqtt.password"
    secret.unlink()
    secret.mkdir()
    with pytest.raises(ConfigError) as info:
        load_config(room_with_files).check_files()
    assert (
        str(info.value) == f"{room_with_files}: mqtt.password_file: {secret}: a folder, not a file"
    )


def test_the_data_dir_is_a_file(room_with_files: Path):
    data = room_with_files.parent / "data"
    data.write_text("not a folder\n")
    with pytest.raises(ConfigError) as info:
        load_config(room_with_files).check_files()
    assert str(info.value) == f"{room_with_files}: controller.data_dir: {data}: not a folder"


def test_the_data_dir_cannot_be_made(room_with_files: Path):
    blocker = room_with_files.parent / "var"
    blocker.write_text("a file where a folder should be\n")
    room_with_files.write_text(
        room_with_files.read_text().replace('data_dir = "data"', 'data_dir = "var/lib/ironroom"')
    )
    with pytest.raises(ConfigError) as info:
        load_config(room_with_files).check_files()
    assert str(info.value) == (
        f"{room_with_files}: controller.data_dir: {blocker}/lib/ironroom: "
        f"cannot be made: {blocker} is not a folder"
    )


def test_overridden_paths_are_named_by_their_option(room_with_files: Path, tmp_path: Path):
    cfg = load_config(room_with_files)
    not_a_dir = room_with_files  # a file
    with pytest.raises(ConfigError) as info:
        cfg.with_overrides(data_dir=not_a_dir).check_files()
    assert str(info.value) == f"--data-dir: {not_a_dir}: not a folder"
    missing = tmp_path / "no.key"
    with pytest.raises(ConfigError) as info:
        cfg.with_overrides(key_file=missing).check_files()
    assert str(info.value) == f"--key-file: {missing}: no such file"
    # an override that is fine leaves the file's keys named as before
    (room_with_files.parent / "ca.crt").unlink()
    with pytest.raises(ConfigError) as info:
        cfg.with_overrides(data_dir=tmp_path / "elsewhere").check_files()
    assert str(info.value).startswith(f"{room_with_files}: mqtt.ca_file: ")


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# -- overrides and broker URLs ----------------------------------------------------------


def test_with_overrides(tmp_path: Path):
    cfg = parse_config(MINIMAL + 'key_file = "/etc/ironroom/ctl.key"\n')
    new = cfg.with_overrides(
        broker="mqtts://broker.example:8883", key_file="k.key", data_dir=tmp_path
    )
    assert new.mqtt.broker == "mqtts://broker.example:8883"
    assert new.key_file == Path("k.key")
    assert new.data_dir == tmp_path
    assert new.mqtt.keepalive_s == cfg.mqtt.keepalive_s
    # the original is untouched
    assert cfg.mqtt.broker == "mqtt://127.0.0.1:1883"
    assert cfg.key_file == Path("/etc/ironroom/ctl.key")
    assert cfg.data_dir == Path("/var/lib/ironroom")


def test_with_no_overrides_is_the_same_config():
    cfg = parse_config(MINIMAL)
    assert cfg.with_overrides() == cfg
    assert cfg.with_overrides(broker=None, key_file=None, data_dir=None) == cfg


@pytest.mark.parametrize("broker", ["http://x", "mqtt://", "mqtt://h:70000", "127.0.0.1:1883"])
def test_with_overrides_checks_the_broker(broker: str):
    with pytest.raises(ConfigError, match="--broker"):
        parse_config(MINIMAL).with_overrides(broker=broker)


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("mqtt://127.0.0.1:1883", ("127.0.0.1", 1883, False, None, None)),
        ("mqtt://broker", ("broker", 1883, False, None, None)),
        ("tcp://broker:1884", ("broker", 1884, False, None, None)),
        ("mqtts://broker", ("broker", 8883, True, None, None)),
        ("ssl://broker:9999", ("broker", 9999, True, None, None)),
        ("mqtts://ctl:p%40ss@broker", ("broker", 8883, True, "ctl", "p@ss")),
    ],
)
def test_broker_urls(url: str, parts: tuple[object, ...]):
    cfg = parse_config(MINIMAL + f'[mqtt]\nbroker = "{url}"\n')
    assert cfg.mqtt.broker == url
    assert broker_parts(cfg.mqtt.broker) == parts
