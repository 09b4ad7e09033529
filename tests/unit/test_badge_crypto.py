"""Badge key derivation, challenge-response and the APDU exchange, with no pcscd."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.badge import cli
from devices.badge.crypto import (
    card_key,
    card_response,
    check_cipher,
    expected_response,
    load_master_key,
    verify_response,
)
from devices.badge.errors import BadgeError, NoReader, PcscUnavailable
from devices.badge.pcsc import BadgePresentation, BadgeWatcher, list_readers, read_badge
from simulators.vcard import VirtualCard
from tests.vectors import load_vector

VECTOR = load_vector("serial_frames.json")["badge_internal_auth"]
MASTER = bytes.fromhex(VECTOR["master_key_hex"])
UID = bytes.fromhex(VECTOR["uid_hex"])
CHALLENGE = bytes.fromhex(VECTOR["challenge_hex"])
EXPECTED = {
    "aes": (VECTOR["card_key_hex"], VECTOR["response_hex"]),
    "sm4": (VECTOR["sm4"]["card_key_hex"], VECTOR["sm4"]["response_hex"]),
}
SW_OK = b"\x90\x00"
GET_UID = bytes.fromhex("FFCA000000")
AUTH = bytes.fromhex("0088000110") + CHALLENGE + b"\x10"


def fixed_challenge(size: int) -> bytes:
    assert size == 16
    return CHALLENGE


class ScriptedConnection:
    """Answers each C-APDU with the next scripted R-APDU (or raises the scripted error)."""

    def __init__(self, answers: list[bytes | Exception]) -> None:
        self.answers = list(answers)
        self.sent: list[bytes] = []

    def transmit(self, command: list[int]) -> tuple[list[int], int, int]:
        self.sent.append(bytes(command))
        if not self.answers:
            raise ConnectionError("card removed")
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if len(answer) < 2:
            raise ValueError("R-APDU shorter than a status word")
        return list(answer[:-2]), answer[-2], answer[-1]

    def getReader(self) -> str:  # noqa: N802 - pyscard's name
        return "Fake Reader 00"


class SimulatedConnection:
    """The project's virtual card answering directly, without vpcd in between."""

    def __init__(self, card: VirtualCard) -> None:
        self.card = card

    def transmit(self, command: list[int]) -> tuple[list[int], int, int]:
        answer = self.card.respond(bytes(command))
        if answer is None:
            raise TimeoutError("card does not answer")
        return list(answer[:-2]), answer[-2], answer[-1]


# --- crypto vectors -----------------------------------------------------------------------


@pytest.mark.parametrize("cipher", ["aes", "sm4"])
def test_card_key_and_response_match_vectors(cipher: str) -> None:
    key_hex, response_hex = EXPECTED[cipher]
    key = card_key(MASTER, UID, cipher)
    assert key.hex() == key_hex
    assert card_response(key, CHALLENGE, cipher).hex() == response_hex
    assert expected_response(MASTER, UID, CHALLENGE, cipher).hex() == response_hex


@pytest.mark.parametrize("cipher", ["aes", "sm4"])
def test_verify_response_accepts_only_the_exact_answer(cipher: str) -> None:
    response = bytes.fromhex(EXPECTED[cipher][1])
    assert verify_response(MASTER, UID, CHALLENGE, response, cipher)
    tampered = bytes([response[0] ^ 1]) + response[1:]
    assert not verify_response(MASTER, UID, CHALLENGE, tampered, cipher)
    assert not verify_response(MASTER, UID, CHALLENGE, response[:8], cipher)


def test_aes_and_sm4_give_different_card_keys() -> None:
    assert card_key(MASTER, UID, "aes") != card_key(MASTER, UID, "sm4")


def test_bad_crypto_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        card_key(MASTER[:8], UID)
    with pytest.raises(ValueError, match="UID"):
        card_key(MASTER, b"")
    with pytest.raises(ValueError, match="challenge"):
        card_response(MASTER, CHALLENGE[:15])
    with pytest.raises(ValueError, match="aes, sm4"):
        check_cipher("des")
    assert check_cipher(" SM4 ") == "sm4"


# --- master key file ----------------------------------------------------------------------


def write_key(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_load_master_key_tolerates_whitespace(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spaced = " 2b7e1516 28aed2a6\n\tabf71588 09cf4f3c \n"
    path = write_key(tmp_path / "master.key", spaced)
    with caplog.at_level(logging.WARNING):
        assert load_master_key(path) == MASTER
    assert caplog.records == []


def test_load_master_key_warns_when_others_can_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_key(tmp_path / "master.key", VECTOR["master_key_hex"], mode=0o644)
    with caplog.at_level(logging.WARNING):
        assert load_master_key(path) == MASTER
    assert any("chmod 600" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2b7e151628aed2a6", "16 bytes"),
        (VECTOR["master_key_hex"] + "00", "16 bytes"),
        ("", "empty"),
        ("zz" * 16, "hex digits only"),
    ],
)
def test_load_master_key_rejects_bad_files(tmp_path: Path, text: str, message: str) -> None:
    path = write_key(tmp_path / "master.key", text)
    with pytest.raises(ValueError, match=message) as raised:
        load_master_key(path)
    assert str(path) in str(raised.value)
    if text:
        assert text not in str(raised.value)  # never echo what may be a key


# --- read_badge ---------------------------------------------------------------------------


def test_uid_profile_reports_uid_only() -> None:
    connection = ScriptedConnection([UID + SW_OK])
    result = read_badge(connection, profile="uid")
    assert result == BadgePresentation("Fake Reader 00", "04A1B2C3D4E5F6", "uid-only", None)
    assert connection.sent == [GET_UID]


@pytest.mark.parametrize("cipher", ["aes", "sm4"])
def test_internal_auth_verifies_the_vector_answer(cipher: str) -> None:
    response = bytes.fromhex(EXPECTED[cipher][1])
    connection = ScriptedConnection([UID + SW_OK, response + SW_OK])
    result = read_badge(
        connection, profile="internal-auth", master_key=MASTER, cipher=cipher, rng=fixed_challenge
    )
    assert result.auth == "verified"
    assert result.uid == VECTOR["uid_hex"]
    assert result.error is None
    assert connection.sent == [GET_UID, AUTH]


@pytest.mark.parametrize("cipher", ["aes", "sm4"])
def test_internal_auth_against_the_virtual_card(cipher: str) -> None:
    card = VirtualCard(UID, master_key=MASTER, cipher=cipher)
    result = read_badge(
        SimulatedConnection(card), profile="internal-auth", master_key=MASTER, cipher=cipher
    )
    assert (result.auth, result.uid, result.reader) == ("verified", VECTOR["uid_hex"], "")


def test_a_card_under_another_key_fails() -> None:
    card = VirtualCard(UID, master_key=MASTER, behaviour="wrong-key")
    result = read_badge(
        SimulatedConnection(card), profile="internal-auth", master_key=MASTER, reader="r"
    )
    assert result.auth == "failed"
    assert result.uid == VECTOR["uid_hex"]
    assert result.error is not None and "wrong answer" in result.error


def test_a_cipher_mismatch_fails() -> None:
    card = VirtualCard(UID, master_key=MASTER, cipher="sm4")
    result = read_badge(SimulatedConnection(card), profile="internal-auth", master_key=MASTER)
    assert result.auth == "failed"


def test_t0_status_words_61xx_and_6cxx_are_followed() -> None:
    response = bytes.fromhex(EXPECTED["aes"][1])
    connection = ScriptedConnection(
        [
            b"\x6c\x07",  # wrong Le: send again with Le = 7
            b"\x61\x07",  # 7 bytes waiting
            UID + SW_OK,
            b"\x61\x10",
            response[:10] + b"\x61\x06",  # chained: 6 more bytes waiting
            response[10:] + SW_OK,
        ]
    )
    result = read_badge(connection, profile="internal-auth", master_key=MASTER, rng=fixed_challenge)
    assert result.auth == "verified", result.error
    assert connection.sent == [
        GET_UID,
        bytes.fromhex("FFCA000007"),
        bytes.fromhex("00C0000007"),
        AUTH,
        bytes.fromhex("00C0000010"),
        bytes.fromhex("00C0000006"),
    ]


def test_t0_virtual_card_is_read() -> None:
    card = VirtualCard(UID, master_key=MASTER, behaviour="t0")
    result = read_badge(SimulatedConnection(card), profile="internal-auth", master_key=MASTER)
    assert result.auth == "verified"
    assert card.respond(bytes.fromhex("FFCA000000")) == b"\x6c\x07"


@pytest.mark.parametrize(
    ("answers", "uid", "reason"),
    [
        ([b"\x6a\x81"], "", "UID read refused: SW 6A81"),
        ([b"\x90\x00"], "", "0-byte UID"),
        ([OSError("reader unplugged")], "", "reader unplugged"),
        ([UID + SW_OK, b"\x6d\x00"], "04A1B2C3D4E5F6", "SW 6D00 (instruction not supported)"),
        ([UID + SW_OK, bytes(8) + SW_OK], "04A1B2C3D4E5F6", "8-byte answer"),
        ([UID + SW_OK, ConnectionError("card removed")], "04A1B2C3D4E5F6", "card removed"),
        ([b"\x61\x01"] * 20, "", "kept asking"),
    ],
)
def test_card_errors_become_failed_presentations(
    answers: list[bytes | Exception], uid: str, reason: str
) -> None:
    connection = ScriptedConnection(answers)
    result = read_badge(connection, profile="internal-auth", master_key=MASTER)
    assert (result.auth, result.uid) == ("failed", uid)
    assert result.error is not None and reason in result.error


def test_mute_card_fails_instead_of_raising() -> None:
    card = VirtualCard(UID, master_key=MASTER, behaviour="mute")
    result = read_badge(SimulatedConnection(card), profile="uid")
    assert result.auth == "failed"
    assert result.error is not None and "does not answer" in result.error


def test_read_badge_refuses_bad_arguments() -> None:
    connection = ScriptedConnection([UID + SW_OK])
    with pytest.raises(ValueError, match="master key"):
        read_badge(connection, profile="internal-auth")
    with pytest.raises(ValueError, match="unknown badge profile"):
        read_badge(connection, profile="pin")
    with pytest.raises(ValueError, match="cipher"):
        read_badge(connection, profile="uid", cipher="3des")
    assert connection.sent == []


@settings(max_examples=300, deadline=None)
@given(
    answers=st.lists(st.binary(max_size=40), max_size=12),
    profile=st.sampled_from(["uid", "internal-auth"]),
)
def test_random_r_apdus_never_raise(answers: list[bytes], profile: str) -> None:
    connection = ScriptedConnection(list(answers))
    result = read_badge(connection, profile=profile, master_key=MASTER, rng=fixed_challenge)
    assert isinstance(result, BadgePresentation)
    if profile == "uid":
        assert result.auth in ("uid-only", "failed")
    else:
        assert result.auth == "failed"  # a random answer matching E(K, R) is 2**-128
    assert (result.error is None) == (result.auth != "failed")
    assert len(connection.sent) <= 2 * 9


# --- the virtual card's own answers -------------------------------------------------------


@pytest.mark.parametrize(
    ("apdu", "answer"),
    [
        ("FFCA000000", VECTOR["uid_hex"] + "9000"),
        ("FFCA000007", VECTOR["uid_hex"] + "9000"),
        ("FFCA000004", "6C07"),
        ("FFCA010000", "6A86"),
        ("FFCA0000", "6700"),
        ("0088000110" + VECTOR["challenge_hex"] + "10", VECTOR["response_hex"] + "9000"),
        ("0088000110" + VECTOR["challenge_hex"], "6110"),
        ("0088000210" + VECTOR["challenge_hex"] + "10", "6A86"),
        ("0088000108" + VECTOR["challenge_hex"][:16] + "08", "6700"),
        ("00A4040000", "6D00"),
        ("00C0000010", "6985"),
    ],
)
def test_virtual_card_answers(apdu: str, answer: str) -> None:
    card = VirtualCard(UID, master_key=MASTER)
    result = card.respond(bytes.fromhex(apdu))
    assert result is not None and result.hex().upper() == answer.upper()


def test_virtual_card_get_response_after_61xx() -> None:
    card = VirtualCard(UID, master_key=MASTER)
    assert card.respond(bytes.fromhex("0088000110" + VECTOR["challenge_hex"])) == b"\x61\x10"
    first = card.respond(bytes.fromhex("00C0000008"))
    rest = card.respond(bytes.fromhex("00C0000008"))
    assert first is not None and rest is not None
    assert first[-2:] == b"\x61\x08" and rest[-2:] == SW_OK
    assert (first[:-2] + rest[:-2]).hex() == VECTOR["response_hex"]


def test_uid_only_virtual_card_has_no_internal_authenticate() -> None:
    card = VirtualCard(UID)
    assert card.respond(bytes.fromhex("0088000110" + VECTOR["challenge_hex"] + "10")) == (
        b"\x6d\x00"
    )
    assert card.control(4) == card.atr


# --- policy and the parts that need no pcscd ----------------------------------------------


def test_uid_profile_must_be_switched_on_explicitly() -> None:
    def ignore(_: BadgePresentation) -> None:
        return None

    with pytest.raises(ValueError, match="allow_uid_only"):
        BadgeWatcher(profile="uid", on_badge=ignore)
    with pytest.raises(ValueError, match="master key"):
        BadgeWatcher(profile="internal-auth", on_badge=ignore)
    with pytest.raises(ValueError, match="at least one"):
        BadgeWatcher(readers=[], profile="internal-auth", master_key=MASTER, on_badge=ignore)
    watcher = BadgeWatcher(profile="uid", on_badge=ignore, allow_uid_only=True)
    assert watcher.profile == "uid" and not watcher.running


def test_missing_pyscard_is_a_clear_badge_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "smartcard", None)
    monkeypatch.setitem(sys.modules, "smartcard.scard", None)
    with pytest.raises(BadgeError, match="pip install"):
        list_readers()


def test_error_tree_inherits_builtins() -> None:
    assert issubclass(PcscUnavailable, ConnectionError)
    assert issubclass(NoReader, LookupError)
    assert "pcscd --foreground" in str(PcscUnavailable())
    message = str(NoReader(["Door 1"], ["Virtual PCD 00 00"]))
    assert "'Door 1'" in message and "'Virtual PCD 00 00'" in message


def test_cli_internal_auth_needs_a_key_file() -> None:
    out, err = io.StringIO(), io.StringIO()
    code = cli.run(None, "internal-auth", None, "aes", 0.1, out, err=err)
    assert code == 2
    assert "--key-file" in err.getvalue() and out.getvalue() == ""


def test_cli_rejects_a_bad_key_file_and_cipher(tmp_path: Path) -> None:
    bad = write_key(tmp_path / "short.key", "0011")
    err = io.StringIO()
    assert cli.run(None, "internal-auth", str(bad), "aes", 0.1, io.StringIO(), err=err) == 2
    assert "16 bytes" in err.getvalue()
    err = io.StringIO()
    assert cli.run(None, "uid", None, "rot13", 0.1, io.StringIO(), err=err) == 2
    assert "cipher" in err.getvalue()
