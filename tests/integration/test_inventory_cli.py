"""Inventory (清查) through the tracker's real ingest in-process (the Processor on a
SQLite file, a clock and a publisher the test holds) and through ``ironroom ledger
inventory`` as real processes: the commands queued, the readers' answers, the timeout,
the report, the register after the sweep and the audit chain."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.unit.test_tracker_ingest import FOLDER, KEY, World, make_world
from tracker.service.inventory import inventory_report, list_runs, start_run
from tracker.service.ledger import DocumentIn, LedgerError
from tracker.store import models as m
from tracker.store.audit import verify

F2 = "E28011700000020A1B2C3D02"
F3 = "E28011700000020A1B2C3D03"
STRANGER = "E2801170000000000000FFFF"
IRONROOM = [sys.executable, "-m", "ironroom.cli"]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = make_world(tmp_path)
    for number, tag, cabinet in (("机要〔2026〕2号", F2, "c1"), ("机要〔2026〕3号", F3, "c2")):
        w.ledger.document_add(
            DocumentIn.build(
                number=number,
                title="文件",
                classification="机密",
                tag=tag,
                cabinet=f"hq/room-101/{cabinet}",
            )
        )
    yield w
    w.store.engine.dispose()


def started(w: World, readers: list[str]) -> None:
    w.proc.process(
        [
            w.room.event(
                "controller.started",
                {"version": "1", "config_hash": "x", "points": [], "readers": readers},
            )
        ]
    )


def inventory_commands(w: World) -> list[Any]:
    return [c for c in w.pub.commands() if c.type == "inventory.run"]


def answer(w: World, cmd: Any, tags: list[str] | None, *, ok: bool = True) -> None:
    data: dict[str, Any] = {"command_id": cmd.id, "ok": ok, "error": None if ok else "no reader"}
    if tags is not None:
        data |= {"reader": cmd.data["reader"], "tags": tags}
    w.proc.process([w.room.event("command.result", data)])


def report(w: World, run_id: int) -> dict[str, Any]:
    with w.store.readers() as s:
        return inventory_report(s, run_id)


def outcomes(rep: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(i["outcome"], i["epc"], i["cabinet"]) for i in rep["items"]]


def status(w: World, tag: str) -> tuple[str, int | None]:
    with w.store.readers() as s:
        d = s.scalars(select(m.Document).where(m.Document.tag == tag)).one()
        return d.status, d.location_cabinet_id


def chain_ok(w: World) -> None:
    with w.store.readers() as s:
        v = verify(s)
    assert v.ok, v.problem


def test_a_run_asks_every_reader_and_reconciles_their_answers(world: World) -> None:
    w = world
    started(w, ["cabinet:c1", "cabinet:c2", "desk", "portal"])
    run = start_run(w.ledger, "hq", "room-101")
    assert (run["state"], run["readers"]) == ("running", ["cabinet:c1", "cabinet:c2"])
    w.proc.tick()  # the running tracker publishes what the command line queued
    c1, c2 = sorted(inventory_commands(w), key=lambda c: c.data["reader"])
    assert (c1.data, c2.data) == ({"reader": "cabinet:c1"}, {"reader": "cabinet:c2"})

    answer(w, c1, [FOLDER])
    assert report(w, run["run"])["run"]["state"] == "running"  # c2 has not answered
    answer(w, c2, [F2, STRANGER])
    rep = report(w, run["run"])
    assert rep["run"]["state"] == "done"
    assert rep["run"]["not_read"] == []
    assert rep["run"]["summary"] == {
        "missing": 1,
        "wrong_cabinet": 1,
        "unknown_tag": 1,
        "present": 1,
    }
    assert outcomes(rep) == [
        ("missing", F3, None),
        ("wrong_cabinet", F2, "hq/room-101/c2"),
        ("unknown_tag", STRANGER, "hq/room-101/c2"),
        ("present", FOLDER, "hq/room-101/c1"),
    ]
    missing = rep["items"][0]
    assert (missing["document"], missing["status_before"], missing["status_after"]) == (
        "机要〔2026〕3号",
        "in_cabinet",
        "missing",
    )
    # The register follows the sweep.
    assert status(w, F3) == ("missing", None)
    assert status(w, F2)[0] == "misplaced"
    assert status(w, FOLDER)[0] == "in_cabinet"
    # A late or repeated answer changes nothing.
    answer(w, c2, [])
    assert report(w, run["run"]) == rep
    chain_ok(w)
    with w.store.readers() as s:
        actions = set(s.scalars(select(m.AuditEntry.action)))
    assert {"inventory.start", "inventory.ask", "inventory.answer", "inventory.item"} <= actions
    assert {"inventory.done", "document.move"} <= actions


def test_a_reader_that_never_answers_is_not_read_past_the_deadline(world: World) -> None:
    w = world
    started(w, ["cabinet:c1", "cabinet:c2"])
    run = start_run(w.ledger, "hq", "room-101", timeout_s=30)
    w.proc.tick()
    c1 = next(c for c in inventory_commands(w) if c.data["reader"] == "cabinet:c1")
    answer(w, c1, [FOLDER, F2])
    w.clock.advance(29)
    w.proc.process([w.room.heartbeat()])  # the room's clock, as the tracker sees it
    w.proc.tick()
    assert report(w, run["run"])["run"]["state"] == "running"
    w.clock.advance(2)
    w.proc.process([w.room.heartbeat()])
    w.proc.tick()
    rep = report(w, run["run"])
    assert rep["run"]["state"] == "done"
    assert rep["run"]["not_read"] == [{"reader": "cabinet:c2", "error": "no answer"}]
    assert outcomes(rep) == [
        ("unchecked", F3, None),
        ("present", FOLDER, "hq/room-101/c1"),
        ("present", F2, "hq/room-101/c1"),
    ]
    assert status(w, F3)[0] == "in_cabinet"  # not checked: left as it was
    chain_ok(w)


def test_a_refused_command_is_not_read_and_the_run_ends_with_the_others(world: World) -> None:
    w = world
    started(w, ["cabinet:c1", "cabinet:c2"])
    run = start_run(w.ledger, "hq", "room-101")
    w.proc.tick()
    c1, c2 = sorted(inventory_commands(w), key=lambda c: c.data["reader"])
    answer(w, c1, [FOLDER, F2])
    answer(w, c2, None, ok=False)
    rep = report(w, run["run"])
    assert rep["run"]["state"] == "done"
    assert rep["run"]["not_read"] == [{"reader": "cabinet:c2", "error": "no reader"}]
    assert [i["outcome"] for i in rep["items"]] == ["unchecked", "present", "present"]


def test_commands_that_expired_unsent_end_the_run_at_once(world: World) -> None:
    w = world
    started(w, ["cabinet:c1", "cabinet:c2"])
    w.pub.up = False  # the broker is away: nothing can be published
    run = start_run(w.ledger, "hq", "room-101", timeout_s=3600)
    w.proc.tick()
    w.clock.advance(61)  # past the commands' lifetime
    w.pub.up = True
    w.proc.tick()  # marks them expired unsent
    w.proc.tick()  # and the run sees it
    rep = report(w, run["run"])
    assert rep["run"]["state"] == "done"
    assert [r["error"] for r in rep["run"]["not_read"]] == ["expired unsent", "expired unsent"]
    assert {i["outcome"] for i in rep["items"]} == {"unchecked"}
    assert inventory_commands(w) == []


def test_a_loan_read_back_in_a_cabinet_is_closed(world: World) -> None:
    from tests.unit.test_tracker_ingest import borrow

    w = world
    started(w, ["cabinet:c1", "cabinet:c2"])
    borrow(w)
    assert status(w, FOLDER)[0] == "on_loan"
    run = start_run(w.ledger, "hq", "room-101")
    w.proc.tick()
    c1, c2 = sorted(inventory_commands(w), key=lambda c: c.data["reader"])
    answer(w, c1, [F2])
    answer(w, c2, [F3, FOLDER])
    rep = report(w, run["run"])
    assert outcomes(rep)[0] == ("wrong_cabinet", FOLDER, "hq/room-101/c2")
    assert rep["items"][0]["detail"] == {"loan_closed": True}
    assert rep["items"][0]["holder"] == "sec"
    with w.store.readers() as s:
        loan = s.scalars(select(m.Loan)).one()
    assert loan.closed is not None and loan.misplaced
    assert status(w, FOLDER)[0] == "misplaced"
    chain_ok(w)


def test_an_open_loan_not_read_is_on_loan(world: World) -> None:
    from tests.unit.test_tracker_ingest import borrow

    w = world
    started(w, ["cabinet:c1", "cabinet:c2"])
    borrow(w)
    run = start_run(w.ledger, "hq", "room-101")
    w.proc.tick()
    c1, c2 = sorted(inventory_commands(w), key=lambda c: c.data["reader"])
    answer(w, c1, [F2])
    answer(w, c2, [F3])
    rep = report(w, run["run"])
    assert outcomes(rep)[0] == ("on_loan", FOLDER, None)
    assert status(w, FOLDER)[0] == "on_loan"


def test_readers_fall_back_to_the_registered_cabinets(world: World) -> None:
    run = start_run(world.ledger, "hq", "room-101")
    assert run["readers"] == ["cabinet:c1", "cabinet:c2"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"site": "hq", "room": "nowhere"}, "no room hq/nowhere"),
        ({"site": "hq", "room": "room-101", "timeout_s": 1}, "between 5 and 3600"),
    ],
)
def test_bad_runs_are_refused(world: World, args: dict[str, Any], message: str) -> None:
    with pytest.raises(LedgerError, match=message):
        start_run(world.ledger, **args)


def test_one_run_at_a_time_per_room(world: World) -> None:
    first = start_run(world.ledger, "hq", "room-101")
    with pytest.raises(LedgerError, match=f"inventory run {first['run']} of hq/room-101"):
        start_run(world.ledger, "hq", "room-101")


def test_a_room_without_cabinet_readers_is_refused(world: World) -> None:
    started(world, ["desk", "portal"])
    with pytest.raises(LedgerError, match="no cabinet reader"):
        start_run(world.ledger, "hq", "room-101")


def test_list_runs(world: World) -> None:
    run = start_run(world.ledger, "hq", "room-101")
    with world.store.readers() as s:
        assert [r["run"] for r in list_runs(s, None)] == [run["run"]]
        assert list_runs(s, "hq/room-101") == list_runs(s, None)
        with pytest.raises(LedgerError, match="expected SITE/ROOM"):
            list_runs(s, "room-101")


# -- the command line, as real processes ---------------------------------------------------


def cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*IRONROOM, "ledger", "inventory", *args, "--db", f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_line(world: World, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    res = cli(db, "run", "hq/room-101")
    assert res.returncode == 0, res.stderr
    [run] = [json.loads(line) for line in res.stdout.splitlines()]
    assert (run["room"], run["state"], run["readers"]) == (
        "hq/room-101",
        "running",
        ["cabinet:c1", "cabinet:c2"],
    )
    with world.store.readers() as s:
        queued = s.scalars(select(m.Command).where(m.Command.type == "inventory.run")).all()
        assert sorted(json.loads(c.data)["reader"] for c in queued) == ["cabinet:c1", "cabinet:c2"]
    # Nobody answers here: --wait gives up with one line and exit 2 (another run is
    # refused while this one runs).
    res = cli(db, "run", "hq/room-101", "--wait", "1")
    assert res.returncode == 2 and "still running" in res.stderr
    # The tracker takes the answers.
    w = world
    w.proc.load()
    w.proc.tick()
    for cmd in inventory_commands(w):
        answer(w, cmd, [FOLDER, F2] if cmd.data["reader"] == "cabinet:c1" else [F3])
    res = cli(db, "show", str(run["run"]))
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert lines[0]["run"] == run["run"] and lines[0]["state"] == "done"
    assert [(i["outcome"], i["epc"]) for i in lines[1:]] == [
        ("present", FOLDER),
        ("present", F2),
        ("present", F3),
    ]
    res = cli(db, "list")
    assert [json.loads(line)["run"] for line in res.stdout.splitlines()] == [run["run"]]
    chain_ok(w)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "room-101"), "expected SITE/ROOM"),
        (("run", "hq/nowhere"), "no room hq/nowhere"),
        (("run", "hq/room-101", "--wait", "0"), "--wait 0"),
        (("run", "hq/room-101", "--wait", "soon"), "--wait soon: a number of seconds"),
        (("run", "hq/room-101", "--timeout", "7.5"), "a whole number of seconds"),
        (("run", "hq/room-101", "--timeout", "4"), "--timeout 4: a number of seconds from 5"),
        (("show", "x"), "expected a run number"),
        (("show", "99"), "no inventory run 99"),
        (("list", "--room", "hq"), "expected SITE/ROOM"),
    ],
)
def test_command_line_errors_are_one_line(
    world: World, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    res = cli(tmp_path / "t.db", *args)
    assert res.returncode == 2, res
    assert message in res.stderr and res.stderr.count("\n") == 1, res.stderr


def test_the_deadline_is_on_the_rooms_clock(world: World) -> None:
    w = world
    # The room's clock is a day behind the tracker's (a Pi with no battery clock).
    w.proc.process([w.room.event("controller.heartbeat", {"uptime_s": 1, "outbox_depth": 1,
                    "armed": False}, ts=w.clock.now() - timedelta(days=1))])  # fmt: skip
    run = start_run(w.ledger, "hq", "room-101", timeout_s=30)
    assert run["started"].startswith("2026-11-25T00:40"), run
    assert run["deadline"].startswith("2026-11-25T00:40:30"), run


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"tags": "E280"}, "no list of at most"),
        ({"tags": ["e2801170"]}, "a bad tag"),
        ({"tags": ["E2" * 65]}, "a bad tag"),
        ({"tags": [7]}, "a bad tag"),
        ({"reader": "cabinet:c2", "tags": []}, "answered for reader 'cabinet:c2'"),
        ({}, "answered for reader None"),
    ],
)
def test_a_bad_answer_is_not_read(world: World, extra: dict[str, Any], error: str) -> None:
    w = world
    started(w, ["cabinet:c1"])
    run = start_run(w.ledger, "hq", "room-101")
    w.proc.tick()
    [c1] = inventory_commands(w)
    data = {"command_id": c1.id, "ok": True, "error": None, "reader": "cabinet:c1"} | extra
    if not extra:
        del data["reader"]
    w.proc.process([w.room.event("command.result", data)])
    rep = report(w, run["run"])
    assert rep["run"]["state"] == "done"
    [not_read] = rep["run"]["not_read"]
    assert not_read["reader"] == "cabinet:c1" and error in not_read["error"], not_read
    chain_ok(w)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE inventory_items SET outcome = 'present' WHERE outcome = 'missing'",
        "UPDATE inventory_runs SET summary = '{}'",
        "UPDATE inventory_reads SET tags = '[]'",
        "DELETE FROM inventory_items WHERE outcome = 'missing'",
    ],
)
def test_a_report_edited_behind_the_trackers_back_breaks_the_chain(world: World, sql: str) -> None:
    from sqlalchemy import text

    w = world
    started(w, ["cabinet:c1"])
    run = start_run(w.ledger, "hq", "room-101")
    w.proc.tick()
    [c1] = inventory_commands(w)
    answer(w, c1, [F2])
    assert [i["outcome"] for i in report(w, run["run"])["items"]][0] == "missing"
    chain_ok(w)
    with w.store.sessions.begin() as s:
        s.execute(text(sql))
    with w.store.readers() as s:
        assert not verify(s).ok


def test_a_run_on_postgresql(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same sweep with the ledger on PostgreSQL (the chain's advisory lock, the
    column types and lengths)."""
    import tests.unit.test_tracker_ingest as ingest
    from tracker.bootstrap import open_store

    monkeypatch.setattr(ingest, "open_store", lambda _url: open_store(postgres_url))
    w = ingest.make_world(tmp_path)
    try:
        w.ledger.document_add(
            DocumentIn.build(
                number="机要〔2026〕2号",
                title="文件",
                classification="机密",
                tag=F2,
                cabinet="hq/room-101/c2",
            )
        )
        started(w, ["cabinet:c1", "cabinet:c2"])
        run = start_run(w.ledger, "hq", "room-101")
        w.proc.tick()
        c1, c2 = sorted(inventory_commands(w), key=lambda c: c.data["reader"])
        stray = "E2" * 64  # the longest EPC the wire allows
        answer(w, c1, [F2, stray])
        answer(w, c2, [])
        rep = report(w, run["run"])
        assert outcomes(rep) == [
            ("missing", FOLDER, None),
            ("wrong_cabinet", F2, "hq/room-101/c1"),
            ("unknown_tag", stray, "hq/room-101/c1"),
        ]
        chain_ok(w)
    finally:
        w.store.engine.dispose()


def test_a_document_of_another_room_read_here_is_in_the_wrong_cabinet(world: World) -> None:
    w = world
    w.ledger.room_add("hq", "room-102", "room-102-ctl", KEY, None)
    w.ledger.cabinet_add("hq", "room-102", "d1", False)
    visitor = "E28011700000020A1B2C3D05"
    w.ledger.document_add(
        DocumentIn.build(
            number="机要〔2026〕5号",
            title="文件",
            classification="秘密",
            tag=visitor,
            cabinet="hq/room-102/d1",
        )
    )
    started(w, ["cabinet:c1", "cabinet:c2"])
    run = start_run(w.ledger, "hq", "room-101")
    w.proc.tick()
    c1, c2 = sorted(inventory_commands(w), key=lambda c: c.data["reader"])
    answer(w, c1, [FOLDER, F2, visitor])
    answer(w, c2, [F3])
    rep = report(w, run["run"])
    [wrong] = [i for i in rep["items"] if i["outcome"] == "wrong_cabinet"]
    assert (wrong["epc"], wrong["cabinet"], wrong["home"]) == (
        visitor,
        "hq/room-101/c1",
        "hq/room-102/d1",
    )
    assert [i["outcome"] for i in rep["items"]].count("present") == 3
    assert status(w, visitor)[0] == "misplaced"
    chain_ok(w)
