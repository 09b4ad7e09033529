"""``[web]`` in the tracker config: defaults, every key checked, the shipped examples,
and the signing key made once and kept."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tracker.config import TrackerConfigError, WebConfig, parse_tracker_config
from tracker.web.server import LinkState, secret_key

ROOT = Path(__file__).resolve().parents[2]
HOURS = '[hours]\nmon = ["08:30-12:00"]\n'


def test_no_web_section_no_console() -> None:
    assert parse_tracker_config(HOURS).web is None


def test_defaults(tmp_path: Path) -> None:
    cfg = parse_tracker_config(HOURS + "[web]\n", source=tmp_path / "t.toml")
    assert cfg.web == WebConfig(secret_key_file=(tmp_path / "console.key").resolve())
    assert cfg.web.host == "127.0.0.1" and cfg.web.port == 8080


def test_every_key(tmp_path: Path) -> None:
    text = (
        HOURS + '[web]\nhost = "127.0.0.1"\nport = 9000\nsecret_key_file = "k/web.key"\n'
        "session_hours = 1.5\ncookie_secure = true\n"
    )
    web = parse_tracker_config(text, source=tmp_path / "t.toml").web
    assert web == WebConfig("127.0.0.1", 9000, (tmp_path / "k/web.key").resolve(), 1.5, True)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("port = 0", "web.port: expected a port 1..65535, got 0"),
        ("port = 70000", "web.port"),
        ('port = "80"', "web.port"),
        ("port = true", "web.port"),
        ("host = 1", "web.host"),
        ('host = ""', "web.host"),
        ("secret_key_file = 3", "web.secret_key_file"),
        ("session_hours = 0", "web.session_hours"),
        ("session_hours = 1000", "web.session_hours"),
        ("cookie_secure = 1", "web.cookie_secure: expected true or false"),
        ("colour = 1", "web: unknown keys ['colour']"),
    ],
)
def test_bad_keys(line: str, error: str) -> None:
    with pytest.raises(TrackerConfigError, match=error.replace("[", r"\[").replace(".", r"\.")):
        parse_tracker_config(HOURS + "[web]\n" + line + "\n")


@pytest.mark.parametrize("name", ["tracker.toml", "tracker-sim.toml"])
def test_examples_serve_the_console_on_loopback(name: str) -> None:
    from tracker.config import load_tracker_config

    web = load_tracker_config(ROOT / "deploy/examples" / name).web
    assert web is not None and web.host == "127.0.0.1"


def test_secret_key_made_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "console.key"
    first = secret_key(path)
    assert len(first) == 64 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret_key(path) == first
    path.write_text("short\n")
    assert secret_key(path) != first  # too short to sign with: replaced


class _Link:
    def __init__(self) -> None:
        import threading

        self.connected = threading.Event()


def test_link_state() -> None:
    link = _Link()
    assert LinkState(link).broker_state() == "disconnected"
    link.connected.set()
    assert LinkState(link).broker_state() == "connected"
    assert LinkState(object()).broker_state() == "unknown"
