"""``ironroom ledger`` commands: requests."""

from __future__ import annotations

from typing import Any


def add_parsers(ledger: Any, top: Any) -> None:
    """No commands yet."""
