"""``ironroom`` as an installer or operator runs it: a separate process, its exit code,
its stdout and stderr, with a real Mosquitto, pty reader simulators and pcscd + vpcd."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import simulators.scenarios
from ironroom import cli as ironroom_cli
from protocol.signing import parse_key
from simulators.rfid import M100Sim, Rdm6300Sim
from simulators.scenarios import SCENARIOS, Scenario, Step
from simulators.vcard import VirtualCard
from tests.integration.pcsc_fixtures import (
    VPCD_READER,
    pcscd,  # noqa: F401 - the fixture, used by name
    wait_for_card_state,
)
from tests.support import Collector, Mosquitto, free_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

IRONROOM = [sys.executable, "-m", "ironroom.cli"]
HEARTBEAT_S = 0.2
CONTROLLER = "cli-ctl"
PREFIX = "ironroom/v1/hq/cli-room"
MASTER = "2b7e151628aed2a6abf7158809cf4f3c"
OTHER_MASTER = "000102030405060708090a0b0c0d0e0f"
UID = "04A1B2C3D4E5F6"
EPC = "30751FEB705C5904E3D50D70"
CARD = "62E3086CED"

ROOM = f"""
[controller]
id = "{CONTROLLER}"
site = "hq"
room = "cli-room"
pin_factory = "mock"
heartbeat_s = {HEARTBEAT_S}

[mqtt]
resend_s = 1
retry_max_s = 1

[[input]]
point = "door"
pin = 17
active = "low"

[[output]]
point = "siren"
pin = 18
"""


def ironroom(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*IRONROOM, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


class Running:
    """One ``ironroom`` process whose stdout and stderr go to files the test reads while
    it runs; killed at the end if the test did not stop it."""

    def __init__(self, workdir: Path, *args: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.out_path = workdir / "stdout"
        self.err_path = workdir / "stderr"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen([*IRONROOM, *args], stdout=out, stderr=err)

    @property
    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def lines(self) -> list[dict[str, Any]]:
        """stdout's complete lines, each parsed as JSON."""
        text = self.out
        complete = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def wait(self, timeout: float = 15) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"ironroom did not exit within {timeout} s; stderr:\n{self.err[-2000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def procs() -> Iterator[list[Running]]:
    started: list[Running] = []
    try:
        yield started
    finally:
        for p in started:
            p.kill()


# -- help ------------------------------------------------------------------------------------

SUBCOMMANDS = [
    [],
    ["bridge"],
    ["devices"],
    ["devices", "rfid"],
    ["devices", "badge"],
    ["sim"],
    ["sim", "room"],
    ["sim", "card"],
    ["keys"],
    ["keys", "generate"],
    ["demo"],
]


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=lambda w: " ".join(w) or "ironroom")
def test_help(words: list[str]) -> None:
    done = ironroom(*words, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {' '.join(['ironroom', *words])}")
    assert done.stderr == ""


def test_top_level_help_lists_every_command() -> None:
    out = ironroom("--help").stdout
    for command in ("bridge", "devices", "sim", "keys", "demo"):
        assert command in out


@pytest.mark.parametrize("words", [["sim", "room"], ["demo"]], ids=" ".join)
def test_help_lists_every_scenario(words: list[str]) -> None:
    out = " ".join(ironroom(*words, "--help").stdout.split())  # argparse wraps lines
    assert ", ".join(SCENARIOS) in out
    assert "stream" in out


# -- sim room: a step whose wait times out fails the run ------------------------------------

OPEN_AND_CLOSE = (Step("10:00:00", "open", "door"), Step("10:00:05", "close", "door"))
# Offline and without a badge nothing unlocks c1: the step waits in vain.
NEVER_UNLOCKED = Step("10:00:02", "grant", "c1", "04A1B2C3D4E5F6")


@pytest.mark.parametrize(
    ("steps", "code", "summary"),
    [
        (OPEN_AND_CLOSE, 0, "2 of 2 steps played, 0 failed"),
        (
            (OPEN_AND_CLOSE[0], NEVER_UNLOCKED, OPEN_AND_CLOSE[1]),
            1,
            "3 of 3 steps played, 1 failed",
        ),
    ],
    ids=["all-seen", "one-times-out"],
)
def test_sim_room_exits_1_when_a_step_timed_out(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    steps: tuple[Step, ...],
    code: int,
    summary: str,
) -> None:
    tiny = Scenario(name="tiny", day="2026-11-27", start="09:59:50", steps=steps)
    monkeypatch.setitem(SCENARIOS, "tiny", tiny)
    monkeypatch.setattr(simulators.scenarios, "STEP_TIMEOUT_S", 0.5)
    monkeypatch.setattr(ironroom_cli, "_stop_on_signals", threading.Event)  # keep pytest's
    caplog.set_level(logging.INFO, logger="simulators.scenarios")
    argv = ["sim", "room", "--scenario", "tiny", "--no-badges", "--seconds", "4"]
    argv += ["--broker", f"mqtt://127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "d")]
    assert ironroom_cli.main(argv) == code
    said = [r.getMessage() for r in caplog.records if r.name == "simulators.scenarios"]
    assert f"scenario tiny: {summary}" in said, said
    failed = [m for m in said if m.startswith("scenario tiny: 10:00")]
    if code:
        assert failed == [
            "scenario tiny: 10:00:02 grant c1 04A1B2C3D4E5F6: gave up waiting for the unlock"
        ]
    else:
        assert failed == []


# -- keys ------------------------------------------------------------------------------------


def test_keys_generate_writes_a_private_key_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "controller.key"
    done = ironroom("keys", "generate", str(path))
    assert done.returncode == 0, done.stderr
    text = path.read_text()
    assert len(text) == 65 and text.endswith("\n")
    assert all(c in "0123456789abcdef" for c in text[:64])
    assert len(parse_key(text)) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    again = ironroom("keys", "generate", str(path))
    assert again.returncode == 2
    assert "refusing to overwrite" in again.stderr
    assert path.read_text() == text

    other = tmp_path / "other.key"
    ironroom("keys", "generate", str(other))
    assert other.read_text() != text, "each key is new"


# -- bridge: configuration errors -----------------------------------------------------------


def _key_file(tmp_path: Path) -> Path:
    path = tmp_path / "controller.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(bytes(range(32)).hex() + "\n")
    return path


CONFIG_ERRORS = [
    ("not-toml", "[controller\nid = ", ["not valid TOML"]),
    ("unknown-key", ROOM.replace("heartbeat_s", 'colour = "red"\nheartbeat_s'), ["colour"]),
    ("unknown-table", ROOM + "\n[gate]\nopen = true\n", ["gate"]),
    ("bad-value", ROOM.replace('pin_factory = "mock"', 'pin_factory = "abacus"'), ["pin_factory"]),
    ("missing", None, ["cannot read config"]),
]


@pytest.mark.parametrize(
    ("text", "words"), [c[1:] for c in CONFIG_ERRORS], ids=[c[0] for c in CONFIG_ERRORS]
)
def test_bridge_config_errors(tmp_path: Path, text: str | None, words: list[str]) -> None:
    config = tmp_path / "room.toml"
    if text is not None:
        config.write_text(text)
    done = ironroom(
        "bridge",
        "--config",
        str(config),
        "--key-file",
        str(_key_file(tmp_path)),
        "--data-dir",
        str(tmp_path / "data"),
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("ironroom: config error: ")
    assert all(w in lines[0] for w in words), lines[0]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


# (id, change to ROOM, the message after "ironroom: config error: {config}: ")
NAMED_PATH_ERRORS = [
    ("port-0", ("[mqtt]\n", '[mqtt]\nbroker = "mqtt://127.0.0.1:0"\n'), "mqtt.broker: {port0}"),
    (
        "ca-file",
        ("[mqtt]\n", '[mqtt]\nca_file = "nope.crt"\n'),
        "mqtt.ca_file: {tmp}/nope.crt: no such file",
    ),
    (
        "password-file",
        ("[mqtt]\n", '[mqtt]\npassword_file = "mqtt.password"\n'),
        "mqtt.password_file: {tmp}/mqtt.password: no such file",
    ),
    (
        "data-dir",
        ("[mqtt]\n", 'data_dir = "room.toml"\n[mqtt]\n'),
        "controller.data_dir: {tmp}/room.toml: not a folder",
    ),
    (
        "hours",
        ("[mqtt]\n", '[hours]\nmon = ["8-12"]\n[mqtt]\n'),
        "hours.mon: '8-12' is not HH:MM-HH:MM",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"), [c[1:] for c in NAMED_PATH_ERRORS], ids=[c[0] for c in NAMED_PATH_ERRORS]
)
def test_bridge_config_errors_name_the_file_once_the_key_and_the_path(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    tmp = tmp_path.resolve()
    config = tmp / "room.toml"
    config.write_text(ROOM.replace(*change))
    done = ironroom("bridge", "--config", str(config), "--key-file", str(_key_file(tmp)))
    port0 = "the port must be a number from 1 to 65535, got 'mqtt://127.0.0.1:0'"
    expected = f"ironroom: config error: {config}: " + message.format(tmp=tmp, port0=port0)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [expected], done.stderr
    assert done.stdout == ""


def test_bridge_data_dir_option_is_named_when_it_cannot_be_used(tmp_path: Path) -> None:
    config = tmp_path / "room.toml"
    config.write_text(ROOM)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file\n")
    done = ironroom(
        "bridge",
        "--config",
        str(config),
        "--key-file",
        str(_key_file(tmp_path)),
        "--data-dir",
        str(blocker / "data"),
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"ironroom: config error: --data-dir: {blocker}/data: cannot be made: {blocker} is not "
        "a folder"
    ], done.stderr


def test_bridge_without_a_readable_key_file(tmp_path: Path) -> None:
    config = tmp_path / "room.toml"
    config.write_text(ROOM)
    missing = tmp_path / "no.key"
    done = ironroom(
        "bridge",
        "--config",
        str(config),
        "--key-file",
        str(missing),
        "--data-dir",
        str(tmp_path / "data"),
    )
    assert done.returncode == 2
    assert done.stderr.startswith("ironroom: config error: ")
    assert str(missing) in done.stderr and "Traceback" not in done.stderr


def _one_line_failure(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert "Traceback" not in done.stderr, done.stderr[-1500:]
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ironroom: "), done.stderr
    assert all(w in lines[0] for w in words), lines[0]


def _bridge_once(tmp_path: Path, config: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """`ironroom bridge` with this config, a fresh key and a broker port nobody serves."""
    return ironroom(
        "bridge",
        "--config",
        str(config),
        "--key-file",
        str(_key_file(tmp_path)),
        "--data-dir",
        str(data_dir),
        "--broker",
        "mqtt://127.0.0.1:9",
    )


def test_bridge_with_a_corrupt_outbox_says_so_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "room.toml"
    config.write_text(ROOM)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "outbox.sqlite3").write_bytes(b"this is not an SQLite database at all\n" * 40)
    done = _bridge_once(tmp_path, config, data_dir)
    _one_line_failure(done, "outbox")


def test_bridge_with_one_pin_used_twice_says_so_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "room.toml"
    config.write_text(ROOM.replace("pin = 18", "pin = 17"))  # the siren on the door's pin
    done = _bridge_once(tmp_path, config, tmp_path / "data")
    _one_line_failure(done, "17")


@pytest.mark.skipif(
    importlib.util.find_spec("lgpio") is not None, reason="lgpio is installed: a real Pi"
)
def test_bridge_with_a_pin_factory_not_installed_says_so_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "room.toml"
    config.write_text(ROOM.replace('pin_factory = "mock"', 'pin_factory = "lgpio"'))
    done = _bridge_once(tmp_path, config, tmp_path / "data")
    _one_line_failure(done, "lgpio")


# -- bridge: running ---------------------------------------------------------------------------


def _outbox_types(data_dir: Path) -> list[str]:
    """Event types in the bridge's outbox, read from another process; [] until it exists."""
    path = data_dir / "outbox.sqlite3"
    if not path.exists():
        return []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            rows = db.execute("SELECT payload FROM events ORDER BY id").fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return []
    return [json.loads(bytes(r[0]))["type"] for r in rows]


def _events(col: Collector, key: bytes, type_: str) -> list[Any]:
    return [e for e in col.events(key) if e.type == type_]


def _bridge(tmp_path: Path, broker_url: str) -> tuple[list[str], bytes, Path]:
    config = tmp_path / "room.toml"
    config.write_text(ROOM)
    key_path = _key_file(tmp_path)
    data_dir = tmp_path / "data"
    args = [
        "bridge",
        "--config",
        str(config),
        "--broker",
        broker_url,
        "--key-file",
        str(key_path),
        "--data-dir",
        str(data_dir),
    ]
    return args, parse_key(key_path.read_text()), data_dir


def test_bridge_runs_signs_and_goes_offline_on_sigterm(
    tmp_path: Path, broker: Mosquitto, procs: list[Running]
) -> None:
    args, key, data_dir = _bridge(tmp_path, broker.url)
    col = Collector(broker)
    bridge = Running(tmp_path / "bridge", *args)
    procs.append(bridge)

    wait_until(lambda: any(m.payload == b"online" for m in col.on("/status")), 20, "online")
    started = wait_until(lambda: _events(col, key, "controller.started"), 10, "started")
    first = started[0]
    assert first.topic == f"{PREFIX}/evt/controller"
    assert (first.controller, first.boot, first.seq) == (CONTROLLER, 1, 1)
    assert first.data["points"] == ["door", "siren"]
    assert first.data["readers"] == []
    beats = wait_until(lambda: _events(col, key, "controller.heartbeat"), 10, "a heartbeat")
    assert beats[0].data["armed"] is False
    assert (data_dir / "outbox.sqlite3").exists()

    bridge.proc.send_signal(signal.SIGTERM)
    assert bridge.wait() == 0, bridge.err[-2000:]
    assert "Traceback" not in bridge.err
    wait_until(lambda: col.on("/status")[-1].payload == b"offline", 10, "offline")
    col.close()

    late = Collector(broker)  # a newcomer sees the retained status
    status = wait_until(lambda: late.on("/status"), 10, "the retained status")
    assert status[-1].payload == b"offline" and status[-1].retain
    late.close()


def test_bridge_starts_with_no_broker_and_delivers_once_there_is_one(
    tmp_path: Path, procs: list[Running]
) -> None:
    broker = Mosquitto(tmp_path / "late-broker")  # its port, nothing listening yet
    args, key, data_dir = _bridge(tmp_path, broker.url)
    bridge = Running(tmp_path / "bridge", *args)
    procs.append(bridge)
    try:
        wait_until(lambda: "controller.started" in _outbox_types(data_dir), 15, "the outbox")
        with pytest.raises(subprocess.TimeoutExpired):
            bridge.proc.wait(5 * HEARTBEAT_S)  # no broker is no reason to stop
        assert "Traceback" not in bridge.err

        broker.start()
        col = Collector(broker)
        started = wait_until(lambda: _events(col, key, "controller.started"), 20, "started")
        assert (started[0].boot, started[0].seq) == (1, 1)
        wait_until(lambda: _events(col, key, "controller.heartbeat"), 10, "a heartbeat")
        assert any(m.payload == b"online" for m in col.on("/status"))
        col.close()

        bridge.proc.send_signal(signal.SIGTERM)
        assert bridge.wait() == 0, bridge.err[-2000:]
    finally:
        broker.stop()


# -- devices rfid -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("driver", "sim_class", "tag", "rssi"),
    [("m100", M100Sim, EPC, -55), ("rdm6300", Rdm6300Sim, CARD, None)],
)
def test_devices_rfid_prints_present_and_gone(
    tmp_path: Path, procs: list[Running], driver: str, sim_class: Any, tag: str, rssi: int | None
) -> None:
    with sim_class(seed=1) as sim:
        run = Running(
            tmp_path, "devices", "rfid", "--driver", driver, "--port", sim.port, "--seconds", "3"
        )
        procs.append(run)
        if driver == "m100":  # the module is only read while the driver polls it
            wait_until(lambda: sum(sim.commands.values()) > 0, 10, "the driver to poll")
        sim.put(tag, rssi=-55)
        wait_until(lambda: run.lines(), 10, "the present line")
        sim.take(tag)
        wait_until(lambda: len(run.lines()) >= 2, 10, "the gone line")
        assert run.wait() == 0, run.err
    present: dict[str, Any] = {"event": "present", "tag": tag}
    if rssi is not None:
        present["rssi"] = rssi
    assert run.lines() == [present, {"event": "gone", "tag": tag}]
    assert run.out.splitlines()[0] == json.dumps(present, separators=(",", ":"))


def test_devices_rfid_with_a_missing_port(tmp_path: Path) -> None:
    port = str(tmp_path / "ttyUSB9")
    done = ironroom("devices", "rfid", "--driver", "m100", "--port", port, "--seconds", "1")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and port in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


# -- devices badge -----------------------------------------------------------------------------


@pytest.fixture
def vpcd_empty(pcscd: list[str]) -> Iterator[None]:  # noqa: F811
    assert wait_for_card_state(VPCD_READER, present=False, timeout=10), "a card was left on"
    yield
    assert wait_for_card_state(VPCD_READER, present=False, timeout=10), "a card was left on"


def _master_file(tmp_path: Path, hex_key: str) -> Path:
    path = tmp_path / "badge-master.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(hex_key + "\n")
    return path


@pytest.mark.parametrize(
    ("key_hex", "auth"), [(MASTER, "verified"), (OTHER_MASTER, "failed")], ids=["right", "wrong"]
)
def test_devices_badge_prints_one_line_per_badge(
    tmp_path: Path, vpcd_empty: None, procs: list[Running], key_hex: str, auth: str
) -> None:
    key_file = _master_file(tmp_path, key_hex)
    run = Running(
        tmp_path / "run",
        "devices",
        "badge",
        "--profile",
        "internal-auth",
        "--key-file",
        str(key_file),
        "--seconds",
        "4",
    )
    procs.append(run)
    wait_until(lambda: "badge: watching" in run.err, 15, "the watcher to start")
    card = VirtualCard(bytes.fromhex(UID), master_key=bytes.fromhex(MASTER))
    card.insert()
    try:
        lines = wait_until(run.lines, 10, "the badge line")
    finally:
        card.remove()
    assert run.wait() == 0, run.err
    assert lines == [{"reader": VPCD_READER, "uid": UID, "auth": auth}]
    assert run.lines() == lines, "one line per presentation"


def test_devices_badge_internal_auth_needs_a_key_file() -> None:
    done = ironroom("devices", "badge", "--profile", "internal-auth", "--seconds", "1")
    assert done.returncode == 2
    assert "--key-file" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""
