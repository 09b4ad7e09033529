"""Test vectors of the specification, read from the project's own copy in ``tests/vectors/``.

The files there are byte-for-byte copies of ``shared/spec/vectors``: a clone of this
repository tests on its own, and ``tests/unit/test_protocol_vectors.py`` checks the copies
against the specification's folder when one sits beside the checkout (``../shared``).

``tests/vectors/`` holds data only: it must not get an ``__init__.py``, or it would shadow
this module as ``tests.vectors``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent
#: The project's copy of the specification's vectors (what every test reads).
VECTORS_DIR = PROJECT_DIR / "tests" / "vectors"
#: Where the specification's own vectors are when its checkout sits beside this one.
SHARED_VECTORS_DIR = PROJECT_DIR.parent / "shared" / "spec" / "vectors"


def load_vector(name: str) -> Any:
    """The parsed JSON file ``name`` (e.g. ``"serial_frames.json"``) from ``tests/vectors``."""
    path = VECTORS_DIR / name
    if not path.is_file():
        pytest.fail(
            f"test vector file {path} is missing: copy it from the specification "
            "(shared/spec/vectors) into tests/vectors, byte for byte",
            pytrace=False,
        )
    return json.loads(path.read_text(encoding="utf-8"))


def vector_differences(spec_dir: Path, copy_dir: Path) -> list[str]:
    """What keeps ``copy_dir`` from being an exact copy of the vector files in
    ``spec_dir``: one line per missing, differing or extra file; empty when identical."""
    spec = {p.name: p for p in spec_dir.iterdir() if p.is_file()}
    copy = {p.name: p for p in copy_dir.iterdir() if p.is_file()} if copy_dir.is_dir() else {}
    problems: list[str] = []
    for name in sorted(spec):
        if name not in copy:
            problems.append(f"{name}: in {spec_dir} but missing from {copy_dir}")
        elif spec[name].read_bytes() != copy[name].read_bytes():
            problems.append(f"{name}: {copy[name]} differs from {spec[name]}")
    for name in sorted(set(copy) - set(spec)):
        problems.append(f"{name}: in {copy_dir} but no longer in {spec_dir}")
    return problems
