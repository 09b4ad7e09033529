"""The day scenario against the real tracker: `ironroom sim room --scenario day --tracker`
(the bridge on the simulated room, pcscd badges) and `ironroom tracker`, each in its own
process, through a real Mosquitto; the ledger is set up with `ironroom ledger` only and
read back with the ledger and audit commands. The unlocks come from the tracker alone."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from protocol.envelope import decode_command, decode_event
from protocol.signing import parse_key
from protocol.timefmt import parse_ts
from simulators.scenarios import DESK_TAG, FOLDER_1, FOLDER_2, FOLDER_3, SECRETARY
from tests.support import Collector, Mosquitto
from tests.tracker_support import (
    IRONROOM,
    Cli,
    TrackerProcess,
    query,
    setup_day_ledger,
    start_broker,
    write_config,
    write_key,
)

pytestmark = pytest.mark.integration

BEIJING = ZoneInfo("Asia/Shanghai")
NUMBER_1 = "机要〔2026〕1号"


def local(ts: str) -> datetime:
    return parse_ts(ts).astimezone(BEIJING)


@dataclass
class DayRun:
    sim: subprocess.CompletedProcess[str]
    cli: Cli
    db: Path
    key: bytes
    wire: list[tuple[str, bytes]]
    tracker_rc: int | None
    tracker_log: str


def play_day(tmp_path: Path, clearance: str, request: pytest.FixtureRequest) -> DayRun:
    mq: Mosquitto = start_broker(tmp_path / "mosquitto")
    request.addfinalizer(mq.stop)
    db = tmp_path / "ledger.db"
    url = f"sqlite:///{db}"
    cli = Cli(url)
    key_file = write_key(tmp_path / "controller.key")
    key = parse_key(key_file.read_text())
    setup_day_ledger(cli, key_file, clearance=clearance)
    cfg = write_config(
        tmp_path / "tracker.toml",
        mq,
        url,
        tracker={"heartbeat_s": 5, "reorder_window_s": 2, "command_ttl_s": 60},
        loans={"secret": "in-room", "confidential": 5},
    )
    tracker = TrackerProcess(cfg, mq, url, tmp_path)
    request.addfinalizer(tracker.stop)
    wire = Collector(mq, "ironroom/#")
    request.addfinalizer(wire.close)
    tracker.start()

    sim = subprocess.run(
        [*IRONROOM, "sim", "room", "--scenario", "day", "--tracker", "--broker", mq.url,
         "--key-file", str(key_file), "--data-dir", str(tmp_path / "data"), "--seconds", "15"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    (tmp_path / "sim.log").write_text(sim.stderr)

    # The tracker has applied every event the controller made and seen it go offline.
    def made() -> int:
        evts = [decode_event(key, m.topic, m.payload) for m in wire.on("") if "/evt/" in m.topic]
        return max((e.seq for e in evts), default=-1)

    tracker.wait(
        lambda: query(db, "SELECT high FROM boots WHERE boot = 1") == [(made(),)],
        20,
        "every event of the day committed",
    )
    tracker.wait(
        lambda: query(db, "SELECT 1 FROM alarms WHERE cause = 'controller_silent'"),
        20,
        "controller_silent after the controller said offline",
    )
    rc = tracker.stop()
    wire.close()
    return DayRun(
        sim,
        cli,
        db,
        key,
        [(m.topic, m.payload) for m in wire.on("")],
        rc,
        tracker.log_text(),
    )


def _commands_on_wire(run: DayRun) -> list[Any]:
    return [decode_command(run.key, t, p) for t, p in run.wire if "/cmd/" in t]


def _commands_table(run: DayRun) -> list[dict[str, Any]]:
    rows = query(run.db, "SELECT id, type, data, published, ok FROM commands ORDER BY created")
    return [
        {"id": i, "type": t, "data": json.loads(d), "published": p, "ok": ok}
        for i, t, d, p, ok in rows
    ]


def _common_end(run: DayRun) -> list[dict[str, Any]]:
    """What both days end with: the tracker stopped cleanly, every folder home, the
    controller's tamper alarm, the tracker's clock and liveness alarms, the chain whole."""
    assert run.tracker_rc == 0, run.tracker_log
    for number, tag, cabinet in (
        (NUMBER_1, FOLDER_1, "c1"),
        ("机要〔2026〕2号", FOLDER_2, "c1"),
        ("机要〔2026〕3号", FOLDER_3, "c2"),
    ):
        [doc] = run.cli.rows("ledger", "show", tag)
        assert doc["number"] == number and doc["classification"] == "机密"
        assert (doc["status"], doc["cabinet"], doc["home"]) == (
            "in_cabinet",
            f"hq/room-101/{cabinet}",
            f"hq/room-101/{cabinet}",
        ), doc
        assert doc["holder"] is None and doc["loan"] is None

    alarms = run.cli.rows("ledger", "alarms")
    by_cause: dict[str, list[dict[str, Any]]] = {}
    for a in alarms:
        by_cause.setdefault(a["cause"], []).append(a)
    [tamper] = by_cause.pop("tamper")
    assert tamper["alarm_id"].startswith("room-101-ctl:1:")
    assert (tamper["source"], tamper["point"], tamper["severity"], tamper["state"]) == (
        "controller",
        "tamper:t1",
        "critical",
        "active",
    )
    assert local(tamper["raised"]).strftime("%Y-%m-%d %H:%M:%S") == "2026-11-26 23:10:00"
    # The simulated day is in the past: the controller's clock is days behind the tracker's.
    [skew] = by_cause.pop("clock_skew")
    assert (skew["source"], skew["severity"], skew["state"], skew["room"]) == (
        "tracker",
        "warning",
        "active",
        "hq/room-101",
    )
    assert skew["detail"]["offset_s"] < -86400, skew
    # The controller published `offline` when the sim ended.
    [silent] = by_cause.pop("controller_silent")
    assert (silent["source"], silent["severity"], silent["state"]) == (
        "tracker",
        "critical",
        "active",
    )
    assert silent["detail"] == {"why": "the controller said offline"}
    assert run.cli.rows("ledger", "alarms", "--active") == [
        a for a in alarms if a["state"] == "active"
    ]

    res = run.cli.run("audit", "verify")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("audit chain ok: "), res.stdout

    # The events applied: one boot, seq 1..N, nothing twice, nothing missing.
    events = run.cli.rows("ledger", "events", "--room", "hq/room-101")
    assert [e["id"] for e in events] == [f"room-101-ctl:1:{i}" for i in range(1, len(events) + 1)]
    on_wire = {
        decode_event(run.key, t, p).id: p for t, p in run.wire if "/evt/" in t
    }  # what the controller made (each id once here: the tracker acked everything)
    assert sorted(on_wire) == sorted(e["id"] for e in events)
    rows = query(run.db, "SELECT boot, seq, payload FROM events")
    stored = {f"room-101-ctl:{b}:{s}": p for b, s, p in rows}
    assert all(stored[i] == p for i, p in on_wire.items()), "stored byte for byte"
    assert by_cause == {} or set(by_cause) <= {"forced_open", "unauthorized_removal"}
    return events


def _story(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for e in events:
        d, t = e["data"], e["type"]
        when = local(e["ts"]).strftime("%H:%M")
        if t in ("tag.arrived", "tag.departed") and d["reader"] == "cabinet:c1":
            out.append((when, t, d["epc"]))
        elif t == "badge.presented":
            out.append((when, t, d["reader"], d["uid"], d["auth"]))
        elif t == "lock.changed" and d["state"] == "unlocked":
            out.append((when, t, d["point"], d["reason"].split(":")[0]))
        elif t == "tag.seen":
            out.append((when, t, d["reader"], d["epc"]))
    return [x for x in out if x[0] != "08:20"]  # the folders already in at the start


def test_day_with_the_tracker_lends_folder_1_and_takes_it_back(
    tmp_path: Path, pcscd: list[str], request: pytest.FixtureRequest
) -> None:
    run = play_day(tmp_path, "机密", request)
    assert run.sim.returncode == 0, run.sim.stderr[-3000:]
    assert "scenario day: 18 of 18 steps played, 0 failed" in run.sim.stderr

    [loan] = run.cli.rows("ledger", "loans")
    assert run.cli.rows("ledger", "loans", "--person", "sec") == [loan]
    assert run.cli.rows("ledger", "loans", "--open") == []
    assert (loan["document"], loan["tag"], loan["person"]) == (NUMBER_1, FOLDER_1, "sec")
    assert local(loan["opened"]).strftime("%Y-%m-%d %H:%M") == "2026-11-26 08:40"
    assert loan["opened"].startswith("2026-11-26T00:40:"), "00:40 UTC"
    assert local(loan["closed"]).strftime("%Y-%m-%d %H:%M") == "2026-11-26 10:15"
    # [loans] secret = "in-room" (机密): due at the room's closing time that day, 17:30
    assert loan["kind"] == "in-room"
    assert loan["due"] == "2026-11-26T09:30:00.000Z"
    assert loan.get("misplaced") in (None, False)

    events = _common_end(run)
    alarms = run.cli.rows("ledger", "alarms")
    assert sorted(a["cause"] for a in alarms) == ["clock_skew", "controller_silent", "tamper"]

    badge = ("badge.presented", "cabinet:c1", SECRETARY, "verified")
    assert _story(events) == [
        ("08:40", *badge),
        ("08:40", "lock.changed", "lock:c1", "command"),
        ("08:40", "tag.departed", FOLDER_1),
        ("08:45", "tag.seen", "desk", DESK_TAG),
        ("10:15", *badge),
        ("10:15", "lock.changed", "lock:c1", "command"),
        ("10:15", "tag.arrived", FOLDER_1),
    ]

    # Both unlocks are the tracker's: in its commands table, on the wire, answered ok.
    unlocks = [c for c in _commands_table(run) if c["type"] == "cabinet.unlock"]
    assert [c["data"] for c in unlocks] == [
        {"badge": SECRETARY, "cabinet": "c1", "seconds": 20},
        {"badge": SECRETARY, "cabinet": "c1", "seconds": 20},
    ]
    assert all(c["published"] and c["ok"] == 1 for c in unlocks), unlocks
    wire_unlocks = [c for c in _commands_on_wire(run) if c.type == "cabinet.unlock"]
    assert [c.id for c in wire_unlocks] == [c["id"] for c in unlocks]
    assert all(c.issuer == "tracker" for c in wire_unlocks)
    # issued in the controller's time (the simulated morning), not the tracker's
    assert [local(c.ts).strftime("%H:%M") for c in wire_unlocks] == ["08:40", "10:15"]


def test_day_with_clearance_below_the_folder_no_unlock_and_unauthorized_removal(
    tmp_path: Path, pcscd: list[str], request: pytest.FixtureRequest
) -> None:
    run = play_day(tmp_path, "秘密", request)
    # The scenario waits for the tracker's unlock twice, in vain.
    assert run.sim.returncode == 1, run.sim.stderr[-3000:]
    assert "scenario day: 18 of 18 steps played, 2 failed" in run.sim.stderr
    for at in ("08:40:01", "10:15:01"):
        assert f"{at} grant c1 {SECRETARY}: gave up waiting for the unlock" in run.sim.stderr

    commands = _commands_table(run)
    assert [c for c in commands if c["type"] == "cabinet.unlock"] == []
    assert [c for c in _commands_on_wire(run) if c.type == "cabinet.unlock"] == []
    assert run.cli.rows("ledger", "loans") == []

    events = _common_end(run)
    alarms = run.cli.rows("ledger", "alarms")
    [removal] = [a for a in alarms if a["cause"] == "unauthorized_removal"]
    assert (removal["source"], removal["severity"], removal["state"], removal["point"]) == (
        "tracker",
        "critical",
        "active",
        "cabinet:c1",
    )
    assert removal["detail"]["epc"] == FOLDER_1 and removal["detail"]["person"] == "sec"
    assert local(removal["raised"]).strftime("%H:%M") == "08:40"
    # The cabinet was opened while locked both times: the controller's forced_open (the
    # secretary's badge resets the first one at the controller at 10:15).
    assert sorted(a["cause"] for a in alarms) == [
        "clock_skew",
        "controller_silent",
        "forced_open",
        "forced_open",
        "tamper",
        "unauthorized_removal",
    ]

    # The tracker sounds the siren for its critical alarm: queued, then on the wire.
    sirens = [c for c in commands if c["type"] == "siren.set"]
    assert [c["data"] for c in sirens] == [{"alarm_id": removal["alarm_id"], "state": "on"}]
    assert sirens[0]["published"]
    wire_sirens = [c for c in _commands_on_wire(run) if c.type == "siren.set"]
    assert [(c.id, c.data) for c in wire_sirens] == [(sirens[0]["id"], sirens[0]["data"])]

    # Folder 1 was missing from 08:40 until it came back to c1 at 10:15 (the day puts it
    # back): the audit trail of the document says so, each change citing its event.
    trail = query(
        run.db,
        "SELECT a.after, a.reason FROM audit a JOIN documents d ON a.entity_key = d.id "
        "WHERE a.entity = 'document' AND d.tag = ? ORDER BY a.id",
        FOLDER_1,
    )
    statuses = [(json.loads(after)["status"], reason.split(" ")[0]) for after, reason in trail]
    assert statuses == [("in_cabinet", "ironroom"), ("missing", "event"), ("in_cabinet", "event")]
    departed = next(e for e in events if e["type"] == "tag.departed")
    assert trail[1][1] == f"event {departed['id']}"
    badge = ("badge.presented", "cabinet:c1", SECRETARY, "verified")
    assert _story(events) == [
        ("08:40", *badge),
        ("08:40", "tag.departed", FOLDER_1),
        ("08:45", "tag.seen", "desk", DESK_TAG),
        ("10:15", *badge),
        ("10:15", "tag.arrived", FOLDER_1),
    ]
    refused = query(run.db, "SELECT kind, person_id FROM incidents WHERE kind = 'badge_refused'")
    assert refused == [("badge_refused", "sec"), ("badge_refused", "sec")]
