"""HMAC-SHA256 signatures over ``topic + "\\n" + canonical(envelope without sig)``."""

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

from protocol.canonical import canonical, canonical_of_parsed
from protocol.errors import BadSignature

KEY_BYTES = 32
_SIG = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")


def signed_input(topic: str, envelope: Mapping[str, Any], *, parsed: bool = False) -> bytes:
    """What is signed. ``parsed``: the envelope came from the strict parser, which refuses
    floats already, so the canonical form skips looking for them again."""
    body = {k: v for k, v in envelope.items() if k != "sig"}
    text = canonical_of_parsed(body) if parsed else canonical(body)
    return topic.encode("utf-8") + b"\n" + text


def sign(key: bytes, topic: str, envelope: Mapping[str, Any]) -> str:
    """The ``sig`` value: base64url without padding."""
    mac = hmac.new(key, signed_input(topic, envelope), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def verify(key: bytes, topic: str, envelope: Mapping[str, Any], *, parsed: bool = False) -> None:
    """Raise :class:`BadSignature` unless ``envelope["sig"]`` is right for ``topic``
    (``parsed``: see :func:`signed_input`)."""
    sig = envelope.get("sig")
    if not isinstance(sig, str) or not sig:
        raise BadSignature("message is not signed (no 'sig')")
    # One spelling only (base64url, no padding), so one event id has one byte form.
    if not _SIG.fullmatch(sig):
        raise BadSignature("'sig' is not 43 characters of unpadded base64url")
    got = base64.urlsafe_b64decode(sig + "=")
    want = hmac.new(key, signed_input(topic, envelope, parsed=parsed), hashlib.sha256).digest()
    if not hmac.compare_digest(got, want):
        raise BadSignature(f"signature mismatch on {topic}")


def parse_key(text: str) -> bytes:
    """A key file's text: 64 hex digits (32 bytes), surrounding white space ignored."""
    cleaned = "".join(text.split())
    try:
        key = bytes.fromhex(cleaned)
    except ValueError:
        raise ValueError("key file must hold the key in hex (64 hex digits)") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"key must be {KEY_BYTES} bytes (64 hex digits), got {len(key)} bytes")
    return key
