"""``ironroom demo --port P --seconds N``: one command brings up the broker, the simulated
room, the bridge, the tracker and the console; it prints an account per role, serves
``/api/health`` and the console, the room's day shows in the ledger, and it stops cleanly
after N seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from simulators.demo import pick_port
from tests.support import wait_until

ROLES = {"secretary", "approver", "dept-head", "secrecy-office", "borrower"}


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read()
            kind = r.headers.get("content-type", "")
            return r.status, json.loads(body) if "json" in kind else body.decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError:
        return 0, None


class _Lines:
    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._t.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))


def test_demo_serves_health_console_and_the_room(tmp_path: Path, pcscd: list[str]) -> None:
    port = pick_port(0)
    seconds = 75
    env = dict(os.environ)
    env.pop("IRONROOM_DB", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ironroom.cli",
            "demo",
            "--port",
            str(port),
            "--seconds",
            str(seconds),
            "--data-dir",
            str(tmp_path / "demo"),
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    out, err = _Lines(proc.stdout), _Lines(proc.stderr)
    try:
        accounts = wait_until(
            lambda: (a := [x for x in out.lines if x.startswith("account ")]) and len(a) >= 5 and a,
            60,
            "five account lines",
        )
        parsed = [line.split(" ") for line in accounts]
        assert all(len(p) == 4 for p in parsed), accounts
        assert {p[1] for p in parsed} == ROLES
        assert all(len(p[3]) >= 10 for p in parsed)
        base = f"http://127.0.0.1:{port}"
        health = wait_until(
            lambda: (
                (h := _get(f"{base}/api/health"))[0] == 200
                and h[1]["broker"] == "connected"
                and any(c["status"] == "online" for c in h[1]["controllers"])
                and h[1]
            ),
            60,
            "health: broker connected, the room online",
        )
        assert health["database"] == "ok"
        status, page = _get(f"{base}/login")
        assert status == 200 and 'name="username"' in page and 'name="password"' in page
        status, _ = _get(f"{base}/api/alarms")
        assert status in (401, 403)
        # The day scenario plays through: the secretary's badge loan opens and closes.
        db = tmp_path / "demo" / "ironroom.db"
        wait_until(lambda: _closed_loans(db) >= 1, seconds, "the scenario's loan closed")
        assert proc.wait(seconds + 30) == 0, err.lines[-30:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _closed_loans(db: Path) -> int:
    from tests.tracker_support import query

    if not db.exists():
        return 0
    return int(query(db, "SELECT count(*) FROM loans WHERE closed IS NOT NULL")[0][0])
