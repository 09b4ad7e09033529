"""Destruction (销毁) end to end: a destruction list requested and approved with
`ironroom ledger`, then `ironroom sim room --scenario destruction --tracker` (the bridge on
the simulated room, pcscd badges) and `ironroom tracker`, each in its own process,
through a real Mosquitto. Two witnesses' badges inside the window carry the list out;
the record, the register, the request and the audit chain are read back with the
command line; the destroyed folders' tags seen again raise `destroyed_tag_seen`.
The badges are read at the desk, the designated place by default (``[destruction]
reader``)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from protocol.envelope import make_event
from protocol.hours import Calendar, parse_weekly
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
from tracker.bootstrap import open_store, rules_of
from tracker.config import TrackerConfig
from tracker.domain.levels import Level
from tracker.ingest.pipeline import Message, Processor
from tracker.service import destruction, requests
from tracker.service.ledger import DocumentIn, Ledger, alarms, show
from tracker.service.ledger import loans as loans_of
from tracker.store.audit import verify

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
        f.write("\n[destruction]\nwindow_s = 120\n")  # at the desk, the default
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
        "desk",
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


# -- the same workflow through the tracker's own ingest, in this process -----------------
# Signed events fed to tracker.ingest.pipeline.Processor on a SQLite file of the test's
# own, with the default designated reader (the desk) and an injected time.

KEY = bytes.fromhex("5a" * 32)
T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)  # 09:00 in Beijing, a Thursday
BADGE_SEC, BADGE_HEAD, BADGE_WIT = "04A1B2C3", "04A1B2C4", "04A1B2C5"
EPC = {n: f"30751FEB705C5904E3D50A0{n}" for n in range(1, 4)}


class InProcess:
    """A ledger with a room, two cabinets, three people with badges, three 机密 folders
    and an approved destruction list of folders 1 and 2; events through the ingest."""

    def __init__(self, tmp: Path, window_s: int = 120) -> None:
        hours = parse_weekly({d: ["08:30-17:30"] for d in ("mon", "tue", "wed", "thu", "fri")}, "h")
        cfg = replace(
            TrackerConfig(),
            calendar=Calendar(timezone="Asia/Shanghai", weekly=hours),
            destruction_window_s=window_s,
        )
        self.rules = rules_of(cfg)
        self.store = open_store(f"sqlite:///{tmp / 'ledger.db'}")
        self.seq = 0
        lg = self.ledger(T0 - timedelta(days=1))
        lg.room_add(SITE, ROOM, "room-101-ctl", KEY, None)
        for cab in ("c1", "c2"):
            lg.cabinet_add(SITE, ROOM, cab, False)
        for pid, role in (("sec", "secretary"), ("head", "dept-head"), ("wit", "borrower")):
            lg.person_add(pid, pid, Level.SECRET, [role], None)
        for uid, pid in ((BADGE_SEC, "sec"), (BADGE_HEAD, "head"), (BADGE_WIT, "wit")):
            lg.badge_add(uid, pid)
        for n, tag in EPC.items():
            lg.document_add(
                DocumentIn(f"N{n}", f"文件夹{n}", Level.SECRET, tag, f"{SITE}/{ROOM}/c1")
            )
        req = requests.create(lg, "destroy", "sec", documents=[EPC[1], EPC[2]])
        requests.approve(self.ledger(T0 - timedelta(days=1)), req["id"], "head")
        self.request = req["id"]

    def ledger(self, now: datetime) -> Ledger:
        return Ledger(self.store.sessions, self.rules, actor="cli:test", reason="test", now=now)

    def feed(self, at: datetime, type_: str, **data: str | int) -> None:
        outer = self

        class Clock:
            def now(self) -> datetime:
                return at

            def monotonic(self) -> float:
                return 0.0

        class Pub:
            def publish(self, topic: str, payload: bytes, *, retain: bool) -> bool:
                return True

            def ack(self, messages: Any) -> None:
                pass

        p = Processor(outer.store.sessions, outer.rules, clock=Clock(), publisher=Pub())
        p.load()
        outer.seq += 1
        topic, payload = make_event(
            KEY, site=SITE, room=ROOM, controller="room-101-ctl", boot=1, seq=outer.seq,
            ts=at, type=type_, data=data,
        )  # fmt: skip
        p.process([Message(topic, payload, at, 0.0)])

    def badge(self, at: datetime, uid: str, reader: str = "desk", auth: str = "verified") -> None:
        self.feed(at, "badge.presented", reader=reader, uid=uid, auth=auth)

    def read(self, fn: Any) -> Any:
        with self.store.readers() as s:
            return fn(s)

    def records(self) -> list[dict[str, Any]]:
        return self.read(lambda s: destruction.listing(s))  # type: ignore[no-any-return]

    def attempts(self) -> list[tuple[str, str | None]]:
        return [(a["kind"], a["person"]) for a in self.read(destruction.attempts)]

    def status(self, n: int) -> str:
        return str(self.read(lambda s: show(s, EPC[n]))[0]["status"])

    def verified(self) -> bool:
        return bool(self.read(verify).ok)


@pytest.fixture
def room(tmp_path: Path) -> Iterator[InProcess]:
    r = InProcess(tmp_path)
    yield r
    r.store.engine.dispose()


SEC_ = timedelta(seconds=1)


def test_desk_pair_destroys_and_closes_a_witness_loan(room: InProcess) -> None:
    # The secretary takes folder 1 out under her desk session (a loan to her); folder 2
    # stays in c1; both are present.
    room.badge(T0, BADGE_SEC)
    room.feed(T0 + 5 * SEC_, "tag.departed", reader="cabinet:c1", epc=EPC[1])
    assert room.status(1) == "on_loan"
    assert room.records() == []
    room.badge(T0 + 60 * SEC_, BADGE_HEAD)
    [rec] = room.records()
    assert [w["person"] for w in rec["witnesses"]] == ["sec", "head"]
    assert [(d["tag"], d["status_before"], d["holder_before"]) for d in rec["documents"]] == [
        (EPC[1], "on_loan", "sec"),
        (EPC[2], "in_cabinet", None),
    ]
    assert (room.status(1), room.status(2), room.status(3)) == (
        "destroyed",
        "destroyed",
        "in_cabinet",
    )
    loans = room.read(lambda s: loans_of(s, open_only=True, person=None))
    assert loans == []
    assert room.attempts() == [("destruction_witness", "sec"), ("destruction_witness", "head")]
    # The request is done: a third badge witnesses nothing.
    room.badge(T0 + 70 * SEC_, BADGE_WIT)
    assert len(room.attempts()) == 2
    # The retired tag read at the desk and arriving in c2.
    room.feed(T0 + 80 * SEC_, "tag.seen", reader="desk", epc=EPC[1], rssi=-50)
    room.feed(T0 + 90 * SEC_, "tag.arrived", reader="cabinet:c2", epc=EPC[2])
    causes = room.read(lambda s: [(a["cause"], a["point"]) for a in alarms(s, active=True)])
    assert [c for c in causes if c[0] == "destroyed_tag_seen"] == [
        ("destroyed_tag_seen", "desk"),
        ("destroyed_tag_seen", "cabinet:c2"),
    ]
    assert room.verified()


def test_nothing_destroyed_without_two_people_in_the_window(room: InProcess) -> None:
    room.badge(T0, BADGE_SEC)
    room.badge(T0 + 10 * SEC_, BADGE_SEC)  # the same person twice
    room.badge(T0 + 200 * SEC_, BADGE_HEAD)  # too long after
    room.badge(T0 + 210 * SEC_, "04FFFFFF")  # a badge the ledger does not know
    room.badge(T0 + 220 * SEC_, BADGE_WIT, auth="failed")
    room.badge(T0 + 230 * SEC_, BADGE_WIT, reader="cabinet:c1")  # not the designated reader
    assert room.records() == []
    assert room.attempts() == [
        ("destruction_witness", "sec"),
        ("destruction_refused", "sec"),
        ("destruction_witness", "head"),
        ("destruction_refused", None),
        ("destruction_refused", "wit"),
    ]
    assert (room.status(1), room.status(2)) == ("in_cabinet", "in_cabinet")
    [req] = room.read(lambda s: requests.listing(s, kind="destroy"))
    assert req["state"] == "approved"
    # Inside the window of the head's badge: carried out.
    room.badge(T0 + 300 * SEC_, BADGE_WIT)
    [rec] = room.records()
    assert [w["person"] for w in rec["witnesses"]] == ["head", "wit"]
    assert room.verified()


def test_a_list_with_a_document_not_present_waits(room: InProcess) -> None:
    # Folder 2 leaves c1 with no session: missing (and an alarm); the list cannot be
    # carried out until it is back.
    room.feed(T0, "tag.departed", reader="cabinet:c1", epc=EPC[2])
    assert room.status(2) == "missing"
    room.badge(T0 + 10 * SEC_, BADGE_SEC)
    room.badge(T0 + 20 * SEC_, BADGE_HEAD)
    assert room.records() == []
    [*_, refused] = room.read(destruction.attempts)
    assert refused["kind"] == "destruction_refused"
    assert refused["detail"]["missing"] == {"N2 copy 1": "missing"}
    assert room.status(1) == "in_cabinet"
    room.feed(T0 + 30 * SEC_, "tag.arrived", reader="cabinet:c1", epc=EPC[2])
    room.badge(T0 + 40 * SEC_, BADGE_WIT)  # with the head's badge, 20 s before
    [rec] = room.records()
    assert [w["person"] for w in rec["witnesses"]] == ["head", "wit"]
    assert room.verified()


def test_the_window_is_configurable(tmp_path: Path) -> None:
    r = InProcess(tmp_path, window_s=10)
    try:
        r.badge(T0, BADGE_SEC)
        r.badge(T0 + 11 * SEC_, BADGE_HEAD)
        assert r.records() == []
        r.badge(T0 + 20 * SEC_, BADGE_WIT)
        [rec] = r.records()
        assert [w["person"] for w in rec["witnesses"]] == ["head", "wit"]
    finally:
        r.store.engine.dispose()


def test_the_records_on_the_command_line_and_bad_ids(room: InProcess, tmp_path: Path) -> None:
    room.badge(T0, BADGE_SEC)
    room.badge(T0 + 5 * SEC_, BADGE_HEAD)
    cli = Cli(f"sqlite:///{tmp_path / 'ledger.db'}")
    [rec] = cli.rows("ledger", "destruction", "list")
    assert rec == room.records()[0]
    assert cli.rows("ledger", "destruction", "list", "--request", "999") == []
    for args, why in (
        (("show", "999"), "no destruction record 999"),
        (("show", "x"), "record id 'x': expected a number"),
        (("list", "--request", "1x"), "--request '1x': expected a number"),
    ):
        res = cli.run("ledger", "destruction", *args)
        assert res.returncode == 2 and res.stdout == "", res
        assert res.stderr.count("\n") == 1 and why in res.stderr, res.stderr
