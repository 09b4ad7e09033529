"""The benchmark still runs and prints its one JSON line (figures are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_quick_prints_one_json_line_with_every_figure() -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "bench/controller.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1
    figures = json.loads(lines[0])
    for name in (
        "edge_to_siren_p99_ms",
        "m100_reads_per_s",
        "outbox_appends_per_s",
        "bridge_rss_mb",
    ):
        assert isinstance(figures[name], int | float) and figures[name] > 0, name
    assert set(figures["targets"]) == {"edge_to_siren_p99_ms", "m100_reads_per_s", "bridge_rss_mb"}
    assert figures["edge_outbox_drained"] is True
