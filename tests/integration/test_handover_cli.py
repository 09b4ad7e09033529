"""Handover (交接) as an operator runs it: ``ironroom ledger handover FROM --to TO`` and
``ironroom ledger handovers [status|confirm]`` as separate processes on a SQLite file of
the test's own; the hand-over at the desk from signed controller events (both badges,
the folders read there) fed to the tracker's own ingest in this process."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from protocol.envelope import make_event
from protocol.hours import Calendar, parse_weekly
from tests.integration.test_ledger_cli import Result, ironroom, ok, qok, quick, url_of
from tracker.bootstrap import open_store, rules_of
from tracker.config import TrackerConfig
from tracker.ingest.pipeline import Message, Processor
from tracker.store import models as m

pytestmark = [pytest.mark.timeout(180)]

KEY = bytes.fromhex("6b" * 32)
CONTROLLER = "room-101-ctl"
T0 = datetime.now(UTC).replace(microsecond=0)
SEC1, SEC2, P3, P5, P6 = "04A1B2C301", "04A1B2C302", "04A1B2C303", "04A1B2C305", "04A1B2C306"
EPC = {n: f"30751FEB705C5904E3D50D{n:02d}" for n in range(1, 10)}


class _Clock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> datetime:
        return self.t

    def monotonic(self) -> float:
        return 0.0


class _Pub:
    def publish(self, topic: str, payload: bytes, *, retain: bool) -> bool:
        return True

    def ack(self, messages: Any) -> None:
        pass


@dataclass
class Room:
    """hq/room-101's controller: signed events, seq carried on after those applied,
    each applied by a :class:`Processor` on the test's database at ``T0 + seconds``."""

    db: str
    seq: int = 0
    sent: list[str] = field(default_factory=list)

    def feed(self, *events: tuple[float, str, dict[str, Any]]) -> None:
        store = open_store(self.db)
        always = parse_weekly(
            {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
            "hours",
        )
        cfg = replace(TrackerConfig(), calendar=Calendar(timezone="UTC", weekly=always))
        clock = _Clock()
        p = Processor(store.sessions, rules_of(cfg), clock=clock, publisher=_Pub())
        p.load()
        with store.sessions() as s:  # carry on after the events already applied
            self.seq = max(self.seq, s.scalar(select(func.max(m.Event.seq))) or 0)
        try:
            for seconds, type_, data in events:
                self.seq += 1
                clock.t = T0 + timedelta(seconds=seconds)
                topic, payload = make_event(
                    KEY,
                    site="hq",
                    room="room-101",
                    controller=CONTROLLER,
                    boot=1,
                    seq=self.seq,
                    ts=clock.t,
                    type=type_,
                    data=data,
                )
                p.process([Message(topic, payload, clock.t, 0.0)])
                self.sent.append(type_)
        finally:
            store.engine.dispose()

    def badge(self, at: float, uid: str, reader: str = "desk") -> tuple[float, str, dict[str, Any]]:
        return (at, "badge.presented", {"reader": reader, "uid": uid, "auth": "verified"})

    def take(self, at: float, uid: str, *tags: str) -> list[tuple[float, str, dict[str, Any]]]:
        out = [self.badge(at, uid, "cabinet:c1")]
        out += [(at + 5, "tag.departed", {"reader": "cabinet:c1", "epc": t}) for t in tags]
        return out

    @staticmethod
    def seen(at: float, tag: str) -> tuple[float, str, dict[str, Any]]:
        return (at, "tag.seen", {"reader": "desk", "epc": tag, "rssi": -40})

    @staticmethod
    def back(at: float, tag: str) -> tuple[float, str, dict[str, Any]]:
        return (at, "tag.arrived", {"reader": "cabinet:c1", "epc": tag})


def make_site(d: Path) -> str:
    """A room, one cabinet, two secretaries and three borrowers with badges."""
    db = url_of(d / "ledger.db")
    (d / "key").write_text(KEY.hex() + "\n")
    assert quick("ledger", "init", db=db).code == 0
    qok("ledger", "room", "add", "hq", "room-101", "--controller", CONTROLLER, "--key-file",
        d / "key", db=db)  # fmt: skip
    qok("ledger", "cabinet", "add", "hq", "room-101", "c1", db=db)
    people = [
        ("sec1", "张秘书", "机密", ["--role", "secretary"], SEC1),
        ("sec2", "李秘书", "机密", ["--role", "secretary"], SEC2),
        ("p3", "王三", "机密", ["--role", "borrower"], P3),
        ("p5", "赵五", "机密", ["--role", "borrower"], P5),
        ("p6", "钱六", "内部", ["--role", "borrower"], P6),
    ]
    for pid, name, level, roles, uid in people:
        qok("ledger", "person", "add", pid, "--name", name, "--clearance", level, *roles, db=db)
        qok("ledger", "badge", "add", uid, "--person", pid, db=db)
    return db


def add_doc(db: str, n: int, level: str = "机密", *extra: str) -> None:
    qok("ledger", "document", "add", "--number", f"F-{n}", "--title", f"文件{n}",
        "--classification", level, "--tag", EPC[n], "--cabinet", "hq/room-101/c1", *extra,
        db=db)  # fmt: skip


@pytest.fixture
def db(tmp_path: Path) -> Iterator[str]:
    db = make_site(tmp_path)
    for n in (1, 2, 3):
        add_doc(db, n)
    yield db


def verified(db: str) -> None:
    r = ironroom("audit", "verify", db=db)
    assert r.code == 0, r.err
    assert r.out.startswith("audit chain ok")


def loans_of(db: str) -> list[tuple[str, str, str | None]]:
    return [(x["document"], x["person"], x["closed"]) for x in qok("ledger", "loans", db=db)]


def items(rows: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    return {r["document"]: (r["reason"], r["state"]) for r in rows if "item" in r}


# -- a borrower changing post ----------------------------------------------------------


def test_loans_handed_over_at_the_desk_with_both_badges(db: str) -> None:
    room = Room(db)
    room.feed(*room.take(0, P3, EPC[1], EPC[2]))
    rows = ok("ledger", "handover", "p3", "--to", "p5", db=db)
    head, *its = rows
    assert (head["handover"], head["from"], head["to"], head["state"]) == (1, "p3", "p5", "open")
    assert (head["items"], head["pending"]) == (2, 2)
    assert items(rows) == {"F-1": ("loan", "pending"), "F-2": ("loan", "pending")}
    assert all(r["handover"] == 1 for r in its)

    # F-1 laid on the desk, then both badges there: F-1 goes over, F-2 (not read) stays
    room.feed(room.seen(600, EPC[1]), room.badge(610, P3), room.badge(630, P5))
    st = ok("ledger", "handovers", "status", "1", db=db)
    assert items(st) == {"F-1": ("loan", "handed_over"), "F-2": ("loan", "pending")}
    f1 = next(r for r in st if r.get("document") == "F-1")
    assert (f1["from_badge"], f1["to_badge"], f1["holder"]) == (P3, P5, "p5")
    f1 = [x for x in qok("ledger", "loans", db=db) if x["document"] == "F-1"]
    assert [(x["person"], x["closed"] is None, x["kind"]) for x in f1] == [
        ("p3", False, "badge"),
        ("p5", True, "badge"),
    ]
    assert f1[0]["due"] == f1[1]["due"]  # the successor's loan keeps the due date
    assert qok("ledger", "show", EPC[1], db=db)[0]["holder"] == "p5"
    # the one sanctioned transfer: no lateral pass recorded
    r = ironroom("audit", "log", "--entity", "incident", db=db)
    assert "lateral_pass" not in r.out

    # F-2 comes back into its cabinet: returned, and the hand-over is done
    room.feed(room.back(900, EPC[2]))
    st = ok("ledger", "handovers", "status", "1", db=db)
    assert items(st) == {"F-1": ("loan", "handed_over"), "F-2": ("loan", "returned")}
    assert (st[0]["state"], st[0]["pending"]) == ("done", 0)
    assert [h["state"] for h in ok("ledger", "handovers", db=db)] == ["done"]
    verified(db)


def test_badges_outside_the_window_hand_over_nothing(db: str) -> None:
    room = Room(db)
    room.feed(*room.take(0, P3, EPC[1]))
    ok("ledger", "handover", "p3", "--to", "p5", db=db)
    # read at the desk, predecessor's badge, successor's badge three minutes later
    room.feed(room.seen(100, EPC[1]), room.badge(110, P3), room.badge(300, P5))
    assert items(qok("ledger", "handovers", "status", "1", db=db)) == {"F-1": ("loan", "pending")}
    # someone else's badge makes no pairing either
    room.feed(room.seen(600, EPC[1]), room.badge(610, P3), room.badge(620, SEC1))
    assert items(qok("ledger", "handovers", "status", "1", db=db)) == {"F-1": ("loan", "pending")}
    # the folder read in the window, both badges: over
    room.feed(room.badge(630, P5))
    assert items(qok("ledger", "handovers", "status", "1", db=db)) == {
        "F-1": ("loan", "handed_over")
    }
    verified(db)


def test_a_folder_read_while_both_badges_are_fresh(db: str) -> None:
    """Badges first, the folder read at the desk within the window: handed over too (the
    core rules, which know nothing of hand-overs, record the read during the successor's
    desk session as a lateral pass)."""
    room = Room(db)
    room.feed(*room.take(0, P3, EPC[1]))
    ok("ledger", "handover", "p3", "--to", "p5", db=db)
    room.feed(room.badge(600, P3), room.badge(610, P5))
    assert items(qok("ledger", "handovers", "status", "1", db=db)) == {"F-1": ("loan", "pending")}
    room.feed(room.seen(700, EPC[1]))
    st = qok("ledger", "handovers", "status", "1", db=db)
    assert items(st) == {"F-1": ("loan", "handed_over")}
    assert st[0]["state"] == "done"
    assert qok("ledger", "show", EPC[1], db=db)[0]["holder"] == "p5"
    verified(db)


def test_confirm_from_the_command_line(db: str) -> None:
    room = Room(db)
    room.feed(*room.take(0, P3, EPC[1], EPC[2]))
    ok("ledger", "handover", "p3", "--to", "p5", db=db)
    r = ironroom("ledger", "handovers", "confirm", "1", "--from-badge", SEC1.lower(),
                 "--to-badge", P5, db=db)  # fmt: skip
    assert r.failed() == f"ironroom: --from-badge {SEC1} is sec1's badge, not p3's"
    r = ironroom("ledger", "handovers", "confirm", "1", "--from-badge", P3, "--to-badge",
                 "04FFFFFF", db=db)  # fmt: skip
    assert r.failed() == "ironroom: --to-badge 04FFFFFF: no active badge"
    r = ironroom("ledger", "handovers", "confirm", "1", "--from-badge", P3, "--to-badge", P5,
                 "--document", "F-9", db=db)  # fmt: skip
    assert r.failed() == "ironroom: no pending item of hand-over 1 for 'F-9'"
    rows = ok("ledger", "handovers", "confirm", "1", "--from-badge", P3, "--to-badge", P5,
              "--document", EPC[2], db=db)  # fmt: skip
    assert items(rows) == {"F-1": ("loan", "pending"), "F-2": ("loan", "handed_over")}
    f2 = next(r for r in rows if r.get("document") == "F-2")
    assert (f2["via"], f2["from_badge"], f2["to_badge"]) == ("cli", P3, P5)
    rows = ok("ledger", "handovers", "confirm", "1", "--from-badge", P3, "--to-badge", P5,
              db=db)  # fmt: skip
    assert rows[0]["state"] == "done"
    assert sorted((d, p) for d, p, closed in loans_of(db) if closed is None) == [
        ("F-1", "p5"),
        ("F-2", "p5"),
    ]
    r = ironroom("ledger", "handovers", "confirm", "1", "--from-badge", P3, "--to-badge", P5,
                 db=db)  # fmt: skip
    assert r.failed() == "ironroom: hand-over 1 is done already"
    verified(db)


# -- a secretary changing post ---------------------------------------------------------


def test_secretary_hands_over_the_cabinets(db: str) -> None:
    room = Room(db)
    room.feed(*room.take(0, P3, EPC[3]))  # F-3 is on loan to p3: not sec1's to hand over
    rows = ok("ledger", "handover", "sec1", "--to", "sec2", db=db)
    assert items(rows) == {"F-1": ("custody", "pending"), "F-2": ("custody", "pending")}
    # F-2 leaves with nobody's badge: missing, not present at any desk
    room.feed((1000, "tag.departed", {"reader": "cabinet:c1", "epc": EPC[2]}))
    room.feed(room.badge(1200, SEC2), room.badge(1220, SEC1))
    st = ok("ledger", "handovers", "status", "1", db=db)
    assert items(st) == {"F-1": ("custody", "handed_over"), "F-2": ("custody", "pending")}
    assert next(r for r in st if r.get("document") == "F-2")["status"] == "missing"
    # the missing one is confirmed by both at the command line
    rows = ok("ledger", "handovers", "confirm", "1", "--from-badge", SEC1, "--to-badge", SEC2,
              db=db)  # fmt: skip
    assert items(rows) == {"F-1": ("custody", "handed_over"), "F-2": ("custody", "handed_over")}
    assert rows[0]["state"] == "done"
    # a custody hand-over moves no loan
    assert [(d, p) for d, p, closed in loans_of(db) if closed is None] == [("F-3", "p3")]
    verified(db)


def test_handover_refusals(db: str) -> None:
    def fails(*args: str) -> str:
        r: Result = ironroom("ledger", *args, db=db)
        return r.failed().removeprefix("ironroom: ")

    assert fails("handover", "sec1", "--to", "p3") == (
        "sec1 keeps the room's documents (F-1): p3 needs the secretary role to take them over"
    )
    assert fails("handover", "nobody", "--to", "p3") == "no person nobody"
    assert fails("handover", "p3", "--to", "p3") == "p3 cannot hand over to themselves"
    assert fails("handovers", "status", "7") == "no hand-over 7"
    room = Room(db)
    room.feed(*room.take(0, P3, EPC[1]))
    assert fails("handover", "p3", "--to", "p6") == (
        "F-1 cannot go to p6: p6's clearance 内部 is below 机密"
    )
    ok("ledger", "handover", "p3", "--to", "p5", db=db)
    assert fails("handover", "p3", "--to", "p5") == "p3 has an open hand-over already (1)"
    r = ironroom("ledger", "handover", "p3", db=db)
    assert r.code == 2 and "--to" in r.err


def test_nothing_held_is_a_finished_record(db: str) -> None:
    rows = ok("ledger", "handover", "p5", "--to", "p3", db=db)
    assert rows == [
        {
            "handover": 1,
            "from": "p5",
            "to": "p3",
            "state": "done",
            "created": rows[0]["created"],
            "closed": rows[0]["created"],
            "items": 0,
            "pending": 0,
        }
    ]
    verified(db)
