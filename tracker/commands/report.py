"""``ironroom report register|overdue|inventory|destruction|audit [--format csv|html]
[--out FILE]``: the reports (报表), CSV for spreadsheets (the default) or HTML to print
on A4; without ``--out`` the report goes to stdout."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

HELP = {
    "register": "登记簿: every document, where it is and who holds it",
    "overdue": "借阅与逾期: open loans, the overdue ones marked",
    "inventory": "清查: the items of an inventory run (default: the latest)",
    "destruction": "销毁: the destruction records",
    "audit": "审计: the audit entries and the chain's verification",
}


def add_parsers(ledger: Any, top: Any) -> None:
    from tracker.cli import _db
    from tracker.reports import NAMES

    reports = top.add_parser(
        "report", help="reports (报表): CSV for spreadsheets, HTML to print on A4"
    ).add_subparsers(dest="report", required=True, metavar="REPORT")
    for name in NAMES:
        p = reports.add_parser(name, help=HELP[name])
        if name == "inventory":
            p.add_argument("run_id", nargs="?", help="the inventory run (default: the latest)")
        p.add_argument("--format", choices=("csv", "html"), default="csv", help="default: csv")
        p.add_argument("--out", metavar="FILE", help="write here (default: stdout)")
        _db(p)
        p.set_defaults(run=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from tracker.cli import _ONE_LINE, _read
    from tracker.clock import SystemClock
    from tracker.reports.render import to_csv, to_html
    from tracker.reports.tables import build

    now = SystemClock().now()
    run_id = getattr(args, "run_id", None)
    report, meta = _read(args, lambda s: build(s, args.report, now, run_id=run_id))
    data = to_csv(report) if args.format == "csv" else to_html(report, meta).encode("utf-8")
    _write(data, args.out)
    if not report.ok:  # written all the same, the failure in it
        print(f"ironroom: {report.problem.translate(_ONE_LINE)}", file=sys.stderr)
        return 1
    return 0


def _write(data: bytes, out: str | None) -> None:
    """To stdout, or to ``out`` whole or not at all (a temporary file renamed over it)."""
    from tracker.service.ledger import LedgerError

    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    path = Path(out)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise LedgerError(f"--out {out}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise LedgerError(f"--out {out}: {exc.strerror or exc}") from None
