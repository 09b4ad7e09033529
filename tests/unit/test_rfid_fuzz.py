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


def split_points(draw: st.DrawFn, size: int) -> list[int]:
    return sorted(draw(st.lists(st.integers(0, size), max_size=8)))


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = [0, *split_points(draw, len(data)), len(data)]
    return [data[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]


def feed_all(parser: Rdm6300Parser | M100Parser, chunks: Sequence[bytes]) -> list[object]:
    out: list[object] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    return out


def m100_encodings(frame: M100Frame) -> list[bytes]:
    """Every wire form the frame could have come from."""
    forms = []
    for framing in ("BB", "AA"):
        if isinstance(frame, TagNotification):
            for cmd in (0x22, 0x27):
                forms.append(
                    encode_m100_notification(frame.epc, frame.rssi, frame.pc, framing=framing, cmd=cmd)
                )
        elif isinstance(frame, ErrorFrame):
            forms.append(bytes([frame.code]))  # error frames may carry extra bytes: see below
        elif isinstance(frame, Response):
            forms.append(encode_m100(0x01, frame.cmd, frame.params, framing=framing))
        elif isinstance(frame, Notice):
            forms.append(encode_m100(0x02, frame.cmd, frame.params, framing=framing))
        elif isinstance(frame, Command):
            forms.append(encode_m100(0x00, frame.cmd, frame.params, framing=framing))
    return forms


def came_from_input(frame: M100Frame, data: bytes) -> bool:
    if isinstance(frame, ErrorFrame):
        return bytes([frame.code]) in data
    return any(form in data for form in m100_encodings(frame))


@FUZZ
@given(st.binary(max_size=600), st.data())
def test_rdm6300_random_bytes(data: bytes, draw: st.DataObject) -> None:
    parser = Rdm6300Parser()
    reads = feed_all(parser, draw.draw(chunked(data)))
    for read in reads:
        assert isinstance(read, TagRead)
        assert encode_rdm6300(read.tag) in data or encode_rdm6300(read.tag).lower()[1:-1] in data
    assert parser.frames_ok == len(reads)
    assert parser.bytes_skipped <= len(data)


@FUZZ
@given(st.binary(max_size=600), st.data())
def test_m100_random_bytes(data: bytes, draw: st.DataObject) -> None:
    parser = M100Parser()
    frames = feed_all(parser, draw.draw(chunked(data)))
    for frame in frames:
        assert came_from_input(frame, data)  # type: ignore[arg-type]
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
    originals: list[str],
    data: bytes,
    edits: list[Mutation],
    parse: Callable[[bytes], list[str]],
    encodings: Callable[[str], list[bytes]],
) -> None:
    broken = mutate(data, edits)
    for tag in parse(broken):
        if len(edits) == 1:
            # One damaged byte is always caught: only the original tags may come out.
            assert tag in originals
        else:
            # Several edits may forge a different valid frame, but only one really on the wire.
            assert tag in originals or any(form in broken for form in encodings(tag))


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
        lambda tag: [
            encode_rdm6300(tag),
            b"\x02" + encode_rdm6300(tag)[1:-1].lower() + b"\x03",
        ],
    )


@FUZZ
@given(
    st.lists(m100_notifications, min_size=1, max_size=4),
    st.lists(mutations, min_size=1, max_size=4),
)
def test_m100_mutated_frames_never_yield_a_wrong_tag(
    frames: list[bytes], edits: list[Mutation]
) -> None:
    def parse(data: bytes) -> list[str]:
        return [f.epc for f in M100Parser().feed(data) if isinstance(f, TagNotification)]

    def encodings(epc: str) -> list[bytes]:
        # Any RSSI, PC and framing: search for the tag's PC+EPC+CRC body instead.
        raw = encode_m100_notification(epc, 0)
        return [raw[6:-2]]

    originals = [f.epc for frame in frames for f in M100Parser().feed(frame)]  # type: ignore[union-attr]
    check_mutations(originals, b"".join(frames), edits, parse, encodings)
