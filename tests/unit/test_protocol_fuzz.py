"""Property tests: the decoders refuse anything malformed with a ProtocolError only, and a
signed event altered in one byte never decodes to other content."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from protocol import ProtocolError, decode_ack, decode_command, decode_event, make_event

FUZZ = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
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
]
DECODER_IDS = ["event", "command", "ack"]

# Text that includes lone surrogates: JSON can spell them as \udXXX escapes.
any_text = st.text(st.characters(exclude_categories=()), max_size=12)
json_scalars = st.none() | st.booleans() | st.integers() | any_text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)

# Envelopes that get past the field checks, so the signature check and the data schema
# see random content too.
event_envelopes = st.fixed_dictionaries(
    {
        "v": st.just(1),
        "controller": st.sampled_from(["room-101-ctl", "c"]),
        "boot": st.integers(1, 5),
        "seq": st.integers(1, 5),
        "ts": st.just("2026-11-27T15:10:05.250Z"),
        "type": st.sampled_from(["sensor.changed", "sensor.other", "tag.seen"]),
        "data": st.dictionaries(
            any_text | st.sampled_from(["point", "kind", "state"]), json_values
        ),
        "sig": any_text,
    }
)
command_envelopes = st.fixed_dictionaries(
    {
        "v": st.just(1),
        "id": st.just("7f1d2c3e-0000-4000-8000-000000000001"),
        "issuer": any_text,
        "ts": st.just("2026-11-27T09:00:00.000Z"),
        "expires": st.just("2026-11-27T09:00:30.000Z"),
        "type": st.sampled_from(["cabinet.unlock", "policy.update", "nope"]),
        "data": st.dictionaries(any_text, json_values),
        "sig": any_text,
    }
)
ack_envelopes = st.fixed_dictionaries(
    {
        "controller": st.sampled_from(["room-101-ctl", "c"]),
        "boot": st.integers(1, 5),
        "seq": st.integers(-2, 5),
        "sig": any_text,
    }
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


@FUZZ
@given(env=event_envelopes)
@example(env={**json.loads(LONE_SURROGATE_EVENT), "data": {"\ud800": None}})
def test_random_event_envelopes_are_refused(env: dict[str, Any]):
    refuses(decode_event, EVT_TOPIC, json.dumps(env).encode())


@FUZZ
@given(env=command_envelopes)
@example(env=json.loads(LONE_SURROGATE_COMMAND))
def test_random_command_envelopes_are_refused(env: dict[str, Any]):
    refuses(decode_command, CMD_TOPIC, json.dumps(env).encode())


@FUZZ
@given(env=ack_envelopes)
def test_random_ack_envelopes_are_refused(env: dict[str, Any]):
    refuses(decode_ack, ACK_TOPIC, json.dumps(env).encode())


SENSORS = [
    ("door", "door", "open"),
    ("window:w1", "window", "closed"),
    ("cabinet:c1", "cabinet", "open"),
    ("smoke:s1", "smoke", "active"),
]


@st.composite
def signed_events(draw: st.DrawFn) -> tuple[str, bytes]:
    point, kind, state = draw(st.sampled_from(SENSORS))
    data: dict[str, Any] = {"point": point, "kind": kind, "state": state}
    if draw(st.booleans()):
        data["label"] = draw(st.text(min_size=1, max_size=8))
    return make_event(
        KEY,
        site="hq",
        room="room-101",
        controller="room-101-ctl",
        boot=draw(st.integers(1, 10**6)),
        seq=draw(st.integers(1, 10**6)),
        ts="2026-11-27T15:10:05.250Z",
        type="sensor.changed",
        data=data,
    )


@FUZZ
@given(event=signed_events(), where=st.floats(0, 1, exclude_max=True), byte=st.integers(0, 255))
def test_one_changed_byte_never_changes_the_content(
    event: tuple[str, bytes], where: float, byte: int
):
    topic, payload = event
    original = decode_event(KEY, topic, payload)
    i = int(where * len(payload))
    if payload[i] == byte:
        byte ^= 0x01
    mutated = payload[:i] + bytes([byte]) + payload[i + 1 :]
    try:
        ev = decode_event(KEY, topic, mutated)
    except ProtocolError:
        return
    # Only a different spelling of the same signature may still decode.
    assert (ev.controller, ev.boot, ev.seq, ev.ts, ev.type, ev.data) == (
        original.controller,
        original.boot,
        original.seq,
        original.ts,
        original.type,
        original.data,
    )


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
    for i in range(len(payload)):
        for bit in range(8):
            mutated = payload[:i] + bytes([payload[i] ^ (1 << bit)]) + payload[i + 1 :]
            try:
                ev = decode_event(KEY, topic, mutated)
            except ProtocolError:
                continue
            still_decoding.add(i)
            assert ev.data == original.data and ev.id == original.id and ev.ts == original.ts
    # Only a signature character can change without changing the MAC it spells.
    assert still_decoding <= set(sig_chars)
