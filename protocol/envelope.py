"""Event, command, ack and state envelopes: made and signed once, decoded strictly.

Decoding order matters for a security product: the payload is parsed (strict JSON, no
duplicate keys, no floats), the envelope fields checked, the signature verified over the
topic it arrived on, and only then is the ``data`` schema looked at.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from protocol import topics
from protocol.canonical import canonical
from protocol.errors import EnvelopeError, SchemaError, TopicError
from protocol.names import check_name
from protocol.schema import (
    MAX_INT,
    check_command_data,
    check_contract_json,
    check_event_data,
    is_uuid,
    show,
)
from protocol.signing import sign, verify
from protocol.timefmt import format_ts, parse_ts

VERSION = 1
MAX_PAYLOAD = 64 * 1024
#: Objects and lists nest at most this deep (the contract needs 4: policy.update's
#: ``data.extended[i].start``); deeper is refused before anything walks it.
MAX_DEPTH = 32
STATE_TYPE = "controller.state"


@dataclass(frozen=True, slots=True)
class Event:
    topic: str
    controller: str
    boot: int
    seq: int
    ts: str
    type: str
    data: dict[str, Any]
    payload: bytes = field(repr=False)

    @property
    def id(self) -> str:
        """``controller:boot:seq``, the event's identity everywhere."""
        return f"{self.controller}:{self.boot}:{self.seq}"


@dataclass(frozen=True, slots=True)
class Command:
    topic: str
    id: str
    issuer: str
    ts: str
    expires: str
    type: str
    data: dict[str, Any]
    payload: bytes = field(repr=False)

    @property
    def expires_at(self) -> datetime:
        return parse_ts(self.expires)

    @property
    def issued_at(self) -> datetime:
        return parse_ts(self.ts)


@dataclass(frozen=True, slots=True)
class Ack:
    controller: str
    boot: int
    seq: int


# -- making ---------------------------------------------------------------------------


def _seal(key: bytes, topic: str, envelope: dict[str, Any]) -> bytes:
    envelope["sig"] = sign(key, topic, envelope)
    return canonical(envelope)


def make_event(
    key: bytes,
    *,
    site: str,
    room: str,
    controller: str,
    boot: int,
    seq: int,
    ts: datetime | str,
    type: str,
    data: Mapping[str, Any],
) -> tuple[str, bytes]:
    """Build, check and sign one event; returns ``(topic, payload bytes)``."""
    check_event_data(type, dict(data))
    topic = topics.event_topic(site, room, type)
    envelope = {
        "v": VERSION,
        "controller": check_name(controller, "controller"),
        "boot": _check_counter(boot, "boot"),
        "seq": _check_counter(seq, "seq"),
        "ts": _ts_text(ts),
        "type": type,
        "data": dict(data),
    }
    return topic, _seal(key, topic, envelope)


def make_command(
    key: bytes,
    *,
    site: str,
    room: str,
    id: str,
    issued: datetime,
    expires: datetime,
    type: str,
    data: Mapping[str, Any],
    name: str | None = None,
    issuer: str = "tracker",
) -> tuple[str, bytes]:
    """Build and sign one command. ``name`` is the topic's last level (default: the type)."""
    check_command_data(type, dict(data))
    if not is_uuid(id):
        raise EnvelopeError(f"command id must be a lower-case UUID, got {id!r}")
    topic = topics.command_topic(site, room, name or type)
    envelope = {
        "v": VERSION,
        "id": id,
        "issuer": issuer,
        "ts": format_ts(issued),
        "expires": format_ts(expires),
        "type": type,
        "data": dict(data),
    }
    return topic, _seal(key, topic, envelope)


def make_ack(
    key: bytes, *, site: str, room: str, controller: str, boot: int, seq: int
) -> tuple[str, bytes]:
    """``seq`` is the highest contiguous event committed; 0 when none of the boot is."""
    topic = topics.ack_topic(site, room)
    envelope = {
        "controller": check_name(controller, "controller"),
        "boot": _check_counter(boot, "boot"),
        "seq": _check_counter(seq, "seq", lo=0),
    }
    return topic, _seal(key, topic, envelope)


def make_state(
    key: bytes,
    *,
    site: str,
    room: str,
    controller: str,
    boot: int,
    seq: int,
    ts: datetime,
    data: Mapping[str, Any],
) -> tuple[str, bytes]:
    """The retained ``P/state`` snapshot, signed with the event key; ``seq`` is the last
    event made when the snapshot was taken (it is not an event and takes no number; 0
    before the boot's first event)."""
    topic = topics.state_topic(site, room)
    _check_state_data(data)
    envelope = {
        "v": VERSION,
        "controller": check_name(controller, "controller"),
        "boot": _check_counter(boot, "boot"),
        "seq": _check_counter(seq, "seq", lo=0),
        "ts": format_ts(ts),
        "type": STATE_TYPE,
        "data": dict(data),
    }
    return topic, _seal(key, topic, envelope)


def _check_state_data(data: Any) -> None:
    try:
        check_contract_json(data)
    except SchemaError as exc:
        raise SchemaError(f"{STATE_TYPE}: {exc}") from None


def _ts_text(ts: datetime | str) -> str:
    if isinstance(ts, str):
        parse_ts(ts)
        return ts
    return format_ts(ts)


# -- decoding -------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise EnvelopeError(f"JSON constant {name} is not allowed")


def _reject_float(text: str) -> Any:
    raise EnvelopeError(f"floats are not allowed on the wire: {text}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise EnvelopeError(f"duplicate key {key!r} in JSON object")
        out[key] = value
    return out


def parse_json(payload: bytes | str) -> dict[str, Any]:
    """Strict JSON object: UTF-8, no duplicate keys, no floats, NaN or Infinity."""
    utf8 = isinstance(payload, bytes | bytearray)
    if isinstance(payload, bytes | bytearray):
        if len(payload) > MAX_PAYLOAD:
            raise EnvelopeError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD}")
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EnvelopeError(f"payload is not UTF-8: {exc}") from None
    try:
        obj = json.loads(
            payload,
            object_pairs_hook=_unique_keys,
            parse_constant=_reject_constant,
            parse_float=_reject_float,
        )
    except EnvelopeError:
        raise
    except json.JSONDecodeError as exc:
        raise EnvelopeError(f"payload is not JSON: {exc}") from None
    except RecursionError:
        raise EnvelopeError("payload is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with thousands of digits
        raise EnvelopeError(f"payload is not acceptable JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise EnvelopeError("payload must be a JSON object")
    _check_depth(obj)
    # Lone surrogates cannot be signed or stored. Valid UTF-8 holds none, so only a
    # \u escape can make one there: the (costly) full check runs when there is one,
    # or when the caller handed in text (which may hold anything).
    if not utf8 or "\\u" in payload:
        try:
            canonical(obj)
        except UnicodeEncodeError:
            raise EnvelopeError("payload holds text that is not valid Unicode") from None
    return obj


def _check_depth(obj: dict[str, Any]) -> None:
    level: list[Any] = [obj]
    for _ in range(MAX_DEPTH):
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
        if not level:
            return
    raise EnvelopeError(f"payload nests objects and lists deeper than {MAX_DEPTH} levels")


def _check_counter(value: Any, what: str, lo: int = 1) -> int:
    """``boot`` and ``seq``: integers in [lo, MAX_INT] (see :data:`MAX_INT` for why)."""
    if type(value) is not int or not lo <= value <= MAX_INT:
        raise EnvelopeError(
            f"envelope field {what!r} must be an integer in [{lo}, {MAX_INT}], got {show(value)}"
        )
    return value


def _need(env: Mapping[str, Any], name: str, kind: type) -> Any:
    if name not in env:
        raise EnvelopeError(f"missing envelope field {name!r}")
    value = env[name]
    if type(value) is not kind:
        raise EnvelopeError(f"envelope field {name!r} must be {kind.__name__}, got {show(value)}")
    return value


def _check_fields(env: Mapping[str, Any], allowed: set[str]) -> None:
    extra = set(env) - allowed
    if extra:
        raise EnvelopeError(f"unknown envelope fields {sorted(extra)}")
    if env.get("v", VERSION) != VERSION:
        raise EnvelopeError(f"unsupported protocol version {show(env.get('v'))}")


def decode_event(key: bytes, topic: str, payload: bytes) -> Event:
    """Parse, verify and schema-check one event that arrived on ``topic``."""
    parsed = topics.parse_topic(topic)
    if parsed.kind != "evt":
        raise TopicError(f"not an event topic: {topic!r}")
    env = parse_json(payload)
    _check_fields(env, {"v", "controller", "boot", "seq", "ts", "type", "data", "sig"})
    _need(env, "v", int)
    controller = check_name(_need(env, "controller", str), "controller")
    boot = _check_counter(_need(env, "boot", int), "boot")
    seq = _check_counter(_need(env, "seq", int), "seq")
    ts = _need(env, "ts", str)
    parse_ts(ts)
    type_ = _need(env, "type", str)
    data = _need(env, "data", dict)
    verify(key, topic, env, parsed=True)
    if topics.category_of(type_) != parsed.name:
        raise SchemaError(f"event type {type_!r} does not belong on {topic!r}")
    check_event_data(type_, data)
    return Event(topic, controller, boot, seq, ts, type_, data, bytes(payload))


def decode_command(key: bytes, topic: str, payload: bytes) -> Command:
    """Parse and verify one command. Expiry and replay are the receiver's to check: they
    need its clock and its memory of executed ids."""
    parsed = topics.parse_topic(topic)
    if parsed.kind != "cmd":
        raise TopicError(f"not a command topic: {topic!r}")
    env = parse_json(payload)
    _check_fields(env, {"v", "id", "issuer", "ts", "expires", "type", "data", "sig"})
    _need(env, "v", int)
    cid = _need(env, "id", str)
    if not is_uuid(cid):
        raise EnvelopeError(f"command id must be a lower-case UUID, got {cid!r}")
    issuer = _need(env, "issuer", str)
    ts = _need(env, "ts", str)
    expires = _need(env, "expires", str)
    parse_ts(ts)
    parse_ts(expires)
    type_ = _need(env, "type", str)
    data = _need(env, "data", dict)
    verify(key, topic, env, parsed=True)
    check_command_data(type_, data)
    return Command(topic, cid, issuer, ts, expires, type_, data, bytes(payload))


def decode_ack(key: bytes, topic: str, payload: bytes) -> Ack:
    if topics.parse_topic(topic).kind != "ack":
        raise TopicError(f"not an ack topic: {topic!r}")
    env = parse_json(payload)
    _check_fields(env, {"controller", "boot", "seq", "sig"})
    controller = check_name(_need(env, "controller", str), "controller")
    boot = _check_counter(_need(env, "boot", int), "boot")
    # Highest contiguous event committed: 0 before the tracker has any of this boot.
    seq = _check_counter(_need(env, "seq", int), "seq", lo=0)
    verify(key, topic, env, parsed=True)
    return Ack(controller, boot, seq)


def decode_state(key: bytes, topic: str, payload: bytes) -> dict[str, Any]:
    if topics.parse_topic(topic).kind != "state":
        raise TopicError(f"not a state topic: {topic!r}")
    env = parse_json(payload)
    _check_fields(env, {"v", "controller", "boot", "seq", "ts", "type", "data", "sig"})
    _need(env, "v", int)
    check_name(_need(env, "controller", str), "controller")
    _check_counter(_need(env, "boot", int), "boot")
    _check_counter(_need(env, "seq", int), "seq", lo=0)
    parse_ts(_need(env, "ts", str))
    if _need(env, "type", str) != STATE_TYPE:
        raise EnvelopeError(f"a state snapshot has type {STATE_TYPE!r}, got {show(env['type'])}")
    data = _need(env, "data", dict)
    verify(key, topic, env, parsed=True)
    _check_state_data(data)
    return env
