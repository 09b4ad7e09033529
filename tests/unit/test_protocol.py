"""The wire contract: canonical JSON, signing vectors, topics, names, every event and
command schema, strict envelope decoding, acks and state snapshots."""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from protocol import (
    MAX_INT,
    BadSignature,
    EnvelopeError,
    ProtocolError,
    SchemaError,
    Topic,
    TopicError,
    canonical,
    decode_ack,
    decode_command,
    decode_event,
    decode_state,
    format_ts,
    make_ack,
    make_command,
    make_event,
    make_state,
    parse_topic,
    parse_ts,
    room_prefix,
    sign,
    verify,
)
from protocol.envelope import MAX_PAYLOAD
from protocol.names import check_point, check_reader, is_name, point_kind
from protocol.schema import (
    COMMAND_TYPES,
    EVENT_TYPES,
    check_command_data,
    check_event_data,
    is_uuid,
)
from protocol.signing import parse_key, signed_input
from protocol.topics import (
    ack_topic,
    category_of,
    command_filter,
    command_topic,
    event_filter,
    event_topic,
    state_topic,
    status_topic,
)
from tests.vectors import load_vector

VECTORS = load_vector("signing.json")
VKEY = bytes.fromhex(VECTORS["key_hex"])
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SITE, ROOM, CTL = "hq", "room-101", "room-101-ctl"
P = f"ironroom/v1/{SITE}/{ROOM}"
T0 = datetime(2026, 11, 27, 15, 10, 5, 250000, tzinfo=UTC)
UID = "04A1B2C3D4E5F6"
EPC = "E28011700000020A1B2C3D4E"
CMD_ID = "7f1d2c3e-0000-4000-8000-000000000001"

EVENT_CASES = [c for c in VECTORS["cases"] if "/evt/" in c["topic"]]
COMMAND_CASES = [c for c in VECTORS["cases"] if "/cmd/" in c["topic"]]


def shuffled(obj: Any, seed: int) -> Any:
    """The same JSON value with every object's keys in a seeded random order."""
    rng = random.Random(seed)

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            keys = list(value)
            rng.shuffle(keys)
            return {k: walk(value[k]) for k in keys}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(obj)


def payload_of(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope, ensure_ascii=False).encode("utf-8")


def sealed(key: bytes, topic: str, envelope: dict[str, Any]) -> bytes:
    """Sign ``envelope`` for ``topic`` whatever it holds, so the check under test is the
    one that rejects it, not the signature."""
    body = {k: v for k, v in envelope.items() if k != "sig"}
    return payload_of({**body, "sig": sign(key, topic, body)})


def event_env(**changes: Any) -> dict[str, Any]:
    env: dict[str, Any] = {
        "v": 1,
        "controller": CTL,
        "boot": 3,
        "seq": 42,
        "ts": "2026-11-27T15:10:05.250Z",
        "type": "sensor.changed",
        "data": {"point": "door", "kind": "door", "state": "open"},
    }
    env.update(changes)
    return env


def command_env(**changes: Any) -> dict[str, Any]:
    env: dict[str, Any] = {
        "v": 1,
        "id": CMD_ID,
        "issuer": "tracker",
        "ts": "2026-11-27T09:00:00.000Z",
        "expires": "2026-11-27T09:00:30.000Z",
        "type": "arming.set",
        "data": {"state": "armed"},
    }
    env.update(changes)
    return env


def new_event(type_: str, data: dict[str, Any], **kw: Any) -> tuple[str, bytes]:
    args: dict[str, Any] = {
        "site": SITE,
        "room": ROOM,
        "controller": CTL,
        "boot": 3,
        "seq": 42,
        "ts": T0,
    }
    args.update(kw)
    return make_event(KEY, type=type_, data=data, **args)


def new_command(type_: str, data: dict[str, Any], **kw: Any) -> tuple[str, bytes]:
    args: dict[str, Any] = {"site": SITE, "room": ROOM, "id": CMD_ID}
    args.update(kw)
    return make_command(
        KEY, issued=T0, expires=T0 + timedelta(seconds=30), type=type_, data=data, **args
    )


# -- exception tree ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "parents"),
    [
        (ProtocolError, (ValueError,)),
        (TopicError, (ProtocolError, ValueError)),
        (EnvelopeError, (ProtocolError, ValueError)),
        (SchemaError, (EnvelopeError, ProtocolError, ValueError)),
        (BadSignature, (ProtocolError, ValueError)),
    ],
)
def test_exceptions_are_protocol_errors_and_value_errors(exc: type, parents: tuple[type, ...]):
    for parent in parents:
        assert issubclass(exc, parent)


def test_a_bad_signature_is_caught_as_value_error():
    case = VECTORS["tampered"]
    with pytest.raises(ValueError):
        decode_event(VKEY, case["topic"], payload_of(case["message"]))


# -- canonical JSON ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": 2}, b'{"a":2,"b":1}'),
        ({"z": {"y": 1, "x": [3, {"d": 4, "c": 5}]}}, b'{"z":{"x":[3,{"c":5,"d":4}],"y":1}}'),
        ([1, 2, 3], b"[1,2,3]"),
        ({"a": "b c", "d": [True, False, None]}, b'{"a":"b c","d":[true,false,null]}'),
        ({"label": "机要室"}, '{"label":"机要室"}'.encode()),
        ({"é": "ü"}, '{"é":"ü"}'.encode()),
        ({"q": 'say "hi"\n'}, b'{"q":"say \\"hi\\"\\n"}'),
        ({"n": -(2**53)}, b'{"n":-9007199254740992}'),
    ],
)
def test_canonical_bytes(value: Any, expected: bytes):
    assert canonical(value) == expected


def test_canonical_keeps_non_ascii_as_utf8_not_escapes():
    out = canonical({"label": "机要室前台"})
    assert b"\\u" not in out
    assert out.decode("utf-8") == '{"label":"机要室前台"}'


@pytest.mark.parametrize(
    "value",
    [1.0, {"a": 1.5}, [0.0], {"a": [{"b": float("nan")}]}, (1, 2.5), {"x": float("inf")}],
)
def test_canonical_refuses_floats(value: Any):
    with pytest.raises(TypeError, match="float"):
        canonical(value)


# -- signing vectors --------------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["topic"].rsplit("/", 2)[-1])
def test_vector_signed_input(case: dict[str, Any]):
    assert signed_input(case["topic"], case["message"]) == case["signed_input_utf8"].encode()


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["topic"].rsplit("/", 2)[-1])
def test_vector_signature(case: dict[str, Any]):
    body = {k: v for k, v in case["message"].items() if k != "sig"}
    assert sign(VKEY, case["topic"], body) == case["message"]["sig"]
    verify(VKEY, case["topic"], case["message"])


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("case", EVENT_CASES, ids=lambda c: c["topic"].rsplit("/", 1)[-1])
def test_vector_events_decode_in_any_key_order(case: dict[str, Any], seed: int):
    msg = case["message"]
    ev = decode_event(VKEY, case["topic"], payload_of(shuffled(msg, seed)))
    assert (ev.controller, ev.boot, ev.seq, ev.ts, ev.type) == (
        msg["controller"],
        msg["boot"],
        msg["seq"],
        msg["ts"],
        msg["type"],
    )
    assert ev.data == msg["data"]
    assert ev.id == f"{msg['controller']}:{msg['boot']}:{msg['seq']}"
    assert ev.topic == case["topic"]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("case", COMMAND_CASES, ids=lambda c: c["topic"].rsplit("/", 1)[-1])
def test_vector_commands_decode_in_any_key_order(case: dict[str, Any], seed: int):
    msg = case["message"]
    cmd = decode_command(VKEY, case["topic"], payload_of(shuffled(msg, seed)))
    assert (cmd.id, cmd.issuer, cmd.ts, cmd.expires, cmd.type) == (
        msg["id"],
        msg["issuer"],
        msg["ts"],
        msg["expires"],
        msg["type"],
    )
    assert cmd.data == msg["data"]
    assert cmd.expires_at - cmd.issued_at == timedelta(seconds=30)


@pytest.mark.parametrize("name", ["tampered", "wrong_topic"])
def test_tampered_and_moved_vectors_are_refused(name: str):
    case = VECTORS[name]
    with pytest.raises(BadSignature):
        decode_event(VKEY, case["topic"], payload_of(case["message"]))
    with pytest.raises(BadSignature):
        verify(VKEY, case["topic"], case["message"])


def test_vector_event_with_another_key_is_refused():
    case = EVENT_CASES[0]
    with pytest.raises(BadSignature):
        decode_event(OTHER_KEY, case["topic"], payload_of(case["message"]))


@pytest.mark.parametrize(
    "sig",
    [
        None,
        "",
        5,
        "not base64 at all!!",
        "AAAA",
        pytest.param("sig-of-the-right-length-but-wrong-value-xxxx", id="wrong-value"),
    ],
)
def test_verify_refuses_missing_or_wrong_sig(sig: Any):
    env = dict(EVENT_CASES[0]["message"])
    if sig is None:
        del env["sig"]
    else:
        env["sig"] = sig
    with pytest.raises(BadSignature):
        verify(VKEY, EVENT_CASES[0]["topic"], env)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda s: s + "=", id="padding"),
        pytest.param(lambda s: s.replace("-", "+").replace("_", "/"), id="standard-alphabet"),
        pytest.param(lambda s: s[:10] + "\n" + s[10:], id="newline-inside"),
        pytest.param(lambda s: s + "!", id="junk-after"),
    ],
)
def test_verify_accepts_only_the_exact_base64url_form(mangle: Any):
    """PROTOCOL.md: sig is base64url without padding. Any other spelling of the same MAC
    gives a second byte string for one event id, which the tracker must treat as forged."""
    case = EVENT_CASES[0]
    env = dict(case["message"])
    env["sig"] = mangle(env["sig"])
    assert env["sig"] != case["message"]["sig"]
    with pytest.raises(BadSignature):
        verify(VKEY, case["topic"], env)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("00" * 32, True),
        ("  " + "ab" * 32 + "\n", True),
        ("0011 2233" + "44" * 28, True),
        ("00" * 31, False),
        ("00" * 33, False),
        ("zz" * 32, False),
        ("", False),
    ],
)
def test_parse_key(text: str, ok: bool):
    if ok:
        assert len(parse_key(text)) == 32
    else:
        with pytest.raises(ValueError):
            parse_key(text)


# -- timestamps -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (datetime(2026, 11, 27, 23, 10, 5, 250000, tzinfo=UTC), "2026-11-27T23:10:05.250Z"),
        (datetime(2026, 11, 27, 23, 10, 5, 250999, tzinfo=UTC), "2026-11-27T23:10:05.250Z"),
        (datetime(2026, 11, 27, 23, 10, 5, tzinfo=UTC), "2026-11-27T23:10:05.000Z"),
        (
            datetime(2026, 11, 27, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")),
            "2026-11-27T15:10:00.000Z",
        ),
    ],
)
def test_format_ts(when: datetime, text: str):
    assert format_ts(when) == text
    assert parse_ts(text) == when.replace(microsecond=when.microsecond // 1000 * 1000)


def test_format_ts_refuses_naive():
    with pytest.raises(ValueError):
        format_ts(datetime(2026, 11, 27, 23, 10))


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-27T23:10:05Z",
        "2026-11-27T23:10:05.25Z",
        "2026-11-27T23:10:05.250+00:00",
        "2026-11-27 23:10:05.250Z",
        "2026-02-30T00:00:00.000Z",
        "2026-11-27T24:00:00.000Z",
        "2026-11-27T23:10:05.250Z\n",
        "",
        None,
        1764256205,
    ],
)
def test_parse_ts_refuses(text: Any):
    with pytest.raises(EnvelopeError):
        parse_ts(text)


# -- names and topics -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("hq", True),
        ("room-101", True),
        ("0", True),
        ("a" * 32, True),
        ("a" * 33, False),
        ("", False),
        ("-room", False),
        ("Room", False),
        ("room_101", False),
        ("room/101", False),
        ("room 101", False),
        ("室", False),
        ("room-101\n", False),
        (None, False),
        (101, False),
    ],
)
def test_is_name(text: Any, ok: bool):
    assert is_name(text) is ok


@pytest.mark.parametrize(
    ("point", "kind"),
    [
        ("door", "door"),
        ("siren", "siren"),
        ("window:w1", "window"),
        ("cabinet:c1", "cabinet"),
        ("tamper:t1", "tamper"),
        ("motion:m1", "motion"),
        ("panic:p1", "panic"),
        ("smoke:s1", "smoke"),
        ("water:f1", "water"),
        ("lock:c1", "lock"),
    ],
)
def test_point_kind(point: str, kind: str):
    assert point_kind(point) == kind
    assert check_point(point) == point


@pytest.mark.parametrize(
    "point",
    [
        "",
        "door:1",
        "window",
        "window:",
        "window:W1",
        "gate:g1",
        "cabinet:c1:x",
        "siren:s",
        5,
        "window:w1\n",
    ],
)
def test_bad_points(point: Any):
    with pytest.raises(TopicError):
        point_kind(point)


@pytest.mark.parametrize("reader", ["desk", "portal", "cabinet:c1", "cabinet:" + "c" * 32])
def test_good_readers(reader: str):
    assert check_reader(reader) == reader


@pytest.mark.parametrize(
    "reader",
    ["", "Desk", "door", "cabinet", "cabinet:", "cabinet:C1", "window:w1", None, "cabinet:c1\n"],
)
def test_bad_readers(reader: Any):
    with pytest.raises(TopicError):
        check_reader(reader)


@pytest.mark.parametrize(
    ("built", "topic"),
    [
        (lambda: event_topic(SITE, ROOM, "sensor.changed"), Topic(SITE, ROOM, "evt", "sensor")),
        (lambda: event_topic(SITE, ROOM, "tag.arrived"), Topic(SITE, ROOM, "evt", "tag")),
        (lambda: event_topic(SITE, ROOM, "command.result"), Topic(SITE, ROOM, "evt", "command")),
        (lambda: state_topic(SITE, ROOM), Topic(SITE, ROOM, "state")),
        (lambda: status_topic(SITE, ROOM), Topic(SITE, ROOM, "status")),
        (lambda: ack_topic(SITE, ROOM), Topic(SITE, ROOM, "ack")),
        (lambda: command_topic(SITE, ROOM, "unlock"), Topic(SITE, ROOM, "cmd", "unlock")),
        (
            lambda: command_topic(SITE, ROOM, "cabinet.unlock"),
            Topic(SITE, ROOM, "cmd", "cabinet.unlock"),
        ),
    ],
)
def test_topics_build_parse_round_trip(built: Any, topic: Topic):
    text = built()
    assert text == str(topic)
    assert text.startswith(P + "/")
    assert parse_topic(text) == topic
    assert parse_topic(str(parse_topic(text))) == topic


@pytest.mark.parametrize(
    ("category", "type_"),
    [
        ("sensor", "sensor.changed"),
        ("tag", "tag.seen"),
        ("badge", "badge.presented"),
        ("alarm", "alarm.raised"),
        ("lock", "lock.changed"),
        ("controller", "controller.heartbeat"),
        ("command", "command.result"),
    ],
)
def test_every_event_category_has_a_topic(category: str, type_: str):
    assert category_of(type_) == category
    assert parse_topic(event_topic(SITE, ROOM, type_)).name == category


def test_filters():
    assert event_filter() == "ironroom/v1/+/+/evt/+"
    assert event_filter(SITE, ROOM) == f"{P}/evt/+"
    assert command_filter(SITE, ROOM) == f"{P}/cmd/+"
    assert room_prefix(SITE, ROOM) == P
    with pytest.raises(TopicError):
        event_filter("HQ")


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "ironroom",
        "ironroom/v1/hq/room-101",
        "ironroom/v2/hq/room-101/state",
        "other/v1/hq/room-101/state",
        "ironroom/v1/HQ/room-101/state",
        "ironroom/v1/hq/room_101/state",
        "ironroom/v1/hq/room-101\n/state",
        "ironroom/v1/hq//state",
        "ironroom/v1/hq/room-101/state/extra",
        "ironroom/v1/hq/room-101/state/",
        "ironroom/v1/hq/room-101/ack/x",
        "ironroom/v1/hq/room-101/evt",
        "ironroom/v1/hq/room-101/evt/door",
        "ironroom/v1/hq/room-101/evt/sensor/x",
        "ironroom/v1/hq/room-101/cmd",
        "ironroom/v1/hq/room-101/cmd/Unlock",
        "ironroom/v1/hq/room-101/cmd/+",
        "ironroom/v1/hq/room-101/evt/+",
        "ironroom/v1/hq/room-101/cmd/unlock\n",
        "ironroom/v1/+/+/evt/+",
        "ironroom/v1/hq/room-101/telemetry",
    ],
)
def test_parse_topic_refuses(topic: str):
    with pytest.raises(TopicError):
        parse_topic(topic)


@pytest.mark.parametrize(
    ("site", "room"), [("HQ", ROOM), (SITE, ""), (SITE, "a" * 33), (SITE, "+"), ("#", ROOM)]
)
def test_room_prefix_refuses_bad_names(site: str, room: str):
    with pytest.raises(TopicError):
        room_prefix(site, room)


@pytest.mark.parametrize("type_", ["sensor", "sensor.", ".changed", "door.opened", "", "evt.x"])
def test_category_of_refuses(type_: str):
    with pytest.raises(TopicError):
        category_of(type_)


@pytest.mark.parametrize("name", ["", "Unlock", "a/b", "+", "#", "-x", "x" * 65, "unlock\n"])
def test_command_topic_refuses_bad_names(name: str):
    with pytest.raises(TopicError):
        command_topic(SITE, ROOM, name)


# -- event schemas ----------------------------------------------------------------------

VALID_EVENTS: list[tuple[str, dict[str, Any]]] = [
    (
        "controller.started",
        {
            "version": "0.1.0",
            "config_hash": "ab" * 32,
            "points": ["door", "cabinet:c1", "lock:c1", "siren"],
            "readers": ["desk", "cabinet:c1"],
        },
    ),
    ("controller.heartbeat", {"uptime_s": 0, "outbox_depth": 12, "armed": False}),
    ("sensor.changed", {"point": "door", "kind": "door", "state": "open"}),
    ("sensor.changed", {"point": "window:w1", "kind": "window", "state": "closed"}),
    ("sensor.changed", {"point": "cabinet:c1", "kind": "cabinet", "state": "open"}),
    ("sensor.changed", {"point": "tamper:t1", "kind": "tamper", "state": "active"}),
    ("sensor.changed", {"point": "motion:m1", "kind": "motion", "state": "inactive"}),
    ("sensor.changed", {"point": "panic:p1", "kind": "panic", "state": "active"}),
    ("sensor.changed", {"point": "smoke:s1", "kind": "smoke", "state": "active"}),
    ("sensor.changed", {"point": "water:f1", "kind": "water", "state": "inactive"}),
    ("tag.arrived", {"reader": "cabinet:c1", "epc": EPC}),
    ("tag.arrived", {"reader": "cabinet:c2", "epc": EPC, "rssi": -61}),
    ("tag.departed", {"reader": "cabinet:c1", "epc": EPC}),
    ("tag.seen", {"reader": "portal", "epc": EPC, "rssi": -40}),
    ("tag.seen", {"reader": "desk", "epc": "0A1B2C3D4E", "rssi": None}),
    ("badge.presented", {"reader": "desk", "uid": UID, "auth": "verified"}),
    ("badge.presented", {"reader": "cabinet:c1", "uid": UID, "auth": "failed", "label": None}),
    ("badge.presented", {"reader": "portal", "uid": UID, "auth": "uid-only", "label": "前台"}),
    (
        "alarm.raised",
        {
            "alarm_id": "a-3-42",
            "cause": "after_hours_open",
            "point": "door",
            "severity": "critical",
        },
    ),
    (
        "alarm.raised",
        {"alarm_id": "t-1", "cause": "controller_silent", "point": None, "severity": "warning"},
    ),
    ("alarm.cleared", {"alarm_id": "a-3-42", "by": UID}),
    ("alarm.cleared", {"alarm_id": "a-3-42", "by": "tracker"}),
    ("lock.changed", {"point": "lock:c1", "state": "unlocked", "reason": "badge"}),
    ("command.result", {"command_id": CMD_ID, "ok": True, "error": None}),
    ("command.result", {"command_id": CMD_ID, "ok": False, "error": "expired"}),
    ("sensor.changed", {"point": "door", "kind": "door", "state": "open", "label": "前门"}),
]


def test_every_event_type_has_a_valid_example():
    assert {t for t, _ in VALID_EVENTS} == set(EVENT_TYPES)


@pytest.mark.parametrize(("type_", "data"), VALID_EVENTS, ids=[t for t, _ in VALID_EVENTS])
def test_valid_event_round_trip(type_: str, data: dict[str, Any]):
    topic, payload = new_event(type_, data)
    assert topic == f"{P}/evt/{type_.split('.')[0]}"
    ev = decode_event(KEY, topic, payload)
    assert (ev.type, ev.data, ev.controller, ev.boot, ev.seq) == (type_, data, CTL, 3, 42)
    assert ev.ts == "2026-11-27T15:10:05.250Z"
    assert ev.payload == payload
    # Made once: the bytes are the canonical form, so a re-make gives the same bytes.
    assert new_event(type_, data) == (topic, payload)
    assert payload == canonical(json.loads(payload))


INVALID_EVENTS: list[tuple[str, str, dict[str, Any]]] = [
    ("missing field", "controller.heartbeat", {"uptime_s": 1, "outbox_depth": 0}),
    ("negative uptime", "controller.heartbeat", {"uptime_s": -1, "outbox_depth": 0, "armed": True}),
    ("bool as int", "controller.heartbeat", {"uptime_s": True, "outbox_depth": 0, "armed": True}),
    ("int as bool", "controller.heartbeat", {"uptime_s": 1, "outbox_depth": 0, "armed": 1}),
    (
        "points not a list",
        "controller.started",
        {"version": "1", "config_hash": "x", "points": "door", "readers": []},
    ),
    (
        "empty version",
        "controller.started",
        {"version": "", "config_hash": "x", "points": [], "readers": []},
    ),
    (
        "version too long",
        "controller.started",
        {"version": "x" * 257, "config_hash": "x", "points": [], "readers": []},
    ),
    ("bad kind", "sensor.changed", {"point": "door", "kind": "gate", "state": "open"}),
    ("bad state", "sensor.changed", {"point": "door", "kind": "door", "state": "ajar"}),
    ("kind/point mismatch", "sensor.changed", {"point": "door", "kind": "window", "state": "open"}),
    ("contact as detector", "sensor.changed", {"point": "door", "kind": "door", "state": "active"}),
    (
        "detector as contact",
        "sensor.changed",
        {"point": "smoke:s1", "kind": "smoke", "state": "open"},
    ),
    ("siren is no sensor", "sensor.changed", {"point": "siren", "kind": "door", "state": "open"}),
    ("bad point", "sensor.changed", {"point": "window:W1", "kind": "window", "state": "open"}),
    ("missing state", "sensor.changed", {"point": "door", "kind": "door"}),
    ("lowercase epc", "tag.arrived", {"reader": "cabinet:c1", "epc": EPC.lower()}),
    ("odd epc", "tag.arrived", {"reader": "cabinet:c1", "epc": "ABC"}),
    ("empty epc", "tag.departed", {"reader": "cabinet:c1", "epc": ""}),
    ("arrived at desk", "tag.arrived", {"reader": "desk", "epc": EPC}),
    ("arrived at portal", "tag.arrived", {"reader": "portal", "epc": EPC}),
    ("departed at portal", "tag.departed", {"reader": "portal", "epc": EPC}),
    ("arrived bad reader", "tag.arrived", {"reader": "cabinet:C1", "epc": EPC}),
    ("arrived reader not str", "tag.arrived", {"reader": 7, "epc": EPC}),
    ("rssi out of range", "tag.arrived", {"reader": "cabinet:c1", "epc": EPC, "rssi": 200}),
    ("seen at a cabinet", "tag.seen", {"reader": "cabinet:c1", "epc": EPC, "rssi": None}),
    ("seen without rssi", "tag.seen", {"reader": "portal", "epc": EPC}),
    ("seen rssi as str", "tag.seen", {"reader": "portal", "epc": EPC, "rssi": "-40"}),
    (
        "lowercase uid",
        "badge.presented",
        {"reader": "desk", "uid": UID.lower(), "auth": "verified"},
    ),
    ("bad auth", "badge.presented", {"reader": "desk", "uid": UID, "auth": "ok"}),
    ("badge bad reader", "badge.presented", {"reader": "door", "uid": UID, "auth": "verified"}),
    (
        "bad label",
        "badge.presented",
        {"reader": "desk", "uid": UID, "auth": "verified", "label": 5},
    ),
    (
        "bad cause",
        "alarm.raised",
        {"alarm_id": "a", "cause": "burglary", "point": None, "severity": "critical"},
    ),
    (
        "bad severity",
        "alarm.raised",
        {"alarm_id": "a", "cause": "tamper", "point": None, "severity": "high"},
    ),
    (
        "alarm missing point",
        "alarm.raised",
        {"alarm_id": "a", "cause": "tamper", "severity": "warning"},
    ),
    (
        "alarm bad point",
        "alarm.raised",
        {"alarm_id": "a", "cause": "tamper", "point": "gate", "severity": "warning"},
    ),
    ("cleared without by", "alarm.cleared", {"alarm_id": "a"}),
    ("cleared by empty", "alarm.cleared", {"alarm_id": "a", "by": ""}),
    (
        "lock on a cabinet point",
        "lock.changed",
        {"point": "cabinet:c1", "state": "locked", "reason": "x"},
    ),
    ("lock bad state", "lock.changed", {"point": "lock:c1", "state": "open", "reason": "x"}),
    ("lock empty reason", "lock.changed", {"point": "lock:c1", "state": "locked", "reason": ""}),
    ("result ok as str", "command.result", {"command_id": CMD_ID, "ok": "true", "error": None}),
    ("result missing error", "command.result", {"command_id": CMD_ID, "ok": True}),
    ("unknown type", "sensor.exploded", {}),
    ("unknown category", "door.opened", {}),
    (
        "uptime past the protocol's integers",
        "controller.heartbeat",
        {"uptime_s": MAX_INT + 1, "outbox_depth": 0, "armed": True},
    ),
    (
        "outbox depth of 2**63",
        "controller.heartbeat",
        {"uptime_s": 1, "outbox_depth": 2**63, "armed": True},
    ),
    ("rssi below range", "tag.seen", {"reader": "portal", "epc": EPC, "rssi": -129}),
    ("rssi of 2**64", "tag.arrived", {"reader": "cabinet:c1", "epc": EPC, "rssi": 2**64}),
    (
        "huge integer in an unlisted field",
        "sensor.changed",
        {"point": "door", "kind": "door", "state": "open", "count": 2**63},
    ),
    (
        "huge negative integer nested in an unlisted field",
        "alarm.cleared",
        {"alarm_id": "a", "by": "tracker", "extra": {"n": [1, -(2**53)]}},
    ),
]


@pytest.mark.parametrize(
    ("type_", "data"), [(t, d) for _, t, d in INVALID_EVENTS], ids=[n for n, _, _ in INVALID_EVENTS]
)
def test_invalid_event_data_is_refused_on_both_sides(type_: str, data: dict[str, Any]):
    with pytest.raises(SchemaError):
        new_event(type_, data)
    category = type_.split(".")[0]
    known = category in ("sensor", "tag", "badge", "alarm", "lock", "controller", "command")
    topic = f"{P}/evt/{category if known else 'sensor'}"
    payload = sealed(KEY, topic, event_env(type=type_, data=data))
    # a type of no known category cannot even be routed: that is a topic-grammar error
    with pytest.raises(SchemaError if known else TopicError):
        decode_event(KEY, topic, payload)


def test_a_float_in_event_data_cannot_be_signed():
    with pytest.raises(TypeError, match="float"):
        new_event("alarm.cleared", {"alarm_id": "a", "by": "tracker", "x": 1.5})


def test_schema_error_names_the_field():
    with pytest.raises(SchemaError, match="'epc'"):
        check_event_data("tag.arrived", {"reader": "cabinet:c1", "epc": "e2"})
    with pytest.raises(SchemaError, match="missing data field 'armed'"):
        check_event_data("controller.heartbeat", {"uptime_s": 1, "outbox_depth": 0})
    with pytest.raises(SchemaError, match="cabinet readers only"):
        check_event_data("tag.arrived", {"reader": "desk", "epc": EPC})


# -- command schemas --------------------------------------------------------------------

VALID_COMMANDS: list[tuple[str, dict[str, Any]]] = [
    ("cabinet.unlock", {"cabinet": "c1", "seconds": 20, "badge": UID}),
    ("cabinet.unlock", {"cabinet": "c2", "seconds": 600}),
    ("alarm.silence", {}),
    ("alarm.silence", {"alarm_id": "a-3-42"}),
    ("alarm.reset", {"alarm_id": "a-3-42", "by": UID}),
    ("arming.set", {"state": "armed"}),
    ("arming.set", {"state": "disarmed"}),
    ("inventory.run", {"reader": "cabinet:c1"}),
    ("inventory.run", {"reader": "cabinet:c2", "rounds": 5}),
    (
        "policy.update",
        {
            "hours": {"mon": ["08:30-12:00"]},
            "holidays": ["2026-10-01"],
            "workdays": ["2026-10-10"],
            "extended": [{"start": "2026-11-27T10:00:00.000Z", "end": "2026-11-27T14:00:00.000Z"}],
            "cabinets": {"c1": [UID], "c2": []},
            "reset_badges": [UID],
            "timezone": "Asia/Shanghai",
        },
    ),
    ("policy.update", {}),
    ("siren.set", {"state": "on", "alarm_id": "t-7f1d2c3e"}),
    ("siren.set", {"state": "off", "alarm_id": "机要室-1"}),
    ("siren.set", {"state": "on", "alarm_id": "a" * 256}),
    ("cabinet.unlock", {"cabinet": "c1", "seconds": 20, "note": MAX_INT}),
]


def test_every_command_type_has_a_valid_example():
    assert {t for t, _ in VALID_COMMANDS} == set(COMMAND_TYPES)


@pytest.mark.parametrize(("type_", "data"), VALID_COMMANDS, ids=[t for t, _ in VALID_COMMANDS])
def test_valid_command_round_trip(type_: str, data: dict[str, Any]):
    topic, payload = new_command(type_, data)
    assert topic == f"{P}/cmd/{type_}"
    cmd = decode_command(KEY, topic, payload)
    assert (cmd.id, cmd.issuer, cmd.type, cmd.data) == (CMD_ID, "tracker", type_, data)
    assert cmd.issued_at == T0.replace(microsecond=250000)
    assert cmd.expires_at == T0 + timedelta(seconds=30)
    assert cmd.payload == payload


def test_command_topic_name_is_free_and_signed():
    topic, payload = new_command("arming.set", {"state": "armed"}, name="arm")
    assert topic == f"{P}/cmd/arm"
    assert decode_command(KEY, topic, payload).type == "arming.set"
    with pytest.raises(BadSignature):
        decode_command(KEY, f"{P}/cmd/arming.set", payload)
    with pytest.raises(BadSignature):
        decode_command(KEY, f"ironroom/v1/{SITE}/room-102/cmd/arm", payload)


INVALID_COMMANDS: list[tuple[str, str, dict[str, Any]]] = [
    ("unlock missing cabinet", "cabinet.unlock", {"seconds": 20}),
    ("unlock zero seconds", "cabinet.unlock", {"cabinet": "c1", "seconds": 0}),
    ("unlock too long", "cabinet.unlock", {"cabinet": "c1", "seconds": 601}),
    ("unlock seconds as str", "cabinet.unlock", {"cabinet": "c1", "seconds": "20"}),
    ("unlock bad cabinet", "cabinet.unlock", {"cabinet": "cabinet:c1", "seconds": 20}),
    ("unlock lowercase badge", "cabinet.unlock", {"cabinet": "c1", "seconds": 20, "badge": "04a1"}),
    ("silence bad id", "alarm.silence", {"alarm_id": 5}),
    ("reset empty by", "alarm.reset", {"by": ""}),
    ("arming bad enum", "arming.set", {"state": "on"}),
    ("arming missing", "arming.set", {}),
    ("inventory at portal", "inventory.run", {"reader": "portal"}),
    ("inventory zero rounds", "inventory.run", {"reader": "cabinet:c1", "rounds": 0}),
    ("policy hours not object", "policy.update", {"hours": ["08:30-12:00"]}),
    ("policy holidays not list", "policy.update", {"holidays": "2026-10-01"}),
    ("policy holidays not strings", "policy.update", {"holidays": [20261001]}),
    ("policy extended not list", "policy.update", {"extended": {}}),
    ("policy cabinets not object", "policy.update", {"cabinets": ["c1"]}),
    ("policy bad cabinet name", "policy.update", {"cabinets": {"C1": [UID]}}),
    ("policy lowercase badge", "policy.update", {"cabinets": {"c1": [UID.lower()]}}),
    ("policy badges not list", "policy.update", {"cabinets": {"c1": UID}}),
    ("policy empty timezone", "policy.update", {"timezone": ""}),
    ("unknown command", "door.open", {}),
    ("unlock seconds of 2**63", "cabinet.unlock", {"cabinet": "c1", "seconds": 2**63}),
    ("inventory rounds of 2**64", "inventory.run", {"reader": "cabinet:c1", "rounds": 2**64}),
    ("policy huge integer in hours", "policy.update", {"hours": {"mon": [2**63]}}),
    (
        "policy huge integer in extended",
        "policy.update",
        {"extended": [{"start": "x", "end": -(2**63) - 1}]},
    ),
    ("command with 2**53 in an unlisted field", "arming.set", {"state": "armed", "n": 2**53}),
    ("siren missing state", "siren.set", {"alarm_id": "t-1"}),
    ("siren missing alarm_id", "siren.set", {"state": "on"}),
    ("siren bad state", "siren.set", {"state": "loud", "alarm_id": "t-1"}),
    ("siren state as bool", "siren.set", {"state": True, "alarm_id": "t-1"}),
    ("siren state armed", "siren.set", {"state": "armed", "alarm_id": "t-1"}),
    ("siren empty alarm_id", "siren.set", {"state": "on", "alarm_id": ""}),
    ("siren alarm_id too long", "siren.set", {"state": "on", "alarm_id": "a" * 257}),
    ("siren alarm_id as int", "siren.set", {"state": "off", "alarm_id": 7}),
    ("siren alarm_id null", "siren.set", {"state": "off", "alarm_id": None}),
    ("siren alarm_id with newline", "siren.set", {"state": "on", "alarm_id": "t-1\nforged"}),
    ("siren alarm_id with escape", "siren.set", {"state": "on", "alarm_id": "t-1\x1b[2J"}),
]


@pytest.mark.parametrize(
    ("type_", "data"),
    [(t, d) for _, t, d in INVALID_COMMANDS],
    ids=[n for n, _, _ in INVALID_COMMANDS],
)
def test_invalid_command_data_is_refused_on_both_sides(type_: str, data: dict[str, Any]):
    with pytest.raises(SchemaError):
        new_command(type_, data)
    topic = f"{P}/cmd/x"
    payload = sealed(KEY, topic, command_env(type=type_, data=data))
    with pytest.raises(SchemaError):
        decode_command(KEY, topic, payload)


@pytest.mark.parametrize("cid", [CMD_ID.upper(), "42", "", CMD_ID + "\n", CMD_ID[:-1]])
def test_command_id_must_be_a_lowercase_uuid(cid: str):
    assert not is_uuid(cid)
    with pytest.raises(EnvelopeError):
        new_command("arming.set", {"state": "armed"}, id=cid)
    topic = f"{P}/cmd/x"
    with pytest.raises(EnvelopeError):
        decode_command(KEY, topic, sealed(KEY, topic, command_env(id=cid)))


def test_check_command_data_needs_an_object():
    with pytest.raises(SchemaError):
        check_command_data("arming.set", ["armed"])


# -- strictness of names inside data (a trailing newline is not part of any grammar) -----


@pytest.mark.parametrize(
    ("type_", "data"),
    [
        ("badge.presented", {"reader": "desk", "uid": UID + "\n", "auth": "verified"}),
        ("tag.departed", {"reader": "cabinet:c1", "epc": EPC + "\n"}),
        ("sensor.changed", {"point": "window:w1\n", "kind": "window", "state": "open"}),
    ],
    ids=["uid", "epc", "point"],
)
def test_trailing_newline_is_not_hex_or_a_name(type_: str, data: dict[str, Any]):
    with pytest.raises(SchemaError):
        check_event_data(type_, data)


# -- envelope errors --------------------------------------------------------------------

EVT_TOPIC = f"{P}/evt/sensor"
GOOD_SIG = sign(KEY, EVT_TOPIC, event_env())


def raw(text: str) -> bytes:
    return text.encode("utf-8")


ENVELOPE_PAYLOADS: list[tuple[str, bytes, type[Exception]]] = [
    ("not JSON", b"{not json", EnvelopeError),
    ("empty", b"", EnvelopeError),
    ("not UTF-8", b'{"v":1,"controller":"\xff\xfe"}', EnvelopeError),
    ("a list", b"[]", EnvelopeError),
    ("a string", b'"event"', EnvelopeError),
    ("duplicate key", raw('{"v":1,"v":1}'), EnvelopeError),
    (
        "duplicate key in data",
        raw('{"data":{"point":"door","point":"window:w1"}}'),
        EnvelopeError,
    ),
    ("float", raw('{"v":1.0}'), EnvelopeError),
    ("float exponent", raw('{"v":1e0}'), EnvelopeError),
    ("NaN", raw('{"v":NaN}'), EnvelopeError),
    ("Infinity", raw('{"v":-Infinity}'), EnvelopeError),
    ("too big", b'{"pad":"' + b"x" * MAX_PAYLOAD + b'"}', EnvelopeError),
    ("too deep", b"[" * 20_000 + b"]" * 20_000, EnvelopeError),
    ("extra field", sealed(KEY, EVT_TOPIC, event_env(retries=1)), EnvelopeError),
    ("wrong v", sealed(KEY, EVT_TOPIC, event_env(v=2)), EnvelopeError),
    ("v as bool", sealed(KEY, EVT_TOPIC, event_env(v=True)), EnvelopeError),
    ("v as str", sealed(KEY, EVT_TOPIC, event_env(v="1")), EnvelopeError),
    ("boot 0", sealed(KEY, EVT_TOPIC, event_env(boot=0)), EnvelopeError),
    ("boot as str", sealed(KEY, EVT_TOPIC, event_env(boot="3")), EnvelopeError),
    ("boot huge", sealed(KEY, EVT_TOPIC, event_env(boot=2**53 + 1)), EnvelopeError),
    ("seq negative", sealed(KEY, EVT_TOPIC, event_env(seq=-1)), EnvelopeError),
    ("seq 0", sealed(KEY, EVT_TOPIC, event_env(seq=0)), EnvelopeError),
    ("seq as bool", sealed(KEY, EVT_TOPIC, event_env(seq=True)), EnvelopeError),
    ("boot 2**53", sealed(KEY, EVT_TOPIC, event_env(boot=2**53)), EnvelopeError),
    ("boot negative", sealed(KEY, EVT_TOPIC, event_env(boot=-1)), EnvelopeError),
    ("boot 2**63", sealed(KEY, EVT_TOPIC, event_env(boot=2**63)), EnvelopeError),
    ("seq 2**53", sealed(KEY, EVT_TOPIC, event_env(seq=2**53)), EnvelopeError),
    ("seq 2**63", sealed(KEY, EVT_TOPIC, event_env(seq=2**63)), EnvelopeError),
    ("seq 2**64", sealed(KEY, EVT_TOPIC, event_env(seq=2**64)), EnvelopeError),
    ("seq of 4000 digits", sealed(KEY, EVT_TOPIC, event_env(seq=10**4000)), EnvelopeError),
    ("v 2**64", sealed(KEY, EVT_TOPIC, event_env(v=2**64)), EnvelopeError),
    ("ts without ms", sealed(KEY, EVT_TOPIC, event_env(ts="2026-11-27T15:10:05Z")), EnvelopeError),
    (
        "ts with offset",
        sealed(KEY, EVT_TOPIC, event_env(ts="2026-11-27T23:10:05.250+08:00")),
        EnvelopeError,
    ),
    (
        "ts not a date",
        sealed(KEY, EVT_TOPIC, event_env(ts="2026-13-01T00:00:00.000Z")),
        EnvelopeError,
    ),
    ("ts as int", sealed(KEY, EVT_TOPIC, event_env(ts=1764256205)), EnvelopeError),
    ("data as list", sealed(KEY, EVT_TOPIC, event_env(data=[])), EnvelopeError),
    ("type as int", sealed(KEY, EVT_TOPIC, event_env(type=1)), EnvelopeError),
    (
        "missing controller",
        sealed(KEY, EVT_TOPIC, {k: v for k, v in event_env().items() if k != "controller"}),
        EnvelopeError,
    ),
    (
        "missing v",
        sealed(KEY, EVT_TOPIC, {k: v for k, v in event_env().items() if k != "v"}),
        EnvelopeError,
    ),
    ("bad controller name", sealed(KEY, EVT_TOPIC, event_env(controller="Room-101")), TopicError),
    ("unsigned", payload_of(event_env()), BadSignature),
    ("empty sig", payload_of({**event_env(), "sig": ""}), BadSignature),
    ("sig as int", payload_of({**event_env(), "sig": 5}), BadSignature),
    ("signed with another key", sealed(OTHER_KEY, EVT_TOPIC, event_env()), BadSignature),
    ("altered after signing", payload_of({**event_env(seq=43), "sig": GOOD_SIG}), BadSignature),
    (
        "event type in the wrong category",
        sealed(
            KEY,
            EVT_TOPIC,
            event_env(type="tag.departed", data={"reader": "cabinet:c1", "epc": EPC}),
        ),
        SchemaError,
    ),
    (
        "unknown category",
        sealed(KEY, EVT_TOPIC, event_env(type="door.opened", data={})),
        TopicError,
    ),
]


@pytest.mark.parametrize(
    ("payload", "exc"),
    [(p, e) for _, p, e in ENVELOPE_PAYLOADS],
    ids=[n for n, _, _ in ENVELOPE_PAYLOADS],
)
def test_decode_event_envelope_errors(payload: bytes, exc: type[Exception]):
    with pytest.raises(exc):
        decode_event(KEY, EVT_TOPIC, payload)


def test_the_good_envelope_of_the_error_table_decodes():
    ev = decode_event(KEY, EVT_TOPIC, payload_of({**event_env(), "sig": GOOD_SIG}))
    assert ev.id == f"{CTL}:3:42"


def test_decode_event_accepts_a_bytearray_payload():
    topic, payload = new_event("alarm.cleared", {"alarm_id": "a", "by": "tracker"})
    ev = decode_event(KEY, topic, bytearray(payload))  # type: ignore[arg-type]
    assert ev.data["by"] == "tracker"
    assert ev.payload == payload


@pytest.mark.parametrize(
    "topic", [f"{P}/state", f"{P}/ack", f"{P}/cmd/x", "ironroom/v1/hq", "elsewhere/evt/sensor"]
)
def test_decode_event_only_on_event_topics(topic: str):
    with pytest.raises(TopicError):
        decode_event(KEY, topic, payload_of({**event_env(), "sig": GOOD_SIG}))


@pytest.mark.parametrize("topic", [f"{P}/state", f"{P}/ack", EVT_TOPIC, "nope"])
def test_decode_command_only_on_command_topics(topic: str):
    _, payload = new_command("arming.set", {"state": "armed"})
    with pytest.raises(TopicError):
        decode_command(KEY, topic, payload)


COMMAND_ENVELOPES: list[tuple[str, dict[str, Any], type[Exception]]] = [
    ("extra field", command_env(controller=CTL), EnvelopeError),
    ("wrong v", command_env(v=0), EnvelopeError),
    ("bad ts", command_env(ts="yesterday"), EnvelopeError),
    ("bad expires", command_env(expires="2026-11-27T09:00:30Z"), EnvelopeError),
    ("issuer not str", command_env(issuer=None), EnvelopeError),
    ("data not object", command_env(data="armed"), EnvelopeError),
    ("missing expires", {k: v for k, v in command_env().items() if k != "expires"}, EnvelopeError),
]


@pytest.mark.parametrize(
    ("env", "exc"),
    [(e, x) for _, e, x in COMMAND_ENVELOPES],
    ids=[n for n, _, _ in COMMAND_ENVELOPES],
)
def test_decode_command_envelope_errors(env: dict[str, Any], exc: type[Exception]):
    topic = f"{P}/cmd/arming.set"
    with pytest.raises(exc):
        decode_command(KEY, topic, sealed(KEY, topic, env))


def test_command_tampered_after_signing_is_refused():
    topic, payload = new_command("cabinet.unlock", {"cabinet": "c1", "seconds": 20})
    env = json.loads(payload)
    env["data"]["seconds"] = 600
    with pytest.raises(BadSignature):
        decode_command(KEY, topic, payload_of(env))
    env = json.loads(payload)
    env["expires"] = "2027-11-27T09:00:30.000Z"
    with pytest.raises(BadSignature):
        decode_command(KEY, topic, payload_of(env))


# -- making -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "exc"),
    [
        ({"boot": 0}, EnvelopeError),
        ({"seq": -1}, EnvelopeError),
        ({"seq": 2**53 + 1}, EnvelopeError),
        ({"seq": 2**53}, EnvelopeError),
        ({"boot": 2**63}, EnvelopeError),
        ({"controller": "Room 101"}, TopicError),
        ({"site": "HQ"}, TopicError),
        ({"room": ""}, TopicError),
        ({"ts": datetime(2026, 11, 27, 23, 10)}, ValueError),
    ],
    ids=[
        "boot0",
        "seq-neg",
        "seq-huge",
        "seq-2**53",
        "boot-2**63",
        "controller",
        "site",
        "room",
        "naive-ts",
    ],
)
def test_make_event_refuses(changes: dict[str, Any], exc: type[Exception]):
    args: dict[str, Any] = {
        "site": SITE,
        "room": ROOM,
        "controller": CTL,
        "boot": 3,
        "seq": 42,
        "ts": T0,
        "type": "alarm.cleared",
        "data": {"alarm_id": "a", "by": "tracker"},
    }
    args.update(changes)
    with pytest.raises(exc):
        make_event(KEY, **args)


def test_make_event_takes_a_wire_timestamp_string():
    topic, payload = new_event(
        "alarm.cleared", {"alarm_id": "a", "by": "tracker"}, ts="2026-11-27T15:10:05.250Z"
    )
    assert decode_event(KEY, topic, payload).ts == "2026-11-27T15:10:05.250Z"


@pytest.mark.parametrize("ts", ["2026-11-27 15:10:05", "2026-11-27T15:10:05Z", "now", ""])
def test_make_event_refuses_a_timestamp_its_own_decoder_refuses(ts: str):
    """An event is made once and resent byte for byte: one the tracker cannot decode would
    sit in the outbox forever."""
    with pytest.raises(EnvelopeError):
        new_event("alarm.cleared", {"alarm_id": "a", "by": "tracker"}, ts=ts)


def test_make_event_payload_is_canonical_with_sig():
    topic, payload = new_event("sensor.changed", {"point": "door", "kind": "door", "state": "open"})
    env = json.loads(payload)
    assert list(env) == sorted(env)
    assert b" " not in payload
    body = {k: v for k, v in env.items() if k != "sig"}
    assert env["sig"] == sign(KEY, topic, body)
    assert len(env["sig"]) == 43 and "=" not in env["sig"]


# -- acks and state ---------------------------------------------------------------------

ACK_TOPIC = f"{P}/ack"


@pytest.mark.parametrize(
    ("boot", "seq"), [(1, 0), (3, 42), (2**31, 2**40), (1, MAX_INT), (MAX_INT, MAX_INT)]
)
def test_ack_round_trip(boot: int, seq: int):
    topic, payload = make_ack(KEY, site=SITE, room=ROOM, controller=CTL, boot=boot, seq=seq)
    assert topic == ACK_TOPIC
    ack = decode_ack(KEY, topic, payload)
    assert (ack.controller, ack.boot, ack.seq) == (CTL, boot, seq)


ACK_ERRORS: list[tuple[str, str, bytes, type[Exception]]] = [
    (
        "tampered seq",
        ACK_TOPIC,
        payload_of(
            {
                **json.loads(make_ack(KEY, site=SITE, room=ROOM, controller=CTL, boot=3, seq=4)[1]),
                "seq": 400,
            }
        ),
        BadSignature,
    ),
    (
        "other room",
        f"ironroom/v1/{SITE}/room-102/ack",
        make_ack(KEY, site=SITE, room=ROOM, controller=CTL, boot=3, seq=4)[1],
        BadSignature,
    ),
    (
        "other key",
        ACK_TOPIC,
        sealed(OTHER_KEY, ACK_TOPIC, {"controller": CTL, "boot": 3, "seq": 4}),
        BadSignature,
    ),
    ("unsigned", ACK_TOPIC, payload_of({"controller": CTL, "boot": 3, "seq": 4}), BadSignature),
    (
        "seq negative",
        ACK_TOPIC,
        sealed(KEY, ACK_TOPIC, {"controller": CTL, "boot": 3, "seq": -1}),
        EnvelopeError,
    ),
    (
        "boot 0",
        ACK_TOPIC,
        sealed(KEY, ACK_TOPIC, {"controller": CTL, "boot": 0, "seq": 1}),
        EnvelopeError,
    ),
    (
        "seq as str",
        ACK_TOPIC,
        sealed(KEY, ACK_TOPIC, {"controller": CTL, "boot": 3, "seq": "4"}),
        EnvelopeError,
    ),
    (
        "extra field",
        ACK_TOPIC,
        sealed(KEY, ACK_TOPIC, {"controller": CTL, "boot": 3, "seq": 4, "v": 1}),
        EnvelopeError,
    ),
    (
        "bad controller",
        ACK_TOPIC,
        sealed(KEY, ACK_TOPIC, {"controller": "X", "boot": 3, "seq": 4}),
        TopicError,
    ),
    (
        "not an ack topic",
        f"{P}/state",
        make_ack(KEY, site=SITE, room=ROOM, controller=CTL, boot=3, seq=4)[1],
        TopicError,
    ),
    ("not JSON", ACK_TOPIC, b"ack", EnvelopeError),
    (
        "seq 2**63",
        ACK_TOPIC,
        sealed(KEY, ACK_TOPIC, {"controller": CTL, "boot": 3, "seq": 2**63}),
        EnvelopeError,
    ),
    (
        "seq 2**53",
        ACK_TOPIC,
        sealed(KEY, ACK_TOPIC, {"controller": CTL, "boot": 3, "seq": 2**53}),
        EnvelopeError,
    ),
    (
        "seq 2**64 + 1",
        ACK_TOPIC,
        sealed(KEY, ACK_TOPIC, {"controller": CTL, "boot": 3, "seq": 2**64 + 1}),
        EnvelopeError,
    ),
    (
        "boot 2**63",
        ACK_TOPIC,
        sealed(KEY, ACK_TOPIC, {"controller": CTL, "boot": 2**63, "seq": 1}),
        EnvelopeError,
    ),
    (
        "seq as bool",
        ACK_TOPIC,
        sealed(KEY, ACK_TOPIC, {"controller": CTL, "boot": 3, "seq": False}),
        EnvelopeError,
    ),
]


@pytest.mark.parametrize(
    ("topic", "payload", "exc"),
    [(t, p, e) for _, t, p, e in ACK_ERRORS],
    ids=[n for n, _, _, _ in ACK_ERRORS],
)
def test_decode_ack_refuses(topic: str, payload: bytes, exc: type[Exception]):
    with pytest.raises(exc):
        decode_ack(KEY, topic, payload)


STATE_DATA = {
    "points": {"door": "closed", "cabinet:c1": "open", "lock:c1": "locked"},
    "armed": False,
    "alarms": [{"alarm_id": "a-3-42", "cause": "held_open"}],
    "label": "机要室",
}


def new_state() -> tuple[str, bytes]:
    return make_state(
        KEY, site=SITE, room=ROOM, controller=CTL, boot=3, seq=42, ts=T0, data=STATE_DATA
    )


def test_state_round_trip():
    topic, payload = new_state()
    assert topic == f"{P}/state"
    env = decode_state(KEY, topic, payload)
    assert env["data"] == STATE_DATA
    assert (env["controller"], env["boot"], env["seq"], env["type"]) == (
        CTL,
        3,
        42,
        "controller.state",
    )
    assert env["ts"] == "2026-11-27T15:10:05.250Z"


@pytest.mark.parametrize(
    ("field", "value"), [("armed", True), ("points", {}), ("label", "x")], ids=str
)
def test_state_tampered_is_refused(field: str, value: Any):
    topic, payload = new_state()
    env = json.loads(payload)
    env["data"][field] = value
    with pytest.raises(BadSignature):
        decode_state(KEY, topic, payload_of(env))


def test_state_checks_topic_and_key():
    topic, payload = new_state()
    with pytest.raises(BadSignature):
        decode_state(OTHER_KEY, topic, payload)
    with pytest.raises(BadSignature):
        decode_state(KEY, f"ironroom/v1/{SITE}/room-102/state", payload)
    with pytest.raises(TopicError):
        decode_state(KEY, f"{P}/status", payload)
    with pytest.raises(EnvelopeError):
        decode_state(KEY, topic, sealed(KEY, topic, {**json.loads(payload), "extra": 1}))
    with pytest.raises(EnvelopeError):
        decode_state(KEY, topic, sealed(KEY, topic, {**json.loads(payload), "data": []}))


def test_a_state_payload_is_not_an_event():
    _, payload = new_state()
    with pytest.raises(ProtocolError):
        decode_event(KEY, f"{P}/evt/controller", payload)


@pytest.mark.parametrize("seq", [0, 1, MAX_INT])
def test_state_seq_may_be_0_to_max(seq: int):
    topic, payload = make_state(
        KEY, site=SITE, room=ROOM, controller=CTL, boot=MAX_INT, seq=seq, ts=T0, data={}
    )
    assert (decode_state(KEY, topic, payload)["seq"]) == seq


STATE_TOPIC = f"{P}/state"


def state_env(**changes: Any) -> dict[str, Any]:
    env = {k: v for k, v in json.loads(new_state()[1]).items() if k != "sig"}
    env.update(changes)
    return env


@pytest.mark.parametrize(
    ("env", "exc", "match"),
    [
        (state_env(boot=0), EnvelopeError, "'boot'"),
        (state_env(boot=2**63), EnvelopeError, "'boot'"),
        (state_env(seq=-1), EnvelopeError, "'seq'"),
        (state_env(seq=2**53), EnvelopeError, "'seq'"),
        (state_env(seq="42"), EnvelopeError, "'seq'"),
        (state_env(ts="yesterday"), EnvelopeError, "timestamp"),
        (state_env(type="sensor.changed"), EnvelopeError, "controller.state"),
        (state_env(controller="Room"), TopicError, "controller"),
        ({k: v for k, v in state_env().items() if k != "boot"}, EnvelopeError, "'boot'"),
        (state_env(data={"alarms": [{"n": 2**63}]}), SchemaError, r"data\['alarms'\]\[0\]\['n'\]"),
        (state_env(data={"count": -(2**53)}), SchemaError, r"data\['count'\]"),
    ],
    ids=[
        "boot0",
        "boot-2**63",
        "seq-neg",
        "seq-2**53",
        "seq-str",
        "ts",
        "type",
        "controller",
        "no-boot",
        "nested-int",
        "negative-int",
    ],
)
def test_decode_state_refuses(env: dict[str, Any], exc: type[Exception], match: str):
    with pytest.raises(exc, match=match):
        decode_state(KEY, STATE_TOPIC, sealed(KEY, STATE_TOPIC, env))


# -- integer bounds ---------------------------------------------------------------------


def test_the_protocols_integers_are_exact_as_doubles_and_fit_sqlite():
    """Why MAX_INT is 2**53 - 1: every integer up to it survives a JSON reader that uses
    doubles, the next ones do not; and SQLite's INTEGER overflows only past 2**63 - 1."""
    assert MAX_INT == 2**53 - 1
    assert int(float(MAX_INT)) == MAX_INT
    assert float(MAX_INT + 1) == float(MAX_INT + 2)
    db = sqlite3.connect(":memory:")
    assert db.execute("SELECT ?", (MAX_INT,)).fetchone() == (MAX_INT,)
    assert db.execute("SELECT ?", (-MAX_INT,)).fetchone() == (-MAX_INT,)
    with pytest.raises(OverflowError):
        db.execute("SELECT ?", (2**63,))


def test_every_integer_a_decoded_message_holds_fits_sqlite():
    """The largest values each decoder accepts go into an INTEGER column unchanged."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (v INTEGER NOT NULL)")
    _, ack = make_ack(KEY, site=SITE, room=ROOM, controller=CTL, boot=MAX_INT, seq=MAX_INT)
    a = decode_ack(KEY, ACK_TOPIC, ack)
    ev = decode_event(
        KEY,
        *new_event(
            "controller.heartbeat",
            {"uptime_s": MAX_INT, "outbox_depth": MAX_INT, "armed": False, "n": -MAX_INT},
            boot=MAX_INT,
            seq=MAX_INT,
        ),
    )
    values = [a.boot, a.seq, ev.boot, ev.seq, *(v for v in ev.data.values() if type(v) is int)]
    assert len(values) == 7
    db.executemany("INSERT INTO t VALUES (?)", [(v,) for v in values])
    assert [v for (v,) in db.execute("SELECT v FROM t")] == values


@pytest.mark.parametrize(
    ("seq", "shown"),
    [
        (2**63, "9223372036854775808"),
        (2**53, "9007199254740992"),
        (-1, "-1"),
        (2**64 + 1, "an integer of 65 bits"),
        (10**4000, "an integer of 13288 bits"),
    ],
)
def test_an_out_of_range_ack_seq_is_refused_naming_the_field(seq: int, shown: str):
    payload = sealed(KEY, ACK_TOPIC, {"controller": CTL, "boot": 3, "seq": seq})
    with pytest.raises(EnvelopeError, match=f"'seq' must be an integer in \\[0, {MAX_INT}\\]") as e:
        decode_ack(KEY, ACK_TOPIC, payload)
    assert not isinstance(e.value, SchemaError)
    assert str(e.value).endswith(f"got {shown}")


@pytest.mark.parametrize(
    ("type_", "data", "match"),
    [
        (
            "controller.heartbeat",
            {"uptime_s": 2**63, "outbox_depth": 0, "armed": True},
            f"field 'uptime_s': expected an integer in \\[0, {MAX_INT}\\]",
        ),
        (
            "controller.heartbeat",
            {"uptime_s": 0, "outbox_depth": -1, "armed": True},
            "field 'outbox_depth'",
        ),
        ("tag.seen", {"reader": "desk", "epc": EPC, "rssi": 128}, "field 'rssi'"),
        (
            "sensor.changed",
            {"point": "door", "kind": "door", "state": "open", "x": {"y": [0, 2**53]}},
            r"sensor.changed: data\['x'\]\['y'\]\[1\]: 9007199254740992 is outside",
        ),
    ],
    ids=["uptime", "depth", "rssi", "nested"],
)
def test_event_integer_errors_name_the_field(type_: str, data: dict[str, Any], match: str):
    with pytest.raises(SchemaError, match=match):
        check_event_data(type_, data)
    topic = event_topic(SITE, ROOM, type_)
    with pytest.raises(SchemaError, match=match):
        decode_event(KEY, topic, sealed(KEY, topic, event_env(type=type_, data=data)))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"cabinet": "c1", "seconds": 2**63}, "field 'seconds'"),
        ({"cabinet": "c1", "seconds": 20, "x": 2**63}, r"data\['x'\]"),
    ],
)
def test_command_integer_errors_name_the_field(data: dict[str, Any], match: str):
    topic = f"{P}/cmd/cabinet.unlock"
    payload = sealed(KEY, topic, command_env(type="cabinet.unlock", data=data))
    with pytest.raises(SchemaError, match=match):
        decode_command(KEY, topic, payload)


@pytest.mark.parametrize(
    "changes",
    [{"seq": -1}, {"seq": 2**63}, {"boot": 0}, {"boot": 2**53}, {"controller": "X"}],
    ids=str,
)
def test_make_ack_refuses_what_decode_ack_refuses(changes: dict[str, Any]):
    args: dict[str, Any] = {"controller": CTL, "boot": 3, "seq": 4, **changes}
    with pytest.raises(ProtocolError):
        make_ack(KEY, site=SITE, room=ROOM, **args)


@pytest.mark.parametrize(
    ("changes", "exc"),
    [
        ({"seq": -1}, EnvelopeError),
        ({"seq": 2**63}, EnvelopeError),
        ({"boot": 0}, EnvelopeError),
        ({"data": {"alarms": [{"raised": 2**64}]}}, SchemaError),
    ],
    ids=["seq-neg", "seq-2**63", "boot0", "data"],
)
def test_make_state_refuses_what_decode_state_refuses(
    changes: dict[str, Any], exc: type[Exception]
):
    args: dict[str, Any] = {"controller": CTL, "boot": 3, "seq": 42, "data": {}, **changes}
    with pytest.raises(exc):
        make_state(KEY, site=SITE, room=ROOM, ts=T0, **args)


def test_a_payload_nested_too_deeply_for_the_contract_is_refused():
    # the envelope is level 1, its data level 2, then 31 lists: 33 levels
    deep: Any = "leaf"
    for _ in range(31):
        deep = [deep]
    payload = sealed(KEY, EVT_TOPIC, event_env(data={"point": "door", "x": deep}))
    with pytest.raises(EnvelopeError, match="deeper than 32"):
        decode_event(KEY, EVT_TOPIC, payload)
    # 32 levels is structure the schema may look at (and refuses for its own reasons)
    shallower = sealed(KEY, EVT_TOPIC, event_env(data={"x": deep[0]}))
    with pytest.raises(SchemaError, match="missing data field 'point'"):
        decode_event(KEY, EVT_TOPIC, shallower)


# -- siren.set --------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["on", "off"])
def test_siren_set_round_trip(state: str):
    data = {"state": state, "alarm_id": "t-42"}
    topic, payload = new_command("siren.set", data)
    assert topic == f"{P}/cmd/siren.set"
    cmd = decode_command(KEY, topic, payload)
    assert (cmd.type, cmd.data) == ("siren.set", data)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"state": "on"}, "missing data field 'alarm_id'"),
        ({"alarm_id": "t-1"}, "missing data field 'state'"),
        ({"state": "blare", "alarm_id": "t-1"}, "field 'state'"),
        ({"state": "on", "alarm_id": ""}, "field 'alarm_id'"),
        ({"state": "on", "alarm_id": "x" * 257}, "field 'alarm_id'"),
        ({"state": "on", "alarm_id": "t-1\r\n"}, "field 'alarm_id': expected printable"),
    ],
    ids=["no-alarm", "no-state", "state", "empty-id", "long-id", "crlf-id"],
)
def test_siren_set_errors_name_the_field(data: dict[str, Any], match: str):
    with pytest.raises(SchemaError, match=match):
        check_command_data("siren.set", data)


def test_timestamps_take_ascii_digits_only() -> None:
    """The timestamp grammar is ASCII: a full-width digit is not a digit on the wire."""
    from protocol.errors import EnvelopeError
    from protocol.timefmt import parse_ts

    assert parse_ts("2026-11-27T23:10:05.250Z").microsecond == 250_000
    for text in (
        "２026-11-27T23:10:05.250Z",
        "2026-11-27T23:10:05.25０Z",
        "2026-02-29T00:00:00.000Z",
    ):
        with pytest.raises(EnvelopeError):
            parse_ts(text)
