"""What the benchmarks share: the error, waiting on a condition, percentiles, the
project's interpreter, and the targets table printed with the figures."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent


class BenchError(RuntimeError):
    """The benchmark could not measure what it set out to measure."""


def wait_until(cond: Callable[[], Any], timeout: float, what: str, step: float = 0.01) -> Any:
    """``cond()``'s first true value; a wait that runs out is a :class:`BenchError`."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def project_python() -> str:
    """The project's virtualenv interpreter (not resolved: the symlink is the venv)."""
    venv = PROJECT_DIR / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return ""


def targets(result: Mapping[str, Any], table: Mapping[str, tuple[str, float]]) -> dict[str, Any]:
    """Each target with its measured value and whether it was met (``None``: not
    measured)."""
    out: dict[str, Any] = {}
    for name, (op, limit) in table.items():
        value = result.get(name)
        met = None
        if isinstance(value, int | float) and not math.isnan(value):
            met = value <= limit if op == "<=" else value >= limit
        out[name] = {"target": f"{op} {limit:g}", "value": value, "met": met}
    return out
