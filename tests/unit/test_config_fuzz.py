"""Hypothesis: whatever text a config file holds, loading it gives a Config or a
ConfigError with a message, never another exception; whatever a signed policy.update
carries, the controller answers it and stays consistent."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge.config import Config, ConfigError, parse_config
from firmware_bridge.daemon import Bridge
from protocol.envelope import decode_command, make_command
from protocol.errors import ProtocolError
from simulators.room import builtin_config_text, load_sim_config

EXAMPLE = (Path(__file__).resolve().parents[2] / "deploy/examples/room.toml").read_text()


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from([EXAMPLE, builtin_config_text()]))
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["delete", "insert", "replace"]))
        chunk = draw(st.text(min_size=1, max_size=8))
        if op == "delete":
            text = text[:i] + text[i + len(chunk) :]
        elif op == "insert":
            text = text[:i] + chunk + text[i:]
        else:
            text = text[:i] + chunk + text[i + len(chunk) :]
    return text


@settings(max_examples=300, deadline=None)
@given(mutated())
def test_a_damaged_config_is_loaded_or_refused_with_a_message(text: str) -> None:
    _loaded_or_refused_well(text)


def _loaded_or_refused_well(text: str) -> None:
    """A refusal names the source once, then says what is wrong; a config that loads is
    the one of this text, whole and usable."""
    try:
        cfg = parse_config(text)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("<config>: ") and len(message) > len("<config>: ")
        assert message.count("<config>") == 1, message
    else:
        assert isinstance(cfg, Config)
        assert cfg.digest == hashlib.sha256(text.encode()).hexdigest()
        assert cfg.with_overrides() == cfg
        assert len(set(cfg.points)) == len(cfg.points), "no point twice"
        assert cfg.calendar.zone is not None  # the time zone resolves


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_loaded_or_refused(text: str) -> None:
    _loaded_or_refused_well(text)


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=12),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3)
    ),
    max_leaves=8,
)
_POLICY = st.fixed_dictionaries(
    {},
    optional={
        "hours": st.dictionaries(
            st.sampled_from(["mon", "tue", "sun", "xyz"]),
            _JSONISH
            | st.lists(
                st.sampled_from(["08:30-12:00", "25:00-26:00", "12:00-08:00", "x"]), max_size=3
            ),
        ),
        "holidays": st.lists(st.sampled_from(["2026-10-01", "2026-13-01", "x"]), max_size=3),
        "workdays": st.lists(st.text(max_size=10), max_size=2),
        "extended": _JSONISH,
        "timezone": st.sampled_from(["Asia/Shanghai", "UTC", "Mars/Base", "Asia", ""]),
        "cabinets": st.dictionaries(
            st.sampled_from(["c1", "c2", "BAD"]),
            st.lists(st.sampled_from(["04A1B2C3D4E5F6", "zz"]), max_size=2),
            max_size=2,
        ),
        "reset_badges": st.lists(st.sampled_from(["04A1B2C3D4E5F6", "AB"]), max_size=2),
    },
)


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Bridge:
    tmp = tmp_path_factory.mktemp("policy-fuzz")
    cfg = replace(load_sim_config(None, tmp), rfid=(), badges=())
    return Bridge(cfg, pin_factory=MockFactory(), key=bytes(32))


class _Clock:
    def now(self) -> datetime:
        return datetime(2026, 11, 27, 2, 0, tzinfo=UTC)

    def monotonic(self) -> float:
        return 100.0


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_POLICY)
def test_any_policy_update_is_answered_and_leaves_a_usable_policy(
    bridge: Bridge, data: dict
) -> None:
    ctl = bridge.controller
    ctl.clock = _Clock()
    now = ctl.clock.now()
    try:
        topic, payload = make_command(
            bridge.command_key,
            site=bridge.cfg.site,
            room=bridge.cfg.room,
            id=str(uuid.uuid4()),
            issued=now,
            expires=now + timedelta(seconds=30),
            type="policy.update",
            data=data,
        )
        cmd = decode_command(bridge.command_key, topic, payload)
    except ProtocolError:
        return  # the wire contract refuses it before the controller sees it
    before, policy_before = ctl.seq, dict(ctl.policy)
    ctl.execute(cmd)
    assert ctl.seq == before + 1, "every command is answered"
    answers = [
        json.loads(row.payload)["data"]
        for row in bridge.outbox.all()
        if row.seq == ctl.seq and row.boot == bridge.boot
    ]
    assert [a["command_id"] for a in answers] == [cmd.id], "the answer quotes the command"
    if answers[0]["ok"]:
        for key in ("hours", "holidays", "workdays", "extended", "timezone"):
            if key in data:
                assert ctl.policy[key] == data[key], key
        if "cabinets" in data:
            assert ctl.policy["cabinets"] == {k: tuple(v) for k, v in data["cabinets"].items()}
    else:
        assert answers[0]["error"], "a refusal says why"
        assert ctl.policy == policy_before, "a refused update changes nothing"
    assert ctl.working(now) in (True, False)  # the policy in force still evaluates
