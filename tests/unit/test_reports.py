"""Reports (报表): the cells (pure, table-driven), the CSV and HTML renderers, and each
report's rows from a ledger written through the tracker's own code."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from protocol.timefmt import format_ts as ts_of
from tracker.bootstrap import rules_of
from tracker.config import TrackerConfig
from tracker.domain import model as dm
from tracker.domain.levels import Level
from tracker.reports import Column, Meta, Report
from tracker.reports import cells as c
from tracker.reports.render import to_csv, to_html
from tracker.reports.tables import (
    AUDIT,
    DESTRUCTION,
    INVENTORY,
    OVERDUE,
    REGISTER,
    audit_trail,
    build,
    meta,
    overdue,
    register,
)
from tracker.service.ledger import DocumentIn, Ledger
from tracker.service.writer import Writer
from tracker.store import models as m
from tracker.store.db import make_engine, migrate, readers, sessions

KEY = bytes.fromhex("a1" * 32)
NOW = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)  # 09:00 in Beijing
DAY = timedelta(days=1)

# -- cells -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "text"),
    [
        (None, ""),
        (0, "逾期 不足1天 / under 1 d overdue"),  # past due, within its first day
        (1, "逾期 1 天 / 1 d overdue"),
        (12, "逾期 12 天 / 12 d overdue"),
    ],
)
def test_overdue_text(days: int | None, text: str) -> None:
    assert c.overdue_text(days) == text


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        ("2026-11-26T01:00:00.000Z", "2026-11-26 09:00"),
        ("2026-11-26T16:30:59.999Z", "2026-11-27 00:30"),  # past midnight in Beijing
        ("2026-12-31T23:59:00.000Z", "2027-01-01 07:59"),
        (None, ""),
        ("", ""),
    ],
)
def test_when_in_beijing_time(ts: str | None, text: str) -> None:
    assert c.when(ts) == text


def test_moment_needs_an_aware_time() -> None:
    assert c.moment(NOW) == "2026-11-26 09:00:00"
    with pytest.raises(ValueError, match="timezone-aware"):
        c.moment(datetime(2026, 11, 26, 1, 0))


@pytest.mark.parametrize(
    ("years", "declassify_on", "text"),
    [
        (20, None, "20年"),
        (None, "2040-01-01", "2040-01-01 解密"),
        (10, "2036-06-30", "10年；2036-06-30 解密"),
        (None, None, ""),
    ],
)
def test_period(years: int | None, declassify_on: str | None, text: str) -> None:
    assert c.period(years, declassify_on) == text


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("in_cabinet", "在柜 in_cabinet"),
        ("on_loan", "借出 on_loan"),
        ("misplaced", "错放 misplaced"),
        ("missing", "缺失 missing"),
        ("destroyed", "已销毁 destroyed"),
        ("something_new", "something_new"),
    ],
)
def test_status(code: str, text: str) -> None:
    assert c.status(code) == text


@pytest.mark.parametrize(
    ("pid", "text"), [("p1", "张秘书 (p1)"), ("gone", "gone"), (None, ""), ("", "")]
)
def test_person(pid: str | None, text: str) -> None:
    assert c.person(pid, {"p1": "张秘书"}) == text


@pytest.mark.parametrize(
    ("numbers", "ordered"),
    [
        (["机要〔2026〕10号", "机要〔2026〕9号"], ["机要〔2026〕9号", "机要〔2026〕10号"]),
        (["F-10", "F-2", "F-1"], ["F-1", "F-2", "F-10"]),
        (["机要〔2027〕1号", "机要〔2026〕12号"], ["机要〔2026〕12号", "机要〔2027〕1号"]),
        (["B", "A", "A2", "A10"], ["A", "A2", "A10", "B"]),
        (["²", "1"], ["1", "²"]),  # a digit-like sign that is no decimal number
    ],
)
def test_natural_order(numbers: list[str], ordered: list[str]) -> None:
    assert sorted(numbers, key=c.natural) == ordered


@pytest.mark.parametrize(
    ("before", "after", "text"),
    [
        (None, {"a": 1}, "新增 added"),
        ({"a": 1}, None, "删除 removed"),
        (None, None, ""),
        ({"a": 1}, {"a": 1}, "无变化 unchanged"),
        (
            {"status": "in_cabinet", "holder_id": None, "title": "x"},
            {"status": "on_loan", "holder_id": "p1", "title": "x"},
            "holder_id: – → p1; status: in_cabinet → on_loan",
        ),
        ({"active": True}, {"active": False, "new": 3}, "active: true → false; new: – → 3"),
    ],
)
def test_changes(
    before: dict[str, object] | None, after: dict[str, object] | None, text: str
) -> None:
    assert c.changes(before, after) == text


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ("=1+1", "'=1+1"),
        ("+86 10 1234", "'+86 10 1234"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("机要〔2026〕7号", "机要〔2026〕7号"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_spreadsheet_safe(cell: str, safe: str) -> None:
    assert c.spreadsheet_safe(cell) == safe


# -- renderers ---------------------------------------------------------------------------

COLS = (Column("number", "文号", "Number"), Column("title", "标题", "Title"))
SAMPLE = Report(
    "register",
    "登记簿",
    "Register",
    COLS,
    (
        ("机要〔2026〕7号", '关于"年度"保密检查, 的通知'),
        ("=HYPERLINK(1)", "两行\n标题"),
        ("F-3", "<script>alert(1)</script> & 其他"),
    ),
    notes=(("说明 / Note", "<b>不是标记</b>"),),
    marked=frozenset({2}),
)
META = Meta(
    generated=NOW, rooms=("hq/room-101", "hq/room-102"), audit_count=7, audit_head="ab" * 32
)


def test_a_row_must_fit_the_columns() -> None:
    with pytest.raises(ValueError, match="a row of 1 cells for 2 columns"):
        Report("register", "登记簿", "Register", COLS, (("only one",),))


def test_csv_bom_one_header_row_crlf_and_rows_back() -> None:
    data = to_csv(SAMPLE)
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    assert text.startswith("文号 / Number,标题 / Title\r\n")
    assert text.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["文号 / Number", "标题 / Title"]
    assert rows[1:] == [
        ["机要〔2026〕7号", '关于"年度"保密检查, 的通知'],
        ["'=HYPERLINK(1)", "两行\n标题"],  # a formula neutralised, a line break kept
        ["F-3", "<script>alert(1)</script> & 其他"],
    ]


def test_csv_of_no_rows_is_the_header() -> None:
    empty = Report("overdue", "借阅与逾期", "Loans and overdue", COLS, ())
    assert to_csv(empty) == "\ufeff文号 / Number,标题 / Title\r\n".encode()


def test_html_title_block_table_and_escaping() -> None:
    page = to_html(SAMPLE, META)
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="zh-CN">' in page
    assert "size: A4" in page
    assert "thead { display: table-header-group; }" in page
    assert "page-break-inside: avoid" in page
    assert '"Noto Sans CJK SC"' in page and '"SimSun"' in page and "WenQuanYi" in page
    assert "<h1>登记簿<span" in page
    assert "hq/room-101、hq/room-102" in page
    assert "2026-11-26 09:00:00" in page
    assert '<dd class="row-count">3</dd>' in page
    assert f'<dd class="audit-head">7 {"ab" * 32}</dd>' in page
    assert '<th class="col-number">文号<br>Number</th>' in page
    # every typed text is escaped: no markup of a title or note reaches the page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; 其他" in page
    assert "<b>不是标记</b>" not in page and "&lt;b&gt;不是标记&lt;/b&gt;" in page
    assert "关于&#34;年度&#34;保密检查, 的通知" in page
    assert page.count('<tr class="marked">') == 1
    assert '<tr class="marked"><td class="col-number">F-3</td>' in page


def test_html_of_no_rows_says_so() -> None:
    empty = Report("overdue", "借阅与逾期", "Loans and overdue", COLS, ())
    page = to_html(empty, META)
    assert "无记录 / No rows." in page and "<table>" not in page


# -- the reports from a ledger ----------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """Two rooms; five documents (one lent and overdue, one lent and not yet due, one
    with a secrecy end date), written through the ledger and the writer."""
    e = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    migrate(e)
    lg = Ledger(sessions(e), rules_of(TrackerConfig()), actor="cli:test", reason="test", now=NOW)
    lg.room_add("hq", "room-101", "room-101-ctl", KEY, None)
    lg.room_add("hq", "room-102", "room-102-ctl", KEY, None)
    lg.cabinet_add("hq", "room-101", "c1", False)
    lg.person_add("p1", "张秘书", Level.SECRET, ["secretary"], "办公室")
    lg.person_add("p2", "李四", Level.SECRET, ["borrower"], "综合处")
    docs = [
        ("机要〔2026〕10号", "关于年度保密检查的通知", "机密", "1/2", None),
        ("机要〔2026〕10号", "关于年度保密检查的通知", "机密", "2/2", None),
        ("机要〔2026〕9号", "保密工作要点", "秘密", None, "2030-01-01"),
        ("内〔2026〕1号", "值班安排", "内部", None, None),
    ]
    for i, (number, title, level, copy, declassify) in enumerate(docs):
        lg.document_add(
            DocumentIn.build(
                number=number,
                title=title,
                classification=level,
                tag=f"AAAA000{i}",
                cabinet="hq/room-101/c1",
                copy=copy,
                scope=["dept:办公室", "person:p2"],
                issuer="省保密局",
                declassify_on=declassify,
            )
        )
    with lg.change() as w:
        room = w.s.scalars(select(m.Room).where(m.Room.room == "room-101")).one()
        d10 = w.s.scalars(select(m.Document).where(m.Document.tag == "AAAA0001")).one()
        d9 = w.s.scalars(select(m.Document).where(m.Document.tag == "AAAA0002")).one()
        w.execute(
            room,
            [
                dm.OpenLoan(d10.id, "p2", NOW - 10 * DAY, NOW - 3 * DAY, "badge"),
                dm.Move(d10.id, "on_loan", None, "p2"),
                dm.OpenLoan(d9.id, "p1", NOW, NOW + 14 * DAY, "badge"),
                dm.Move(d9.id, "on_loan", None, "p1"),
            ],
            cabinet_ids={},
            event_id="room-101-ctl:1:2",
            when=NOW,
        )
    try:
        yield e
    finally:
        e.dispose()


def test_register_rows(engine: Engine) -> None:
    with readers(engine)() as s:
        r = register(s)
    assert [col.header for col in r.columns][:4] == [
        "文号 / Number",
        "标题 / Title",
        "密级 / Classification",
        "份号 / Copy",
    ]
    registered = "2026-11-26 09:00"
    assert r.rows == (
        ("内〔2026〕1号", "值班安排", "内部", "1/1", "省保密局", "", "dept:办公室;person:p2",
         "在柜 in_cabinet", "hq/room-101/c1", "", registered),
        ("机要〔2026〕9号", "保密工作要点", "秘密", "1/1", "省保密局", "10年；2030-01-01 解密",
         "dept:办公室;person:p2", "借出 on_loan", "", "张秘书 (p1)", registered),
        ("机要〔2026〕10号", "关于年度保密检查的通知", "机密", "1/2", "省保密局", "20年",
         "dept:办公室;person:p2", "在柜 in_cabinet", "hq/room-101/c1", "", registered),
        ("机要〔2026〕10号", "关于年度保密检查的通知", "机密", "2/2", "省保密局", "20年",
         "dept:办公室;person:p2", "借出 on_loan", "", "李四 (p2)", registered),
    )  # fmt: skip


def test_overdue_marks_what_is_late_as_of_now(engine: Engine) -> None:
    with sessions(engine).begin() as s:  # a reminder step written, as the workflow does
        loan = s.scalars(select(m.Loan).where(m.Loan.person_id == "p2")).one()
        w = Writer(s, actor="tracker", at=NOW, cause="test")
        w.add("overdue.remind", m.OverdueReminder(loan_id=loan.id, step="remind-1",
                                                  document_id=loan.document_id,
                                                  person_id="p2", due_at=loan.due,
                                                  created=ts_of(NOW)))  # fmt: skip
    with readers(engine)() as s:
        r = overdue(s, NOW)
        later = overdue(s, NOW + 20 * DAY)
        within_a_day = overdue(s, NOW + 14 * DAY + timedelta(hours=23))
        due_now = overdue(s, NOW + 14 * DAY)
    assert [(row[0], row[3], row[4], row[5], row[8], row[9]) for row in r.rows] == [
        ("机要〔2026〕10号", "2/2", "李四 (p2)", "综合处", "2026-11-23 09:00",
         "逾期 3 天 / 3 d overdue"),
        ("机要〔2026〕9号", "1/1", "张秘书 (p1)", "办公室", "2026-12-10 09:00", ""),
    ]  # fmt: skip
    assert r.marked == frozenset({0})
    assert dict(r.notes)["逾期 / Overdue"] == "1 / 2"
    assert [row[10] for row in r.rows] == ["remind-1", ""]
    assert later.marked == frozenset({0, 1})
    assert due_now.marked == frozenset({0})  # due this very moment: not yet overdue
    assert within_a_day.marked == frozenset({0, 1})
    assert within_a_day.rows[1][9] == "逾期 不足1天 / under 1 d overdue"
    assert [row[9] for row in later.rows] == [
        "逾期 23 天 / 23 d overdue",
        "逾期 6 天 / 6 d overdue",
    ]


def test_audit_trail_and_a_broken_chain(engine: Engine, tmp_path: Path) -> None:
    with readers(engine)() as s:
        r = audit_trail(s)
        count, head = meta(s, NOW).audit_count, meta(s, NOW).audit_head
    assert r.ok and r.marked == frozenset()
    assert len(r.rows) == count and r.rows[-1][-1] == head
    assert [row[0] for row in r.rows] == [str(i) for i in range(1, count + 1)]
    assert dict(r.notes)["审计链校验 / Chain verification"] == (
        f"通过 ok: {count} 条 entries, head {head}"
    )
    moves = [row for row in r.rows if row[3] == "document.move"]
    assert moves and "status: in_cabinet → on_loan" in moves[0][6]
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        db.execute("UPDATE audit SET reason = 'rewritten' WHERE id = 3")
        db.execute("UPDATE audit SET after = 'not json' WHERE id = 4")
    with readers(engine)() as s:
        bad = audit_trail(s)
    assert not bad.ok
    assert bad.marked == frozenset({2})
    assert dict(bad.notes)["审计链校验 / Chain verification"].startswith(
        "失败 BROKEN at entry 3: entry 3 was altered"
    )
    assert bad.rows[3][6] == "None → not json"  # shown as stored, not a crash
    with readers(engine)() as s:
        page = to_html(bad, meta(s, NOW))
    assert '<dd class="note broken">失败 BROKEN at entry 3' in page


def test_build_by_name(engine: Engine) -> None:
    with readers(engine)() as s:
        report, info = build(s, "register", NOW)
        count, head = meta(s, NOW).audit_count, meta(s, NOW).audit_head
        with pytest.raises(ValueError, match="no report called 'nothing'"):
            build(s, "nothing", NOW)
    assert report.name == "register" and len(report.rows) == 4
    assert info == Meta(NOW, ("hq/room-101", "hq/room-102"), count, head)


@pytest.mark.parametrize("columns", [REGISTER, OVERDUE, AUDIT, INVENTORY, DESTRUCTION])
def test_printed_columns_share_the_page(columns: tuple[Column, ...]) -> None:
    assert sum(col.width for col in columns) == 100
    assert all(col.width > 0 for col in columns)
    assert len({col.key for col in columns}) == len(columns)
