"""Canonical JSON: the exact bytes that are signed."""

import json
from typing import Any


def canonical(obj: Any) -> bytes:
    """Sorted keys, separators ``,`` and ``:``, no ASCII escaping, UTF-8.

    Floats are refused: the contract carries integers and strings only, and float
    formatting is the classic source of signatures that verify on one side only.
    """
    _refuse_floats(obj)
    return canonical_of_parsed(obj)


def canonical_of_parsed(obj: Any) -> bytes:
    """:func:`canonical` of what the strict parser returned (it holds no floats)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _refuse_floats(obj: Any) -> None:
    if isinstance(obj, float):
        raise TypeError("floats are not allowed in signed messages; use integers or strings")
    if isinstance(obj, dict):
        for value in obj.values():
            _refuse_floats(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _refuse_floats(value)
