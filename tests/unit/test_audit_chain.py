"""The audit chain: changes made through the tracker's own ledger code verify; any entry
altered, removed, inserted or reordered with raw SQL, and any ledger row edited,
deleted or inserted behind the tracker's back, makes ``ironroom audit verify`` exit 1
and name the first bad entry (or the row) on stderr."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from ironroom.cli import main
from tracker.bootstrap import rules_of
from tracker.config import TrackerConfig
from tracker.domain import model as dm
from tracker.domain.levels import Level
from tracker.service.ledger import DocumentIn, Ledger
from tracker.store import models as m
from tracker.store.audit import GENESIS, entry_hash, head, verify
from tracker.store.db import make_engine, migrate, sessions

EVENT_KEY = bytes.fromhex("a1" * 32)
COMMAND_KEY = bytes.fromhex("b2" * 32)
NEW_KEY = bytes.fromhex("c3" * 32)
NOW = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
FIELDS = ("ts", "actor", "action", "entity", "entity_key", "before", "after", "reason")


@dataclass
class Chain:
    path: Path
    url: str
    engine: Engine

    def sql(self, *statements: str, params: tuple[object, ...] = ()) -> None:
        with sqlite3.connect(self.path) as c:
            for st in statements:
                c.execute(st, params) if params else c.execute(st)

    def one(self, query: str, params: tuple[object, ...] = ()) -> tuple[object, ...]:
        with sqlite3.connect(self.path) as c:
            row = c.execute(query, params).fetchone()
        assert row is not None, query
        return tuple(row)

    def entry_of(self, action: str) -> int:
        """The id of the last entry with this action."""
        return int(self.one("SELECT max(id) FROM audit WHERE action = ?", (action,))[0])

    @property
    def count(self) -> int:
        return int(self.one("SELECT count(*) FROM audit")[0])


def ledger(chain: Chain, when: datetime = NOW) -> Ledger:
    return Ledger(
        sessions(chain.engine),
        rules_of(TrackerConfig()),
        actor="cli:test",
        reason="ironroom ledger (test)",
        now=when,
    )


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    """A ledger with a history: every kind of audited row, some changed after they were
    made (a room re-enrolled, a document lent, an alarm raised and reset)."""
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    migrate(engine)
    c = Chain(path, url, engine)
    lg = ledger(c)
    lg.room_add("hq", "room-101", "room-101-ctl", EVENT_KEY, COMMAND_KEY)
    lg.room_add("hq", "room-102", "room-102-ctl", EVENT_KEY, None)
    lg.cabinet_add("hq", "room-101", "c1", False)
    lg.cabinet_add("hq", "room-101", "g1", True)
    lg.person_add("p1", "张秘书", Level.SECRET, ["secretary"], "办公室")
    lg.person_add("p2", "李四", Level.INTERNAL, [], None)
    lg.badge_add("04A1B2C3", "p1")
    for n, tag in (("F-1", "AAAA0001"), ("F-2", "AAAA0002")):
        lg.document_add(
            DocumentIn.build(
                number=n,
                title=f"{n} 标题",
                classification="机密",
                tag=tag,
                cabinet="hq/room-101/c1",
                scope=["person:p1"],
            )
        )
    lg.room_reenrol("hq", "room-102", NEW_KEY)
    with lg.change() as w:  # what the ingest does for a badge loan and an alarm
        room = w.s.scalars(select(m.Room).where(m.Room.room == "room-101")).one()
        doc = w.s.scalars(select(m.Document).where(m.Document.number == "F-1")).one()
        w.execute(
            room,
            [
                dm.OpenLoan(doc.id, "p1", NOW, NOW + timedelta(days=7), "badge"),
                dm.Move(doc.id, "on_loan", None, "p1"),
                dm.RaiseAlarm("unauthorized_removal", "critical", document_id=doc.id),
                dm.Record("unknown_tag", epc="FFFF0001"),
            ],
            cabinet_ids={},
            event_id="room-101-ctl:1:2",
            when=NOW,
        )
        w.raise_alarm(
            room,
            "tamper",
            "critical",
            raised=NOW,
            point="cabinet:c1",
            source="controller",
            alarm_id="room-101-ctl:1:3",
        )
    ledger(c, NOW + timedelta(minutes=5)).alarm_reset("room-101-ctl:1:3", "p1", "已检查")
    try:
        yield c
    finally:
        engine.dispose()


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def broken(chain: Chain, capsys: pytest.CaptureFixture[str]) -> str:
    """``audit verify`` exits 1 with one line on stderr; returns it."""
    code, out, err = cli(capsys, "audit", "verify", "--db", chain.url)
    assert code == 1, (out, err)
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("audit chain BROKEN at "), err
    return err.strip()


def check_entry(chain: Chain, capsys: pytest.CaptureFixture[str], entry: int) -> str:
    err = broken(chain, capsys)
    assert err.startswith(f"audit chain BROKEN at entry {entry}: "), err
    with sessions(chain.engine)() as s:
        v = verify(s)
    assert not v.ok and v.bad_entry == entry, v
    return err


# -- an untouched chain -----------------------------------------------------------------


def test_intact_chain_verifies(chain: Chain, capsys: pytest.CaptureFixture[str]) -> None:
    n = chain.count
    (last,) = chain.one("SELECT hash FROM audit WHERE id = ?", (n,))
    code, out, err = cli(capsys, "audit", "verify", "--db", chain.url)
    assert (code, err) == (0, "")
    assert out == f"audit chain ok: {n} entries, head {last}\n"
    code, out, err = cli(capsys, "audit", "head", "--db", chain.url)
    assert (code, out, err) == (0, f"{n} {last}\n", "")
    with sessions(chain.engine)() as s:
        assert head(s) == (n, last)
        v = verify(s)
    assert (v.ok, v.count, v.head, v.bad_entry) == (True, n, last, None)


def test_every_change_is_one_linked_entry(chain: Chain) -> None:
    with sqlite3.connect(chain.path) as c:
        rows = c.execute(
            "SELECT id, action, entity, prev, hash, before, after, reason FROM audit ORDER BY id"
        ).fetchall()
    actions = [r[1] for r in rows]
    assert actions == [
        "room.add",
        "room.add",
        "cabinet.add",
        "cabinet.add",
        "person.add",
        "person.add",
        "badge.add",
        "document.register",
        "document.register",
        "room.reenrol",
        "loan.open",
        "document.move",
        "alarm.raise",
        "incident.unknown_tag",
        "alarm.raise",
        "alarm.reset",
    ]
    prev = GENESIS
    for i, (eid, _a, _e, p, h, *_) in enumerate(rows, 1):
        assert eid == i and p == prev
        prev = h
    move = rows[11]
    assert json.loads(move[5])["status"] == "in_cabinet"
    assert json.loads(move[6])["status"] == "on_loan"
    assert rows[15][7] == "已检查"
    assert rows[0][7] == "ironroom ledger (test)"


def test_empty_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    assert cli(capsys, "ledger", "init", "--db", url)[0] == 0
    code, out, _ = cli(capsys, "audit", "verify", "--db", url)
    assert (code, out) == (0, f"audit chain ok: 0 entries, head {GENESIS}\n")
    assert cli(capsys, "audit", "head", "--db", url)[:2] == (0, f"0 {GENESIS}\n")


def test_head_moves_with_each_change(chain: Chain, capsys: pytest.CaptureFixture[str]) -> None:
    _, before, _ = cli(capsys, "audit", "head", "--db", chain.url)
    ledger(chain).person_add("p3", "王五", Level.PUBLIC, [], None)
    _, after, _ = cli(capsys, "audit", "head", "--db", chain.url)
    n, h = after.split()
    assert int(n) == int(before.split()[0]) + 1 and h != before.split()[1]
    assert cli(capsys, "audit", "verify", "--db", chain.url)[0] == 0


def test_keys_never_enter_the_chain(chain: Chain) -> None:
    with sqlite3.connect(chain.path) as c:
        text = "\n".join(
            str(v) for row in c.execute("SELECT * FROM audit").fetchall() for v in row
        ).lower()
        rooms = c.execute("SELECT event_key, command_key FROM rooms").fetchall()
    assert ("b2" * 32, "b2" * 32) not in rooms  # the rows do hold the keys...
    for key in (EVENT_KEY, COMMAND_KEY, NEW_KEY):
        assert key.hex() not in text  # ...the chain never does
        assert key.hex()[:16] not in text
    with sqlite3.connect(chain.path) as c:
        snaps = [
            json.loads(x)
            for row in c.execute("SELECT before, after FROM audit WHERE entity = 'room'")
            for x in row
            if x is not None
        ]
    assert len(snaps) == 4
    for snap in snaps:
        assert snap["event_key"].startswith("sha256:") and len(snap["event_key"]) == 23
        assert snap["command_key"].startswith("sha256:")
    # a new key is a new fingerprint: re-enrolment shows in the chain without the key
    reenrol = [s for s in snaps if s["room"] == "room-102"]
    assert reenrol[-2]["event_key"] != reenrol[-1]["event_key"]


# -- the chain tampered with ------------------------------------------------------------


@pytest.mark.parametrize("column", [*FIELDS, "prev", "hash"])
def test_altered_entry(chain: Chain, capsys: pytest.CaptureFixture[str], column: str) -> None:
    k = chain.entry_of("document.move")
    (value,) = chain.one(f"SELECT {column} FROM audit WHERE id = ?", (k,))
    new = (str(value)[:-1] + ("0" if str(value)[-1:] != "0" else "1")) if value else "x"
    chain.sql(f"UPDATE audit SET {column} = ? WHERE id = ?", params=(new, k))
    err = check_entry(chain, capsys, k)
    assert ("does not follow" if column == "prev" else "altered") in err


def test_altered_entry_after_field(chain: Chain, capsys: pytest.CaptureFixture[str]) -> None:
    """A forger who edits an entry's ``after`` and the row to match still breaks the
    chain at that entry."""
    k = chain.entry_of("document.move")
    (after,) = chain.one("SELECT after FROM audit WHERE id = ?", (k,))
    snap = json.loads(str(after))
    snap["status"] = "in_cabinet"
    with sqlite3.connect(chain.path) as c:
        c.execute(
            "UPDATE audit SET after = ? WHERE id = ?",
            (json.dumps(snap, sort_keys=True, separators=(",", ":"), ensure_ascii=False), k),
        )
        c.execute("UPDATE documents SET status = 'in_cabinet' WHERE number = 'F-1'")
    check_entry(chain, capsys, k)


def test_entry_with_a_value_no_entry_holds(
    chain: Chain, capsys: pytest.CaptureFixture[str]
) -> None:
    """A blob written into an entry is reported, not a traceback."""
    chain.sql("UPDATE audit SET reason = X'00ff' WHERE id = 3")
    check_entry(chain, capsys, 3)


@pytest.mark.parametrize("which", ["first", "middle", "last-but-one"])
def test_deleted_entry(chain: Chain, capsys: pytest.CaptureFixture[str], which: str) -> None:
    k = {"first": 1, "middle": 8, "last-but-one": chain.count - 1}[which]
    chain.sql(f"DELETE FROM audit WHERE id = {k}")
    assert "is missing" in check_entry(chain, capsys, k)


def test_deleted_last_entry(chain: Chain, capsys: pytest.CaptureFixture[str]) -> None:
    """No gap to see: the row the last entry wrote no longer matches its predecessor."""
    n = chain.count
    chain.sql(f"DELETE FROM audit WHERE id = {n}")
    err = broken(chain, capsys)
    assert "alarm" in err and "no longer matches" in err


def test_deleted_run_renumbered(chain: Chain, capsys: pytest.CaptureFixture[str]) -> None:
    """Entry 5 removed and the rest moved down to hide the gap."""
    chain.sql("DELETE FROM audit WHERE id = 5", "UPDATE audit SET id = id - 1 WHERE id > 5")
    check_entry(chain, capsys, 5)


def _forged(
    chain: Chain, eid: int, prev: str, *, entity: str = "person", key: str = "p9"
) -> tuple[object, ...]:
    fields = {
        "id": eid,
        "ts": "2026-11-26T01:00:00.000Z",
        "actor": "cli:test",
        "action": f"{entity}.add",
        "entity": entity,
        "entity_key": key,
        "before": None,
        "after": json.dumps({"id": key}),
        "reason": "forged",
    }
    h = entry_hash(prev, fields)
    return (eid, *[fields[f] for f in FIELDS], prev, h)


INSERT = (
    "INSERT INTO audit (id, "
    + ", ".join(FIELDS)
    + ", prev, hash) VALUES "
    + ("(" + ", ".join("?" * (len(FIELDS) + 3)) + ")")
)


def test_inserted_entry_bad_hash(chain: Chain, capsys: pytest.CaptureFixture[str]) -> None:
    n = chain.count
    (last,) = chain.one("SELECT hash FROM audit WHERE id = ?", (n,))
    row = list(_forged(chain, n + 1, str(last)))
    row[-1] = "f" * 64
    chain.sql(INSERT, params=tuple(row))
    assert "altered" in check_entry(chain, capsys, n + 1)


def test_appended_entry_well_hashed(chain: Chain, capsys: pytest.CaptureFixture[str]) -> None:
    """An entry appended with the right hash for a row that is not there."""
    n = chain.count
    (last,) = chain.one("SELECT hash FROM audit WHERE id = ?", (n,))
    chain.sql(INSERT, params=_forged(chain, n + 1, str(last)))
    err = check_entry(chain, capsys, n + 1)
    assert "person p9" in err


def test_inserted_in_the_middle(chain: Chain, capsys: pytest.CaptureFixture[str]) -> None:
    """Entries from 6 on moved up one, a well-hashed forgery put at 6: entry 7 (the old
    6) no longer follows."""
    (prev,) = chain.one("SELECT hash FROM audit WHERE id = 5")
    chain.sql(
        "UPDATE audit SET id = id + 1000 WHERE id >= 6",
        "UPDATE audit SET id = id - 999 WHERE id >= 1000",
    )
    chain.sql(INSERT, params=_forged(chain, 6, str(prev)))
    assert "does not follow" in check_entry(chain, capsys, 7)


@pytest.mark.parametrize(("a", "b"), [(3, 4), (1, 16), (9, 12)])
def test_swapped_entries(chain: Chain, capsys: pytest.CaptureFixture[str], a: int, b: int) -> None:
    """Two entries' contents exchanged (ids kept): reordered."""
    cols = [*FIELDS, "prev", "hash"]
    ra = chain.one(f"SELECT {', '.join(cols)} FROM audit WHERE id = ?", (a,))
    rb = chain.one(f"SELECT {', '.join(cols)} FROM audit WHERE id = ?", (b,))
    sets = ", ".join(f"{c} = ?" for c in cols)
    with sqlite3.connect(chain.path) as c:
        c.execute(f"UPDATE audit SET {sets} WHERE id = ?", (*rb, a))
        c.execute(f"UPDATE audit SET {sets} WHERE id = ?", (*ra, b))
    check_entry(chain, capsys, a)


def test_reordered_by_id(chain: Chain, capsys: pytest.CaptureFixture[str]) -> None:
    """Two whole entries exchanged by their ids."""
    chain.sql(
        "UPDATE audit SET id = -1 WHERE id = 10",
        "UPDATE audit SET id = 10 WHERE id = 11",
        "UPDATE audit SET id = 11 WHERE id = -1",
    )
    check_entry(chain, capsys, 10)


# -- the ledger tampered with -----------------------------------------------------------

ROW_EDITS: dict[str, tuple[str, str]] = {
    # name: (SQL behind the tracker's back, the row: "entity key")
    "document back in its cabinet": (
        "UPDATE documents SET status = 'in_cabinet', holder_id = NULL WHERE number = 'F-1'",
        "document 1",
    ),
    "document reclassified": (
        "UPDATE documents SET classification = 1 WHERE number = 'F-2'",
        "document 2",
    ),
    "document scope widened": (
        "UPDATE documents SET scope = '[]' WHERE number = 'F-2'",
        "document 2",
    ),
    "clearance raised": ("UPDATE people SET clearance = 4 WHERE id = 'p2'", "person p2"),
    "clearance as text": ("UPDATE people SET clearance = 'top' WHERE id = 'p1'", "person p1"),
    "badge moved to another person": (
        "UPDATE badges SET person_id = 'p2' WHERE uid = '04A1B2C3'",
        "badge 04A1B2C3",
    ),
    "cabinet made general": ("UPDATE cabinets SET general = 1 WHERE name = 'c1'", "cabinet 1"),
    "controller key replaced": (
        f"UPDATE rooms SET event_key = '{'dd' * 32}' WHERE room = 'room-101'",
        "room 1",
    ),
    "re-enrolled key put back": (
        f"UPDATE rooms SET event_key = '{'a1' * 32}' WHERE room = 'room-102'",
        "room 2",
    ),
    "loan closed": ("UPDATE loans SET closed = '2026-11-26T02:00:00.000Z'", "loan 1"),
    "alarm reset by hand": (
        "UPDATE alarms SET state = 'reset' WHERE cause = 'unauthorized_removal'",
        "alarm 1",
    ),
    "incident reworded": ("UPDATE incidents SET epc = 'FFFF0002'", "incident 1"),
    "row names another entry": ("UPDATE people SET audit_id = 1 WHERE id = 'p2'", "person p2"),
    "a float where an integer was": (
        "UPDATE documents SET period_years = 20.5 WHERE number = 'F-2'",
        "document 2",
    ),
    "a blob where text was": (
        "UPDATE documents SET title = X'00ff' WHERE number = 'F-2'",
        "document 2",
    ),
}


@pytest.mark.parametrize("name", list(ROW_EDITS))
def test_row_edited_behind_the_trackers_back(
    chain: Chain, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    sql, row = ROW_EDITS[name]
    entity, key = row.split()
    (last,) = chain.one(
        "SELECT max(id) FROM audit WHERE entity = ? AND entity_key = ?", (entity, key)
    )
    chain.sql(sql)
    err = check_entry(chain, capsys, int(str(last)))
    if name == "row names another entry":
        assert err.endswith(f"person p2 names audit entry 1 but entry {last} wrote it last")
    else:
        assert err.endswith(f"{row} no longer matches audit entry {last}"), err


@pytest.mark.parametrize(
    ("sql", "what"),
    [
        ("DELETE FROM badges WHERE uid = '04A1B2C3'", "badge 04A1B2C3"),
        ("DELETE FROM incidents", "incident 1"),
        ("DELETE FROM loans", "loan 1"),
        ("DELETE FROM alarms WHERE alarm_id = 'room-101-ctl:1:3'", "alarm 2"),
    ],
)
def test_row_deleted_behind_the_trackers_back(
    chain: Chain, capsys: pytest.CaptureFixture[str], sql: str, what: str
) -> None:
    entity = what.split()[0]
    (k,) = chain.one(
        "SELECT max(id) FROM audit WHERE entity = ? AND entity_key = ?",
        (entity, what.split()[1]),
    )
    chain.sql("PRAGMA foreign_keys = OFF", sql)
    err = check_entry(chain, capsys, int(str(k)))
    assert f"{what} was deleted" in err


@pytest.mark.parametrize(
    ("sql", "what"),
    [
        (
            "INSERT INTO people (id, name, clearance, roles, active)"
            " VALUES ('p9', '冒名', 4, '[]', 1)",
            "person p9",
        ),
        (
            "INSERT INTO badges (uid, person_id, active) VALUES ('04FFFFFF', 'p2', 1)",
            "badge 04FFFFFF",
        ),
        (
            "INSERT INTO loans (document_id, person_id, kind, opened, due, misplaced)"
            " VALUES (2, 'p2', 'badge', '2026-11-26T01:00:00.000Z',"
            " '2026-12-26T01:00:00.000Z', 0)",
            "loan 2",
        ),
    ],
)
def test_row_inserted_behind_the_trackers_back(
    chain: Chain, capsys: pytest.CaptureFixture[str], sql: str, what: str
) -> None:
    chain.sql(sql)
    err = broken(chain, capsys)
    assert err == (
        f"audit chain BROKEN at {what} has no audit entry: written behind the tracker's back"
    )
    with sessions(chain.engine)() as s:
        v = verify(s)
    assert not v.ok and v.bad_entry is None


def test_row_copied_with_its_audit_id(chain: Chain, capsys: pytest.CaptureFixture[str]) -> None:
    """A row inserted as a copy of an audited one, audit_id and all, has no entry."""
    chain.sql(
        "INSERT INTO people (id, name, dept, clearance, roles, active, audit_id)"
        " SELECT 'p1x', name, dept, clearance, roles, active, audit_id FROM people WHERE id = 'p1'"
    )
    assert "person p1x has no audit entry" in broken(chain, capsys)
