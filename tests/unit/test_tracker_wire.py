"""The frames between the tracker and its MQTT process (tracker.ingest.wire): what is
encoded decodes to the same values, and bytes that are not a frame raise WireError and
nothing else."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.ingest import wire

TOPICS = st.text(min_size=1, max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass"))
MESSAGES = st.lists(
    st.tuples(
        st.binary(min_size=1, max_size=300),
        st.binary(max_size=3000),
        st.integers(0, 65535),
        st.integers(0, 2),
    ),
    max_size=40,
)


@given(MESSAGES)
def test_messages_round_trip(items: list[tuple[bytes, bytes, int, int]]) -> None:
    data = wire.encode_messages(items)
    got = wire.read_frame(io.BytesIO(data))
    assert got is not None and got[0] == wire.MESSAGES
    assert list(wire.decode_messages(got[1])) == items


@given(st.lists(st.tuples(st.integers(0, 65535), st.integers(0, 2)), max_size=100))
def test_acks_round_trip(acks: list[tuple[int, int]]) -> None:
    kind, body = wire.read_frame(io.BytesIO(wire.encode_acks(acks)))  # type: ignore[misc]
    assert kind == wire.ACKS and wire.decode_acks(body) == acks


@given(st.text(min_size=1, max_size=80), st.binary(max_size=2000), st.booleans())
def test_publish_round_trips(topic: str, payload: bytes, retain: bool) -> None:
    try:
        topic.encode("utf-8")
    except UnicodeEncodeError:
        return  # a topic is UTF-8 text; the tracker makes its own
    kind, body = wire.read_frame(io.BytesIO(wire.encode_publish(topic, payload, retain=retain)))  # type: ignore[misc]
    assert kind == wire.PUBLISH_KIND
    assert wire.decode_publish(body) == (topic, payload, retain)


def test_frames_follow_each_other_and_the_end_is_none() -> None:
    stream = io.BytesIO(
        wire.frame(wire.CONNECTED, b"1")
        + wire.encode_messages([(b"a/b", b"{}", 7, 1)])
        + wire.frame(wire.SUBSCRIBED)
    )
    assert wire.read_frame(stream) == (wire.CONNECTED, b"1")
    kind, body = wire.read_frame(stream)  # type: ignore[misc]
    assert kind == wire.MESSAGES and list(wire.decode_messages(body)) == [(b"a/b", b"{}", 7, 1)]
    assert wire.read_frame(stream) == (wire.SUBSCRIBED, b"")
    assert wire.read_frame(stream) is None


@pytest.mark.parametrize(
    "data, why",
    [
        (b"M\x00", "ended after 2 of 5 bytes"),
        (b"M\x00\x00\x00\x10abc", "ended after 3 of 16 bytes"),
        (b"M\x00\x00\x00\x10", "inside a b'M' frame of 16 bytes"),
    ],
)
def test_a_cut_stream_is_a_wire_error(data: bytes, why: str) -> None:
    with pytest.raises(wire.WireError, match=why.replace("(", r"\(").replace(")", r"\)")):
        wire.read_frame(io.BytesIO(data))


def test_cut_bodies_are_wire_errors() -> None:
    body = wire.encode_messages([(b"t/1", b"payload", 1, 1)])[wire.HEADER.size :]
    for cut in range(1, len(body)):
        with pytest.raises(wire.WireError):
            list(wire.decode_messages(body[:cut]))
    with pytest.raises(wire.WireError):
        wire.decode_acks(b"\x00\x01\x01\x00")
    with pytest.raises(wire.WireError):
        wire.decode_publish(b"\x01")
    with pytest.raises(wire.WireError):
        wire.decode_publish(struct.pack("!BH", 0, 10) + b"short")


@given(st.binary(max_size=400))
def test_any_bytes_decode_or_raise_wire_error(data: bytes) -> None:
    stream = io.BytesIO(data)
    try:
        while (got := wire.read_frame(stream)) is not None:
            kind, body = got
            try:
                list(wire.decode_messages(body))
            except wire.WireError:
                pass
            try:
                wire.decode_acks(body)
            except wire.WireError:
                pass
            try:
                wire.decode_publish(body)
            except wire.WireError:
                pass
    except wire.WireError:
        pass


@given(MESSAGES, st.integers(0, 40))
def test_a_valid_frame_cut_anywhere_is_refused(
    items: list[tuple[bytes, bytes, int, int]], cut: int
) -> None:
    data = wire.encode_messages(items or [(b"t", b"p", 1, 1)])
    at = min(cut, len(data) - 1)
    with pytest.raises(wire.WireError):
        wire.read_frame(io.BytesIO(data[:at] if at else data[:1]))
