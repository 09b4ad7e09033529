"""The tracker benchmark still runs end to end and loses nothing (figures not judged)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_ingest_tiny_prints_one_json_line_and_loses_nothing() -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "bench/ingest.py"), "--tiny"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1
    figures = json.loads(lines[0])
    for name in (
        "events_per_s",
        "baseline_per_s",
        "ratio",
        "alarm_p99_ms_idle",
        "alarm_p99_ms_loaded",
        "where_is_ms",
        "holdings_ms",
        "overdue_ms",
    ):
        assert isinstance(figures[name], int | float) and figures[name] > 0, name
    assert figures["lost"] == 0
    assert figures["duplicated"] == 0
    assert figures["alarms_lost"] == figures["alarms_duplicated"] == 0
    assert figures["events_unapplied"] == 0
    assert set(figures["targets"]) >= {"events_per_s", "alarm_p99_ms_loaded", "overdue_ms"}
