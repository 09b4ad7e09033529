"""``ironroom ledger`` commands: report."""

from __future__ import annotations

from typing import Any


def add_parsers(ledger: Any, top: Any) -> None:
    """No commands yet."""
