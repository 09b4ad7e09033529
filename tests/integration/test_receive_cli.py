"""Receive and register (收文登记): ``ironroom ledger receive FILE.csv --note-count N`` and
``ironroom ledger deliveries`` as separate processes; the check of a delivery against
its note as a table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.integration.test_handover_cli import make_site, verified
from tests.integration.test_ledger_cli import ironroom, ok, qok, quick
from tracker.service.receive import Copy, delivery_problems

pytestmark = [pytest.mark.timeout(180)]

HEADER = "number,title,classification,tag,cabinet,copy,issuer,return_by"
NO7 = "机要〔2026〕7号"


def row(n: int, copy: str, number: str = NO7, issuer: str = "") -> str:
    return f"{number},通知,机密,30751FEB705C5904E3D50E{n:02d},hq/room-101/c1,{copy},{issuer},"


def write(path: Path, *rows: str) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def db(tmp_path: Path) -> str:
    return make_site(tmp_path)


def documents(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "ledger.db") as c:
        return int(c.execute("SELECT count(*) FROM documents").fetchone()[0])


# -- the check, as a table -------------------------------------------------------------

A, B = "A号", "B号"


@pytest.mark.parametrize(
    ("note", "rows", "registered", "partial", "problems"),
    [
        (2, [(A, 1, 2), (A, 2, 2)], {}, False, []),
        (1, [(A, 1, 1)], {}, False, []),
        (
            3,
            [(A, 1, 2), (A, 2, 2)],
            {},
            False,
            ["the delivery note says 3 copies, the file has 2 (1 short)"],
        ),
        (
            1,
            [(A, 1, 2), (A, 2, 2)],
            {},
            False,
            ["the delivery note says 1 copies, the file has 2 (1 extra)"],
        ),
        (2, [(A, 1, 3), (A, 3, 3)], {}, False, [f"{A}: short copies 2/3"]),
        (2, [(A, 1, 3), (A, 3, 3)], {}, True, []),
        (2, [(A, 1, 3), (A, 3, 3)], {A: frozenset({2})}, False, []),
        (
            2,
            [(A, 1, 2), (A, 1, 2)],
            {},
            False,
            [f"{A}: copy 1/2 twice (lines 2, 3)", f"{A}: short copies 2/2"],
        ),
        (
            2,
            [(A, 1, 2), (A, 2, 3)],
            {},
            True,
            [f"{A}: copies numbered out of 2 and 3 (lines 2, 3)"],
        ),
        (
            1,
            [(A, 2, 2)],
            {A: frozenset({1, 2})},
            False,
            [f"{A}: copy 2/2 is registered already (line 2)"],
        ),
        (
            3,
            [(A, 1, 1), (B, 2, 2), (B, 1, 2)],
            {},
            False,
            [],
        ),
        (2, [(A, 1, 1), (B, 2, 2)], {}, False, [f"{B}: short copies 1/2"]),
    ],
)
def test_delivery_problems(
    note: int,
    rows: list[tuple[str, int, int]],
    registered: dict[str, frozenset[int]],
    partial: bool,
    problems: list[str],
) -> None:
    copies = [Copy(line, n, k, total) for line, (n, k, total) in enumerate(rows, 2)]
    assert delivery_problems(note, copies, registered, partial=partial) == problems


# -- the command line ------------------------------------------------------------------


def test_receive_a_delivery_and_list_it(db: str, tmp_path: Path) -> None:
    f = write(tmp_path / "d.csv", row(1, "1/2"), row(2, "2/2"), row(3, "1/1", "机要〔2026〕8号"))
    rows = ok("ledger", "receive", f, "--note-count", "3", "--from", "市委办公室",
              "--note", "收〔2026〕12号", db=db)  # fmt: skip
    assert len(rows) == 1
    d = rows[0]
    assert (d["delivery"], d["kind"], d["issuer"], d["note"], d["note_count"]) == (
        1,
        "delivery",
        "市委办公室",
        "收〔2026〕12号",
        3,
    )
    assert (d["meeting"], d["file"]) == (None, "d.csv")
    assert [(x["number"], x["copy"]) for x in d["documents"]] == [
        (NO7, "1/2"),
        (NO7, "2/2"),
        ("机要〔2026〕8号", "1/1"),
    ]
    # every copy registered with the issuer of the delivery
    shown = qok("ledger", "show", NO7, db=db)
    assert [(x["copy"], x["issuer"], x["status"]) for x in shown] == [
        ("1/2", "市委办公室", "in_cabinet"),
        ("2/2", "市委办公室", "in_cabinet"),
    ]
    assert ok("ledger", "deliveries", db=db) == rows
    verified(db)


def test_meeting_documents(db: str, tmp_path: Path) -> None:
    f = write(tmp_path / "m.csv", row(1, "1/1", "会〔2026〕3号"))
    rows = ok("ledger", "receive", f, "--note-count", "1", "--meeting", "全市保密工作会议", db=db)
    assert (rows[0]["kind"], rows[0]["meeting"], rows[0]["issuer"]) == (
        "meeting",
        "全市保密工作会议",
        None,
    )
    f = write(tmp_path / "d.csv", row(2, "1/1", "机要〔2026〕9号"))
    ok("ledger", "receive", f, "--note-count", "1", db=db)
    assert [(d["delivery"], d["kind"]) for d in ok("ledger", "deliveries", db=db)] == [
        (1, "meeting"),
        (2, "delivery"),
    ]
    verified(db)


def test_partial_delivery(db: str, tmp_path: Path) -> None:
    f = write(tmp_path / "p.csv", row(1, "3/5"), row(2, "4/5"))
    r = ironroom("ledger", "receive", f, "--note-count", "2", db=db)
    assert r.failed() == f"ironroom: {f}: {NO7}: short copies 1/5, 2/5, 5/5; nothing imported"
    rows = ok("ledger", "receive", f, "--note-count", "2", "--partial", db=db)
    assert [x["copy"] for x in rows[0]["documents"]] == ["3/5", "4/5"]
    # the rest later: complete together with what is registered
    g = write(tmp_path / "q.csv", row(3, "1/5"), row(4, "2/5"), row(5, "5/5"))
    assert ok("ledger", "receive", g, "--note-count", "3", db=db)[0]["delivery"] == 2


@pytest.mark.parametrize(
    ("rows", "note", "extra", "why"),
    [
        (
            [row(1, "1/2"), row(2, "2/2")],
            "3",
            [],
            "the delivery note says 3 copies, the file has 2 (1 short)",
        ),
        (
            [row(1, "1/2"), row(2, "1/2")],
            "2",
            [],
            f"{NO7}: copy 1/2 twice (lines 2, 3); {NO7}: short copies 2/2",
        ),
        ([row(1, "1/2"), row(2, "2/3")], "2", [], f"{NO7}: copies numbered out of 2 and 3"),
    ],
)
def test_mismatch_imports_nothing(
    db: str, tmp_path: Path, rows: list[str], note: str, extra: list[str], why: str
) -> None:
    f = write(tmp_path / "bad.csv", *rows)
    r = ironroom("ledger", "receive", f, "--note-count", note, *extra, db=db)
    line = r.failed()
    assert line.startswith(f"ironroom: {f}: {why}"), line
    assert line.endswith("; nothing imported")
    assert documents(tmp_path) == 0
    assert ok("ledger", "deliveries", db=db) == []


def test_receive_refusals(db: str, tmp_path: Path) -> None:
    f = write(tmp_path / "i.csv", row(1, "1/1", issuer="省厅"))
    r = ironroom("ledger", "receive", f, "--note-count", "1", "--from", "市委", db=db)
    assert r.failed() == (
        f"ironroom: {f}: line 2, column 'issuer': '省厅', but the delivery is from '市委'; "
        "nothing imported"
    )
    r = ironroom("ledger", "receive", f, "--note-count", "0", db=db)
    assert r.failed() == "ironroom: --note-count 0: a delivery note counts at least 1 copy"
    r = ironroom("ledger", "receive", f, db=db)
    assert r.code == 2 and "--note-count" in r.err
    bad = tmp_path / "b.csv"
    bad.write_text(HEADER + "\n" + row(1, "1/1").replace("机密", "很密") + "\n", encoding="utf-8")
    r = ironroom("ledger", "receive", bad, "--note-count", "1", db=db)
    assert r.failed().startswith(f"ironroom: {bad}: line 2, column 'classification': ")
    # a tag bound already: named by line, nothing imported
    ok("ledger", "receive", f, "--note-count", "1", db=db)
    g = write(tmp_path / "g.csv", row(2, "1/1", "X-1"), row(1, "1/1", "X-2"))
    r = quick("ledger", "receive", g, "--note-count", "2", db=db)
    assert r.failed() == (
        f"ironroom: {g}: line 3: tag 30751FEB705C5904E3D50E01 is bound to another document "
        "already; nothing imported"
    )
    assert documents(tmp_path) == 1
    assert len(ok("ledger", "deliveries", db=db)) == 1
    verified(db)
