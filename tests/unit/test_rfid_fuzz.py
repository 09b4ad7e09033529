"""Property tests: the RFID parsers survive any byte stream and never invent a tag."""

from collections.abc import Callable, Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.rfid.m100 import (
    Command,
    ErrorFrame,
    M100Frame,
    M100Parser,
    Notice,
    Response,
    TagNotification,
    encode_m100,
    encode_m100_notification,
)
from devices.rfid.rdm6300 import Rdm6300Parser, TagRead, encode_rdm6300

FUZZ = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

rdm_tags = st.binary(min_size=5, max_size=5).map(lambda b: b.hex().upper())
epcs = st.integers(1, 8).flatmap(lambda words: st.binary(min_size=2 * words, max_size=2 * words))
m100_notifications = st.builds(
    lambda epc, rssi, aa, multi: encode_m100_notification(
        epc.hex().upper(), rssi, framing="AA" if aa else "BB", cmd=0x27 if multi else 0x22
    ),
    epcs,
    st.integers(-128, 127),
    st.booleans(),
    st.booleans(),
)


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at up to 8 random places."""
    cuts = [0, *sorted(draw(st.lists(st.integers(0, len(data)), max_size=8))), len(data)]
    return [data[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]


def feed_all(parser: Rdm6300Parser | M100Parser, chunks: Sequence[bytes]) -> list[object]:
    out: list[object] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    return out


def m100_encodings(frame: M100Frame) -> list[bytes]:
    """Every wire form ``frame`` could have been parsed from (error frames aside)."""
    forms = []
    for framing in ("BB", "AA"):
        if isinstance(frame, TagNotification):
            for cmd in (0x22, 0x27):
                forms.append(
                    encode_m100_notification(
                        frame.epc, frame.rssi, frame.pc, framing=framing, cmd=cmd
                    )
                )
        elif isinstance(frame, Response):
            forms.append(encode_m100(0x01, frame.cmd, frame.params, framing=framing))
        elif isinstance(frame, Notice):
            forms.append(encode_m100(0x02, frame.cmd, frame.params, framing=framing))
        elif isinstance(frame, Command):
            forms.append(encode_m100(0x00, frame.cmd, frame.params, framing=framing))
    return forms


def came_from_input(frame: M100Frame, data: bytes) -> bool:
    if isinstance(frame, ErrorFrame):
        # An error frame may carry bytes after the code; its header and code must be there.
        return any(bytes([start, 0x01, 0xFF, 0x00]) in data for start in (0xAA, 0xBB))
    return any(form in data for form in m100_encodings(frame))


def rdm6300_on_wire(tag: str, data: bytes) -> bool:
    """The tag's frame is in ``data`` (its hex digits in any letter case)."""
    return encode_rdm6300(tag) in data.upper()


@FUZZ
@given(st.binary(max_size=600), st.data())
def test_rdm6300_random_bytes(data: bytes, draw: st.DataObject) -> None:
    parser = Rdm6300Parser()
    reads = feed_all(parser, draw.draw(chunked(data)))
    for read in reads:
        assert isinstance(read, TagRead)
        assert rdm6300_on_wire(read.tag, data)
    assert parser.frames_ok == len(reads)
    assert parser.bytes_skipped <= len(data)


@FUZZ
@given(st.binary(max_size=600), st.data())
def test_m100_random_bytes(data: bytes, draw: st.DataObject) -> None:
    parser = M100Parser()
    frames = feed_all(parser, draw.draw(chunked(data)))
    for frame in frames:
        assert isinstance(frame, TagNotification | ErrorFrame | Response | Notice | Command)
        assert came_from_input(frame, data)
    assert parser.frames_ok == len(frames)


@FUZZ
@given(st.lists(rdm_tags, min_size=1, max_size=6), st.data())
def test_rdm6300_valid_stream_any_chunking(tags: list[str], draw: st.DataObject) -> None:
    data = b"".join(encode_rdm6300(tag) for tag in tags)
    assert feed_all(Rdm6300Parser(), draw.draw(chunked(data))) == [TagRead(t) for t in tags]


@FUZZ
@given(st.lists(m100_notifications, min_size=1, max_size=6), st.data())
def test_m100_valid_stream_any_chunking(frames: list[bytes], draw: st.DataObject) -> None:
    data = b"".join(frames)
    expected = [M100Parser().feed(frame)[0] for frame in frames]
    assert feed_all(M100Parser(), draw.draw(chunked(data))) == expected


# Noise without start bytes cannot open a frame, so every valid frame around it survives.
rdm_noise = st.binary(max_size=40).map(lambda b: b.replace(b"\x02", b""))
m100_noise = st.binary(max_size=40).map(lambda b: b.replace(b"\xbb", b"").replace(b"\xaa", b""))


@FUZZ
@given(st.lists(st.tuples(rdm_noise, rdm_tags), min_size=1, max_size=5), rdm_noise)
def test_rdm6300_noise_between_frames(items: list[tuple[bytes, str]], tail: bytes) -> None:
    data = b"".join(noise + encode_rdm6300(tag) for noise, tag in items) + tail
    parser = Rdm6300Parser()
    assert parser.feed(data) == [TagRead(tag) for _, tag in items]
    assert parser.bytes_skipped == sum(len(noise) for noise, _ in items) + len(tail)


@FUZZ
@given(st.lists(st.tuples(m100_noise, m100_notifications), min_size=1, max_size=5), m100_noise)
def test_m100_noise_between_frames(items: list[tuple[bytes, bytes]], tail: bytes) -> None:
    data = b"".join(noise + frame for noise, frame in items) + tail
    expected = [M100Parser().feed(frame)[0] for _, frame in items]
    assert M100Parser().feed(data) == expected


Mutation = tuple[str, int, int]
mutations = st.tuples(
    st.sampled_from(["flip", "insert", "delete"]), st.integers(0, 10_000), st.integers(0, 255)
)


def mutate(data: bytes, edits: list[Mutation]) -> bytes:
    out = bytearray(data)
    for op, pos, value in edits:
        if not out:
            break
        i = pos % len(out)
        if op == "flip":
            out[i] ^= value or 0x01
        elif op == "insert":
            out.insert(i, value)
        else:
            del out[i]
    return bytes(out)


def check_mutations(
    originals: Sequence[object],
    data: bytes,
    edits: list[Mutation],
    parse: Callable[[bytes], Sequence[object]],
    on_wire: Callable[[object, bytes], bool],
) -> None:
    broken = mutate(data, edits)
    for tag in parse(broken):
        if len(edits) == 1:
            # One damaged byte is always caught: only the original tags may come out.
            assert tag in originals
        else:
            # Several edits may forge a different valid frame, but only one really on the wire.
            assert tag in originals or on_wire(tag, broken)


@FUZZ
@given(st.lists(rdm_tags, min_size=1, max_size=4), st.lists(mutations, min_size=1, max_size=4))
def test_rdm6300_mutated_frames_never_yield_a_wrong_tag(
    tags: list[str], edits: list[Mutation]
) -> None:
    check_mutations(
        tags,
        b"".join(encode_rdm6300(tag) for tag in tags),
        edits,
        lambda data: [read.tag for read in Rdm6300Parser().feed(data)],
        lambda tag, data: rdm6300_on_wire(str(tag), data),
    )


@FUZZ
@given(
    st.lists(m100_notifications, min_size=1, max_size=4),
    st.lists(mutations, min_size=1, max_size=4),
)
def test_m100_mutated_frames_never_yield_a_wrong_tag(
    frames: list[bytes], edits: list[Mutation]
) -> None:
    def tags(data: bytes) -> list[TagNotification]:
        return [f for f in M100Parser().feed(data) if isinstance(f, TagNotification)]

    def on_wire(tag: object, data: bytes) -> bool:
        assert isinstance(tag, TagNotification)
        return any(form in data for form in m100_encodings(tag))

    originals = [tag for frame in frames for tag in tags(frame)]
    assert len(originals) == len(frames)
    check_mutations(originals, b"".join(frames), edits, tags, on_wire)
