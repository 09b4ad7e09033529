"""``ironroom ledger ...`` as an operator runs it: a separate process per command, on a
SQLite file of the test's own (``--db`` or ``$IRONROOM_DB``), checking the exit code,
the JSON lines on stdout and the one-line errors on stderr.

Loans, alarms and events come from signed controller events fed to the tracker's own
ingest (:class:`tracker.ingest.pipeline.Processor`) in this process, on the same file."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ironroom.cli import main
from protocol.envelope import make_event
from protocol.hours import Calendar, parse_weekly
from tracker.bootstrap import open_store, rules_of
from tracker.config import TrackerConfig
from tracker.ingest.pipeline import Message, Processor

pytestmark = [pytest.mark.timeout(180)]

IRONROOM = [sys.executable, "-m", "ironroom.cli"]
ROOT = Path(__file__).resolve().parents[2]
KEY = bytes.fromhex("5a" * 32)
CONTROLLER = "room-101-ctl"
EPC1 = "30751FEB705C5904E3D50D70"
EPC2 = "30751FEB705C5904E3D50D71"
EPC3 = "30751FEB705C5904E3D50D72"
LEVELS = {
    "绝密": "绝密",
    "机密": "机密",
    "秘密": "秘密",
    "内部": "内部",
    "公开": "公开",
    "top-secret": "绝密",
    "secret": "机密",
    "confidential": "秘密",
    "internal": "内部",
    "public": "公开",
}
SHOW_FIELDS = {"number", "title", "classification", "tag", "status", "cabinet", "holder"}
LOAN_FIELDS = {"document", "tag", "person", "opened", "due", "closed", "kind"}
ALARM_FIELDS = {"alarm_id", "cause", "room", "point", "severity", "raised", "state"}


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def rows(self) -> list[dict[str, Any]]:
        """stdout as JSON lines: every line one object."""
        assert self.out == "" or self.out.endswith("\n"), self.out
        rows = [json.loads(line) for line in self.out.split("\n") if line]
        assert all(isinstance(r, dict) for r in rows), self.out
        return rows

    def failed(self) -> str:
        """Exit 2, nothing on stdout, exactly one line on stderr; returns that line."""
        assert self.code == 2, (self.code, self.out, self.err)
        assert self.out == "", self.out
        lines = self.err.splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("ironroom: "), lines[0]
        return lines[0]


def ironroom(
    *args: str | Path, db: str | None = None, env_db: str | None = None, cwd: Path | None = None
) -> Result:
    env = {k: v for k, v in os.environ.items() if k != "IRONROOM_DB"}
    env["PYTHONPATH"] = str(ROOT)
    if env_db is not None:
        env["IRONROOM_DB"] = env_db
    argv = [*IRONROOM, *map(str, args)]
    if db is not None:
        argv += ["--db", db]
    p = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        cwd=cwd or ROOT,
        timeout=60,
    )
    return Result(p.returncode, p.stdout, p.stderr)


def quick(*args: str | Path, db: str) -> Result:
    """The same command line run in this process (``ironroom.cli.main``): for the many
    variants of one command whose every path a subprocess test already covers."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([*map(str, args), "--db", db])
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
    return Result(code, out.getvalue(), err.getvalue())


def qok(*args: str | Path, db: str) -> list[dict[str, Any]]:
    r = quick(*args, db=db)
    assert r.code == 0, (args, r.err)
    return r.rows


def ok(*args: str | Path, db: str) -> list[dict[str, Any]]:
    r = ironroom(*args, db=db)
    assert r.code == 0, (args, r.err)
    return r.rows


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as c:
        return int(c.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


# -- a registered site, made once and copied for each test -----------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("base")
    db = url_of(d / "ledger.db")
    (d / "key").write_text(KEY.hex() + "\n")
    assert quick("ledger", "init", db=db).code == 0
    qok(
        "ledger",
        "room",
        "add",
        "hq",
        "room-101",
        "--controller",
        CONTROLLER,
        "--key-file",
        d / "key",
        db=db,
    )
    qok("ledger", "cabinet", "add", "hq", "room-101", "c1", db=db)
    qok("ledger", "cabinet", "add", "hq", "room-101", "g1", "--general", db=db)
    qok(
        "ledger",
        "person",
        "add",
        "p1",
        "--name",
        "张秘书",
        "--clearance",
        "机密",
        "--role",
        "secretary",
        "--dept",
        "办公室",
        db=db,
    )
    qok("ledger", "person", "add", "p2", "--name", "Li Si", "--clearance", "internal", db=db)
    qok("ledger", "badge", "add", "04A1B2C3", "--person", "p1", db=db)
    qok("ledger", "badge", "add", "04A1B2C4", "--person", "p2", db=db)
    return d


@pytest.fixture
def site(base: Path, tmp_path: Path) -> Path:
    """This test's copy of the registered site: ``tmp_path/ledger.db``."""
    for f in base.iterdir():
        shutil.copy(f, tmp_path / f.name)
    return tmp_path / "ledger.db"


@pytest.fixture
def db(site: Path) -> str:
    return url_of(site)


def add_doc(
    db: str,
    number: str,
    tag: str,
    level: str = "机密",
    cabinet: str = "c1",
    *extra: str,
    sub: bool = False,
) -> Result:
    return (ironroom if sub else quick)(
        "ledger",
        "document",
        "add",
        "--number",
        number,
        "--title",
        f"{number} 标题",
        "--classification",
        level,
        "--tag",
        tag,
        "--cabinet",
        f"hq/room-101/{cabinet}",
        *extra,
        db=db,
    )


# -- the database URL ------------------------------------------------------------------


def test_db_flag_env_and_default(tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    # $IRONROOM_DB when there is no --db
    r = ironroom("ledger", "init", env_db=url_of(a))
    assert r.code == 0, r.err
    assert a.exists() and not b.exists()
    r = ironroom(
        "ledger", "person", "add", "e1", "--name", "Env", "--clearance", "public", env_db=url_of(a)
    )
    assert r.code == 0, r.err
    # --db wins over $IRONROOM_DB
    r = ironroom(
        "ledger",
        "person",
        "add",
        "f1",
        "--name",
        "Flag",
        "--clearance",
        "public",
        db=url_of(b),
        env_db=url_of(a),
    )
    assert r.code == 0, r.err
    assert b.exists()
    with sqlite3.connect(a) as c:
        assert [x for (x,) in c.execute("SELECT id FROM people")] == ["e1"]
    with sqlite3.connect(b) as c:
        assert [x for (x,) in c.execute("SELECT id FROM people")] == ["f1"]
    # neither: sqlite:///ironroom.db in the working directory
    work = tmp_path / "work"
    work.mkdir()
    r = ironroom("ledger", "init", cwd=work)
    assert r.code == 0, r.err
    assert (work / "ironroom.db").exists()


def test_bad_database_urls(tmp_path: Path) -> None:
    assert "unsupported database" in ironroom("ledger", "loans", db="mysql://x/y").failed()
    missing = url_of(tmp_path / "no" / "such" / "l.db")
    assert "does not exist" in ironroom("ledger", "init", db=missing).failed()
    assert "does not exist" in ironroom("audit", "verify", env_db=missing).failed()


def test_init_is_repeatable(tmp_path: Path) -> None:
    db = url_of(tmp_path / "l.db")
    for _ in range(2):
        r = ironroom("ledger", "init", db=db)
        assert r.code == 0, r.err
        assert r.out == ""
    r = ironroom("audit", "head", db=db)
    assert r.code == 0 and r.out.split() == ["0", "0" * 64]


# -- rooms and cabinets ----------------------------------------------------------------


def test_room_add_and_reenrol(db: str, site: Path, tmp_path: Path) -> None:
    (tmp_path / "k2").write_text("  " + "11" * 32 + "  \n")
    (tmp_path / "k3").write_text("22" * 32)
    row = ok(
        "ledger",
        "room",
        "add",
        "hq",
        "room-102",
        "--controller",
        "room-102-ctl",
        "--key-file",
        tmp_path / "k2",
        "--command-key-file",
        tmp_path / "k3",
        db=db,
    )
    assert row == [
        {"site": "hq", "room": "room-102", "controller": "room-102-ctl", "generation": 1}
    ]
    with sqlite3.connect(site) as c:
        keys = c.execute(
            "SELECT event_key, command_key FROM rooms WHERE room='room-102'"
        ).fetchone()
    assert keys == ("11" * 32, "22" * 32)
    row = ok("ledger", "room", "reenrol", "hq", "room-102", db=db)
    assert row == [{"site": "hq", "room": "room-102", "generation": 2}]
    row = qok("ledger", "room", "reenrol", "hq", "room-102", "--key-file", tmp_path / "k3", db=db)
    assert row[0]["generation"] == 3
    assert (
        "no room hq/room-999"
        in ironroom("ledger", "room", "reenrol", "hq", "room-999", db=db).failed()
    )


def test_room_errors(db: str, site: Path, tmp_path: Path, base: Path) -> None:
    key = base / "key"

    def add(room: str, key_file: Path, *extra: str) -> Result:
        return quick(
            "ledger",
            "room",
            "add",
            "hq",
            room,
            "--controller",
            f"{room}-ctl",
            "--key-file",
            key_file,
            *extra,
            db=db,
        )

    assert "exists already" in add("room-101", key).failed()
    (tmp_path / "nothex").write_text("zz" * 32)
    r = ironroom(
        "ledger",
        "room",
        "add",
        "hq",
        "room-103",
        "--controller",
        "room-103-ctl",
        "--key-file",
        tmp_path / "nothex",
        db=db,
    )
    assert "key file must hold the key in hex" in r.failed()
    assert "no such file" in add("room-103", tmp_path / "missing").failed()
    (tmp_path / "short").write_text("ab" * 16)
    assert "32 bytes" in add("room-103", tmp_path / "short").failed()
    (tmp_path / "nothex").write_text("zz" * 32)
    assert "hex" in add("room-103", tmp_path / "nothex").failed()
    (tmp_path / "empty").write_text("")
    assert "32 bytes" in add("room-103", tmp_path / "empty").failed()
    assert add("room-103", key, "--command-key-file", tmp_path / "nothex").failed()
    assert "room 'Room 1'" in add("Room 1", key).failed()
    # a controller id is one per site
    r = quick(
        "ledger",
        "room",
        "add",
        "hq",
        "room-104",
        "--controller",
        CONTROLLER,
        "--key-file",
        key,
        db=db,
    )
    assert "refused by the database" in r.failed()
    assert count(site, "rooms") == 1


def test_cabinet_add_and_errors(db: str) -> None:
    assert ok("ledger", "cabinet", "add", "hq", "room-101", "c2", db=db) == [
        {"cabinet": "hq/room-101/c2", "general": False}
    ]
    assert qok("ledger", "cabinet", "add", "hq", "room-101", "g2", "--general", db=db) == [
        {"cabinet": "hq/room-101/g2", "general": True}
    ]
    r = ironroom("ledger", "cabinet", "add", "hq", "room-999", "c1", db=db)
    assert "no room hq/room-999" in r.failed()
    r = quick("ledger", "cabinet", "add", "elsewhere", "room-101", "c1", db=db)
    assert "no room elsewhere/room-101" in r.failed()
    assert quick("ledger", "cabinet", "add", "hq", "room-101", "c1", db=db).failed()
    assert quick("ledger", "cabinet", "add", "hq", "room-101", "C 1", db=db).failed()


# -- people and badges -----------------------------------------------------------------


@pytest.mark.parametrize("level", list(LEVELS))
def test_person_levels(db: str, level: str) -> None:
    row = qok(
        "ledger",
        "person",
        "add",
        "x1",
        "--name",
        "王五",
        "--clearance",
        level,
        "--role",
        "borrower",
        "--role",
        "approver",
        "--dept",
        "保密办",
        db=db,
    )
    assert row == [
        {
            "id": "x1",
            "name": "王五",
            "clearance": LEVELS[level],
            "roles": ["approver", "borrower"],
            "dept": "保密办",
        }
    ]


@pytest.mark.parametrize("level", ["top secret", "TOPSECRET", "绝", "4", "", "机"])
def test_person_bad_level(db: str, site: Path, level: str) -> None:
    r = quick("ledger", "person", "add", "x1", "--name", "n", "--clearance", level, db=db)
    assert "unknown classification" in r.failed()
    assert count(site, "people") == 2


def test_person_errors(db: str, site: Path) -> None:
    r = ironroom("ledger", "person", "add", "p1", "--name", "again", "--clearance", "公开", db=db)
    assert "person p1 exists already" in r.failed()
    r = ironroom("ledger", "person", "add", "x1", "--name", "n", "--clearance", "秘", db=db)
    assert "unknown classification '秘'" in r.failed()
    r = quick(
        "ledger",
        "person",
        "add",
        "x2",
        "--name",
        "n",
        "--clearance",
        "公开",
        "--role",
        "boss",
        db=db,
    )
    assert "unknown roles" in r.failed()
    assert count(site, "people") == 2


def test_badge_add_and_errors(db: str, site: Path) -> None:
    assert ok("ledger", "badge", "add", "04a1b2c5", "--person", "p2", db=db) == [
        {"uid": "04A1B2C5", "person": "p2"}
    ]
    assert (
        "no person nobody"
        in ironroom("ledger", "badge", "add", "04A1B2C6", "--person", "nobody", db=db).failed()
    )
    assert (
        "registered already"
        in quick("ledger", "badge", "add", "04A1B2C3", "--person", "p2", db=db).failed()
    )
    assert "hex" in quick("ledger", "badge", "add", "not-hex!", "--person", "p1", db=db).failed()
    assert count(site, "badges") == 3


# -- documents -------------------------------------------------------------------------


@pytest.mark.parametrize("level", list(LEVELS))
def test_document_levels_and_show(db: str, level: str) -> None:
    cabinet = "g1" if LEVELS[level] in ("内部", "公开") else "c1"
    r = add_doc(db, "国办发〔2026〕7号", EPC1.lower(), level, cabinet)
    assert r.code == 0, r.err
    assert r.rows == [{"id": 1, "number": "国办发〔2026〕7号", "copy": "1/1", "tag": EPC1}]
    for what in (EPC1, EPC1.lower(), "国办发〔2026〕7号"):
        (row,) = qok("ledger", "show", what, db=db)
        assert SHOW_FIELDS <= set(row)
        assert {k: row[k] for k in SHOW_FIELDS} == {
            "number": "国办发〔2026〕7号",
            "title": "国办发〔2026〕7号 标题",
            "classification": LEVELS[level],
            "tag": EPC1,
            "status": "in_cabinet",
            "cabinet": f"hq/room-101/{cabinet}",
            "holder": None,
        }


def test_document_every_option(db: str) -> None:
    r = add_doc(
        db,
        "机发1号",
        EPC1,
        "绝密",
        "c1",
        "--copy",
        "2/5",
        "--scope",
        "person:p1",
        "--scope",
        "dept:办公室",
        "--scope",
        "role:secretary",
        "--no-copying",
        "--issuer",
        "机要局",
        "--period",
        "25",
        "--declassify-on",
        "20500101",
        "--return-by",
        "2027-06-30",
        sub=True,
    )
    assert r.rows == [{"id": 1, "number": "机发1号", "copy": "2/5", "tag": EPC1}]
    (row,) = ok("ledger", "show", "机发1号", db=db)
    assert row["copy"] == "2/5"
    assert row["scope"] == ["person:p1", "dept:办公室", "role:secretary"]
    assert row["no_copying"] is True
    assert row["issuer"] == "机要局"
    assert row["period_years"] == 25
    assert row["declassify_on"] == "2050-01-01"
    assert row["return_by"] == "2027-06-30"
    assert row["home"] == "hq/room-101/c1"
    assert row["loan"] is None
    # copies of one number: one line each, in copy order
    assert add_doc(db, "机发1号", EPC2, "绝密", "c1", "--copy", "1/5").code == 0
    assert [x["copy"] for x in qok("ledger", "show", "机发1号", db=db)] == ["1/5", "2/5"]
    # default secrecy periods by level
    assert add_doc(db, "D-3", EPC3, "秘密").code == 0
    assert qok("ledger", "show", "D-3", db=db)[0]["period_years"] == 10


def test_document_errors(db: str, site: Path) -> None:
    assert add_doc(db, "N-1", EPC1, "secret").code == 0
    cases = [
        (add_doc(db, "N-2", EPC1, sub=True), "tag 30751FEB705C5904E3D50D70 is bound"),
        (add_doc(db, "N-1", EPC2), "N-1 copy 1 is registered already"),
        (add_doc(db, "N-2", EPC2, "秘密", "g1", sub=True), "general cabinet"),
        (add_doc(db, "N-2", EPC2, "机密", "g1"), "general cabinet"),
        (add_doc(db, "N-2", EPC2, "绝密", "g1"), "general cabinet"),
        (add_doc(db, "N-2", EPC2, "bogus", sub=True), "--classification: unknown classification"),
        (add_doc(db, "N-2", EPC2, "Secret!"), "--classification"),
        (add_doc(db, "N-2", EPC2, "机密", "nope"), "no cabinet hq/room-101/nope"),
        (add_doc(db, "N-2", "XYZ"), "--tag"),
        (add_doc(db, "N-2", EPC2, "机密", "c1", "--copy", "6/5"), "--copy"),
        (add_doc(db, "N-2", EPC2, "机密", "c1", "--copy", "0/5"), "--copy"),
        (add_doc(db, "N-2", EPC2, "机密", "c1", "--scope", "team:x"), "--scope"),
        (add_doc(db, "N-2", EPC2, "机密", "c1", "--period", "x"), "--period"),
        (add_doc(db, "N-2", EPC2, "机密", "c1", "--period", "0"), "--period"),
        (add_doc(db, "N-2", EPC2, "机密", "c1", "--return-by", "2026-02-30"), "--return-by"),
        (add_doc(db, "N-2", EPC2, "机密", "c1", "--declassify-on", "soon"), "--declassify-on"),
    ]
    for r, want in cases:
        assert want in r.failed()
    r = ironroom(
        "ledger",
        "document",
        "add",
        "--number",
        "N-3",
        "--title",
        "t",
        "--classification",
        "机密",
        "--tag",
        EPC3,
        "--cabinet",
        "hq/room-999/c1",
        db=db,
    )
    assert "no room hq/room-999" in r.failed()
    r = quick(
        "ledger",
        "document",
        "add",
        "--number",
        "N-3",
        "--title",
        "t",
        "--classification",
        "机密",
        "--tag",
        EPC3,
        "--cabinet",
        "c1",
        db=db,
    )
    assert "SITE/ROOM/CABINET" in r.failed()
    assert count(site, "documents") == 1
    # unclassified documents may live in a general cabinet
    assert add_doc(db, "N-4", EPC2, "内部", "g1").code == 0
    assert add_doc(db, "N-5", EPC3, "public", "g1").code == 0


def test_show_unknown(db: str) -> None:
    assert "no document" in ironroom("ledger", "show", "nothing", db=db).failed()
    assert "no document" in ironroom("ledger", "show", EPC1, db=db).failed()


# -- import ----------------------------------------------------------------------------

HEADER = "number,title,classification,tag,cabinet,copy,scope,no_copying,issuer,period"
GOOD = [
    f"国发〔2026〕1号,关于保密工作的通知,秘密,{EPC1},hq/room-101/c1,1/2,"
    "dept:办公室;role:secretary,是,国务院办公厅,",
    f"国发〔2026〕1号,关于保密工作的通知,confidential,{EPC2},hq/room-101/c1,2/2,,否,,5",
    f'内参-3,"内部通报，含逗号, 和""引号""",内部,{EPC3},hq/room-101/g1,,,,,',
]


def write(path: Path, lines: list[str], *, bom: bool = False, eol: str = "\n") -> Path:
    data = eol.join(lines) + eol
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data.encode("utf-8"))
    return path


@pytest.mark.parametrize(("bom", "eol"), [(False, "\n"), (True, "\n"), (True, "\r\n")])
def test_import_delivery(db: str, tmp_path: Path, bom: bool, eol: str) -> None:
    f = write(tmp_path / "收文.csv", [HEADER, *GOOD], bom=bom, eol=eol)
    rows = ok("ledger", "import", f, db=db)
    assert rows == [
        {"id": 1, "number": "国发〔2026〕1号", "tag": EPC1, "copy": "1/2"},
        {"id": 2, "number": "国发〔2026〕1号", "tag": EPC2, "copy": "2/2"},
        {"id": 3, "number": "内参-3", "tag": EPC3, "copy": "1/1"},
    ]
    first, second = qok("ledger", "show", "国发〔2026〕1号", db=db)
    assert first["title"] == "关于保密工作的通知"
    assert first["classification"] == second["classification"] == "秘密"
    assert first["scope"] == ["dept:办公室", "role:secretary"]
    assert first["no_copying"] is True and second["no_copying"] is False
    assert first["issuer"] == "国务院办公厅" and second["issuer"] is None
    assert first["period_years"] == 10 and second["period_years"] == 5
    (third,) = qok("ledger", "show", EPC3, db=db)
    assert third["title"] == '内部通报，含逗号, 和"引号"'
    assert third["cabinet"] == "hq/room-101/g1"
    assert third["status"] == "in_cabinet"


def test_import_columns_in_any_order_and_blank_lines(db: str, tmp_path: Path) -> None:
    f = write(
        tmp_path / "d.csv",
        [
            " cabinet , tag ,number,title,classification",
            f"hq/room-101/c1,{EPC1},A-1,甲,绝密",
            "",
            ",,,,",
            f"hq/room-101/c1,{EPC2},A-2,乙,top-secret",
        ],
    )
    assert [r["number"] for r in qok("ledger", "import", f, db=db)] == ["A-1", "A-2"]
    assert qok("ledger", "show", EPC2, db=db)[0]["classification"] == "绝密"


def _nothing_imported(db: str, site: Path, entries: int) -> None:
    assert count(site, "documents") == 0
    assert count(site, "audit") == entries
    assert "no document" in quick("ledger", "show", "国发〔2026〕1号", db=db).failed()
    r = quick("audit", "verify", db=db)
    assert r.code == 0, r.err


@pytest.mark.parametrize(
    ("bad", "line", "column"),
    [
        # the third data row (line 4) is wrong in one field; the first two were fine
        ("内参-3,标题,绝秘,{EPC3},hq/room-101/c1,,,,,", 4, "classification"),
        ("内参-3,标题,秘密,EPC?,hq/room-101/c1,,,,,", 4, "tag"),
        ("内参-3,,秘密,{EPC3},hq/room-101/c1,,,,,", 4, "title"),
        (",标题,秘密,{EPC3},hq/room-101/c1,,,,,", 4, "number"),
        ("内参-3,标题,秘密,{EPC3},c1,,,,,", 4, "cabinet"),
        ("内参-3,标题,秘密,{EPC3},hq/room-101/c1,3/2,,,,", 4, "copy"),
        ("内参-3,标题,秘密,{EPC3},hq/room-101/c1,,组:办公室,,,", 4, "scope"),
        ("内参-3,标题,秘密,{EPC3},hq/room-101/c1,,,也许,,", 4, "no_copying"),
        ("内参-3,标题,秘密,{EPC3},hq/room-101/c1,,,,,十年", 4, "period"),
    ],
)
def test_import_bad_field_names_line_and_column(
    db: str, site: Path, tmp_path: Path, bad: str, line: int, column: str
) -> None:
    before = count(site, "audit")
    f = write(tmp_path / "bad.csv", [HEADER, *GOOD[:2], bad.format(EPC3=EPC3)], bom=True)
    run = ironroom if column == "classification" else quick
    msg = run("ledger", "import", f, db=db).failed()
    assert f"line {line}, column '{column}'" in msg, msg
    _nothing_imported(db, site, before)


@pytest.mark.parametrize(
    ("rows", "line", "why"),
    [
        # refused against the ledger: still by line, still nothing imported
        ([f"X-1,t,秘密,{EPC1},hq/room-101/g1"], 2, "general cabinet"),
        ([f"X-1,t,机密,{EPC1},hq/room-101/c9"], 2, "no cabinet hq/room-101/c9"),
        ([f"X-1,t,机密,{EPC1},hq/room-9/c1"], 2, "no room hq/room-9"),
        (
            [f"X-1,t,机密,{EPC1},hq/room-101/c1", f"X-2,t,机密,{EPC1},hq/room-101/c1"],
            3,
            f"tag {EPC1} is bound",
        ),
        (
            [f"X-1,t,机密,{EPC1},hq/room-101/c1", f"X-1,t,机密,{EPC2},hq/room-101/c1"],
            3,
            "X-1 copy 1 is registered already",
        ),
        (
            [f"X-1,t,机密,{EPC1},hq/room-101/c1", f"X-2,t,机密,{EPC2},hq/room-101/c1,extra"],
            3,
            "more fields than columns",
        ),
    ],
)
def test_import_refused_rows(
    db: str, site: Path, tmp_path: Path, rows: list[str], line: int, why: str
) -> None:
    before = count(site, "audit")
    f = write(tmp_path / "bad.csv", ["number,title,classification,tag,cabinet", *rows])
    msg = quick("ledger", "import", f, db=db).failed()
    assert f"line {line}" in msg and why in msg, msg
    _nothing_imported(db, site, before)


def test_import_multiline_field_in_an_error_stays_one_line(
    db: str, site: Path, tmp_path: Path
) -> None:
    """A quoted field may hold a line break; the error quoting it is still one line."""
    before = count(site, "audit")
    f = write(
        tmp_path / "nl.csv",
        [
            "number,title,classification,tag,cabinet",
            f'"X\n1",t,机密,{EPC1},hq/room-101/c1',
            f'"X\n1",t,机密,{EPC2},hq/room-101/c1',
        ],
    )
    msg = ironroom("ledger", "import", f, db=db).failed()
    assert "is registered already" in msg
    f = write(
        tmp_path / "nl2.csv",
        [
            "number,title,classification,tag,cabinet",
            f'X1,t,机密,{EPC1},"hq/room-101/c\u20289"',
        ],
    )
    assert "no cabinet" in ironroom("ledger", "import", f, db=db).failed()
    _nothing_imported(db, site, before)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "empty file"),
        (b"\xef\xbb\xbf", "empty file"),
        (b"number,title,classification,tag,cabinet\n", "no rows"),
        (b"number,title,classification,tag,cabinet\n\n,,,,\n", "no rows"),
        (b"number,title,classification\nA,b,\xe7\xa7\x98\xe5\xaf\x86\n", "line 1: missing columns"),
        (b"number,title,classification,tag,cabinet,colour\n", "line 1: unknown columns"),
        ("文号,标题,密级,标签,柜\n".encode(), "line 1: unknown columns"),
        (b"number,title,classification,tag,cabinet,number\n", "line 1: columns named twice"),
        ("number,title\n甲,乙\n".encode("gbk"), "not UTF-8"),
        ("number,title\n".encode("utf-16"), "not UTF-8"),
        (
            b"number,title,classification,tag,cabinet\nA,"
            + b"x" * 200_000
            + b",\xe7\xa7\x98\xe5\xaf\x86,AAAA0001,hq/room-101/c1\n",
            "line 2",
        ),
    ],
)
def test_import_bad_files(db: str, site: Path, tmp_path: Path, content: bytes, why: str) -> None:
    before = count(site, "audit")
    f = tmp_path / "f.csv"
    f.write_bytes(content)
    assert why in quick("ledger", "import", f, db=db).failed()
    _nothing_imported(db, site, before)


def test_import_missing_file(db: str, tmp_path: Path) -> None:
    assert "no such file" in ironroom("ledger", "import", tmp_path / "no.csv", db=db).failed()
    assert "is a directory" in ironroom("ledger", "import", tmp_path, db=db).failed()


# -- loans, alarms, events: from the tracker's own ingest ------------------------------

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


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


def feed(db: str, events: list[tuple[int, str, dict[str, Any]]]) -> None:
    """Signed events of hq/room-101 (minutes after T0, type, data), one batch each."""
    store = open_store(db)
    always = parse_weekly(
        {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}, "hours"
    )
    cfg = replace(TrackerConfig(), calendar=Calendar(timezone="UTC", weekly=always))
    clock = _Clock()
    p = Processor(store.sessions, rules_of(cfg), clock=clock, publisher=_Pub())
    p.load()
    try:
        for seq, (minutes, type_, data) in enumerate(events, 1):
            clock.t = T0 + timedelta(minutes=minutes)
            topic, payload = make_event(
                KEY,
                site="hq",
                room="room-101",
                controller=CONTROLLER,
                boot=1,
                seq=seq,
                ts=clock.t,
                type=type_,
                data=data,
            )
            p.process([Message(topic, payload, clock.t, 0.0)])
    finally:
        store.engine.dispose()


def ts(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture
def day(db: str) -> str:
    """p1 borrows folder 1 with the badge and brings it back; takes folder 2 and keeps
    it; folder 3 leaves with nobody's badge; the door is forced."""
    assert add_doc(db, "F-1", EPC1, "机密").code == 0
    assert add_doc(db, "F-2", EPC2, "秘密").code == 0
    assert add_doc(db, "F-3", EPC3, "秘密").code == 0
    badge = {"reader": "cabinet:c1", "uid": "04A1B2C3", "auth": "verified"}
    feed(
        db,
        [
            (0, "badge.presented", badge),
            (1, "tag.departed", {"reader": "cabinet:c1", "epc": EPC1}),
            (30, "tag.arrived", {"reader": "cabinet:c1", "epc": EPC1}),
            (40, "badge.presented", badge),
            (41, "tag.departed", {"reader": "cabinet:c1", "epc": EPC2}),
            (60, "tag.departed", {"reader": "cabinet:c1", "epc": EPC3}),
            (
                70,
                "alarm.raised",
                {
                    "alarm_id": "room-101-ctl:1:9",
                    "cause": "forced_open",
                    "point": "door",
                    "severity": "critical",
                },
            ),
        ],
    )
    return db


def test_loans(day: str) -> None:
    rows = ok("ledger", "loans", db=day)
    assert all(LOAN_FIELDS <= set(r) for r in rows)
    assert [{k: r[k] for k in LOAN_FIELDS} for r in rows] == [
        {
            "document": "F-1",
            "tag": EPC1,
            "person": "p1",
            "opened": ts(1),
            "due": "2026-12-03T02:01:00.000Z",
            "closed": ts(30),
            "kind": "badge",
        },
        {
            "document": "F-2",
            "tag": EPC2,
            "person": "p1",
            "opened": ts(41),
            "due": "2026-12-10T02:41:00.000Z",
            "closed": None,
            "kind": "badge",
        },
    ]
    assert [r["document"] for r in qok("ledger", "loans", "--open", db=day)] == ["F-2"]
    assert len(qok("ledger", "loans", "--person", "p1", db=day)) == 2
    assert qok("ledger", "loans", "--person", "p2", db=day) == []
    assert qok("ledger", "loans", "--open", "--person", "p2", db=day) == []
    (f1,) = qok("ledger", "show", "F-1", db=day)
    assert (f1["status"], f1["cabinet"], f1["holder"], f1["loan"]) == (
        "in_cabinet",
        "hq/room-101/c1",
        None,
        None,
    )
    (f2,) = qok("ledger", "show", EPC2, db=day)
    assert (f2["status"], f2["cabinet"], f2["holder"]) == ("on_loan", None, "p1")
    assert f2["loan"]["person"] == "p1"


def test_alarms_and_reset(day: str) -> None:
    rows = ok("ledger", "alarms", db=day)
    assert all(ALARM_FIELDS <= set(r) for r in rows)
    by_cause = {r["cause"]: r for r in rows}
    assert set(by_cause) == {"unauthorized_removal", "forced_open"}
    forced = by_cause["forced_open"]
    assert {k: forced[k] for k in ALARM_FIELDS} == {
        "alarm_id": "room-101-ctl:1:9",
        "cause": "forced_open",
        "room": "hq/room-101",
        "point": "door",
        "severity": "critical",
        "raised": ts(70),
        "state": "active",
    }
    removal = by_cause["unauthorized_removal"]
    assert (removal["room"], removal["severity"], removal["state"], removal["raised"]) == (
        "hq/room-101",
        "critical",
        "active",
        ts(60),
    )
    assert len(qok("ledger", "alarms", "--active", db=day)) == 2

    r = ironroom(
        "ledger",
        "alarm",
        "reset",
        "room-101-ctl:1:9",
        "--by",
        "p1",
        "--reason",
        "门磁误报，已检查",
        db=day,
    )
    assert r.code == 0, r.err
    (reset,) = r.rows
    assert (reset["alarm_id"], reset["state"], reset["ended_by"], reset["reason"]) == (
        "room-101-ctl:1:9",
        "reset",
        "p1",
        "门磁误报，已检查",
    )
    active = qok("ledger", "alarms", "--active", db=day)
    assert [a["cause"] for a in active] == ["unauthorized_removal"]
    states = {a["alarm_id"]: a["state"] for a in qok("ledger", "alarms", db=day)}
    assert states["room-101-ctl:1:9"] == "reset"

    def reset_fails(alarm: str, by: str, reason: str) -> str:
        return quick(
            "ledger", "alarm", "reset", alarm, "--by", by, "--reason", reason, db=day
        ).failed()

    assert "is reset already" in reset_fails("room-101-ctl:1:9", "p1", "again")
    assert "no alarm nope" in reset_fails("nope", "p1", "why")
    assert "no person nobody" in reset_fails(removal["alarm_id"], "nobody", "why")
    assert "reason" in reset_fails(removal["alarm_id"], "p1", "  ")
    assert len(qok("ledger", "alarms", "--active", db=day)) == 1
    r = quick("audit", "verify", db=day)
    assert r.code == 0, r.err


def test_events(day: str) -> None:
    rows = ok("ledger", "events", db=day)
    assert [(r["id"], r["type"]) for r in rows] == [
        (f"{CONTROLLER}:1:1", "badge.presented"),
        (f"{CONTROLLER}:1:2", "tag.departed"),
        (f"{CONTROLLER}:1:3", "tag.arrived"),
        (f"{CONTROLLER}:1:4", "badge.presented"),
        (f"{CONTROLLER}:1:5", "tag.departed"),
        (f"{CONTROLLER}:1:6", "tag.departed"),
        (f"{CONTROLLER}:1:7", "alarm.raised"),
    ]
    assert rows[1]["data"] == {"reader": "cabinet:c1", "epc": EPC1}
    assert rows[1]["room"] == "hq/room-101" and rows[1]["ts"] == ts(1)
    assert qok("ledger", "events", "--room", "hq/room-101", db=day) == rows
    assert (
        "no room hq/room-999" in quick("ledger", "events", "--room", "hq/room-999", db=day).failed()
    )


def test_empty_listings(db: str) -> None:
    for args in (("loans",), ("loans", "--open"), ("alarms",), ("alarms", "--active"), ("events",)):
        r = quick("ledger", *args, db=db)
        assert (r.code, r.out, r.err) == (0, "", ""), args


def test_audit_verify_and_head_after_a_day(day: str, site: Path) -> None:
    r = ironroom("audit", "verify", db=day)
    assert r.code == 0, r.err
    n = count(site, "audit")
    with sqlite3.connect(site) as c:
        head = c.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert f"{n} entries" in r.out and head in r.out
    h = ironroom("audit", "head", env_db=day)
    assert h.code == 0 and h.out.split() == [str(n), head]
