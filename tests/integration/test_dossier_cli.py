"""Dossiers (立卷) as an operator files them: ``ironroom ledger dossier add|remove|show|
list``, each a process of its own on a SQLite file of the test's own; the marking computed
from the contents and following them; one-line errors; the audit chain verified."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.timeout(180)]

IRONROOM = [sys.executable, "-m", "ironroom.cli"]
KEY = "5a" * 32
TAGS = {
    "D1": "30751FEB705C5904E3D50F01",  # 秘密, 10 years
    "D2": "30751FEB705C5904E3D50F02",  # 机密, declassified 2070-06-30
    "D3": "30751FEB705C5904E3D50F03",  # 绝密, 30 years
    "D4": "30751FEB705C5904E3D50F04",  # 内部, no period
}


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
    def __init__(self, db: Path) -> None:
        self.path = db
        self.db = f"sqlite:///{db}"

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

    def registered(self, tag: str) -> str:
        """The document's registration date (YYYY-MM-DD, UTC)."""
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            [(ts,)] = con.execute("SELECT registered FROM documents WHERE tag = ?", (tag,))
        finally:
            con.close()
        return str(ts)[:10]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("dossier")
    run = Ironroom(tmp / "ledger.db")
    key = tmp / "c.key"
    key.write_text(KEY + "\n")
    cab = "hq/room-101/c1"
    for args in (
        ("ledger", "init"),
        ("ledger", "room", "add", "hq", "room-101", "--controller", "room-101-ctl",
         "--key-file", str(key)),
        ("ledger", "cabinet", "add", "hq", "room-101", "c1"),
        ("ledger", "cabinet", "add", "hq", "room-101", "g1", "--general"),
        ("ledger", "person", "add", "sec", "--name", "王秘书", "--clearance", "绝密",
         "--role", "secretary"),
        ("ledger", "person", "add", "head", "--name", "张主任", "--clearance", "绝密",
         "--role", "dept-head"),
        ("ledger", "document", "add", "--number", "D1", "--title", "一",
         "--classification", "秘密", "--tag", TAGS["D1"], "--cabinet", cab),
        ("ledger", "document", "add", "--number", "D2", "--title", "二",
         "--classification", "机密", "--tag", TAGS["D2"], "--cabinet", cab,
         "--declassify-on", "2070-06-30"),
        ("ledger", "document", "add", "--number", "D3", "--title", "三",
         "--classification", "绝密", "--tag", TAGS["D3"], "--cabinet", cab),
        ("ledger", "document", "add", "--number", "D4", "--title", "四",
         "--classification", "内部", "--tag", TAGS["D4"], "--cabinet", "hq/room-101/g1"),
    ):  # fmt: skip
        res = run(*args)
        assert res.code == 0, (args, res.err)
    return tmp / "ledger.db"


@pytest.fixture
def cli(template: Path, tmp_path: Path) -> Ironroom:
    shutil.copyfile(template, tmp_path / "ledger.db")
    return Ironroom(tmp_path / "ledger.db")


def plus_years(day: str, years: int) -> str:
    return f"{int(day[:4]) + years}{day[4:]}"


def test_the_marking_is_computed_from_the_contents_and_follows_them(cli: Ironroom) -> None:
    reg = cli.registered(TAGS["D1"])
    made = cli.one("ledger", "dossier", "add", "卷-2026-001", "--title", "年度保密检查")
    assert (made["name"], made["title"], made["classification"], made["declassify_on"]) == (
        "卷-2026-001",
        "年度保密检查",
        None,
        None,
    )
    assert (made["size"], made["documents"]) == (0, [])

    one = cli.one("ledger", "dossier", "add", "卷-2026-001", "--document", "D1")
    assert (one["classification"], one["declassify_on"]) == ("秘密", plus_years(reg, 10))
    assert one["set_by"] == {"classification": "D1 copy 1/1", "declassify_on": "D1 copy 1/1"}

    # A higher classification with an explicit, later declassification date.
    two = cli.one("ledger", "dossier", "add", "卷-2026-001", "--document", TAGS["D2"])
    assert (two["classification"], two["declassify_on"]) == ("机密", "2070-06-30")
    assert two["set_by"] == {"classification": "D2 copy 1/1", "declassify_on": "D2 copy 1/1"}

    # 绝密 for 30 years: highest, but its period ends before D2's date.
    three = cli.one("ledger", "dossier", "add", "卷-2026-001", "--document", "D3/1",
                    "--document", "D4")  # fmt: skip
    assert (three["classification"], three["declassify_on"]) == ("绝密", "2070-06-30")
    assert three["set_by"] == {"classification": "D3 copy 1/1", "declassify_on": "D2 copy 1/1"}
    assert [(d["number"], d["classification"], d["until"], d["counted"]) for d in
            three["documents"]] == [
        ("D1", "秘密", plus_years(reg, 10), True),
        ("D2", "机密", "2070-06-30", True),
        ("D3", "绝密", plus_years(reg, 30), True),
        ("D4", "内部", None, True),
    ]  # fmt: skip
    assert cli.one("ledger", "dossier", "show", "卷-2026-001") == three

    # Taking D2 out: the longest period is now D3's.
    out = cli.one("ledger", "dossier", "remove", "卷-2026-001", "--document", "D2")
    assert (out["classification"], out["declassify_on"], out["size"]) == (
        "绝密",
        plus_years(reg, 30),
        3,
    )
    out = cli.one("ledger", "dossier", "remove", "卷-2026-001", "--document", "D3")
    assert (out["classification"], out["declassify_on"]) == ("秘密", plus_years(reg, 10))

    listed = cli("ledger", "dossier", "list").rows
    assert [(d["name"], d["classification"], d["size"]) for d in listed] == [
        ("卷-2026-001", "秘密", 2)
    ]
    assert "documents" not in listed[0]
    cli.verify()


def test_a_retitled_dossier_and_a_second_dossier(cli: Ironroom) -> None:
    cli.one("ledger", "dossier", "add", "卷-A", "--document", "D1")
    again = cli.one("ledger", "dossier", "add", "卷-A", "--title", "新标题")
    assert again["title"] == "新标题" and again["size"] == 1
    why = cli("ledger", "dossier", "add", "卷-B", "--document", "D1").failed()
    assert "in dossier '卷-A' already" in why
    # The failed command changed nothing: 卷-B was not created.
    assert "no dossier '卷-B'" in cli("ledger", "dossier", "show", "卷-B").failed()
    cli.one("ledger", "dossier", "remove", "卷-A", "--document", "D1")
    moved = cli.one("ledger", "dossier", "add", "卷-B", "--document", "D1")
    assert moved["size"] == 1
    cli.verify()


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (("dossier", "show", "没有"), "no dossier '没有'"),
        (("dossier", "add", "卷-X", "--document", "NOPE"), "no document with tag or number"),
        (("dossier", "add", "卷-X", "--document", "D1", "--document", "D1"), "named twice"),
        (("dossier", "add", " 卷"), "no spaces at either end"),
        (("dossier", "add", "卷\x01"), "no control characters"),
        (("dossier", "add", "x" * 101), "1 to 100 characters"),
        (("dossier", "add", "卷-X", "--title", " "), "--title: empty"),
        (("dossier", "remove", "没有", "--document", "D1"), "no dossier"),
        (("dossier", "remove", "卷-X"), "at least one --document"),
    ],
)
def test_bad_input_is_one_line(cli: Ironroom, args: tuple[str, ...], why: str) -> None:
    assert why in cli("ledger", *args).failed()


def test_filing_twice_removing_what_is_not_there(cli: Ironroom) -> None:
    cli.one("ledger", "dossier", "add", "卷-A", "--document", "D1")
    assert "already" in cli("ledger", "dossier", "add", "卷-A", "--document", "D1").failed()
    why = cli("ledger", "dossier", "remove", "卷-A", "--document", "D2").failed()
    assert "is not in dossier '卷-A'" in why


def test_a_destroyed_document_stays_listed_but_no_longer_counts(cli: Ironroom) -> None:
    """A document destroyed after filing: shown, not counted; one destroyed cannot be
    filed. (The destruction here is written as the tracker would, straight to the
    status, so the audit chain is not checked in this test.)"""
    cli.one("ledger", "dossier", "add", "卷-A", "--document", "D1", "--document", "D3")
    con = sqlite3.connect(cli.path)
    try:
        con.execute("UPDATE documents SET status = 'destroyed' WHERE number = 'D3'")
        con.commit()
    finally:
        con.close()
    shown = cli.one("ledger", "dossier", "show", "卷-A")
    assert (shown["classification"], shown["counted"], shown["size"]) == ("秘密", 1, 2)
    assert [(d["number"], d["status"], d["counted"]) for d in shown["documents"]] == [
        ("D1", "in_cabinet", True),
        ("D3", "destroyed", False),
    ]
    cli.one("ledger", "dossier", "remove", "卷-A", "--document", "D3")
    why = cli("ledger", "dossier", "add", "卷-A", "--document", "D3").failed()
    assert "cannot be filed: it is destroyed" in why


def test_every_filing_is_audited(cli: Ironroom) -> None:
    cli.one("ledger", "dossier", "add", "卷-A", "--title", "t", "--document", "D1")
    cli.one("ledger", "dossier", "remove", "卷-A", "--document", "D1")
    log = cli("audit", "log", "--entity", "dossier_item").rows
    assert [e["action"] for e in log] == ["dossier.file", "dossier.unfile"]
    assert log[1]["after"] is None
    cli.verify()
