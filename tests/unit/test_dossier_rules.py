"""Dossier rules: the computed marking (highest classification, latest declassification
date), periods, filing and names."""

from __future__ import annotations

from datetime import date

import pytest

from tracker.domain import dossier as dz
from tracker.domain.levels import Level

REG = date(2026, 11, 26)


def c(
    i: int,
    level: Level,
    period: int | None = None,
    until: date | None = None,
    status: str = "in_cabinet",
    registered: date = REG,
) -> dz.Content:
    return dz.Content(i, level, registered, period, until, status)


@pytest.mark.parametrize(
    ("contents", "level", "until", "counted", "level_from", "until_from"),
    [
        pytest.param([], None, None, 0, None, None, id="empty"),
        pytest.param([c(1, Level.SECRET, 20)], Level.SECRET, date(2046, 11, 26), 1, 1, 1, id="one"),
        pytest.param(
            [c(1, Level.CONFIDENTIAL, 10), c(2, Level.TOP_SECRET, 30), c(3, Level.SECRET, 20)],
            Level.TOP_SECRET,
            date(2056, 11, 26),
            3,
            2,
            2,
            id="highest and longest",
        ),
        pytest.param(
            [c(1, Level.TOP_SECRET, 5), c(2, Level.CONFIDENTIAL, 10)],
            Level.TOP_SECRET,
            date(2036, 11, 26),
            2,
            1,
            2,
            id="the longest period may come from a lower level",
        ),
        pytest.param(
            [c(1, Level.SECRET, 20, until=date(2030, 1, 1)), c(2, Level.CONFIDENTIAL, 5)],
            Level.SECRET,
            date(2031, 11, 26),
            2,
            1,
            2,
            id="a date wins over the document's own period",
        ),
        pytest.param(
            [c(1, Level.CONFIDENTIAL, None, until=date(2099, 12, 31)), c(2, Level.SECRET, 20)],
            Level.SECRET,
            date(2099, 12, 31),
            2,
            2,
            1,
            id="a declassification date later than any period",
        ),
        pytest.param(
            [c(1, Level.SECRET, 20), c(2, Level.SECRET, 20)],
            Level.SECRET,
            date(2046, 11, 26),
            2,
            1,
            1,
            id="a tie names the first",
        ),
        pytest.param(
            [c(1, Level.TOP_SECRET, 30, status="destroyed"), c(2, Level.SECRET, 20)],
            Level.SECRET,
            date(2046, 11, 26),
            1,
            2,
            2,
            id="destroyed does not count",
        ),
        pytest.param(
            [c(1, Level.TOP_SECRET, 30, status="returned")],
            None,
            None,
            0,
            None,
            None,
            id="given back does not count",
        ),
        pytest.param(
            [c(1, Level.INTERNAL), c(2, Level.PUBLIC)],
            Level.INTERNAL,
            None,
            2,
            1,
            None,
            id="no period at all",
        ),
        pytest.param(
            [c(1, Level.SECRET, 20, status="on_loan"), c(2, Level.SECRET, 1, status="missing")],
            Level.SECRET,
            date(2046, 11, 26),
            2,
            1,
            1,
            id="on loan and missing still count",
        ),
    ],
)
def test_marking(
    contents: list[dz.Content],
    level: Level | None,
    until: date | None,
    counted: int,
    level_from: int | None,
    until_from: int | None,
) -> None:
    mk = dz.marking(contents)
    assert mk == dz.Marking(level, until, counted, level_from, until_from)


def test_marking_changes_with_contents() -> None:
    contents = [c(1, Level.CONFIDENTIAL, 10)]
    before = dz.marking(contents)
    after = dz.marking([*contents, c(2, Level.SECRET, 20)])
    assert (before.classification, after.classification) == (Level.CONFIDENTIAL, Level.SECRET)
    assert (before.declassify_on, after.declassify_on) == (date(2036, 11, 26), date(2046, 11, 26))


@pytest.mark.parametrize(
    ("start", "years", "end"),
    [
        (date(2026, 11, 26), 10, date(2036, 11, 26)),
        (date(2024, 2, 29), 1, date(2025, 2, 28)),
        (date(2024, 2, 29), 4, date(2028, 2, 29)),
        (date(2026, 1, 1), 0, date(2026, 1, 1)),
    ],
)
def test_add_years(start: date, years: int, end: date) -> None:
    assert dz.add_years(start, years) == end


@pytest.mark.parametrize(
    ("status", "dossier", "current", "refused"),
    [
        ("in_cabinet", "卷-1", None, None),
        ("on_loan", "卷-1", None, None),
        ("in_cabinet", "卷-1", "卷-1", None),
        ("in_cabinet", "卷-1", "卷-2", "in dossier '卷-2' already"),
        ("destroyed", "卷-1", None, "destroyed"),
        ("returned", "卷-1", None, "given back"),
    ],
)
def test_filing_refusal(
    status: str, dossier: str, current: str | None, refused: str | None
) -> None:
    why = dz.filing_refusal(status, dossier, current)
    if refused is None:
        assert why is None
    else:
        assert why is not None and refused in why


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        ("卷-2026-001", None),
        ("A", None),
        ("", "1 to 100"),
        ("x" * 101, "1 to 100"),
        (" 卷", "spaces"),
        ("卷\n1", "control"),
    ],
)
def test_name_refusal(name: str, refused: str | None) -> None:
    why = dz.name_refusal(name)
    if refused is None:
        assert why is None
    else:
        assert why is not None and refused in why
