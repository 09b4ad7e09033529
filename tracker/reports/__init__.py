"""Reports (报表): the register, loans and overdue, an inventory run, the destruction
records and the audit trail, as CSV for spreadsheets and as HTML to print on A4.

A report is built by one function of :mod:`tracker.reports.tables` from a read-only
session, as plain values (:class:`Report`: columns with their Chinese and English
headers, rows of text); :mod:`tracker.reports.render` turns it into CSV or HTML. Time is
passed in (``now``), never read from a clock here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Column:
    key: str
    zh: str
    en: str
    #: share of the printed table's width, in percent (the columns of a report add up
    #: to 100; 0: what is left)
    width: int = 0

    @property
    def header(self) -> str:
        """The one header cell of CSV and HTML: ``文号 / Number``."""
        return f"{self.zh} / {self.en}"


@dataclass(frozen=True)
class Report:
    """One report's content: every cell is text (empty for nothing)."""

    name: str  # register | overdue | inventory | destruction | audit
    zh: str
    en: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[str, ...], ...]
    #: extra lines of the title block: (label, value)
    notes: tuple[tuple[str, str], ...] = ()
    #: indexes of rows printed marked (overdue loans, missing items, a broken chain)
    marked: frozenset[int] = field(default_factory=frozenset)
    #: the failure the report itself records (the audit chain broken), one line
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem

    def __post_init__(self) -> None:
        width = len(self.columns)
        for row in self.rows:
            if len(row) != width:
                raise ValueError(f"{self.name}: a row of {len(row)} cells for {width} columns")


@dataclass(frozen=True)
class Meta:
    """The title block's facts, so a printed report is tied to the ledger and its chain."""

    generated: datetime
    rooms: tuple[str, ...]  # SITE/ROOM of every room in the ledger
    audit_count: int
    audit_head: str


#: The reports, in the order the command line lists them.
NAMES = ("register", "overdue", "inventory", "destruction", "audit")
