"""What the frame parsers share: the input buffer, a cache and their counters."""

from __future__ import annotations

from typing import Generic, TypeVar

F = TypeVar("F")


class FrameBuffer(Generic[F]):
    """Base of the pure ``feed(bytes) -> frames`` parsers.

    Counters: ``frames_ok`` valid frames; ``frames_bad`` complete frames that failed a
    check; ``bytes_skipped`` every byte not part of a valid frame. ``_cache`` maps the raw
    bytes of a valid frame to its decoded value: a reader repeats the same frames.
    """

    __slots__ = ("_buf", "_cache", "frames_ok", "frames_bad", "bytes_skipped")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._cache: dict[bytes, F] = {}
        self.frames_ok = 0
        self.frames_bad = 0
        self.bytes_skipped = 0

    def reset(self) -> None:
        """Drop a partial frame (e.g. after the port was reopened); counters are kept."""
        self._buf.clear()
