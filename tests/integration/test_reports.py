"""``ironroom report ...`` as real processes on a ledger set up with ``ironroom ledger``
(Chinese titles, a delivery of a few hundred rows, loans from signed controller events):
the CSV starts with the byte-order mark and parses back to the ledger's rows; the HTML
loads in headless Chromium and prints on A4 pages, several for the register."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from protocol.envelope import make_event
from protocol.hours import Calendar, parse_weekly
from tracker.bootstrap import open_store, rules_of
from tracker.config import TrackerConfig
from tracker.ingest.pipeline import Message, Processor

pytestmark = [pytest.mark.timeout(300)]

IRONROOM = [sys.executable, "-m", "ironroom.cli"]
ROOT = Path(__file__).resolve().parents[2]
KEY = bytes.fromhex("5a" * 32)
CONTROLLER = "room-101-ctl"
BOM = b"\xef\xbb\xbf"
DELIVERY = 300  # rows of the delivery: the register prints on several pages
TRICKY = '=SUM(1,2) 关于"印发"<保密>规定的通知, 附件'  # a formula, quotes, markup, a comma
EPC_LATE = "E2801170000002000000A001"  # lent 30 days ago: overdue
EPC_LENT = "E2801170000002000000A002"  # lent a minute ago: not yet due
A4 = (595.0, 842.0)  # points


@dataclass
class Result:
    code: int
    out: bytes
    err: str

    def failed(self) -> str:
        """Exit 2, nothing on stdout, one line on stderr; returns it."""
        assert self.code == 2, (self.code, self.out[:300], self.err)
        assert self.out == b"", self.out[:300]
        lines = self.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("ironroom: "), self.err
        return lines[0]


def ironroom(*args: str | Path, db: str) -> Result:
    env = {k: v for k, v in os.environ.items() if k != "IRONROOM_DB"}
    env["PYTHONPATH"] = str(ROOT)
    p = subprocess.run(
        [*IRONROOM, *map(str, args), "--db", db], capture_output=True, env=env, timeout=120
    )
    return Result(p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"))


def ok(*args: str | Path, db: str) -> bytes:
    r = ironroom(*args, db=db)
    assert r.code == 0, (args, r.code, r.err)
    return r.out


def rows_of(out: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.decode().splitlines() if line]


def feed(
    db: str, t0: datetime, events: list[tuple[timedelta, str, dict[str, Any]]], *, boot: int = 1
) -> None:
    """Signed events of hq/room-101, applied by the tracker's own pipeline (the only way
    a loan is written: a badge and a tag leaving the cabinet)."""
    store = open_store(db)
    always = parse_weekly(
        {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}, "hours"
    )
    cfg = replace(TrackerConfig(), calendar=Calendar(timezone="UTC", weekly=always))

    class Clock:
        t = t0

        def now(self) -> datetime:
            return self.t

        def monotonic(self) -> float:
            return 0.0

    class Pub:
        def publish(self, topic: str, payload: bytes, *, retain: bool) -> bool:
            return True

        def ack(self, messages: Any) -> None:
            pass

    clock = Clock()
    p = Processor(store.sessions, rules_of(cfg), clock=clock, publisher=Pub())
    p.load()
    try:
        for seq, (after, type_, data) in enumerate(events, 1):
            clock.t = t0 + after
            topic, payload = make_event(
                KEY,
                site="hq",
                room="room-101",
                controller=CONTROLLER,
                boot=boot,
                seq=seq,
                ts=clock.t,
                type=type_,
                data=data,
            )
            p.process([Message(topic, payload, clock.t, 0.0)])
    finally:
        store.engine.dispose()


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The room, a cabinet, two people, a delivery of DELIVERY documents and a few more,
    and two open loans (one overdue), through the command line and the ingest."""
    d = tmp_path_factory.mktemp("reports")
    db = f"sqlite:///{d / 'ledger.db'}"
    (d / "key").write_text(KEY.hex() + "\n")
    ok("ledger", "init", db=db)
    ok("ledger", "room", "add", "hq", "room-101", "--controller", CONTROLLER, "--key-file",
       d / "key", db=db)  # fmt: skip
    ok("ledger", "cabinet", "add", "hq", "room-101", "c1", db=db)
    ok("ledger", "person", "add", "p1", "--name", "张秘书", "--clearance", "机密", "--role",
       "secretary", "--dept", "办公室", db=db)  # fmt: skip
    ok("ledger", "badge", "add", "04A1B2C3", "--person", "p1", db=db)
    ok("ledger", "person", "add", "p2", "--name", "李四", "--clearance", "机密", "--role",
       "borrower", "--dept", "综合处", db=db)  # fmt: skip
    ok("ledger", "badge", "add", "04A1B2C4", "--person", "p2", db=db)
    lines = ["number,title,classification,tag,cabinet,copy,scope,issuer"]
    for i in range(1, DELIVERY + 1):
        lines.append(
            f"机要〔2026〕{i}号,关于做好第{i}批涉密载体清查工作的通知,机密,"
            f"E28011700000020{i:09X},hq/room-101/c1,1/1,dept:办公室,省保密局"
        )
    (d / "delivery.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ok("ledger", "import", d / "delivery.csv", db=db)
    ok("ledger", "document", "add", "--number", "机发〔2026〕88号", "--title", TRICKY,
       "--classification", "秘密", "--tag", EPC_LATE, "--cabinet", "hq/room-101/c1",
       "--copy", "1/2", "--declassify-on", "2031-12-31", db=db)  # fmt: skip
    ok("ledger", "document", "add", "--number", "机发〔2026〕88号", "--title", TRICKY,
       "--classification", "秘密", "--tag", EPC_LENT, "--cabinet", "hq/room-101/c1",
       "--copy", "2/2", "--scope", "person:p2", db=db)  # fmt: skip
    # `ironroom report` takes its time from the system clock: the loans are placed
    # around it, one due weeks ago, one due days from now.
    now = datetime.now(UTC).replace(microsecond=0)
    badge = {"reader": "cabinet:c1", "uid": "04A1B2C3", "auth": "verified"}
    badge2 = {"reader": "cabinet:c1", "uid": "04A1B2C4", "auth": "verified"}
    minute = timedelta(minutes=1)
    feed(
        db,
        now - timedelta(days=30),
        [
            (timedelta(0), "badge.presented", badge),
            (minute, "tag.departed", {"reader": "cabinet:c1", "epc": EPC_LATE}),
            (timedelta(days=30) - 2 * minute, "badge.presented", badge2),
            (timedelta(days=30) - minute, "tag.departed",
             {"reader": "cabinet:c1", "epc": EPC_LENT}),
        ],
    )  # fmt: skip
    return d


@pytest.fixture
def db(ledger: Path, tmp_path: Path) -> str:
    """This test's copy of the ledger."""
    for f in ledger.iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def parse_csv(data: bytes) -> list[list[str]]:
    assert data.startswith(BOM), data[:20]
    text = data[len(BOM) :].decode("utf-8")
    assert text.endswith("\r\n") and text.count("\n") == text.count("\r\n")  # RFC 4180
    return list(csv.reader(io.StringIO(text, newline="")))


def by_header(table: list[list[str]]) -> list[dict[str, str]]:
    header, *rows = table
    return [dict(zip(header, row, strict=True)) for row in rows]


# -- CSV -----------------------------------------------------------------------------


def test_register_csv_is_the_ledger(db: str, tmp_path: Path) -> None:
    data = ok("report", "register", db=db)
    table = parse_csv(data)
    assert table[0] == [
        "文号 / Number", "标题 / Title", "密级 / Classification", "份号 / Copy",
        "发文机关 / Issuer", "保密期限 / Secrecy period", "知悉范围 / Scope", "状态 / Status",
        "所在柜 / Cabinet", "持有人 / Holder", "登记时间 / Registered",
    ]  # fmt: skip
    rows = by_header(table)
    assert len(rows) == DELIVERY + 2
    # the same bytes with --out and with --format csv (the default)
    ok("report", "register", "--format", "csv", "--out", tmp_path / "r.csv", db=db)
    assert (tmp_path / "r.csv").read_bytes() == data
    # every row against `ironroom ledger show`, in natural order of the numbers
    numbers = [r["文号 / Number"] for r in rows]
    assert numbers[:3] == ["机发〔2026〕88号", "机发〔2026〕88号", "机要〔2026〕1号"]
    assert numbers[2 + 9 : 2 + 11] == ["机要〔2026〕10号", "机要〔2026〕11号"]
    shown = {d["tag"]: d for d in rows_of(ok("ledger", "show", "机发〔2026〕88号", db=db))}
    for i in range(1, DELIVERY + 1, 37):
        shown |= {d["tag"]: d for d in rows_of(ok("ledger", "show", f"机要〔2026〕{i}号", db=db))}
    by_copy = {(r["文号 / Number"], r["份号 / Copy"]): r for r in rows}
    for d in shown.values():
        r = by_copy[(d["number"], d["copy"])]
        title = d["title"] if not d["title"].startswith("=") else "'" + d["title"]
        assert r["标题 / Title"] == title
        assert r["密级 / Classification"] == d["classification"]
        assert r["状态 / Status"].split(" ")[-1] == d["status"]
        assert r["所在柜 / Cabinet"] == (d["cabinet"] or "")
        names = {"p1": "张秘书 (p1)", "p2": "李四 (p2)", None: ""}
        assert r["持有人 / Holder"] == names[d["holder"]]
        assert r["知悉范围 / Scope"] == ";".join(d["scope"])
        assert r["发文机关 / Issuer"] == (d["issuer"] or "")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", r["登记时间 / Registered"])
    late = by_copy[("机发〔2026〕88号", "1/2")]
    assert late["标题 / Title"] == "'" + TRICKY  # never run as a formula
    assert late["保密期限 / Secrecy period"] == "10年；2031-12-31 解密"
    assert late["状态 / Status"] == "借出 on_loan" and late["所在柜 / Cabinet"] == ""
    assert by_copy[("机要〔2026〕5号", "1/1")]["保密期限 / Secrecy period"] == "20年"


def test_overdue_csv(db: str) -> None:
    rows = by_header(parse_csv(ok("report", "overdue", db=db)))
    loans = rows_of(ok("ledger", "loans", "--open", db=db))
    assert len(rows) == len(loans) == 2
    late, lent = rows  # soonest due first
    assert [r["份号 / Copy"] for r in rows] == ["1/2", "2/2"]
    assert late["借阅人 / Borrower"] == "张秘书 (p1)" and late["部门 / Department"] == "办公室"
    assert lent["借阅人 / Borrower"] == "李四 (p2)" and lent["部门 / Department"] == "综合处"
    assert re.fullmatch(r"逾期 \d+ 天 / \d+ d overdue", late["逾期 / Overdue"]), late
    assert lent["逾期 / Overdue"] == ""
    assert late["方式 / Kind"] == "借出 badge"
    due = {ln["tag"]: ln["due"] for ln in loans}
    assert late["应还时间 / Due"] == beijing(due[EPC_LATE])
    assert lent["应还时间 / Due"] == beijing(due[EPC_LENT])


def beijing(ts: str) -> str:
    t = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ") + timedelta(hours=8)
    return t.strftime("%Y-%m-%d %H:%M")


def test_audit_csv_is_the_chain_and_reports_change_nothing(db: str) -> None:
    head_before = ok("audit", "head", db=db).decode().split()
    rows = by_header(parse_csv(ok("report", "audit", db=db)))
    entries = rows_of(ok("audit", "log", db=db))
    assert len(rows) == len(entries) == int(head_before[0])
    assert [r["序号 / Entry"] for r in rows] == [str(e["id"]) for e in entries]
    assert [r["哈希 / Hash"] for r in rows] == [e["hash"] for e in entries]
    assert [r["操作 / Action"] for r in rows] == [e["action"] for e in entries]
    assert rows[-1]["哈希 / Hash"] == head_before[1]
    for name in ("register", "overdue", "audit"):
        ok("report", name, "--format", "html", db=db)
    # reading writes nothing: the same head, and the chain verifies
    assert ok("audit", "head", db=db).decode().split() == head_before
    assert ok("audit", "verify", db=db).decode().startswith("audit chain ok: ")


def test_a_broken_chain_is_reported_and_exits_1(db: str, tmp_path: Path) -> None:
    path = db.removeprefix("sqlite:///")
    with sqlite3.connect(path) as c:
        c.execute("UPDATE audit SET reason = 'rewritten' WHERE id = 5")
    r = ironroom("report", "audit", "--format", "html", "--out", tmp_path / "a.html", db=db)
    assert r.code == 1, r.err
    assert r.err.splitlines() == ["ironroom: audit chain BROKEN at entry 5: entry 5 was altered "
                                  "(hash mismatch)"]  # fmt: skip
    page = (tmp_path / "a.html").read_text(encoding="utf-8")
    assert '<dd class="note broken">失败 BROKEN at entry 5' in page
    assert page.count('<tr class="marked">') == 1


# -- errors -------------------------------------------------------------------------


def test_errors_are_one_line(db: str, tmp_path: Path) -> None:
    r = ironroom("report", "register", "--out", tmp_path / "no" / "such" / "dir.csv", db=db)
    assert "No such file or directory" in r.failed()
    assert not (tmp_path / "no").exists()
    r = ironroom("report", "register", "--format", "pdf", db=db)
    assert r.code == 2 and "invalid choice: 'pdf'" in r.err
    r = ironroom("report", "nothing", db=db)
    assert r.code == 2 and "invalid choice: 'nothing'" in r.err
    r = ironroom("report", "register", db=f"sqlite:///{tmp_path / 'gone' / 'x.db'}")
    assert "does not exist" in r.failed()


def test_out_replaces_a_file_whole(db: str, tmp_path: Path) -> None:
    out = tmp_path / "register.csv"
    out.write_text("old contents\n")
    ok("report", "register", "--out", out, db=db)
    assert out.read_bytes().startswith(BOM + "文号 / Number,".encode())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".register")] == []


# -- HTML in Chromium -------------------------------------------------------------------


def chromium() -> str:
    """The Chromium binary; without one the test fails and says what to install."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name) or (
            f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
        )
        if found:
            return found
    pytest.fail(
        "headless Chromium is needed to load and print the HTML reports: install the Debian "
        "packages chromium and fonts-noto-cjk (apt-get install -y chromium fonts-noto-cjk, "
        "or make install)"
    )


def headless(page: Path, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[bytes]:
    profile = tmp_path / "chromium-profile"
    p = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}",
         *flags, page.resolve().as_uri()],
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    return p


def pdf_pages(pdf: bytes) -> list[tuple[float, float]]:
    """Each page's size in points, from its MediaBox (Chromium writes page objects as
    plain dictionaries)."""
    assert pdf.startswith(b"%PDF-"), pdf[:20]
    pages = re.findall(rb"/Type\s*/Page\b(?!s)", pdf)
    boxes = re.findall(rb"/MediaBox\s*\[\s*([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s*\]", pdf)
    assert len(boxes) == len(pages), (len(boxes), len(pages))
    return [(float(x1) - float(x0), float(y1) - float(y0)) for x0, y0, x1, y1 in boxes]


def is_a4(size: tuple[float, float]) -> bool:
    return abs(size[0] - A4[0]) < 1.5 and abs(size[1] - A4[1]) < 1.5


@pytest.mark.parametrize("name", ["register", "overdue", "audit"])
def test_html_loads_in_chromium(db: str, tmp_path: Path, name: str) -> None:
    page = tmp_path / f"{name}.html"
    ok("report", name, "--format", "html", "--out", page, db=db)
    stdout = ok("report", name, "--format", "html", db=db).decode("utf-8")
    assert stdout.startswith("<!DOCTYPE html>")
    csv_rows = len(parse_csv(ok("report", name, db=db))) - 1
    dom = headless(page, tmp_path, "--dump-dom").stdout.decode("utf-8")
    body = dom[dom.index("<tbody>") : dom.index("</tbody>")]
    assert body.count("<tr") == csv_rows
    assert re.search(rf'<dd class="row-count">{csv_rows}</dd>', dom)
    head = ok("audit", "head", db=db).decode().split()
    assert f'<dd class="audit-head">{head[0]} {head[1]}</dd>' in dom
    assert "<thead>" in dom and "hq/room-101" in dom
    if name == "register":
        assert "关于做好第300批涉密载体清查工作的通知" in body
        # the title typed with markup is text in the page, not markup
        assert "&lt;保密&gt;" in body and "<保密>" not in body
    if name == "overdue":
        assert body.count('<tr class="marked">') == 1
    if name == "audit":
        assert "通过 ok: " in dom


def test_register_prints_on_several_a4_pages_in_a_chinese_font(db: str, tmp_path: Path) -> None:
    page = tmp_path / "register.html"
    ok("report", "register", "--format", "html", "--out", page, db=db)
    pdf_path = tmp_path / "register.pdf"
    headless(page, tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf_path}")
    pdf = pdf_path.read_bytes()
    sizes = pdf_pages(pdf)
    assert len(sizes) >= 5, sizes  # 302 rows of a register
    assert all(is_a4(s) for s in sizes), sizes
    # the Chinese is set in a CJK font embedded in the PDF (no boxes for missing glyphs)
    fonts = set(re.findall(rb"/(?:BaseFont|FontName)\s*/([A-Za-z0-9+_-]+)", pdf))
    assert any(b"CJK" in f or b"SourceHan" in f or b"WenQuanYi" in f for f in fonts), fonts


def test_a_short_report_is_one_a4_page(db: str, tmp_path: Path) -> None:
    page = tmp_path / "overdue.html"
    ok("report", "overdue", "--format", "html", "--out", page, db=db)
    pdf_path = tmp_path / "overdue.pdf"
    headless(page, tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf_path}")
    sizes = pdf_pages(pdf_path.read_bytes())
    assert len(sizes) == 1 and is_a4(sizes[0]), sizes


# -- inventory (清查) -------------------------------------------------------------------

F2 = "E28011700000020A1B2C3D02"
F3 = "E28011700000020A1B2C3D03"
STRANGER = "E2801170000000000000FFFF"


@pytest.fixture
def swept(tmp_path: Path) -> Iterator[str]:
    """A room of three folders swept once through the tracker's own ingest: one present,
    one in the wrong cabinet, one missing, and a tag nobody registered."""
    from tests.unit.test_tracker_ingest import FOLDER, make_world
    from tracker.service.inventory import start_run
    from tracker.service.ledger import DocumentIn

    w = make_world(tmp_path)
    db = f"sqlite:///{tmp_path / 't.db'}"
    try:
        r = ironroom("report", "inventory", db=db)
        assert "no inventory run yet" in r.failed()
        for number, tag, cabinet in (("机要〔2026〕2号", F2, "c1"), ("机要〔2026〕3号", F3, "c2")):
            w.ledger.document_add(
                DocumentIn.build(number=number, title="关于清查的通知", classification="机密",
                                 tag=tag, cabinet=f"hq/room-101/{cabinet}")
            )  # fmt: skip
        w.proc.process(
            [w.room.event("controller.started", {"version": "1", "config_hash": "x",
                                                 "points": [], "readers": ["cabinet:c1",
                                                                           "cabinet:c2"]})]
        )  # fmt: skip
        start_run(w.ledger, "hq", "room-101")
        w.proc.tick()
        asked = sorted(
            (c for c in w.pub.commands() if c.type == "inventory.run"),
            key=lambda c: c.data["reader"],
        )
        for cmd, tags in zip(asked, ([FOLDER], [F2, STRANGER]), strict=True):
            data = {"command_id": cmd.id, "ok": True, "error": None,
                    "reader": cmd.data["reader"], "tags": tags}  # fmt: skip
            w.proc.process([w.room.event("command.result", data)])
    finally:
        w.store.engine.dispose()
    yield db


def test_inventory_report(swept: str, tmp_path: Path) -> None:
    from tests.unit.test_tracker_ingest import FOLDER

    latest = ok("report", "inventory", db=swept)
    assert ok("report", "inventory", "1", db=swept) == latest
    rows = by_header(parse_csv(latest))
    assert [(r["结果 / Outcome"], r["标签 / Tag"], r["读到位置 / Read in"]) for r in rows] == [
        ("缺失 missing", F3, ""),
        ("错柜 wrong_cabinet", F2, "hq/room-101/c2"),
        ("未登记标签 unknown_tag", STRANGER, "hq/room-101/c2"),
        ("在位 present", FOLDER, "hq/room-101/c1"),
    ]
    missing = rows[0]
    assert missing["文号 / Number"] == "机要〔2026〕3号"
    assert missing["标题 / Title"] == "关于清查的通知"
    assert missing["存放柜 / Home"] == "hq/room-101/c2"
    assert (missing["清查前 / Before"], missing["清查后 / After"]) == (
        "在柜 in_cabinet",
        "缺失 missing",
    )
    page = tmp_path / "inventory.html"
    ok("report", "inventory", "--format", "html", "--out", page, db=swept)
    dom = headless(page, tmp_path, "--dump-dom").stdout.decode("utf-8")
    body = dom[dom.index("<tbody>") : dom.index("</tbody>")]
    assert body.count("<tr") == 4 and body.count('<tr class="marked">') == 3
    assert "1 · hq/room-101 · done" in dom
    assert "缺失 missing 1; 错柜 wrong_cabinet 1; 未登记标签 unknown_tag 1; 在位 present 1" in dom
    assert ok("audit", "verify", db=swept).decode().startswith("audit chain ok: ")
    assert "no inventory run 99" in ironroom("report", "inventory", "99", db=swept).failed()
    for bad in ("abc", "0", "-1"):
        r = ironroom("report", "inventory", bad, db=swept)
        assert f"inventory run {bad!r}: expected a run number" in r.failed()


# -- destruction (销毁) -----------------------------------------------------------------


def destroy(db: str, numbers: list[str], at: datetime, boot: int) -> None:
    """A destruction list requested and approved on the command line, carried out by
    two witnesses' badges at the desk (the tracker's own ingest)."""
    out = ok("ledger", "request", "destroy", *numbers, "--by", "p1", db=db)
    request = rows_of(out)[0]
    ok("ledger", "approve", str(request["id"]), "--by", "p3", db=db)
    feed(
        db,
        at,
        [
            (timedelta(0), "badge.presented", {"reader": "desk", "uid": "04A1B2C3",
                                               "auth": "verified"}),
            (timedelta(seconds=20), "badge.presented", {"reader": "desk", "uid": "04A1B2C4",
                                                        "auth": "verified"}),
        ],
        boot=boot,
    )  # fmt: skip


def test_destruction_report(db: str, tmp_path: Path) -> None:
    r = by_header(parse_csv(ok("report", "destruction", db=db)))
    assert r == []
    at = datetime(2026, 11, 20, 2, 30, tzinfo=UTC)
    ok("ledger", "person", "add", "p3", "--name", "赵处长", "--clearance", "机密", "--role",
       "dept-head", "--dept", "办公室", db=db)  # fmt: skip
    destroy(db, ["机要〔2026〕3号", "机要〔2026〕1号"], at, boot=2)
    destroy(db, ["机要〔2026〕2号"], at + timedelta(days=1), boot=3)
    rows = by_header(parse_csv(ok("report", "destruction", db=db)))
    assert [(x["记录号 / Record"], x["文号 / Number"]) for x in rows] == [
        ("1", "机要〔2026〕1号"), ("1", "机要〔2026〕3号"), ("2", "机要〔2026〕2号"),
    ]  # fmt: skip
    first = rows[0]
    assert first["销毁时间 / Destroyed"] == "2026-11-20 10:30"
    assert first["地点 / Place"] == "hq/room-101 desk"
    assert first["标题 / Title"] == "关于做好第1批涉密载体清查工作的通知"
    assert (first["密级 / Classification"], first["份号 / Copy"]) == ("机密", "1/1")
    assert first["标签 / Tag"] == f"E28011700000020{1:09X}"
    assert first["销毁前 / Before"] == "在柜 in_cabinet"
    assert first["批准人 / Approved by"] == "赵处长 (p3)"
    assert first["监销人一 / Witness 1"] == "张秘书 (p1) 04A1B2C3 2026-11-20 10:30"
    assert first["监销人二 / Witness 2"] == "李四 (p2) 04A1B2C4 2026-11-20 10:30"
    # the register shows them destroyed; the chain holds every record
    table = parse_csv(ok("report", "register", db=db))
    register = {x["文号 / Number"]: x for x in by_header(table)}
    assert register["机要〔2026〕3号"]["状态 / Status"] == "已销毁 destroyed"
    assert ok("audit", "verify", db=db).decode().startswith("audit chain ok: ")
    page = tmp_path / "destruction.html"
    ok("report", "destruction", "--format", "html", "--out", page, db=db)
    dom = headless(page, tmp_path, "--dump-dom").stdout.decode("utf-8")
    body = dom[dom.index("<tbody>") : dom.index("</tbody>")]
    assert body.count("<tr") == 3 and "李四 (p2) 04A1B2C4" in body
    assert "2 次 records, 3 件 documents" in dom


# -- PostgreSQL -------------------------------------------------------------------------


def test_every_report_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    db = postgres_url
    (tmp_path / "key").write_text(KEY.hex() + "\n")
    ok("ledger", "room", "add", "hq", "room-101", "--controller", CONTROLLER, "--key-file",
       tmp_path / "key", db=db)  # fmt: skip
    ok("ledger", "cabinet", "add", "hq", "room-101", "c1", db=db)
    ok("ledger", "document", "add", "--number", "机要〔2026〕7号", "--title",
       "关于年度保密检查的通知", "--classification", "机密", "--tag", EPC_LATE,
       "--cabinet", "hq/room-101/c1", db=db)  # fmt: skip
    register = by_header(parse_csv(ok("report", "register", db=db)))
    assert [(r["文号 / Number"], r["标题 / Title"]) for r in register] == [
        ("机要〔2026〕7号", "关于年度保密检查的通知")
    ]
    assert by_header(parse_csv(ok("report", "overdue", db=db))) == []
    assert by_header(parse_csv(ok("report", "destruction", db=db))) == []
    audit = by_header(parse_csv(ok("report", "audit", db=db)))
    assert [r["操作 / Action"] for r in audit] == ["room.add", "cabinet.add", "document.register"]
    assert "no inventory run yet" in ironroom("report", "inventory", db=db).failed()
    page = ok("report", "register", "--format", "html", db=db).decode("utf-8")
    assert "关于年度保密检查的通知" in page and '<dd class="row-count">1</dd>' in page
