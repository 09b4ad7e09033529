"""A :class:`~tracker.reports.Report` as CSV (for spreadsheets) or HTML (to print)."""

from __future__ import annotations

import csv
import io
from zoneinfo import ZoneInfo

from tracker.reports import Meta, Report
from tracker.reports import cells as c


def to_csv(report: Report) -> bytes:
    """RFC 4180 (CRLF line ends, fields quoted where they must be), UTF-8 with a byte-order
    mark so spreadsheet programs open Chinese correctly. One header row, ``文号 / Number``:
    a spreadsheet's filter, sort and frozen header all expect exactly one. Only the table:
    the title block (time, audit head) is the printed report's."""
    buf = io.StringIO(newline="")
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow([col.header for col in report.columns])
    for row in report.rows:
        out.writerow([c.spreadsheet_safe(cell) for cell in row])
    return buf.getvalue().encode("utf-8-sig")


def to_html(report: Report, meta: Meta, *, zone: ZoneInfo = c.ZONE) -> str:
    """A self-contained page for A4: the title block, then the table with its header
    repeated on every printed page."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("tracker.reports", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html").render(
        report=report,
        meta=meta,
        generated=c.moment(meta.generated, zone),
        zone_note=c.ZONE_NOTE,
        rooms="、".join(meta.rooms) if meta.rooms else "—",
    )
