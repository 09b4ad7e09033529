"""``ironroom ledger`` commands: destruction records (销毁).

::

    ironroom ledger destruction list [--request ID]
    ironroom ledger destruction show RECORD_ID
    ironroom ledger destruction attempts

The list itself is a ``destroy`` request (``ironroom ledger request destroy``, approved
by a dept-head); it is carried out at a room's desk by two witnesses' badges.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(ledger: Any, top: Any) -> None:
    from tracker.cli import _db

    dx = ledger.add_parser("destruction", help="destruction records (销毁), kept permanently")
    sub = dx.add_subparsers(dest="destruction_action", required=True, metavar="ACTION")
    p = sub.add_parser("list", help="the destruction records, oldest first")
    p.add_argument("--request", help="only the record of this destroy request")
    _db(p)
    p.set_defaults(run=cmd_list)
    p = sub.add_parser("show", help="one destruction record")
    p.add_argument("record_id")
    _db(p)
    p.set_defaults(run=cmd_show)
    p = sub.add_parser("attempts", help="the badges recorded at a desk: witnesses, refusals")
    _db(p)
    p.set_defaults(run=cmd_attempts)


def _number(text: str, what: str) -> int:
    from tracker.service.ledger import LedgerError

    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise LedgerError(f"{what} {text!r}: expected a number")
    return int(text)


def cmd_list(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _read
    from tracker.service import destruction

    rid = _number(args.request, "--request") if args.request is not None else None
    _emit(_read(args, lambda s: destruction.listing(s, request=rid)))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _read
    from tracker.service import destruction

    rid = _number(args.record_id, "record id")
    _emit([_read(args, lambda s: destruction.get(s, rid))])
    return 0


def cmd_attempts(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _read
    from tracker.service import destruction

    _emit(_read(args, destruction.attempts))
    return 0
