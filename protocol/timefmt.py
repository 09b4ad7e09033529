"""Timestamps on the wire: UTC, RFC 3339 with milliseconds and ``Z``."""

import re
from datetime import UTC, datetime
from functools import lru_cache

from protocol.errors import EnvelopeError

_TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", re.ASCII)


@lru_cache(maxsize=256)  # a batch of events received together shares one receipt time
def format_ts(when: datetime) -> str:
    """``2026-11-27T23:10:05.250Z``; a naive datetime is refused (it would be ambiguous)."""
    if when.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC or with a zone)")
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_ts(text: object) -> datetime:
    """Parse a wire timestamp strictly; anything else raises :class:`EnvelopeError`."""
    if not isinstance(text, str):
        raise EnvelopeError(f"timestamp must look like 2026-11-27T23:10:05.250Z, got {text!r}")
    return _parse(text)


@lru_cache(maxsize=1024)  # one event's ts is read by the decoder, the clock and the rules
def _parse(text: str) -> datetime:
    if not _TS.fullmatch(text):
        raise EnvelopeError(f"timestamp must look like 2026-11-27T23:10:05.250Z, got {text!r}")
    try:  # the regex fixed every position: slicing is exact (and 10x faster than strptime)
        return datetime(
            int(text[0:4]),
            int(text[5:7]),
            int(text[8:10]),
            int(text[11:13]),
            int(text[14:16]),
            int(text[17:19]),
            int(text[20:23]) * 1000,
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise EnvelopeError(f"timestamp {text!r} is not a real date: {exc}") from None
