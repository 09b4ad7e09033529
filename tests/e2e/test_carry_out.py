"""Carrying documents out (携带外出) against the real tracker: `ironroom sim room --scenario
carry-out --tracker` and `ironroom tracker`, each in its own process, through a real
Mosquitto. The ledger is set up, the pass asked for and approved with `ironroom ledger`
only; the pass is valid in the room's own clock (the scenario's morning), so folder 1
passes the portal at 09:10 and not at 13:00, folder 2 has no pass, and the 绝密 folder
never leaves."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from protocol.envelope import decode_command, decode_event
from protocol.signing import parse_key
from protocol.timefmt import format_ts, parse_ts
from simulators.scenarios import FOLDER_1, FOLDER_2, FOLDER_TOP
from tests.support import Collector, Mosquitto
from tests.tracker_support import (
    CONTROLLER,
    IRONROOM,
    ROOM,
    SITE,
    Cli,
    TrackerProcess,
    query,
    start_broker,
    write_config,
    write_key,
)

pytestmark = pytest.mark.integration

BEIJING = ZoneInfo("Asia/Shanghai")
FOLDERS = (
    ("机要〔2026〕1号", FOLDER_1, "机密"),
    ("机要〔2026〕2号", FOLDER_2, "机密"),
    ("机要〔2026〕4号", FOLDER_TOP, "绝密"),
)


def local(ts: str) -> str:
    return parse_ts(ts).astimezone(BEIJING).strftime("%H:%M")


def setup_ledger(cli: Cli, key_file: Path) -> dict[str, Any]:
    cli.ok("ledger", "init")
    cli.ok("ledger", "room", "add", SITE, ROOM, "--controller", CONTROLLER, "--key-file",
           str(key_file))  # fmt: skip
    cli.ok("ledger", "cabinet", "add", SITE, ROOM, "c1")
    cli.ok("ledger", "person", "add", "sec", "--name", "王秘书", "--clearance", "绝密",
           "--role", "secretary")  # fmt: skip
    cli.ok("ledger", "person", "add", "lead", "--name", "李领导", "--clearance", "绝密",
           "--role", "approver")  # fmt: skip
    for number, tag, level in FOLDERS:
        cli.ok("ledger", "document", "add", "--number", number, "--title", "文件夹",
               "--classification", level, "--tag", tag,
               "--cabinet", f"{SITE}/{ROOM}/c1")  # fmt: skip
    # a pass for folder 1 from 09:00 to 12:00 on the scenario's day, Beijing time
    [req] = cli.rows("ledger", "request", "carry-out", FOLDER_1, "--by", "sec",
                     "--from", "2026-11-26T09:00:00+08:00", "--until", "2026-11-26T12:00:00+08:00",
                     "--reason", "会议")  # fmt: skip
    [approved] = cli.rows("ledger", "approve", str(req["id"]), "--by", "lead")
    assert approved["state"] == "approved" and approved["from"] == "2026-11-26T01:00:00.000Z"
    # 绝密 is never given a pass
    res = cli.run("ledger", "request", "carry-out", FOLDER_TOP, "--by", "sec",
                  "--from", "2026-11-26T09:00:00+08:00",
                  "--until", "2026-11-26T12:00:00+08:00")  # fmt: skip
    assert res.returncode == 2 and "绝密 documents never leave the room" in res.stderr
    # extended hours that evening, 17:30 to 19:00
    [hours] = cli.rows("ledger", "request", "hours", f"{SITE}/{ROOM}", "--by", "sec",
                       "--from", "2026-11-26T17:30:00+08:00",
                       "--until", "2026-11-26T19:00:00+08:00")  # fmt: skip
    cli.ok("ledger", "approve", str(hours["id"]), "--by", "lead")
    return approved


def test_carry_out_pass_at_the_portal(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    mq: Mosquitto = start_broker(tmp_path / "mosquitto")
    request.addfinalizer(mq.stop)
    db = tmp_path / "ledger.db"
    url = f"sqlite:///{db}"
    cli = Cli(url)
    key_file = write_key(tmp_path / "controller.key")
    key = parse_key(key_file.read_text())
    approved = setup_ledger(cli, key_file)
    cfg = write_config(tmp_path / "tracker.toml", mq, url, tracker={"heartbeat_s": 5})
    tracker = TrackerProcess(cfg, mq, url, tmp_path)
    request.addfinalizer(tracker.stop)
    wire = Collector(mq, "ironroom/#")
    request.addfinalizer(wire.close)
    # a request nobody decides: the running tracker lets it expire (in its own time)
    expires = format_ts(datetime.now(UTC) + timedelta(seconds=5))
    [stale] = cli.rows("ledger", "request", "copy", FOLDER_2, "--by", "sec", "--copies", "1",
                       "--expires", expires)  # fmt: skip
    tracker.start()

    sim = subprocess.run(
        [*IRONROOM, "sim", "room", "--scenario", "carry-out", "--tracker", "--no-badges",
         "--broker", mq.url, "--key-file", str(key_file), "--data-dir", str(tmp_path / "data"),
         "--seconds", "8"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    (tmp_path / "sim.log").write_text(sim.stderr)
    assert sim.returncode == 0, sim.stderr[-3000:]
    assert "scenario carry-out: 9 of 9 steps played, 0 failed" in sim.stderr

    def made() -> int:
        evts = [decode_event(key, m.topic, m.payload) for m in wire.on("") if "/evt/" in m.topic]
        return max((e.seq for e in evts), default=-1)

    tracker.wait(
        lambda: query(db, "SELECT high FROM boots WHERE boot = 1") == [(made(),)],
        20,
        "every event committed",
    )
    published = "SELECT count(*) FROM commands WHERE type = 'siren.set' AND published IS NOT NULL"
    tracker.wait(
        lambda: query(db, published) == [(3,)],
        20,
        "the sirens published",
    )
    tracker.wait(
        lambda: query(db, "SELECT state FROM requests WHERE id = ?", stale["id"]) == [("expired",)],
        20,
        "the undecided request to expire",
    )
    assert tracker.stop() == 0, tracker.log_text()
    wire.close()

    # The portal saw folder 1 (twice), folder 2 and the 绝密 folder, in the room's time.
    events = cli.rows("ledger", "events", "--room", f"{SITE}/{ROOM}")
    seen = [(local(e["ts"]), e["data"]["epc"]) for e in events if e["type"] == "tag.seen"]
    assert seen == [
        ("09:10", FOLDER_1),
        ("09:20", FOLDER_2),
        ("09:30", FOLDER_TOP),
        ("13:00", FOLDER_1),
    ]
    assert all(e["data"]["reader"] == "portal" for e in events if e["type"] == "tag.seen")

    # With the pass: the passage is recorded, no alarm.
    passes = query(db, "SELECT kind, epc, ts FROM incidents WHERE kind = 'portal_pass'")
    assert [(k, epc, local(ts)) for k, epc, ts in passes] == [("portal_pass", FOLDER_1, "09:10")]

    # Without a pass, with the 绝密 folder, and after the pass ended: classified_exit.
    alarms = [a for a in cli.rows("ledger", "alarms") if a["cause"] == "classified_exit"]
    got = [(local(a["raised"]), a["detail"]["epc"], a["detail"]["reason"]) for a in alarms]
    assert got == [
        ("09:20", FOLDER_2, "no approved carry-out pass"),
        ("09:30", FOLDER_TOP, "绝密 documents never leave the room"),
        ("13:00", FOLDER_1, "no approved carry-out pass"),
    ]
    assert all(
        (a["severity"], a["state"], a["point"], a["source"], a["room"])
        == ("critical", "active", "portal", "tracker", f"{SITE}/{ROOM}")
        for a in alarms
    )

    # Each sounds the siren: queued by the tracker, on the wire, signed in the room's time.
    rows = query(db, "SELECT id, data FROM commands WHERE type = 'siren.set' ORDER BY created")
    assert [json.loads(d) for _, d in rows] == [
        {"alarm_id": a["alarm_id"], "state": "on"} for a in alarms
    ]
    on_wire = [decode_command(key, m.topic, m.payload) for m in wire.on("") if "/cmd/" in m.topic]
    sirens = [c for c in on_wire if c.type == "siren.set"]
    assert sorted(c.id for c in sirens) == sorted(i for i, _ in rows)
    assert sorted(local(c.ts) for c in sirens) == ["09:20", "09:30", "13:00"]

    # The grant reached the controller in its policy: the door at 18:00 was inside it,
    # the door at 19:30 after hours (the controller's own alarm).
    policies = [c for c in on_wire if c.type == "policy.update"]
    assert policies[-1].data["extended"] == [
        {"start": "2026-11-26T09:30:00.000Z", "end": "2026-11-26T11:00:00.000Z"}
    ]
    after = [a for a in cli.rows("ledger", "alarms") if a["cause"] == "after_hours_open"]
    assert [(local(a["raised"]), a["point"], a["source"]) for a in after] == [
        ("19:30", "door", "controller")
    ]

    # The ledger afterwards: the pass is still approved (it ended by itself), the folders
    # did not move, and the audit chain covers the requests and every alarm.
    [req] = cli.rows("ledger", "requests", "--kind", "carry-out")
    assert (req["id"], req["state"], req["until"]) == (
        approved["id"],
        "approved",
        "2026-11-26T04:00:00.000Z",
    )
    assert [d["tag"] for d in req["documents"]] == [FOLDER_1]
    for _, tag, _ in FOLDERS:
        [doc] = cli.rows("ledger", "show", tag)
        assert doc["status"] == "in_cabinet" and doc["loan"] is None
    res = cli.run("audit", "verify")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("audit chain ok: ")
    entries = query(db, "SELECT action FROM audit WHERE entity IN ('request', 'request_item')")
    assert sorted(a for (a,) in entries) == [
        "request.approve",
        "request.approve",
        "request.carry-out",
        "request.copy",
        "request.document",
        "request.document",
        "request.expire",
        "request.hours",
    ]
    [(actor,)] = query(db, "SELECT actor FROM audit WHERE action = 'request.expire'")
    assert actor == "tracker"
