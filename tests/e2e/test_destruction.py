"""Destruction (销毁) end to end: a destruction list requested and approved with
`ironroom ledger`, then `ironroom sim room --scenario destruction --tracker` (the bridge on
the simulated room, pcscd badges) and `ironroom tracker`, each in its own process,
through a real Mosquitto. Two witnesses' badges inside the window carry the list out;
the record, the register, the request and the audit chain are read back with the
command line; the destroyed folders' tags seen again raise `destroyed_tag_seen`.

The simulated room has one badge reader, on cabinet c1, so the tracker's config names it
as the designated place (``[destruction] reader``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from protocol.timefmt import parse_ts
from simulators.scenarios import FOLDER_1, FOLDER_2, FOLDER_3, SECRETARY, WITNESS
from tests.support import Mosquitto
from tests.tracker_support import (
    IRONROOM,
    ROOM,
    SITE,
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


def local(ts: str) -> str:
    return parse_ts(ts).astimezone(BEIJING).strftime("%H:%M:%S")


def test_two_witnesses_destroy_an_approved_list(
    tmp_path: Path, pcscd: list[str], request: pytest.FixtureRequest
) -> None:
    mq: Mosquitto = start_broker(tmp_path / "mosquitto")
    request.addfinalizer(mq.stop)
    db = tmp_path / "ledger.db"
    url = f"sqlite:///{db}"
    cli = Cli(url)
    key_file = write_key(tmp_path / "controller.key")
    setup_day_ledger(cli, key_file, clearance="机密")
    cli.ok("ledger", "person", "add", "head", "--name", "张主任", "--clearance", "机密",
           "--role", "dept-head")  # fmt: skip
    cli.ok("ledger", "person", "add", "wit", "--name", "李监销", "--clearance", "机密",
           "--role", "borrower")  # fmt: skip
    cli.ok("ledger", "badge", "add", WITNESS, "--person", "wit")
    [req] = cli.rows("ledger", "request", "destroy", FOLDER_1, FOLDER_2, "--by", "sec",
                     "--reason", "过期文件")  # fmt: skip
    [ok] = cli.rows("ledger", "approve", str(req["id"]), "--by", "head")
    assert ok["state"] == "approved"

    cfg = write_config(
        tmp_path / "tracker.toml",
        mq,
        url,
        tracker={"heartbeat_s": 5, "reorder_window_s": 2, "command_ttl_s": 60},
    )
    with cfg.open("a", encoding="utf-8") as f:
        f.write('\n[destruction]\nwindow_s = 120\nreader = "cabinet:c1"\n')
    tracker = TrackerProcess(cfg, mq, url, tmp_path)
    request.addfinalizer(tracker.stop)
    tracker.start()

    sim = subprocess.run(
        [*IRONROOM, "sim", "room", "--scenario", "destruction", "--tracker", "--broker", mq.url,
         "--key-file", str(key_file), "--data-dir", str(tmp_path / "data"), "--seconds", "20"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    (tmp_path / "sim.log").write_text(sim.stderr)
    assert sim.returncode == 0, sim.stderr[-3000:]

    def seen_again() -> list[tuple[str, str]]:
        return query(
            db, "SELECT point, state FROM alarms WHERE cause = 'destroyed_tag_seen' ORDER BY id"
        )

    tracker.wait(lambda: len(seen_again()) == 2, 30, "both retired tags seen again")
    assert tracker.stop() == 0, tracker.log_text()

    # The record: the request, the place, both witnesses with their badges and times (the
    # room's clock), each document with its number, copy and tag.
    [rec] = cli.rows("ledger", "destruction", "list")
    assert (rec["request"], rec["room"], rec["reader"], rec["approved_by"]) == (
        req["id"],
        f"{SITE}/{ROOM}",
        "cabinet:c1",
        "head",
    )
    assert [(w["person"], w["badge"], local(w["at"])) for w in rec["witnesses"]] == [
        ("wit", WITNESS, "09:04:00"),
        ("sec", SECRETARY, "09:05:00"),
    ]
    assert local(rec["destroyed"]) == "09:05:00"
    assert [(d["number"], d["copy"], d["tag"], d["status_before"]) for d in rec["documents"]] == [
        ("机要〔2026〕1号", "1/1", FOLDER_1, "in_cabinet"),
        ("机要〔2026〕2号", "1/1", FOLDER_2, "in_cabinet"),
    ]
    assert cli.rows("ledger", "destruction", "show", str(rec["id"])) == [rec]
    assert cli.rows("ledger", "destruction", "list", "--request", str(req["id"])) == [rec]

    # What did not destroy: the first badge alone, the same person again, the second
    # person too long after; then the pair.
    attempts = cli.rows("ledger", "destruction", "attempts")
    assert [(a["kind"], a["person"], local(a["ts"])) for a in attempts] == [
        ("destruction_witness", "sec", "09:00:00"),
        ("destruction_refused", "sec", "09:00:30"),
        ("destruction_witness", "wit", "09:04:00"),
        ("destruction_witness", "sec", "09:05:00"),
    ]
    assert "same person" in attempts[1]["detail"]["reason"]
    assert "too long before" in attempts[2]["detail"]["note"]

    # The register: both destroyed, their loans none, their tags still theirs (retired);
    # folder 3 untouched. The request is done.
    for tag in (FOLDER_1, FOLDER_2):
        [doc] = cli.rows("ledger", "show", tag)
        assert (doc["status"], doc["tag"], doc["cabinet"], doc["holder"], doc["loan"]) == (
            "destroyed",
            tag,
            None,
            None,
            None,
        )
    [f3] = cli.rows("ledger", "show", FOLDER_3)
    assert f3["status"] == "in_cabinet"
    [done] = cli.rows("ledger", "requests", "--kind", "destroy")
    assert done["state"] == "done" and done["done"] is not None
    # A retired tag cannot be bound to a new document.
    res = cli.run("ledger", "document", "add", "--number", "新", "--title", "新",
                  "--classification", "秘密", "--tag", FOLDER_1,
                  "--cabinet", f"{SITE}/{ROOM}/c1")  # fmt: skip
    assert res.returncode == 2 and "bound to another document" in res.stderr

    # Seen again, anywhere: at the portal and leaving cabinet c1.
    assert seen_again() == [("portal", "active"), ("cabinet:c1", "active")]
    [(detail,)] = query(
        db, "SELECT detail FROM alarms WHERE cause = 'destroyed_tag_seen' AND point = 'portal'"
    )
    assert json.loads(detail)["epc"] == FOLDER_1

    # Everything went through the audit chain.
    actions = [a for (a,) in query(db, "SELECT action FROM audit ORDER BY id")]
    for action in ("destruction.record", "destruction.item", "document.destroy", "request.done"):
        assert action in actions, action
    res = cli.run("audit", "verify")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("audit chain ok: ")
