"""Fuzzing the delivery CSV reader and ``DocumentIn.build``: whatever the file or the
fields hold, the only exception is ``LedgerError``, its message is one line, and what
is accepted is well formed."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tracker.domain.levels import Level
from tracker.service.ledger import CSV_COLUMNS, DocumentIn, LedgerError, read_delivery

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
LEVEL_NAMES = [
    "绝密",
    "机密",
    "秘密",
    "内部",
    "公开",
    "top-secret",
    "secret",
    "confidential",
    "internal",
    "public",
]


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def well_formed(doc: DocumentIn) -> None:
    assert isinstance(doc.classification, Level)
    assert doc.number == doc.number.strip() and doc.number
    assert doc.title.strip() and doc.tag.isascii() and doc.tag.isalnum()
    assert 8 <= len(doc.tag) <= 64 and doc.tag == doc.tag.upper()
    assert doc.cabinet.count("/") == 2
    assert 1 <= doc.copy_no <= doc.copies
    assert doc.period is None or 1 <= doc.period <= 100
    for d in (doc.declassify_on, doc.return_by):
        assert d is None or (len(d) == 10 and d[4] == d[7] == "-")


def read(folder: Path, data: bytes) -> list[tuple[int, DocumentIn]] | None:
    f = folder / "delivery.csv"
    f.write_bytes(data)
    try:
        rows = read_delivery(f)
    except LedgerError as exc:
        assert len(str(exc).splitlines()) == 1, str(exc)
        assert str(exc).startswith(str(f))
        return None
    assert rows
    lines = [line for line, _ in rows]
    assert lines == sorted(set(lines)) and lines[0] >= 2
    for _, doc in rows:
        well_formed(doc)
    return rows


# -- arbitrary files ---------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=2000))
@example(b"\xef\xbb\xbf")
@example(b"\x00\x00")
@example(b"number,title,classification,tag,cabinet\n\x00,\xff")
def test_any_bytes(folder: Path, data: bytes) -> None:
    read(folder, data)


@FUZZ
@given(st.text(max_size=1000), st.booleans())
@example('number,title,classification,tag,cabinet\n"unterminated', False)
@example("number,title,classification,tag,cabinet\na,b,c,d,e,f\n", True)
@example("number,number,title,classification,tag,cabinet\n", False)
def test_any_text(folder: Path, text: str, bom: bool) -> None:
    read(folder, (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass"))


# -- files that look like deliveries -----------------------------------------------------

field_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(LEVEL_NAMES),
    st.sampled_from(
        [
            "AAAA0001",
            "30751feb705c5904e3d50d70",
            "hq/room-101/c1",
            "1/2",
            "3/2",
            "person:p1;dept:办公室",
            "role:",
            "是",
            "否",
            "true",
            "30",
            "0",
            "1_0",
            "2026-12-31",
            "20261231",
            "2026-W53-4",
            "2026-02-30",
            " ",
            "\n",
            '"',
        ]
    ),
)


@st.composite
def deliveries(draw: st.DrawFn) -> bytes:
    header = draw(
        st.lists(
            st.one_of(st.sampled_from(CSV_COLUMNS), st.text(max_size=12)), min_size=0, max_size=14
        )
    )
    if draw(st.booleans()):  # mostly the required columns, so rows get parsed
        header = ["number", "title", "classification", "tag", "cabinet", *header]
    rows = draw(st.lists(st.lists(field_text, min_size=0, max_size=len(header) + 2), max_size=6))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=draw(st.sampled_from(["\n", "\r\n", "\r"])))
    w.writerow([f" {h} " if draw(st.booleans()) else h for h in header])
    w.writerows(rows)
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return bom + buf.getvalue().encode("utf-8", "surrogatepass")


@FUZZ
@given(deliveries())
def test_delivery_shaped_files(folder: Path, data: bytes) -> None:
    read(folder, data)


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(LEVEL_NAMES),
            st.integers(1, 5),
            st.integers(0, 4),
            st.text(alphabet='机密文件标题一二三 ,"\n', min_size=1, max_size=20),
        ),
        min_size=1,
        max_size=5,
    ),
    st.booleans(),
)
def test_good_deliveries_read_back(
    folder: Path, specs: list[tuple[str, int, int, str]], bom: bool
) -> None:
    """Valid rows written by a CSV writer come back as exactly those documents."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["number", "title", "classification", "tag", "cabinet", "copy"])
    for i, (level, copies, extra, title) in enumerate(specs):
        w.writerow(
            [f"文{i}号", title, level, f"{i:08X}", "hq/room-101/c1", f"{copies}/{copies + extra}"]
        )
    rows = read(folder, (b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode())
    if any(not title.strip() for *_, title in specs):
        assert rows is None  # a blank title is refused, never dropped
        return
    assert rows is not None
    got = [(d.number, d.title, d.classification, d.tag, d.copy_no, d.copies) for _, d in rows]
    assert got == [
        (f"文{i}号", title.strip(), Level.parse(level), f"{i:08X}", copies, copies + extra)
        for i, (level, copies, extra, title) in enumerate(specs)
    ]


# -- DocumentIn.build --------------------------------------------------------------------

value = st.one_of(st.none(), field_text, st.text())


@FUZZ
@given(
    st.fixed_dictionaries(
        {},
        optional={
            c: (st.lists(st.text(max_size=20), max_size=4) | value)
            if c == "scope"
            else (st.booleans() | value if c == "no_copying" else value)
            for c in CSV_COLUMNS
        },
    )
)
@example({"number": "n", "title": "t", "classification": "", "tag": "AAAA0001", "cabinet": "a/b/c"})
@example(
    {
        "number": "n",
        "title": "t",
        "classification": "机密",
        "tag": "AAAA0001",
        "cabinet": "a/b/c",
        "period": "１０",
    }
)
@example(
    {
        "number": "n",
        "title": "t",
        "classification": "机密",
        "tag": "AAAA0001",
        "cabinet": "a/b/c",
        "declassify_on": "20261231",
    }
)
def test_build_any_fields(raw: dict[str, object]) -> None:
    try:
        doc = DocumentIn.build(**raw)
    except LedgerError as exc:
        assert len(str(exc).splitlines()) == 1, str(exc)
        field = getattr(exc, "field", None)
        assert field in CSV_COLUMNS, exc
        assert str(exc).startswith(f"{field}: ") and not str(exc).startswith(
            f"{field}: {field}:"
        ), exc
        return
    well_formed(doc)
