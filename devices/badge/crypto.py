"""Key derivation and challenge-response for the ``internal-auth`` badge profile.

Every badge holds its own key ``K_card = CMAC(master_key, UID)`` (AES-128 by default, SM4
where the site requires national ciphers). The controller sends a fresh 16-byte challenge
``R`` and the card answers ``E(K_card, R)``: one block in ECB mode. Only the controller and
the card-personalisation station hold the master key.

The master key lives in a file holding 32 hex digits (whitespace and line breaks are
ignored), readable only by the service user::

    install -m 0600 -o ironroom -g ironroom /dev/null /etc/ironroom/badge-master.key
    openssl rand -hex 16 > /etc/ironroom/badge-master.key

Pure functions: no I/O except :func:`load_master_key`.
"""

from __future__ import annotations

import hmac
import logging
import os
import stat
import string
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

log = logging.getLogger(__name__)

CipherName = Literal["aes", "sm4"]
CIPHERS: tuple[CipherName, ...] = ("aes", "sm4")
KEY_SIZE = 16
BLOCK_SIZE = 16


def check_cipher(cipher: str) -> CipherName:
    """Return ``cipher`` normalised to ``"aes"`` or ``"sm4"``; ValueError for anything else."""
    name = cipher.strip().lower()
    if name == "aes":
        return "aes"
    if name == "sm4":
        return "sm4"
    raise ValueError(f"unknown badge cipher {cipher!r}: use one of {', '.join(CIPHERS)}")


def _algorithm(key: bytes, cipher: str) -> algorithms.AES | algorithms.SM4:
    if len(key) != KEY_SIZE:
        raise ValueError(f"badge keys are {KEY_SIZE} bytes, got {len(key)}")
    if check_cipher(cipher) == "sm4":
        return algorithms.SM4(key)
    return algorithms.AES(key)


def card_key(master_key: bytes, uid: bytes, cipher: str = "aes") -> bytes:
    """The card's own key: CMAC of its UID under the site master key."""
    if not uid:
        raise ValueError("a card UID cannot be empty")
    mac = cmac.CMAC(_algorithm(master_key, cipher))
    mac.update(uid)
    return mac.finalize()


def card_response(card_key: bytes, challenge: bytes, cipher: str = "aes") -> bytes:
    """What a genuine card answers to ``challenge``: one block encrypted in ECB mode."""
    if len(challenge) != BLOCK_SIZE:
        raise ValueError(f"challenges are {BLOCK_SIZE} bytes, got {len(challenge)}")
    # ECB is right here: a single fresh random block, never a message.
    encryptor = Cipher(_algorithm(card_key, cipher), modes.ECB()).encryptor()
    return encryptor.update(challenge) + encryptor.finalize()


def expected_response(
    master_key: bytes, uid: bytes, challenge: bytes, cipher: str = "aes"
) -> bytes:
    """The response a card with ``uid`` personalised under ``master_key`` must give."""
    return card_response(card_key(master_key, uid, cipher), challenge, cipher)


def verify_response(
    master_key: bytes, uid: bytes, challenge: bytes, response: bytes, cipher: str = "aes"
) -> bool:
    """True when ``response`` is the right answer to ``challenge`` (constant-time compare)."""
    expected = expected_response(master_key, uid, challenge, cipher)
    return hmac.compare_digest(expected, response)


def parse_master_key(text: str) -> bytes:
    """Decode a master key written as hex digits; whitespace anywhere is ignored."""
    digits = "".join(text.split())
    if not digits:
        raise ValueError("the master key is empty: expected 32 hex digits")
    if any(ch not in string.hexdigits for ch in digits):
        # The message must not echo the text: it may be a key with a typo in it.
        raise ValueError("the master key must be hex digits only (0-9, a-f)")
    if len(digits) != 2 * KEY_SIZE:
        raise ValueError(
            f"the master key must be {KEY_SIZE} bytes ({2 * KEY_SIZE} hex digits) for "
            f"AES-128/SM4, got {len(digits)} hex digits"
        )
    return bytes.fromhex(digits)


def load_master_key(path: str | os.PathLike[str]) -> bytes:
    """Read the site master key from ``path`` (32 hex digits, whitespace tolerated).

    Logs a warning when the file can be read by its group or by others: it should be mode
    0600 and owned by the service user.
    """
    key_path = Path(path)
    mode = key_path.stat().st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning(
            "badge master key %s is readable by group or others (mode %o): "
            "run `chmod 600 %s` and make it owned by the service user",
            key_path,
            stat.S_IMODE(mode),
            key_path,
        )
    try:
        return parse_master_key(key_path.read_text(encoding="ascii"))
    except UnicodeDecodeError:
        raise ValueError(f"{key_path}: the master key must be hex digits only") from None
    except ValueError as exc:
        raise ValueError(f"{key_path}: {exc}") from None
