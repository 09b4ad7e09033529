"""``ironroom ledger`` commands: requests and their approval (审批), copies (复印).

::

    ironroom ledger request copy DOC --by PERSON --copies N [--reason T] [--expires TS]
    ironroom ledger request carry-out DOC [DOC...] --by PERSON --from TS --until TS ...
    ironroom ledger request hours SITE/ROOM --by PERSON --from TS --until TS ...
    ironroom ledger request destroy DOC [DOC...] --by PERSON ...
    ironroom ledger approve|refuse REQUEST_ID --by PERSON [--reason TEXT]
    ironroom ledger requests [--state S] [--kind K]
    ironroom ledger copy register REQUEST_ID --tag EPC [--tag EPC]...
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from tracker.domain.approvals import KINDS, STATES

TS_HELP = "ISO 8601 time with its zone: 2026-11-26T09:00:00Z or 2026-11-26T17:00+08:00"
DOC_HELP = "a document: its tag, its number (one copy), or NUMBER/K (copy K)"


def add_parsers(ledger: Any, top: Any) -> None:
    from tracker.cli import _db

    rq = ledger.add_parser("request", help="ask for copying, carrying out, hours, destruction")
    kinds = rq.add_subparsers(dest="request_kind", required=True, metavar="KIND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--by", required=True, help="the person asking")
        p.add_argument("--reason", help="why")
        p.add_argument("--expires", help=f"decide before this time (default: in 7 days); {TS_HELP}")
        _db(p)

    p = kinds.add_parser("copy", help="copy a document (复印)")
    p.add_argument("document", help=DOC_HELP)
    p.add_argument("--copies", required=True, help="how many copies")
    common(p)
    p.set_defaults(run=cmd_request, kind="copy")
    p = kinds.add_parser("carry-out", help="a pass to carry documents out of the room (携带外出)")
    p.add_argument("documents", nargs="+", help=DOC_HELP)
    p.add_argument("--from", dest="starts", required=True, help=f"the pass starts; {TS_HELP}")
    p.add_argument("--until", dest="ends", required=True, help=f"the pass ends; {TS_HELP}")
    common(p)
    p.set_defaults(run=cmd_request, kind="carry-out")
    p = kinds.add_parser("hours", help="extended hours for a room")
    p.add_argument("room", help="SITE/ROOM")
    p.add_argument("--from", dest="starts", required=True, help=f"the grant starts; {TS_HELP}")
    p.add_argument("--until", dest="ends", required=True, help=f"the grant ends; {TS_HELP}")
    common(p)
    p.set_defaults(run=cmd_request, kind="hours")
    p = kinds.add_parser("destroy", help="a destruction list (销毁), decided by a dept-head")
    p.add_argument("documents", nargs="+", help=DOC_HELP)
    common(p)
    p.set_defaults(run=cmd_request, kind="destroy")

    for action, text in (("approve", "approve a pending request"), ("refuse", "refuse one")):
        p = ledger.add_parser(action, help=text)
        p.add_argument("request_id", help="the request's id")
        p.add_argument("--by", required=True, help="the person deciding")
        p.add_argument("--reason")
        _db(p)
        p.set_defaults(run=cmd_decide, action=action)

    p = ledger.add_parser("requests", help="requests, oldest first")
    p.add_argument("--state", help=" | ".join(STATES))
    p.add_argument("--kind", help=" | ".join(KINDS))
    _db(p)
    p.set_defaults(run=cmd_requests)

    cp = ledger.add_parser("copy", help="copies made under an approved request").add_subparsers(
        dest="copy_action", required=True, metavar="ACTION"
    )
    p = cp.add_parser("register", help="register the copies, one tag each")
    p.add_argument("request_id", help="the approved copy request")
    p.add_argument("--tag", action="append", default=[], help="EPC in hex, one per copy")
    _db(p)
    p.set_defaults(run=cmd_copy_register)


def parse_time(text: str, option: str) -> datetime:
    """An ISO 8601 time with a zone (``Z`` or ``+08:00``), as a UTC datetime."""
    from tracker.service.ledger import LedgerError

    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise LedgerError(f"{option} {text!r}: not a time; {TS_HELP}") from None
    if when.tzinfo is None:
        raise LedgerError(f"{option} {text!r}: give its zone (Z or +08:00)")
    return when.astimezone(UTC)


def _request_id(text: str) -> int:
    from tracker.service.ledger import LedgerError

    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise LedgerError(f"request id {text!r}: expected a number")
    return int(text)


def cmd_request(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _ledger
    from tracker.service import requests
    from tracker.service.ledger import LedgerError

    copies = None
    if args.kind == "copy":
        text = args.copies.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 4:
            raise LedgerError(f"--copies {args.copies!r}: expected a number")
        copies = int(text)
    starts = parse_time(args.starts, "--from") if getattr(args, "starts", None) else None
    ends = parse_time(args.ends, "--until") if getattr(args, "ends", None) else None
    expires = parse_time(args.expires, "--expires") if args.expires else None
    docs = [args.document] if args.kind == "copy" else getattr(args, "documents", [])
    row = requests.create(
        _ledger(args),
        args.kind,
        args.by,
        documents=docs,
        copies=copies,
        room=getattr(args, "room", None),
        starts=starts,
        ends=ends,
        reason=args.reason,
        expires=expires,
    )
    _emit([row])
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _ledger
    from tracker.service import requests

    decide = requests.approve if args.action == "approve" else requests.refuse
    _emit([decide(_ledger(args), _request_id(args.request_id), args.by, args.reason)])
    return 0


def cmd_requests(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _read
    from tracker.service import requests

    _emit(_read(args, lambda s: requests.listing(s, state=args.state, kind=args.kind)))
    return 0


def cmd_copy_register(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _ledger
    from tracker.service import requests

    rid = _request_id(args.request_id)
    _emit(requests.register_copies(_ledger(args), rid, args.tag))
    return 0
