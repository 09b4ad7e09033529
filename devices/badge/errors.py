"""Exceptions raised by the PC/SC badge driver.

Each one also inherits the builtin a caller would naturally catch: ``PcscUnavailable`` is a
``ConnectionError`` (the smart-card service cannot be reached) and ``NoReader`` is a
``LookupError`` (a named reader does not exist).
"""

from __future__ import annotations

from collections.abc import Sequence


class BadgeError(Exception):
    """Anything that stops the badge driver from working (pyscard missing, PC/SC failure)."""


class PcscUnavailable(BadgeError, ConnectionError):
    """The PC/SC service (pcscd) cannot be reached."""

    def __init__(self, detail: str | None = None) -> None:
        message = (
            "pcscd is not running: start it with `pcscd --foreground` or `systemctl start pcscd`"
        )
        if detail:
            message = f"{message} ({detail})"
        super().__init__(message)


class NoReader(BadgeError, LookupError):
    """No PC/SC reader is connected, or a configured reader name does not exist."""

    def __init__(self, wanted: Sequence[str] | None, available: Sequence[str]) -> None:
        self.wanted = list(wanted) if wanted is not None else None
        self.available = list(available)
        if self.available:
            known = ", ".join(repr(name) for name in self.available)
        else:
            known = "none"
        if self.wanted:
            missing = ", ".join(repr(name) for name in self.wanted)
            message = f"PC/SC reader not found: {missing}; readers present: {known}"
        else:
            message = (
                "no PC/SC reader found: plug in a reader (check it with `pcsc_scan`) "
                "or install the reader's driver"
            )
        super().__init__(message)


class CardError(BadgeError):
    """A card that answered something unusable (a status word, a short or bad response)."""
