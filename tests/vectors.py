"""Test vectors shared with the specification, read from ``<checkout>/../shared/spec/vectors``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

VECTORS_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "spec" / "vectors"


def load_vector(name: str) -> Any:
    """The parsed JSON file ``name`` (e.g. ``"serial_frames.json"``) from the vectors folder."""
    path = VECTORS_DIR / name
    if not path.is_file():
        pytest.fail(
            f"test vector file {path} is missing: the specification checkout must sit next to "
            "this one as ../shared/spec",
            pytrace=False,
        )
    return json.loads(path.read_text(encoding="utf-8"))
