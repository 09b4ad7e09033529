"""The workflow commands of ``ironroom ledger`` (DOMAIN.md rules 1-2 and 4-13) and
``ironroom report``: one module per workflow, each adding its parsers.

A module exposes ``add_parsers(ledger, top)``: ``ledger`` is the ``ironroom ledger``
sub-parsers, ``top`` the top-level ones (for ``ironroom report``). Commands set
``run=`` like the rest of :mod:`tracker.cli`, and use its helpers (``_db``, ``_emit``,
``_ledger``, ``_read``).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

MODULES = (
    "requests",
    "overdue",
    "handover",
    "dossier",
    "destruction",
    "inventory",
    "report",
    "user",
)


def add_parsers(ledger: Any, top: Any) -> None:
    for name in MODULES:
        import_module(f"tracker.commands.{name}").add_parsers(ledger, top)
