"""RFID frame parsers and encoders against the shared vectors."""

from typing import Any

import pytest

from devices.rfid import m100
from devices.rfid.errors import FrameError
from devices.rfid.m100 import (
    Command,
    ErrorFrame,
    M100Parser,
    Notice,
    Response,
    TagNotification,
    crc16_genibus,
    encode_m100,
    encode_m100_error,
    encode_m100_notification,
    multi_poll,
    single_poll,
    stop_multi_poll,
)
from devices.rfid.rdm6300 import Rdm6300Parser, TagRead, encode_rdm6300
from tests.vectors import load_vector

VECTORS: dict[str, Any] = load_vector("serial_frames.json")
RDM = VECTORS["rdm6300"]["frames"]
M100 = VECTORS["m100"]["frames"]
RDM_GOOD = bytes.fromhex(RDM[0]["hex"])
RDM_BAD = bytes.fromhex(RDM[1]["hex"])
M100_TAG = bytes.fromhex(M100[0]["hex"])
M100_NO_TAG = bytes.fromhex(M100[1]["hex"])
M100_STOP_OK = bytes.fromhex(M100[2]["hex"])
VECTOR_TAG = TagNotification(epc=M100[0]["epc"], rssi=M100[0]["rssi_dbm"], pc=M100[0]["pc"])


def as_aa(frame: bytes) -> bytes:
    """The same frame in AA..DD framing."""
    assert frame[0] == 0xBB and frame[-1] == 0x7E
    return b"\xaa" + frame[1:-1] + b"\xdd"


def feed_split(parser: Rdm6300Parser | M100Parser, data: bytes, cut: int) -> list[Any]:
    return [*parser.feed(data[:cut]), *parser.feed(data[cut:])]


# RDM6300


def test_rdm6300_vector_frame() -> None:
    parser = Rdm6300Parser()
    assert parser.feed(RDM_GOOD) == [TagRead(RDM[0]["tag"])]
    assert (parser.frames_ok, parser.frames_bad, parser.bytes_skipped) == (1, 0, 0)


def test_rdm6300_bad_checksum_vector_yields_nothing() -> None:
    assert RDM[1]["valid"] is False
    parser = Rdm6300Parser()
    assert parser.feed(RDM_BAD) == []
    assert parser.frames_bad == 1
    assert parser.bytes_skipped == len(RDM_BAD)
    assert parser.feed(RDM_GOOD) == [TagRead("62E3086CED")]


def test_rdm6300_encoder_matches_vector() -> None:
    assert encode_rdm6300(RDM[0]["tag"]) == RDM_GOOD
    assert encode_rdm6300("62e3086ced") == RDM_GOOD


@pytest.mark.parametrize("tag", ["62E3086CE", "62E3086CEDA", "62E3086CEG", "６２E3086CED"])
def test_rdm6300_encoder_rejects_bad_tags(tag: str) -> None:
    with pytest.raises(FrameError):
        encode_rdm6300(tag)


def test_rdm6300_lowercase_on_the_wire() -> None:
    frame = b"\x02" + b"62e3086ced08" + b"\x03"
    assert Rdm6300Parser().feed(frame) == [TagRead("62E3086CED")]


@pytest.mark.parametrize("cut", range(2 * len(RDM_GOOD) + 1))
def test_rdm6300_split_at_every_byte(cut: int) -> None:
    parser = Rdm6300Parser()
    assert feed_split(parser, RDM_GOOD * 2, cut) == [TagRead("62E3086CED")] * 2
    assert parser.bytes_skipped == 0


def test_rdm6300_byte_by_byte() -> None:
    parser = Rdm6300Parser()
    out = [read for b in RDM_GOOD * 3 for read in parser.feed(bytes([b]))]
    assert out == [TagRead("62E3086CED")] * 3


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\xff\x03",
        b"\x02",
        b"\x02\x02\x02",
        b"\x0212345",
        b"\x02" + b"A" * 11 + b"B\x03",
        b"\x03",
    ],
)
def test_rdm6300_garbage_before_and_between(garbage: bytes) -> None:
    other = encode_rdm6300("0102030405")
    parser = Rdm6300Parser()
    out = parser.feed(garbage + RDM_GOOD + garbage + other + garbage)
    assert out == [TagRead("62E3086CED"), TagRead("0102030405")]
    assert parser.frames_ok == 2


def test_rdm6300_truncated_frame_then_valid() -> None:
    parser = Rdm6300Parser()
    assert parser.feed(RDM_GOOD[:9] + RDM_GOOD) == [TagRead("62E3086CED")]
    assert parser.bytes_skipped == 9


def test_rdm6300_garbage_stx_does_not_hold_back_a_frame() -> None:
    parser = Rdm6300Parser()
    assert parser.feed(b"\x02\x41\x42") == []
    assert parser.feed(RDM_GOOD) == [TagRead("62E3086CED")]


def test_rdm6300_non_hex_digit_is_bad_frame() -> None:
    frame = bytearray(RDM_GOOD)
    frame[3] = ord("G")
    parser = Rdm6300Parser()
    assert parser.feed(bytes(frame)) == []
    assert parser.frames_bad == 1


# M100


def test_m100_tag_vector() -> None:
    parser = M100Parser()
    assert parser.feed(M100_TAG) == [VECTOR_TAG]
    assert VECTOR_TAG.rssi == -55
    assert (parser.frames_ok, parser.frames_bad, parser.bytes_skipped) == (1, 0, 0)


def test_m100_crc_vector() -> None:
    tag = bytes.fromhex(M100[0]["pc"] + M100[0]["epc"])
    assert crc16_genibus(tag) == int(M100[0]["crc"], 16)
    assert crc16_genibus(b"123456789") == 0xD64E  # the catalogue check value


def test_m100_error_and_response_vectors() -> None:
    parser = M100Parser()
    assert parser.feed(M100_NO_TAG) == [ErrorFrame(0x15)]
    assert parser.feed(M100_STOP_OK) == [Response(0x28, b"\x00")]
    assert encode_m100_error(0x15) == M100_NO_TAG


def test_m100_command_builders_equal_vectors() -> None:
    commands = VECTORS["m100"]["commands"]
    assert single_poll() == bytes.fromhex(commands["single_poll"])
    assert multi_poll(10000) == bytes.fromhex(commands["multi_poll_10000"])
    assert stop_multi_poll() == bytes.fromhex(commands["stop_multi_poll"])


def test_m100_commands_parse_as_commands() -> None:
    parser = M100Parser()
    frames = parser.feed(single_poll() + multi_poll(10000) + stop_multi_poll(framing="AA"))
    assert frames == [Command(0x22, b""), Command(0x27, b"\x22\x27\x10"), Command(0x28, b"")]


@pytest.mark.parametrize("count", [0, 65536, -1])
def test_multi_poll_count_range(count: int) -> None:
    with pytest.raises(FrameError):
        multi_poll(count)


def test_m100_notification_encoder_matches_vector() -> None:
    encoded = encode_m100_notification(M100[0]["epc"], -55, M100[0]["pc"])
    assert encoded == M100_TAG
    assert encode_m100_notification(M100[0]["epc"], -55, M100[0]["pc"], framing="AA") == as_aa(
        M100_TAG
    )


def test_m100_notification_default_pc_counts_words() -> None:
    frames = M100Parser().feed(encode_m100_notification("E28011606000020A", -40))
    assert frames == [TagNotification("E28011606000020A", -40, "2000")]


@pytest.mark.parametrize("epc", ["", "ABC", "ABCDEF", "XY12", "00" * 64])
def test_m100_notification_encoder_rejects_bad_epc(epc: str) -> None:
    with pytest.raises(FrameError):
        encode_m100_notification(epc, -50)


@pytest.mark.parametrize("rssi", [-128, -1, 0, 5, 127])
def test_m100_rssi_is_signed(rssi: int) -> None:
    frames = M100Parser().feed(encode_m100_notification("1234", rssi))
    assert frames == [TagNotification("1234", rssi, "0800")]


@pytest.mark.parametrize("framing", ["BB", "AA"])
@pytest.mark.parametrize("cut", range(len(M100_TAG) + 1))
def test_m100_split_at_every_byte(framing: str, cut: int) -> None:
    frame = M100_TAG if framing == "BB" else as_aa(M100_TAG)
    parser = M100Parser()
    assert feed_split(parser, frame + M100_NO_TAG, cut) == [VECTOR_TAG, ErrorFrame(0x15)]
    assert parser.bytes_skipped == 0


def test_m100_byte_by_byte_mixed_framings() -> None:
    stream = M100_TAG + as_aa(M100_NO_TAG) + as_aa(M100_TAG) + M100_STOP_OK
    parser = M100Parser()
    out = [frame for b in stream for frame in parser.feed(bytes([b]))]
    assert out == [VECTOR_TAG, ErrorFrame(0x15), VECTOR_TAG, Response(0x28, b"\x00")]


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x7e\xdd",
        b"\xbb",
        b"\xaa\xbb\xaa",
        b"\xbb\x02\x22\x00",  # a header cut short
        b"\xbb\x01\xff\x00\x01\x15\x17\x7e",  # bad checksum
        b"\xbb\x01\xff\x00\x01\x15\x16\xdd",  # BB opened, DD closed
        b"\xbb\x07\x22\x00\x00\x29\x7e",  # unknown frame type
    ],
)
def test_m100_garbage_before_and_between(garbage: bytes) -> None:
    parser = M100Parser()
    out = parser.feed(garbage + M100_TAG + garbage + as_aa(M100_TAG) + garbage + M100_NO_TAG)
    assert out == [VECTOR_TAG, VECTOR_TAG, ErrorFrame(0x15)]
    assert parser.frames_ok == 3


def test_m100_huge_length_is_garbage_not_awaited() -> None:
    parser = M100Parser()
    assert parser.feed(b"\xbb\x02\x22\xff\xff" + M100_TAG) == [VECTOR_TAG]
    assert parser.bytes_skipped == 5


def test_m100_plausible_length_does_not_hold_back_a_later_frame() -> None:
    parser = M100Parser()
    # A noise header announcing 200 parameter bytes, then a real frame: no waiting.
    assert parser.feed(b"\xbb\x02\x22\x00\xc8" + M100_TAG) == [VECTOR_TAG]
    # ... and the pending noise is not replayed later.
    assert parser.feed(M100_NO_TAG) == [ErrorFrame(0x15)]


def test_m100_bad_checksum_is_bad_frame() -> None:
    bad = bytearray(M100_TAG)
    bad[-2] ^= 0x01
    parser = M100Parser()
    assert parser.feed(bytes(bad)) == []
    assert parser.frames_bad == 1
    assert parser.feed(M100_TAG) == [VECTOR_TAG]


def test_m100_bad_crc_is_bad_frame() -> None:
    frame = encode_m100_notification(M100[0]["epc"], -55, M100[0]["pc"], crc=0x3A77)
    parser = M100Parser()
    assert parser.feed(frame) == []
    assert parser.frames_bad == 1
    assert parser.frames_ok == 0


def test_m100_pc_length_mismatch_is_bad_frame() -> None:
    # PC claims 7 words but only 6 follow; CRC and checksum are otherwise consistent.
    pc_epc = bytes.fromhex("3800" + M100[0]["epc"])
    params = b"\xc9" + pc_epc + crc16_genibus(pc_epc).to_bytes(2, "big")
    parser = M100Parser()
    assert parser.feed(encode_m100(0x02, 0x22, params)) == []
    assert parser.frames_bad == 1


def test_m100_multi_poll_notification_and_other_frames() -> None:
    parser = M100Parser()
    frames = parser.feed(
        encode_m100_notification("ABCD", -70, cmd=m100.CMD_MULTI_POLL)
        + encode_m100(0x02, 0x39, b"\x01\x02")
        + encode_m100(0x01, 0x03, b"M100")
        + encode_m100_error(0x17, framing="AA")
    )
    assert frames == [
        TagNotification("ABCD", -70, "0800"),
        Notice(0x39, b"\x01\x02"),
        Response(0x03, b"M100"),
        ErrorFrame(0x17),
    ]


def test_m100_empty_error_frame_is_bad() -> None:
    parser = M100Parser()
    assert parser.feed(encode_m100(0x01, 0xFF) + M100_NO_TAG) == [ErrorFrame(0x15)]
    assert parser.frames_bad == 1


def test_reset_drops_partial_frame_but_keeps_counters() -> None:
    parser = M100Parser()
    parser.feed(M100_TAG + M100_TAG[:10])
    parser.reset()
    assert parser.feed(M100_TAG[10:] + M100_NO_TAG) == [ErrorFrame(0x15)]
    assert parser.frames_ok == 2
