"""Requests and approvals (审批) as an operator runs them: ``ironroom ledger request ...``,
``approve``, ``refuse``, ``requests`` and ``copy register``, each a process of its own on
a SQLite file of the test's own; exit codes, JSON lines and one-line errors; the audit
chain verified after each workflow. Expiry on the tick and extended hours at a badge are
driven in this process with an injected time, on the same file."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from protocol.envelope import make_event
from protocol.hours import Calendar, parse_weekly
from protocol.timefmt import format_ts, parse_ts
from tests.support import wait_until
from tracker.bootstrap import open_store, rules_of
from tracker.config import TrackerConfig
from tracker.ingest.pipeline import Message, Processor
from tracker.service import requests
from tracker.service.ledger import Ledger, LedgerError

pytestmark = [pytest.mark.timeout(180)]

IRONROOM = [sys.executable, "-m", "ironroom.cli"]
KEY = bytes.fromhex("5a" * 32)
CONTROLLER = "room-101-ctl"
BADGE = "04A1B2C3"
TAGS = {
    "D1": "30751FEB705C5904E3D50D01",  # 机密
    "D2": "30751FEB705C5904E3D50D02",  # 绝密
    "D3": "30751FEB705C5904E3D50D03",  # 机密, 不准翻印
    "D4a": "30751FEB705C5904E3D50D04",  # 秘密 1/2
    "D4b": "30751FEB705C5904E3D50D05",  # 秘密 2/2
}
COPY_TAGS = ["30751FEB705C5904E3D50E01", "30751FEB705C5904E3D50E02", "30751FEB705C5904E3D50E03"]


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def rows(self) -> list[dict[str, Any]]:
        assert self.code == 0, (self.code, self.out, self.err)
        return [json.loads(line) for line in self.out.splitlines() if line]

    def failed(self) -> str:
        """Exit 2, nothing on stdout, one line on stderr; returns it."""
        assert self.code == 2, (self.code, self.out, self.err)
        assert self.out == ""
        lines = self.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("ironroom: "), self.err
        return lines[0]


class Ironroom:
    def __init__(self, db: str) -> None:
        self.db = db

    def __call__(self, *args: str) -> Result:
        res = subprocess.run(
            [*IRONROOM, *args, "--db", self.db], capture_output=True, text=True, timeout=60
        )
        return Result(res.returncode, res.stdout, res.stderr)

    def one(self, *args: str) -> dict[str, Any]:
        [row] = self(*args).rows
        return row

    def verify(self) -> None:
        res = self("audit", "verify")
        assert res.code == 0, res.err
        assert res.out.startswith("audit chain ok: ")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The room, its people and documents, made once with the ledger commands."""
    tmp = tmp_path_factory.mktemp("requests")
    run = Ironroom(f"sqlite:///{tmp / 'ledger.db'}")
    key = tmp / "c.key"
    key.write_text(KEY.hex() + "\n")
    for args in (
        ("ledger", "init"),
        ("ledger", "room", "add", "hq", "room-101", "--controller", CONTROLLER,
         "--key-file", str(key)),
        ("ledger", "cabinet", "add", "hq", "room-101", "c1"),
        ("ledger", "person", "add", "sec", "--name", "王秘书", "--clearance", "绝密",
         "--role", "secretary"),
        ("ledger", "person", "add", "lead", "--name", "李领导", "--clearance", "绝密",
         "--role", "approver"),
        ("ledger", "person", "add", "head", "--name", "张主任", "--clearance", "绝密",
         "--role", "dept-head"),
        ("ledger", "badge", "add", BADGE, "--person", "sec"),
        ("ledger", "document", "add", "--number", "D1", "--title", "一", "--classification",
         "机密", "--tag", TAGS["D1"], "--cabinet", "hq/room-101/c1", "--scope", "dept:办公室",
         "--period", "15", "--issuer", "省委办公厅"),
        ("ledger", "document", "add", "--number", "D2", "--title", "二", "--classification",
         "绝密", "--tag", TAGS["D2"], "--cabinet", "hq/room-101/c1"),
        ("ledger", "document", "add", "--number", "D3", "--title", "三", "--classification",
         "机密", "--tag", TAGS["D3"], "--cabinet", "hq/room-101/c1", "--no-copying"),
        ("ledger", "document", "add", "--number", "D4", "--title", "四", "--classification",
         "秘密", "--tag", TAGS["D4a"], "--cabinet", "hq/room-101/c1", "--copy", "1/2"),
        ("ledger", "document", "add", "--number", "D4", "--title", "四", "--classification",
         "秘密", "--tag", TAGS["D4b"], "--cabinet", "hq/room-101/c1", "--copy", "2/2"),
    ):  # fmt: skip
        res = run(*args)
        assert res.code == 0, (args, res.err)
    return tmp / "ledger.db"


@pytest.fixture
def cli(template: Path, tmp_path: Path) -> Ironroom:
    """A ledger of this test's own: a copy of the template."""
    shutil.copyfile(template, tmp_path / "ledger.db")
    return Ironroom(f"sqlite:///{tmp_path / 'ledger.db'}")


def db_path(cli: Ironroom) -> str:
    return cli.db.removeprefix("sqlite:///")


def query(cli: Ironroom, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(f"file:{db_path(cli)}?mode=ro", uri=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def actions(cli: Ironroom) -> list[str]:
    rows = query(cli, "SELECT action FROM audit WHERE entity LIKE 'request%' ORDER BY id")
    return [a for (a,) in rows]


# -- copying -------------------------------------------------------------------------------


def test_copy_request_approved_then_copies_registered(cli: Ironroom) -> None:
    req = cli.one("ledger", "request", "copy", "D1", "--by", "sec", "--copies", "2",
                  "--reason", "会议用")  # fmt: skip
    assert (req["kind"], req["state"], req["by"], req["copies"], req["reason"]) == (
        "copy",
        "pending",
        "sec",
        2,
        "会议用",
    )
    assert req["documents"] == [{"number": "D1", "copy": "1/1", "tag": TAGS["D1"]}]
    created = parse_ts(req["created"])
    assert parse_ts(req["expires"]) - created == timedelta(days=7)  # the default
    rid = str(req["id"])

    # The copies wait for the approval; the requester and a dept-head may not approve.
    assert "not approved" in cli("ledger", "copy", "register", rid, "--tag", COPY_TAGS[0]).failed()
    assert "cannot decide it" in cli("ledger", "approve", rid, "--by", "sec").failed()
    assert "role approver" in cli("ledger", "approve", rid, "--by", "head").failed()
    assert "no person" in cli("ledger", "approve", rid, "--by", "nobody").failed()
    ok = cli.one("ledger", "approve", rid, "--by", "lead", "--reason", "同意")
    assert (ok["state"], ok["decided_by"], ok["decision_reason"]) == ("approved", "lead", "同意")
    assert "not pending" in cli("ledger", "approve", rid, "--by", "lead").failed()
    assert "not pending" in cli("ledger", "refuse", rid, "--by", "lead").failed()

    # Copies count against the approved number.
    three = [a for t in COPY_TAGS for a in ("--tag", t)]
    assert "2 left, 3 tags given" in cli("ledger", "copy", "register", rid, *three).failed()
    taken = cli("ledger", "copy", "register", rid, "--tag", TAGS["D3"]).failed()
    assert "bound to another document" in taken
    [first] = cli("ledger", "copy", "register", rid, "--tag", COPY_TAGS[0].lower()).rows
    assert (first["number"], first["copy"], first["tag"], first["original"]) == (
        "D1",
        "2/2",
        COPY_TAGS[0],
        TAGS["D1"],
    )
    [second] = cli("ledger", "copy", "register", rid, "--tag", COPY_TAGS[1]).rows
    assert second["copy"] == "3/3"
    assert (
        "is done, not approved"
        in cli("ledger", "copy", "register", rid, "--tag", COPY_TAGS[2]).failed()
    )

    # Each copy is its own item: same classification, period and scope, home cabinet,
    # linked to the original.
    [orig] = cli("ledger", "show", TAGS["D1"]).rows
    for tag in COPY_TAGS[:2]:
        [copy] = cli("ledger", "show", tag).rows
        for key in ("number", "title", "classification", "issuer", "scope", "period_years",
                    "home", "no_copying", "declassify_on", "return_by"):  # fmt: skip
            assert copy[key] == orig[key], key
        assert (copy["status"], copy["cabinet"]) == ("in_cabinet", "hq/room-101/c1")
    links = query(cli, "SELECT tag, original_id FROM documents WHERE original_id IS NOT NULL")
    [(orig_id,)] = query(cli, "SELECT id FROM documents WHERE tag = ?", TAGS["D1"])
    assert sorted(links) == [(COPY_TAGS[0], orig_id), (COPY_TAGS[1], orig_id)]

    [done] = cli("ledger", "requests", "--kind", "copy").rows
    assert done["state"] == "done" and done["done"] is not None
    assert [r["tag"] for r in done["registered"]] == COPY_TAGS[:2]
    assert actions(cli) == [
        "request.copy",
        "request.document",
        "request.approve",
        "request.copy_registered",
        "request.copy_registered",
        "request.done",
    ]
    copies = query(cli, "SELECT count(*) FROM audit WHERE action = 'document.copy'")
    assert copies == [(2,)]
    cli.verify()


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ("D2", "绝密 (top-secret) documents are never copied"),
        (TAGS["D2"], "绝密 (top-secret) documents are never copied"),
        ("D3", "不准翻印 (no copying)"),
    ],
)
def test_copy_refused_for_top_secret_and_no_copying(cli: Ironroom, doc: str, why: str) -> None:
    line = cli("ledger", "request", "copy", doc, "--by", "sec", "--copies", "1").failed()
    assert "cannot be copied" in line and why in line
    assert query(cli, "SELECT count(*) FROM requests") == [(0,)]
    cli.verify()


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (("copy", "D1", "--copies", "0"), "--copies: a number from 1 to 99"),
        (("copy", "D1", "--copies", "two"), "--copies 'two': expected a number"),
        (("copy", "D4", "--copies", "1"), "'D4' has 2 copies: name one by its tag or as D4/K"),
        (("copy", "D9", "--copies", "1"), "no document with tag or number 'D9'"),
        (("carry-out", "D1", "--from", "2026-11-26T09:00", "--until", "2026-11-26T10:00Z"),
         "--from '2026-11-26T09:00': give its zone"),
        (("carry-out", "D1", "--from", "soon", "--until", "2026-11-26T10:00Z"),
         "--from 'soon': not a time"),
        (("carry-out", "D1", "--from", "2026-11-26T10:00Z", "--until", "2026-11-26T09:00Z"),
         "the end must come after the start"),
        (("carry-out", "D1", "D1", "--from", "2026-11-26T09:00Z", "--until",
          "2026-11-26T10:00Z"), "'D1' is named twice"),
        (("carry-out", "D2", "--from", "2026-11-26T09:00Z", "--until", "2026-11-26T10:00Z"),
         "绝密 documents never leave the room"),
        (("hours", "room-101", "--from", "2026-11-26T09:00Z", "--until", "2026-11-26T10:00Z"),
         "names its room as SITE/ROOM"),
        (("hours", "hq/room-999", "--from", "2026-11-26T09:00Z", "--until",
          "2026-11-26T10:00Z"), "no room hq/room-999"),
        (("destroy", "D1", "--expires", "2020-01-01T00:00Z"), "the expiry must lie in the future"),
    ],
)  # fmt: skip
def test_bad_requests_are_one_line(cli: Ironroom, args: tuple[str, ...], why: str) -> None:
    assert why in cli("ledger", "request", *args, "--by", "sec").failed()
    assert query(cli, "SELECT count(*) FROM requests") == [(0,)]


def test_unknown_person_id_and_listing_filters(cli: Ironroom) -> None:
    line = cli("ledger", "request", "copy", "D1", "--by", "ghost", "--copies", "1").failed()
    assert "no person ghost" in line
    assert "expected a number" in cli("ledger", "approve", "x1", "--by", "lead").failed()
    assert "no request 42" in cli("ledger", "approve", "42", "--by", "lead").failed()
    assert "unknown state" in cli("ledger", "requests", "--state", "open").failed()
    assert "unknown kind" in cli("ledger", "requests", "--kind", "print").failed()
    a = cli.one("ledger", "request", "copy", "D4/2", "--by", "sec", "--copies", "1")
    assert a["documents"] == [{"number": "D4", "copy": "2/2", "tag": TAGS["D4b"]}]
    b = cli.one("ledger", "request", "destroy", "D1", "--by", "sec")
    cli.one("ledger", "refuse", str(b["id"]), "--by", "head", "--reason", "仍需保存")
    assert [r["id"] for r in cli("ledger", "requests").rows] == [a["id"], b["id"]]
    assert [r["id"] for r in cli("ledger", "requests", "--state", "pending").rows] == [a["id"]]
    assert [r["id"] for r in cli("ledger", "requests", "--state", "refused").rows] == [b["id"]]
    assert [r["id"] for r in cli("ledger", "requests", "--kind", "destroy").rows] == [b["id"]]
    assert cli("ledger", "requests", "--kind", "hours").rows == []


# -- carrying out, destruction -------------------------------------------------------------


def test_carry_out_refused_then_a_new_one_approved(cli: Ironroom) -> None:
    window = ("--from", "2026-11-26T09:00:00+08:00", "--until", "2026-11-26T12:00:00+08:00")
    req = cli.one("ledger", "request", "carry-out", "D1", "D4/1", "--by", "sec", *window)
    assert (req["from"], req["until"]) == ("2026-11-26T01:00:00.000Z", "2026-11-26T04:00:00.000Z")
    assert [d["tag"] for d in req["documents"]] == [TAGS["D1"], TAGS["D4a"]]
    refused = cli.one("ledger", "refuse", str(req["id"]), "--by", "lead", "--reason", "不必")
    assert (refused["state"], refused["decision_reason"]) == ("refused", "不必")
    assert "is refused, not pending" in cli("ledger", "approve", str(req["id"]), "--by",
                                            "lead").failed()  # fmt: skip
    again = cli.one("ledger", "request", "carry-out", "D1", "--by", "sec", *window)
    assert cli.one("ledger", "approve", str(again["id"]), "--by", "lead")["state"] == "approved"
    # the tracker's view: the approved pass, valid in its time box only
    store = open_store(cli.db)
    try:
        from tracker.service import facts

        with store.sessions() as s:
            inside = facts.carry_out_passes(s, parse_ts("2026-11-26T03:59:59.999Z"))
            assert [(p.person_id, len(p.documents)) for p in inside] == [("sec", 1)]
            assert facts.carry_out_passes(s, parse_ts("2026-11-26T04:00:00.000Z")) == ()
            assert facts.carry_out_passes(s, parse_ts("2026-11-26T00:59:59.999Z")) == ()
    finally:
        store.engine.dispose()
    cli.verify()


def test_destruction_list_decided_by_the_dept_head_and_marked_done(cli: Ironroom) -> None:
    req = cli.one("ledger", "request", "destroy", "D4/1", "D4/2", "--by", "sec")
    rid = str(req["id"])
    again = cli("ledger", "request", "destroy", TAGS["D4b"], "--by", "sec").failed()
    assert f"is on destruction request {rid} already" in again
    assert "role dept-head" in cli("ledger", "approve", rid, "--by", "lead").failed()
    assert cli.one("ledger", "approve", rid, "--by", "head")["state"] == "approved"

    # The service API the destruction at the desk builds on.
    store = open_store(cli.db)
    try:
        ledger = Ledger(store.sessions, rules_of(TrackerConfig()), actor="test", reason="t",
                        now=datetime.now(UTC))  # fmt: skip
        with store.sessions() as s:
            [(row, docs)] = requests.approved_destroy(s)
            assert row.id == int(rid) and [d.tag for d in docs] == [TAGS["D4a"], TAGS["D4b"]]
        with ledger.change() as w:
            requests.mark_done(w, requests.get(w.s, int(rid)), reason="销毁 carried out")
        with store.sessions() as s:
            assert requests.approved_destroy(s) == []
            assert requests.get(s, int(rid)).state == "done"
        with pytest.raises(LedgerError, match="is done, not approved"), ledger.change() as w:
            requests.mark_done(w, requests.get(w.s, int(rid)))
    finally:
        store.engine.dispose()
    assert actions(cli)[-1] == "request.done"
    cli.verify()


# -- expiry ---------------------------------------------------------------------------------


def test_pending_request_expires_on_the_tick(cli: Ironroom) -> None:
    soon = datetime.now(UTC) + timedelta(hours=1)
    req = cli.one("ledger", "request", "hours", "hq/room-101", "--by", "sec", "--from",
                  "2026-11-26T12:00Z", "--until", "2026-11-26T14:00Z",
                  "--expires", format_ts(soon))  # fmt: skip
    other = cli.one("ledger", "request", "copy", "D1", "--by", "sec", "--copies", "1")
    store = open_store(cli.db)
    try:
        rules = rules_of(TrackerConfig())
        with store.sessions.begin() as s:  # a tick just before: nothing changes
            assert requests.expire_pending(s, soon - timedelta(milliseconds=1), {}, rules) == []
        pending = cli("ledger", "requests", "--state", "pending").rows
        assert [r["id"] for r in pending] == [req["id"], other["id"]]
        with store.sessions.begin() as s:
            assert requests.expire_pending(s, soon, {}, rules) == []
    finally:
        store.engine.dispose()
    [expired] = cli("ledger", "requests", "--state", "expired").rows
    assert expired["id"] == req["id"]
    assert [r["id"] for r in cli("ledger", "requests", "--state", "pending").rows] == [other["id"]]
    line = cli("ledger", "approve", str(req["id"]), "--by", "lead").failed()
    assert "is expired, not pending" in line
    [(actor, action)] = query(
        cli, "SELECT actor, action FROM audit WHERE action = 'request.expire'"
    )
    assert actor == "tracker"
    cli.verify()


def test_deciding_after_the_expiry_is_refused_and_the_request_expires(cli: Ironroom) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=4)  # the command starts in time
    req = cli.one("ledger", "request", "copy", "D1", "--by", "sec", "--copies", "1",
                  "--expires", format_ts(expires))  # fmt: skip
    wait_until(lambda: datetime.now(UTC) > expires, 10, "the expiry to pass")
    line = cli("ledger", "approve", str(req["id"]), "--by", "lead").failed()
    assert "expired at" in line
    assert cli.one("ledger", "requests")["state"] == "expired"
    assert "is expired, not pending" in cli("ledger", "refuse", str(req["id"]), "--by",
                                            "lead").failed()  # fmt: skip
    cli.verify()


# -- extended hours ---------------------------------------------------------------------------

#: Thursday 26 November 2026, 22:00 in Beijing: outside the 08:30-17:30 hours
NIGHT = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)


def _badge_at_night(cli: Ironroom, seq: int) -> list[tuple[str, str]]:
    """A badge at cabinet c1 at 22:00 through the tracker's ingest; the commands and
    incidents it made."""
    store = open_store(cli.db)
    hours = parse_weekly({d: ["08:30-17:30"] for d in ("mon", "tue", "wed", "thu", "fri")}, "h")
    cfg = replace(TrackerConfig(), calendar=Calendar(timezone="Asia/Shanghai", weekly=hours))

    class Clock:
        def now(self) -> datetime:
            return NIGHT

        def monotonic(self) -> float:
            return 0.0

    class Pub:
        def publish(self, topic: str, payload: bytes, *, retain: bool) -> bool:
            return True

        def ack(self, messages: Any) -> None:
            pass

    before = query(cli, "SELECT count(*) FROM commands")[0][0]
    p = Processor(store.sessions, rules_of(cfg), clock=Clock(), publisher=Pub())
    p.load()
    try:
        topic, payload = make_event(
            KEY, site="hq", room="room-101", controller=CONTROLLER, boot=1, seq=seq, ts=NIGHT,
            type="badge.presented",
            data={"reader": "cabinet:c1", "uid": BADGE, "auth": "verified"},
        )  # fmt: skip
        p.process([Message(topic, payload, NIGHT, 0.0)])
    finally:
        store.engine.dispose()
    cmds = query(cli, "SELECT type, data FROM commands ORDER BY rowid")[before:]
    return [(t, d) for t, d in cmds if t == "cabinet.unlock"]


def test_extended_hours_grant_unlocks_and_reaches_the_policy(cli: Ironroom) -> None:
    assert _badge_at_night(cli, 1) == []  # no grant: outside working hours
    refused = query(cli, "SELECT detail FROM incidents WHERE kind = 'badge_refused'")
    assert len(refused) == 1 and "outside working hours" in refused[0][0]

    req = cli.one("ledger", "request", "hours", "hq/room-101", "--by", "sec",
                  "--from", "2026-11-26T21:00+08:00",
                  "--until", "2026-11-26T23:00+08:00")  # fmt: skip
    assert req["room"] == "hq/room-101" and req["state"] == "pending"
    assert _badge_at_night(cli, 2) == []  # pending is not granted
    policies = query(cli, "SELECT data FROM commands WHERE type = 'policy.update'")
    assert all("extended" not in json.loads(d) for (d,) in policies)

    cli.one("ledger", "approve", str(req["id"]), "--by", "lead")
    # Grants reach the controller's policy, ended or not (the room's clock decides).
    start = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    ahead = {"start": format_ts(start), "end": format_ts(start + timedelta(hours=2))}
    later = cli.one("ledger", "request", "hours", "hq/room-101", "--by", "sec",
                    "--from", ahead["start"], "--until", ahead["end"])  # fmt: skip
    cli.one("ledger", "approve", str(later["id"]), "--by", "lead")
    [(data,)] = query(
        cli, "SELECT data FROM commands WHERE type = 'policy.update' ORDER BY rowid DESC LIMIT 1"
    )
    policy = json.loads(data)
    night = {"start": "2026-11-26T13:00:00.000Z", "end": "2026-11-26T15:00:00.000Z"}
    assert policy["extended"] == [night, ahead]
    # the controller accepts it: its calendar counts the grant as working time
    from firmware_bridge.controller import parse_grants  # the controller's own parser
    from protocol.hours import is_working_time

    grants = parse_grants(policy["extended"], "policy.extended")
    cal = Calendar(timezone="Asia/Shanghai", weekly={}, grants=grants)
    assert is_working_time(cal, start + timedelta(hours=1))
    assert not is_working_time(cal, start + timedelta(hours=2))

    [(kind, data)] = _badge_at_night(cli, 3)
    assert json.loads(data)["cabinet"] == "c1"
    cli.verify()
