"""Property tests of the decoders.

Random bytes and random JSON are refused with a ProtocolError only. Then, so that the
signature check and the schemas are really reached: every kind of message (events of
every type, commands of every type, acks, state snapshots, and the specification's
vectors) is generated VALIDLY SIGNED, decoded, and mutated:

- re-signed after a change, a message gets past the signature and meets the envelope
  checks or the data schemas: it decodes to exactly what was signed, or is refused, and a
  change the schema must refuse is refused by the schema (SchemaError);
- changed without re-signing, a message that is otherwise well formed is refused by the
  HMAC (BadSignature), and a flipped byte never decodes to other content.
"""

from __future__ import annotations

import json
import operator
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from protocol import (
    MAX_INT,
    BadSignature,
    EnvelopeError,
    ProtocolError,
    SchemaError,
    decode_ack,
    decode_command,
    decode_event,
    decode_state,
    format_ts,
    make_ack,
    make_command,
    make_event,
    make_state,
)
from protocol.names import CONTACT_KINDS, POINT_KINDS_WITH_ID, SENSOR_KINDS
from protocol.schema import ALARM_CAUSES, COMMAND_TYPES, EVENT_TYPES
from protocol.signing import sign
from protocol.topics import category_of
from tests.vectors import load_vector

FUZZ = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
#: The properties below run once per kind of signed message (five kinds).
FUZZ_EACH_KIND = settings(FUZZ, max_examples=100)
KEY = bytes(range(32))
P = "ironroom/v1/hq/room-101"
EVT_TOPIC = f"{P}/evt/sensor"
CMD_TOPIC = f"{P}/cmd/cabinet.unlock"
ACK_TOPIC = f"{P}/ack"

Decoder = Callable[[bytes, str, bytes], Any]
DECODERS: list[tuple[Decoder, str]] = [
    (decode_event, EVT_TOPIC),
    (decode_command, CMD_TOPIC),
    (decode_ack, ACK_TOPIC),
    (decode_state, f"{P}/state"),
]
DECODER_IDS = ["event", "command", "ack", "state"]

# -- unsigned garbage -------------------------------------------------------------------

# Text that includes lone surrogates: JSON can spell them as \udXXX escapes.
any_text = st.text(st.characters(exclude_categories=()), max_size=12)
json_scalars = st.none() | st.booleans() | st.integers() | any_text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)

# Payloads once found to escape the exception tree; kept as fixed examples.
LONE_SURROGATE_EVENT = (
    b'{"v":1,"controller":"c","boot":1,"seq":1,"ts":"2026-11-27T15:10:05.250Z",'
    b'"type":"sensor.changed","data":{"x":"\\ud800"},"sig":"AAAA"}'
)
LONE_SURROGATE_COMMAND = (
    b'{"v":1,"id":"7f1d2c3e-0000-4000-8000-000000000001","issuer":"\\udfff",'
    b'"ts":"2026-11-27T09:00:00.000Z","expires":"2026-11-27T09:00:30.000Z",'
    b'"type":"alarm.silence","data":{},"sig":"AAAA"}'
)
HUGE_INTEGER = b'{"boot":' + b"9" * 5000 + b"}"


def refuses(decode: Decoder, topic: str, payload: bytes) -> None:
    """The payload must be refused with a ProtocolError; anything else propagates and
    fails the test."""
    with pytest.raises(ProtocolError):
        decode(KEY, topic, payload)


@pytest.mark.parametrize(("decode", "topic"), DECODERS, ids=DECODER_IDS)
@pytest.mark.parametrize(
    "payload",
    [LONE_SURROGATE_EVENT, LONE_SURROGATE_COMMAND, HUGE_INTEGER],
    ids=["surrogate-event", "surrogate-command", "huge-integer"],
)
def test_known_hostile_payloads(decode: Decoder, topic: str, payload: bytes):
    refuses(decode, topic, payload)


@pytest.mark.parametrize(("decode", "topic"), DECODERS, ids=DECODER_IDS)
@FUZZ
@given(payload=st.binary(max_size=300))
@example(payload=b"\xff")
@example(payload=b"{}")
@example(payload=b'{"v":1}')
def test_random_bytes_are_refused(decode: Decoder, topic: str, payload: bytes):
    refuses(decode, topic, payload)


@pytest.mark.parametrize(("decode", "topic"), DECODERS, ids=DECODER_IDS)
@FUZZ
@given(value=json_values, ascii_only=st.booleans())
def test_random_json_is_refused(decode: Decoder, topic: str, value: Any, ascii_only: bool):
    try:
        payload = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")
    except UnicodeEncodeError:
        payload = json.dumps(value).encode("utf-8")
    refuses(decode, topic, payload)


# -- valid signed messages --------------------------------------------------------------

#: Integers the protocol never carries: each is outside [-MAX_INT, MAX_INT].
OUT_OF_RANGE = [MAX_INT + 1, -MAX_INT - 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30]
assert all(abs(n) > MAX_INT for n in OUT_OF_RANGE)

# Text that can be signed (no lone surrogates).
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=16)
some_text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=16)
long_text = st.text(st.characters(exclude_categories=("Cs",)), min_size=250, max_size=256)
printable = st.text(
    st.characters(exclude_categories=("C", "Z"), include_characters=" "), min_size=1, max_size=16
)
_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
names = st.builds(
    operator.add, st.sampled_from(_ALNUM), st.text(_ALNUM + "-", max_size=31)
)  # [a-z0-9][a-z0-9-]{0,31}
command_names = st.builds(
    operator.add, st.sampled_from(_ALNUM), st.text(_ALNUM + "._-", max_size=63)
)  # [a-z0-9][a-z0-9._-]{0,63}
hexes = st.binary(min_size=1, max_size=64).map(lambda b: b.hex().upper())
ints = st.integers(-MAX_INT, MAX_INT) | st.sampled_from([0, -MAX_INT, MAX_INT])
contract_json = st.recursive(
    st.none() | st.booleans() | ints | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
mutation_values = st.recursive(
    st.none() | st.booleans() | ints | st.sampled_from(OUT_OF_RANGE) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)


def counters(lo: int) -> st.SearchStrategy[int]:
    """boot and seq: the whole range, its edges drawn often."""
    return st.integers(lo, MAX_INT) | st.sampled_from([lo, lo + 1, MAX_INT - 1, MAX_INT])


def _range(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo, hi) | st.sampled_from([lo, hi])


times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
cabinet_readers = names.map(lambda n: f"cabinet:{n}")
readers = st.sampled_from(["desk", "portal"]) | cabinet_readers
points = st.sampled_from(["door", "siren"]) | st.tuples(
    st.sampled_from(POINT_KINDS_WITH_ID), names
).map(lambda t: f"{t[0]}:{t[1]}")


@st.composite
def sensor_changes(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(SENSOR_KINDS))
    point = kind if kind == "door" else f"{kind}:{draw(names)}"
    states = ("open", "closed") if kind in CONTACT_KINDS else ("active", "inactive")
    return {"point": point, "kind": kind, "state": draw(st.sampled_from(states))}


def with_optional(
    required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(required, optional=optional)


rssi = st.none() | _range(-128, 127)

#: A strategy of valid ``data`` for every event type of the schema.
EVENT_DATA: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "controller.started": with_optional(
        {
            "version": some_text | long_text,
            "config_hash": some_text,
            "points": st.lists(text, max_size=4),
            "readers": st.lists(text, max_size=4),
        },
        {},
    ),
    "controller.heartbeat": with_optional(
        {"uptime_s": counters(0), "outbox_depth": counters(0), "armed": st.booleans()}, {}
    ),
    "sensor.changed": sensor_changes(),
    "tag.arrived": with_optional({"reader": cabinet_readers, "epc": hexes}, {"rssi": rssi}),
    "tag.departed": with_optional({"reader": cabinet_readers, "epc": hexes}, {}),
    "tag.seen": with_optional(
        {"reader": st.sampled_from(["portal", "desk"]), "epc": hexes, "rssi": rssi}, {}
    ),
    "badge.presented": with_optional(
        {
            "reader": readers,
            "uid": hexes,
            "auth": st.sampled_from(["verified", "uid-only", "failed"]),
        },
        {"label": st.none() | some_text},
    ),
    "alarm.raised": with_optional(
        {
            "alarm_id": some_text,
            "cause": st.sampled_from(ALARM_CAUSES),
            "point": st.none() | points,
            "severity": st.sampled_from(["critical", "warning"]),
        },
        {},
    ),
    "alarm.cleared": with_optional({"alarm_id": some_text, "by": some_text}, {}),
    "lock.changed": with_optional(
        {
            "point": names.map(lambda n: f"lock:{n}"),
            "state": st.sampled_from(["locked", "unlocked"]),
            "reason": some_text,
        },
        {},
    ),
    "command.result": with_optional(
        {"command_id": some_text, "ok": st.booleans(), "error": st.none() | some_text}, {}
    ),
}

#: A strategy of valid ``data`` for every command type of the schema.
COMMAND_DATA: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "cabinet.unlock": with_optional(
        {"cabinet": names, "seconds": _range(1, 600)}, {"badge": st.none() | hexes}
    ),
    "alarm.silence": with_optional({}, {"alarm_id": st.none() | some_text}),
    "alarm.reset": with_optional(
        {}, {"alarm_id": st.none() | some_text, "by": st.none() | some_text}
    ),
    "arming.set": with_optional({"state": st.sampled_from(["armed", "disarmed"])}, {}),
    "siren.set": with_optional(
        {"state": st.sampled_from(["on", "off"]), "alarm_id": printable}, {}
    ),
    "inventory.run": with_optional({"reader": cabinet_readers}, {"rounds": _range(1, 100)}),
    "policy.update": with_optional(
        {},
        {
            "hours": st.dictionaries(text, contract_json, max_size=3),
            "holidays": st.lists(text, max_size=3),
            "workdays": st.lists(text, max_size=3),
            "extended": st.lists(contract_json, max_size=3),
            "cabinets": st.dictionaries(names, st.lists(hexes, max_size=3), max_size=3),
            "reset_badges": st.lists(text, max_size=3),
            "timezone": some_text,
        },
    ),
}


def extra_fields(listed: set[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Fields a type does not list (a newer sender may add some): any contract JSON."""
    return st.dictionaries(text.filter(lambda k: k not in listed), contract_json, max_size=2)


def listed_fields(types: dict[str, Any], type_: str) -> set[str]:
    required, optional, _ = types[type_]
    return set(required) | set(optional)


def test_the_generators_cover_every_type_of_the_schema():
    assert set(EVENT_DATA) == set(EVENT_TYPES)
    assert set(COMMAND_DATA) == set(COMMAND_TYPES)


@dataclass(frozen=True)
class Kind:
    name: str
    decode: Decoder
    #: the decoded object as the envelope that was signed (without "sig")
    as_signed: Callable[[Any], dict[str, Any]]
    #: integer envelope fields and their lowest valid value
    counters: dict[str, int]
    #: the schema table of ``data``, if the kind has typed data
    types: dict[str, Any] | None


def _event_fields(ev: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "controller": ev.controller,
        "boot": ev.boot,
        "seq": ev.seq,
        "ts": ev.ts,
        "type": ev.type,
        "data": ev.data,
    }


def _command_fields(cmd: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "id": cmd.id,
        "issuer": cmd.issuer,
        "ts": cmd.ts,
        "expires": cmd.expires,
        "type": cmd.type,
        "data": cmd.data,
    }


EVENT = Kind("event", decode_event, _event_fields, {"boot": 1, "seq": 1}, EVENT_TYPES)
COMMAND = Kind("command", decode_command, _command_fields, {}, COMMAND_TYPES)
ACK = Kind(
    "ack",
    decode_ack,
    lambda a: {"controller": a.controller, "boot": a.boot, "seq": a.seq},
    {"boot": 1, "seq": 0},
    None,
)
STATE = Kind(
    "state",
    decode_state,
    lambda env: {k: v for k, v in env.items() if k != "sig"},
    {"boot": 1, "seq": 0},
    None,
)


@dataclass(frozen=True)
class Signed:
    kind: Kind
    key: bytes
    topic: str
    body: dict[str, Any]  # the envelope as signed, without "sig"
    payload: bytes


def seal(key: bytes, topic: str, body: dict[str, Any]) -> bytes:
    """``body`` signed for ``topic`` whatever it holds, in a non-canonical key order."""
    env = {"sig": sign(key, topic, body), **body}
    return json.dumps(env, ensure_ascii=False).encode("utf-8")


def _unsigned(payload: bytes) -> dict[str, Any]:
    return {k: v for k, v in json.loads(payload).items() if k != "sig"}


@st.composite
def signed_events(draw: st.DrawFn) -> Signed:
    type_ = draw(st.sampled_from(sorted(EVENT_DATA)))
    data = draw(EVENT_DATA[type_]) | draw(extra_fields(listed_fields(EVENT_TYPES, type_)))
    body = {
        "v": 1,
        "controller": draw(names),
        "boot": draw(counters(1)),
        "seq": draw(counters(1)),
        "ts": format_ts(draw(times)),
        "type": type_,
        "data": data,
    }
    topic, payload = make_event(
        KEY,
        site=draw(names),
        room=draw(names),
        **{k: body[k] for k in ("controller", "boot", "seq", "ts", "type", "data")},
    )
    assert _unsigned(payload) == body
    return Signed(EVENT, KEY, topic, body, payload)


@st.composite
def signed_commands(draw: st.DrawFn) -> Signed:
    type_ = draw(st.sampled_from(sorted(COMMAND_DATA)))
    data = draw(COMMAND_DATA[type_]) | draw(extra_fields(listed_fields(COMMAND_TYPES, type_)))
    issued = draw(times)
    expires = issued + draw(st.timedeltas(timedelta(0), timedelta(days=1)))
    cid = str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)), version=4))
    issuer = draw(text)
    topic, payload = make_command(
        KEY,
        site=draw(names),
        room=draw(names),
        id=cid,
        issued=issued,
        expires=expires,
        type=type_,
        data=data,
        name=draw(st.none() | command_names),
        issuer=issuer,
    )
    body = {
        "v": 1,
        "id": cid,
        "issuer": issuer,
        "ts": format_ts(issued),
        "expires": format_ts(expires),
        "type": type_,
        "data": data,
    }
    assert _unsigned(payload) == body
    return Signed(COMMAND, KEY, topic, body, payload)


@st.composite
def signed_acks(draw: st.DrawFn) -> Signed:
    body = {"controller": draw(names), "boot": draw(counters(1)), "seq": draw(counters(0))}
    topic, payload = make_ack(KEY, site=draw(names), room=draw(names), **body)
    assert _unsigned(payload) == body
    return Signed(ACK, KEY, topic, body, payload)


@st.composite
def signed_states(draw: st.DrawFn) -> Signed:
    when = draw(times)
    body = {
        "v": 1,
        "controller": draw(names),
        "boot": draw(counters(1)),
        "seq": draw(counters(0)),
        "ts": format_ts(when),
        "type": "controller.state",
        "data": draw(st.dictionaries(text, contract_json, max_size=4)),
    }
    topic, payload = make_state(
        KEY,
        site=draw(names),
        room=draw(names),
        ts=when,
        **{k: body[k] for k in ("controller", "boot", "seq", "data")},
    )
    assert _unsigned(payload) == body
    return Signed(STATE, KEY, topic, body, payload)


def _vector_cases() -> list[Signed]:
    """The specification's signed messages (tests/vectors/signing.json)."""
    vectors = load_vector("signing.json")
    key = bytes.fromhex(vectors["key_hex"])
    out = []
    for case in vectors["cases"]:
        kind = EVENT if "/evt/" in case["topic"] else COMMAND
        body = {k: v for k, v in case["message"].items() if k != "sig"}
        payload = json.dumps(case["message"], ensure_ascii=False).encode("utf-8")
        out.append(Signed(kind, key, case["topic"], body, payload))
    return out


VECTOR_CASES = _vector_cases()


def test_the_vectors_seed_the_fuzzers():
    assert {c.kind.name for c in VECTOR_CASES} == {"event", "command"}
    for case in VECTOR_CASES:
        assert case.kind.as_signed(case.kind.decode(case.key, case.topic, case.payload)) == (
            case.body
        )


#: Each kind of signed message gets the fuzzers' whole budget of examples.
SIGNED = [
    pytest.param(signed_events(), id="event"),
    pytest.param(signed_commands(), id="command"),
    pytest.param(signed_acks(), id="ack"),
    pytest.param(signed_states(), id="state"),
    pytest.param(st.sampled_from(VECTOR_CASES), id="vector"),
]


def decoded(case: Signed, topic: str, payload: bytes) -> tuple[dict[str, Any] | None, Any]:
    """``(what the decoder returned as a signed body, None)`` or ``(None, the
    ProtocolError)``; any other exception propagates and fails the test."""
    try:
        got = case.kind.decode(case.key, topic, payload)
    except ProtocolError as exc:
        return None, exc
    if case.kind in (EVENT, COMMAND):
        assert got.payload == payload and got.topic == topic
    return case.kind.as_signed(got), None


@pytest.mark.parametrize("messages", SIGNED)
@FUZZ_EACH_KIND
@given(data=st.data())
def test_signed_messages_decode_to_what_was_signed(
    messages: st.SearchStrategy[Signed], data: st.DataObject
):
    case = data.draw(messages, label="case")
    got, exc = decoded(case, case.topic, case.payload)
    assert exc is None, f"a valid {case.kind.name} was refused: {exc}"
    assert got == case.body


# -- re-signed mutations: the envelope checks and the schemas are reached ---------------


@dataclass(frozen=True)
class Mutation:
    what: str
    body: dict[str, Any]
    #: "schema": refused with a SchemaError; "envelope": with an EnvelopeError that is
    #: not a SchemaError; "any-data" (a change inside ``data`` only): decodes to the
    #: body, or a SchemaError; "any": decodes to the body, or any ProtocolError
    must: str
    #: for "envelope": what the error message must mention (the field's name), ``|``
    #: between alternatives
    mentions: str = ""


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


@st.composite
def _set_somewhere(draw: st.DrawFn, data: dict[str, Any], value: Any) -> str:
    """Put ``value`` at a random place inside ``data`` (a field, a new field, or deep in
    a field's lists and objects); returns where."""
    node: Any = data
    where = "data"
    while True:
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        nested = [(k, v) for k, v in children if isinstance(v, dict | list)]
        if not nested or not draw(st.booleans()):
            break
        key, node = draw(st.sampled_from(nested))
        where += f"[{key!r}]"
    if isinstance(node, dict):
        key = draw(st.sampled_from(list(node)) | text) if node else draw(text)
        node[key] = value
        return f"{where}[{key!r}]"
    if node and draw(st.booleans()):
        i = draw(st.integers(0, len(node) - 1))
        node[i] = value
        return f"{where}[{i}]"
    node.append(value)
    return f"{where}[{len(node) - 1}]"


@st.composite
def resigned_mutations(draw: st.DrawFn, case: Signed) -> Mutation:
    body = _copy(case.body)
    ops = ["drop-field", "add-field", "field-any", "counter"]
    if "data" in body and draw(st.sampled_from(["data", "data", "envelope"])) == "data":
        ops = ["data-huge", "data-any", "data-drop-key"]
        if case.kind.types is not None:
            ops += ["data-drop-required", "type-unknown", "type-other"]
    op = draw(st.sampled_from(ops))
    if op == "drop-field":
        field = draw(st.sampled_from(sorted(body)))
        del body[field]
        return Mutation(f"drop {field}", body, "envelope", repr(field))
    if op == "add-field":
        field = draw(text.filter(lambda k: k not in body and k != "sig"))
        body[field] = draw(mutation_values)
        return Mutation(f"add {field!r}", body, "envelope", "unknown envelope fields")
    if op == "field-any":
        field = draw(st.sampled_from(sorted(k for k in body if k != "data")))
        body[field] = draw(mutation_values)
        return Mutation(f"{field} = {body[field]!r}", body, "any")
    if op == "counter":
        if not case.kind.counters:
            body["v"] = draw(st.sampled_from([0, 2, -1, *OUT_OF_RANGE, True, "1"]))
            return Mutation(f"v = {body['v']!r}", body, "envelope", "'v'|version")
        field = draw(st.sampled_from(sorted(case.kind.counters)))
        lo = case.kind.counters[field]
        body[field] = draw(st.sampled_from([lo - 1, -1, *OUT_OF_RANGE, True, False, "1", None]))
        return Mutation(f"{field} = {body[field]!r}", body, "envelope", repr(field))
    data = body["data"]
    if op == "data-huge":
        where = draw(_set_somewhere(data, draw(st.sampled_from(OUT_OF_RANGE))))
        return Mutation(f"huge integer at {where}", body, "schema")
    if op == "data-any":
        where = draw(_set_somewhere(data, draw(mutation_values)))
        return Mutation(f"any value at {where}", body, "any-data")
    if op == "data-drop-key":
        if data:
            del data[draw(st.sampled_from(sorted(data)))]
        return Mutation("drop a data key", body, "any-data")
    assert case.kind.types is not None
    required = sorted(case.kind.types[body["type"]][0])
    if op == "data-drop-required" and required:
        field = draw(st.sampled_from(required))
        del data[field]
        return Mutation(f"drop data field {field}", body, "schema")
    if op == "type-unknown":
        category = category_of(body["type"]) if case.kind is EVENT else "cabinet"
        body["type"] = f"{category}.{draw(names)}"
        if body["type"] not in case.kind.types:
            return Mutation(f"type {body['type']}", body, "schema")
        return Mutation(f"type {body['type']}", body, "any-data")
    body["type"] = draw(st.sampled_from(sorted(case.kind.types)))
    return Mutation(f"type {body['type']}", body, "any-data")


@pytest.mark.parametrize("messages", SIGNED)
@FUZZ
@given(data=st.data())
def test_resigned_mutations_decode_as_signed_or_are_refused_by_the_right_layer(
    messages: st.SearchStrategy[Signed], data: st.DataObject
):
    case = data.draw(messages, label="case")
    mutation = data.draw(resigned_mutations(case), label="mutation")
    payload = seal(case.key, case.topic, mutation.body)
    got, exc = decoded(case, case.topic, payload)
    event(f"{mutation.must}: {type(exc).__name__ if exc else 'decoded'}")
    if exc is None:
        assert mutation.must in ("any", "any-data"), f"{mutation.what}: accepted"
        assert got == mutation.body, f"{mutation.what}: decoded to other content"
        return
    # Signed with the right key for this topic: never a signature error.
    assert not isinstance(exc, BadSignature), f"{mutation.what}: {exc!r}"
    if mutation.must in ("schema", "any-data"):
        # A change inside data only: the envelope is fine, so the schema refused it.
        assert isinstance(exc, SchemaError), f"{mutation.what}: {exc!r}"
    elif mutation.must == "envelope":
        assert isinstance(exc, EnvelopeError) and not isinstance(exc, SchemaError), (
            f"{mutation.what}: {exc!r}"
        )
        assert any(word in str(exc) for word in mutation.mentions.split("|")), (
            f"{mutation.what}: the error does not name the field: {exc}"
        )


@pytest.mark.parametrize("huge", OUT_OF_RANGE)
@pytest.mark.parametrize("case", VECTOR_CASES, ids=lambda c: c.topic.rsplit("/", 2)[-1])
def test_a_resigned_vector_with_a_huge_integer_in_data_is_a_schema_error(case: Signed, huge: int):
    body = _copy(case.body)
    body["data"]["n"] = huge  # a field the type does not list
    with pytest.raises(SchemaError, match=r"data\['n'\]: .* is outside the protocol's integer"):
        case.kind.decode(case.key, case.topic, seal(case.key, case.topic, body))
    body = _copy(case.body)
    body["data"][sorted(body["data"])[0]] = huge  # a field it lists
    with pytest.raises(SchemaError, match=f"field {sorted(body['data'])[0]!r}"):
        case.kind.decode(case.key, case.topic, seal(case.key, case.topic, body))


# -- changes without re-signing: the HMAC is reached ------------------------------------


@st.composite
def well_formed_changes(draw: st.DrawFn, case: Signed) -> tuple[str, dict[str, Any]]:
    """One field changed to another value the envelope checks accept (so only the
    signature can tell)."""
    body = _copy(case.body)
    choices: dict[str, st.SearchStrategy[Any]] = {
        "controller": names,
        "boot": counters(1),
        "seq": counters(case.kind.counters.get("seq", 0)),
        "ts": times.map(format_ts),
        "expires": times.map(format_ts),
        "id": st.integers(0, 2**128 - 1).map(lambda n: str(uuid.UUID(int=n, version=4))),
        "issuer": text,
        "data": st.dictionaries(text, contract_json, max_size=3),
    }
    if case.kind is not STATE:
        choices["type"] = text
    field = draw(st.sampled_from(sorted(set(choices) & set(body))))
    body[field] = draw(choices[field].filter(lambda v: v != case.body[field]))
    return field, body


@pytest.mark.parametrize("messages", SIGNED)
@FUZZ_EACH_KIND
@given(data=st.data())
def test_a_well_formed_change_without_re_signing_is_a_bad_signature(
    messages: st.SearchStrategy[Signed], data: st.DataObject
):
    case = data.draw(messages, label="case")
    field, body = data.draw(well_formed_changes(case), label="change")
    forged = json.dumps({**body, "sig": json.loads(case.payload)["sig"]}, ensure_ascii=False)
    with pytest.raises(BadSignature):
        case.kind.decode(case.key, case.topic, forged.encode("utf-8"))


@pytest.mark.parametrize("messages", SIGNED)
@FUZZ_EACH_KIND
@given(data=st.data(), room=names)
def test_a_signed_message_moved_to_another_room_is_a_bad_signature(
    messages: st.SearchStrategy[Signed], data: st.DataObject, room: str
):
    case = data.draw(messages, label="case")
    parts = case.topic.split("/")
    assume(parts[3] != room)
    moved = "/".join([*parts[:3], room, *parts[4:]])
    with pytest.raises(BadSignature):
        case.kind.decode(case.key, moved, case.payload)


@pytest.mark.parametrize("messages", SIGNED)
@FUZZ_EACH_KIND
@given(
    data=st.data(),
    flips=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=3
    ),
)
def test_flipped_bytes_never_change_the_content(
    messages: st.SearchStrategy[Signed], data: st.DataObject, flips: list[tuple[float, int]]
):
    case = data.draw(messages, label="case")
    mutated = bytearray(case.payload)
    for where, xor in flips:
        mutated[int(where * len(mutated))] ^= xor
    got, exc = decoded(case, case.topic, bytes(mutated))
    event(type(exc).__name__ if exc else "decoded")
    if exc is None:
        # Only another spelling of the same signature may still decode, to the same.
        assert got == case.body


def test_every_single_bit_flip_of_an_event():
    """Deterministic companion of the property above: each bit of one event, in turn."""
    topic, payload = make_event(
        KEY,
        site="hq",
        room="room-101",
        controller="room-101-ctl",
        boot=3,
        seq=42,
        ts="2026-11-27T15:10:05.250Z",
        type="sensor.changed",
        data={"point": "cabinet:c1", "kind": "cabinet", "state": "open", "label": "柜一"},
    )
    original = decode_event(KEY, topic, payload)
    sig_start = payload.index(b'"sig":"') + len(b'"sig":"')
    sig_chars = range(sig_start, sig_start + 43)
    still_decoding: set[int] = set()
    bad_signatures = 0
    for i in range(len(payload)):
        for bit in range(8):
            mutated = payload[:i] + bytes([payload[i] ^ (1 << bit)]) + payload[i + 1 :]
            try:
                ev = decode_event(KEY, topic, mutated)
            except BadSignature:
                bad_signatures += 1
                continue
            except ProtocolError:
                continue
            still_decoding.add(i)
            assert ev.data == original.data and ev.id == original.id and ev.ts == original.ts
    # Only a signature character can change without changing the MAC it spells.
    assert still_decoding <= set(sig_chars)
    # Most flips keep a well-formed envelope: the HMAC is what refuses them.
    assert bad_signatures > len(payload)
