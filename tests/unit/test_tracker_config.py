"""The tracker's TOML config: every error names the file and the key; fuzzed text never
gets past the loader as anything but a config or a TrackerConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.config import TrackerConfigError, load_tracker_config, parse_tracker_config
from tracker.domain.levels import Level

HOURS = '[hours]\nmon = ["08:30-17:30"]\n'


def test_minimal_config_has_the_documented_defaults() -> None:
    cfg = parse_tracker_config(HOURS)
    assert (cfg.heartbeat_s, cfg.reorder_window_s, cfg.session_s, cfg.unlock_s) == (
        5.0,
        30.0,
        120,
        20,
    )
    assert cfg.mqtt.broker == "mqtt://127.0.0.1:1883"
    assert cfg.db_url is None
    assert cfg.loan_days[Level.TOP_SECRET] is None
    assert cfg.loan_days[Level.SECRET] == 7
    assert cfg.policy_calendar() == {
        "timezone": "Asia/Shanghai",
        "hours": {
            "mon": ["08:30-17:30"],
            "tue": [],
            "wed": [],
            "thu": [],
            "fri": [],
            "sat": [],
            "sun": [],
        },
    }


def test_loans_by_chinese_or_english_name() -> None:
    cfg = parse_tracker_config(HOURS + '[loans]\n"机密" = 3\nconfidential = "in-room"\n')
    assert cfg.loan_days[Level.SECRET] == 3
    assert cfg.loan_days[Level.CONFIDENTIAL] is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "t.toml: hours: missing: the rooms' working hours"),
        (
            HOURS + "[tracker]\nreorder_window_s = -1\n",
            "t.toml: tracker.reorder_window_s: must be between 0.0 and 3600.0, got -1",
        ),
        (
            HOURS + "[tracker]\nsession_s = 'long'\n",
            "t.toml: tracker.session_s: expected a number, got 'long'",
        ),
        (
            HOURS + "[tracker]\nallow_uid_only = 1\n",
            "t.toml: tracker.allow_uid_only: expected true or false",
        ),
        (HOURS + "[tracker]\nbogus = 1\n", "t.toml: tracker: unknown keys ['bogus']"),
        (
            HOURS + "[mqtt]\nbroker = 'http://x'\n",
            "t.toml: mqtt.broker: broker must look like mqtt://host:1883",
        ),
        (
            HOURS + "[mqtt]\nbroker = 'mqtt://127.0.0.1:0'\n",
            "t.toml: mqtt.broker: the port must be from 1 to 65535",
        ),
        ('[hours]\nmon = ["8-12"]\n', "t.toml: hours.mon: '8-12' is not HH:MM-HH:MM"),
        ('[hours]\ntimezone = "Mars/Base"\nmon = []\n', "t.toml: unknown time zone 'Mars/Base'"),
        (
            HOURS + "[loans]\nsecret = 0\n",
            't.toml: loans.secret: expected days 1..3650 or "in-room"',
        ),
        (HOURS + "[loans]\nsecretish = 3\n", "t.toml: loans: unknown keys ['secretish']"),
        (HOURS + "[other]\n", "t.toml: unknown tables ['other']"),
        ("[hours\n", "t.toml: not valid TOML"),
    ],
)
def test_errors_name_the_file_and_the_key(text: str, message: str) -> None:
    with pytest.raises(TrackerConfigError) as info:
        parse_tracker_config(text, source=Path("t.toml"))
    assert str(info.value).startswith(message)
    assert str(info.value).count("t.toml") == 1


def test_named_files_are_checked_before_start(tmp_path: Path) -> None:
    path = tmp_path / "tracker.toml"
    path.write_text(HOURS + '[mqtt]\nca_file = "nope.crt"\n')
    cfg = load_tracker_config(path)  # loads anywhere (an example on a laptop)
    with pytest.raises(TrackerConfigError) as info:
        cfg.check_files()
    assert str(info.value) == f"{path}: mqtt.ca_file: {tmp_path / 'nope.crt'}: no such file"
    (tmp_path / "nope.crt").write_text("x")
    assert cfg.check_files() is cfg


def test_unreadable_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TrackerConfigError, match=r"missing\.toml: no such file"):
        load_tracker_config(tmp_path / "missing.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b"\xff\xfe[hours]")
    with pytest.raises(TrackerConfigError, match="not UTF-8"):
        load_tracker_config(bad)


_KEYS = st.sampled_from(
    [
        "tracker",
        "mqtt",
        "hours",
        "loans",
        "database",
        "mon",
        "secret",
        "heartbeat_s",
        "broker",
        "url",
        "timezone",
        "x",
    ]
)
_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.text(max_size=12)
    | st.floats(allow_nan=True),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=8,
)


def _toml(value: object) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if value == value and abs(value) != float("inf") else "nan"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEYS, st.dictionaries(_KEYS, _VALUES, max_size=4), max_size=4))
def test_fuzzed_configs_load_or_are_refused_cleanly(tables: dict[str, dict[str, object]]) -> None:
    text = "\n".join(
        f"[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in body.items())
        for name, body in tables.items()
    )
    try:
        cfg = parse_tracker_config(text, source=Path("f.toml"))
    except TrackerConfigError as exc:
        assert str(exc).startswith("f.toml: ")
    else:
        assert "hours" in tables  # only a config with working hours loads
        assert cfg.session_s >= 1


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_escapes_as_another_error(text: str) -> None:
    try:
        parse_tracker_config(text)
    except TrackerConfigError:
        pass
