"""Inventory (清查) end to end: `ironroom sim room --scenario inventory --tracker` (the
bridge on the simulated room) and `ironroom tracker`, each in its own process, through a
real Mosquitto; the ledger set up with `ironroom ledger` only. While the room runs,
`ironroom ledger inventory run hq/room-101 --wait 60` sweeps both cabinets; the report,
the register afterwards and the audit chain are checked."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from simulators.scenarios import FOLDER_1, FOLDER_2, FOLDER_3, FOLDER_4, STRAY_TAG
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

C1, C2 = f"{SITE}/{ROOM}/c1", f"{SITE}/{ROOM}/c2"


@pytest.mark.parametrize("speed", ["1", "30"])
def test_inventory_of_a_running_room(
    tmp_path: Path, request: pytest.FixtureRequest, speed: str
) -> None:
    """At ``speed`` 30 the room's clock runs 30 times faster than the tracker's: the
    commands' lifetime and the run's deadline are on the room's clock, so a minute there
    is two seconds here."""
    mq: Mosquitto = start_broker(tmp_path / "mosquitto")
    request.addfinalizer(mq.stop)
    db = tmp_path / "ledger.db"
    url = f"sqlite:///{db}"
    cli = Cli(url)
    key_file = write_key(tmp_path / "controller.key")
    # Folders 1 and 2 at home in c1, 3 in c2 (the day's ledger), and folder 4 in c2.
    setup_day_ledger(cli, key_file, clearance="机密")
    cli.ok("ledger", "document", "add", "--number", "机要〔2026〕4号", "--title", "文件夹4",
           "--classification", "秘密", "--tag", FOLDER_4, "--cabinet", C2)  # fmt: skip
    cfg = write_config(
        tmp_path / "tracker.toml",
        mq,
        url,
        tracker={"heartbeat_s": 5, "reorder_window_s": 2, "command_ttl_s": 60},
    )
    tracker = TrackerProcess(cfg, mq, url, tmp_path)
    request.addfinalizer(tracker.stop)
    tracker.start()

    sim_log = (tmp_path / "sim.log").open("w")
    request.addfinalizer(sim_log.close)
    sim = subprocess.Popen(
        [*IRONROOM, "sim", "room", "--scenario", "inventory", "--tracker", "--no-badges",
         "--broker", mq.url, "--key-file", str(key_file), "--data-dir", str(tmp_path / "data"),
         "--seconds", "120", "--speed", speed],
        stdout=subprocess.DEVNULL, stderr=sim_log, text=True,
    )  # fmt: skip

    def stop_sim() -> None:
        if sim.poll() is None:
            sim.send_signal(signal.SIGTERM)
            sim.wait(30)

    request.addfinalizer(stop_sim)

    # The room is up: the controller has started and every folder it holds has arrived.
    def arrived() -> set[tuple[str, str]]:
        rows = query(db, "SELECT data FROM events WHERE type = 'tag.arrived'")
        return {(d["reader"], d["epc"]) for (raw,) in rows for d in [json.loads(raw)]}

    expected = {
        ("cabinet:c1", FOLDER_1),
        ("cabinet:c2", FOLDER_3),
        ("cabinet:c2", FOLDER_2),
        ("cabinet:c2", STRAY_TAG),
    }
    tracker.wait(lambda: arrived() == expected, 60, "the folders' arrivals applied")
    tracker.wait(
        lambda: query(db, "SELECT started FROM room_live WHERE started IS NOT NULL"),
        10,
        "controller.started applied",
    )
    assert sim.poll() is None, (tmp_path / "sim.log").read_text()[-3000:]
    # Before the sweep the ledger still has folder 4 in c2, where it never was.
    [f4] = cli.rows("ledger", "show", FOLDER_4)
    assert (f4["status"], f4["cabinet"]) == ("in_cabinet", C2)

    res = cli.run("ledger", "inventory", "run", f"{SITE}/{ROOM}", "--wait", "60", timeout=120)
    assert res.returncode == 0, (res.stderr, tracker.log_text())
    run, *items = [json.loads(line) for line in res.stdout.splitlines()]
    assert (run["room"], run["state"], run["readers"], run["not_read"]) == (
        f"{SITE}/{ROOM}",
        "done",
        ["cabinet:c1", "cabinet:c2"],
        [],
    )
    assert run["summary"] == {"missing": 1, "wrong_cabinet": 1, "unknown_tag": 1, "present": 2}
    # Started and finished on the room's clock: the simulated morning, a week ago.
    assert run["started"].startswith("2026-11-26T01:"), run
    got = [(i["outcome"], i["epc"], i["cabinet"], i["home"]) for i in items]
    assert got == [
        ("missing", FOLDER_4, None, C2),
        ("wrong_cabinet", FOLDER_2, C2, C1),
        ("unknown_tag", STRAY_TAG, C2, None),
        ("present", FOLDER_1, C1, C1),
        ("present", FOLDER_3, C2, C2),
    ]
    assert [i["document"] for i in items] == [
        "机要〔2026〕4号",
        "机要〔2026〕2号",
        None,
        "机要〔2026〕1号",
        "机要〔2026〕3号",
    ]
    assert cli.rows("ledger", "inventory", "show", str(run["run"])) == [run, *items]
    assert cli.rows("ledger", "inventory", "list") == [run]

    # The answers came from the controller: one inventory.run per cabinet reader, each
    # answered ok on its command row.
    cmds = query(db, "SELECT data, published, ok FROM commands WHERE type = 'inventory.run'")
    assert sorted(json.loads(d)["reader"] for d, _, _ in cmds) == ["cabinet:c1", "cabinet:c2"]
    assert all(p and ok == 1 for _, p, ok in cmds), cmds

    # The register follows the sweep.
    [f4] = cli.rows("ledger", "show", FOLDER_4)
    assert (f4["status"], f4["cabinet"]) == ("missing", None)
    [f2] = cli.rows("ledger", "show", FOLDER_2)
    assert (f2["status"], f2["cabinet"]) == ("misplaced", C2)
    for tag, home in ((FOLDER_1, C1), (FOLDER_3, C2)):
        [doc] = cli.rows("ledger", "show", tag)
        assert (doc["status"], doc["cabinet"]) == ("in_cabinet", home)

    stop_sim()
    assert sim.returncode == 0, (tmp_path / "sim.log").read_text()[-3000:]
    assert tracker.stop() == 0, tracker.log_text()
    res = cli.run("audit", "verify")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("audit chain ok: "), res.stdout
    trail = query(
        db,
        "SELECT a.action, a.reason FROM audit a JOIN documents d ON a.entity_key = d.id "
        "WHERE a.entity = 'document' AND d.tag = ? ORDER BY a.id",
        FOLDER_4,
    )
    assert [a for a, _ in trail][1:] == ["document.move"], trail  # registered, then the sweep
    assert trail[1][1].startswith("event room-101-ctl:"), trail  # the last answer's event
