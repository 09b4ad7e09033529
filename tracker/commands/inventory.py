"""``ironroom ledger inventory ...``: the RFID sweep of a room's cabinets (清查)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(ledger: Any, top: Any) -> None:
    from tracker.cli import _db

    inv = ledger.add_parser(
        "inventory", help="inventory (清查): sweep a room's cabinets"
    ).add_subparsers(dest="inventory_action", required=True, metavar="ACTION")
    p = inv.add_parser("run", help="sweep every cabinet reader of a room and reconcile")
    p.add_argument("room", metavar="SITE/ROOM")
    p.add_argument(
        "--wait",
        metavar="SECONDS",
        help="wait up to SECONDS for the reconciliation and print the report",
    )
    p.add_argument(
        "--timeout",
        default="60",
        metavar="SECONDS",
        help="how long the readers have to answer, on the room's clock (default 60)",
    )
    _db(p)
    p.set_defaults(run=cmd_inventory_run)
    p = inv.add_parser("show", help="a run and its report, one JSON object a line")
    p.add_argument("run_id", metavar="RUN_ID")
    _db(p)
    p.set_defaults(run=cmd_inventory_show)
    p = inv.add_parser("list", help="the inventory runs, oldest first")
    p.add_argument("--room", help="SITE/ROOM")
    _db(p)
    p.set_defaults(run=cmd_inventory_list)


def _site_room(text: str) -> tuple[str, str]:
    from tracker.service.ledger import LedgerError

    site, sep, room = text.partition("/")
    if not sep or not site or not room or "/" in room:
        raise LedgerError(f"room {text!r}: expected SITE/ROOM")
    return site, room


def _run_id(text: str) -> int:
    from tracker.service.ledger import LedgerError

    try:
        value = int(text)
    except ValueError:
        raise LedgerError(f"run {text!r}: expected a run number") from None
    if value < 1:
        raise LedgerError(f"run {text!r}: expected a run number")
    return value


def _seconds(option: str, text: str, lo: float, hi: float) -> float:
    from tracker.service.ledger import LedgerError

    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not lo <= value <= hi:
        raise LedgerError(f"{option} {text}: a number of seconds from {lo:g} to {hi:g}")
    return value


def _report_lines(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [report["run"], *report["items"]]


def cmd_inventory_run(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _ledger, _read, _store
    from tracker.service.inventory import TIMEOUT_RANGE, inventory_report, start_run, wait_done
    from tracker.service.ledger import LedgerError

    site, room = _site_room(args.room)
    wait = None if args.wait is None else _seconds("--wait", args.wait, 0.1, 3600)
    lo, hi = TIMEOUT_RANGE
    timeout = _seconds("--timeout", args.timeout, lo, hi)
    if timeout != int(timeout):
        raise LedgerError(f"--timeout {args.timeout}: a whole number of seconds")
    run = start_run(_ledger(args), site, room, timeout_s=int(timeout))
    if wait is None:
        _emit([run])
        return 0
    store = _store(args)
    try:
        wait_done(store.readers, run["run"], wait)
    finally:
        store.engine.dispose()
    _emit(_report_lines(_read(args, lambda s: inventory_report(s, run["run"]))))
    return 0


def cmd_inventory_show(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _read
    from tracker.service.inventory import inventory_report

    run_id = _run_id(args.run_id)
    _emit(_report_lines(_read(args, lambda s: inventory_report(s, run_id))))
    return 0


def cmd_inventory_list(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _read
    from tracker.service.inventory import list_runs

    _emit(_read(args, lambda s: list_runs(s, args.room)))
    return 0
