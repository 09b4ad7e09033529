"""``ironroom ledger`` commands: overdue loans (催办) and the reminders' queue.

::

    ironroom ledger overdue [--person ID]
    ironroom ledger reminders [--pending]
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(ledger: Any, top: Any) -> None:
    from tracker.cli import _db

    p = ledger.add_parser("overdue", help="open loans past their due time (催办)")
    p.add_argument("--person", help="only this person's loans")
    _db(p)
    p.set_defaults(run=cmd_overdue)
    p = ledger.add_parser("reminders", help="the overdue reminders' messages")
    p.add_argument("--pending", action="store_true", help="only those not yet sent")
    _db(p)
    p.set_defaults(run=cmd_reminders)


def cmd_overdue(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _read
    from tracker.clock import SystemClock
    from tracker.service import overdue

    now = SystemClock().now()
    _emit(_read(args, lambda s: overdue.overdue_listing(s, now, person=args.person)))
    return 0


def cmd_reminders(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _read
    from tracker.service import overdue

    _emit(_read(args, lambda s: overdue.reminders_listing(s, pending=args.pending)))
    return 0
