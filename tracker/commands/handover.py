"""``ironroom ledger`` commands: receive and register (``receive``, ``deliveries``),
handover (``handover``, ``handovers``) and the annual return (``campaign``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parsers(ledger: Any, top: Any) -> None:
    from tracker.cli import _db

    p = ledger.add_parser(
        "receive", help="register a delivery checked against its note (收文登记; all or none)"
    )
    p.add_argument("file", help="the delivery CSV (as for 'ledger import')")
    p.add_argument(
        "--note-count", type=int, required=True, help="copies on the delivery note (份数)"
    )
    p.add_argument("--from", dest="issuer", help="the issuer (发文机关)")
    p.add_argument("--note", help="the delivery note's number")
    p.add_argument("--meeting", help="meeting documents (会议文件): the meeting's name")
    p.add_argument(
        "--partial", action="store_true", help="some copies of a number only (not all K of N)"
    )
    _db(p)
    p.set_defaults(run=cmd_receive)
    p = ledger.add_parser("deliveries", help="the deliveries registered")
    _db(p)
    p.set_defaults(run=cmd_deliveries)

    p = ledger.add_parser(
        "handover", help="list what FROM holds or keeps for hand-over to TO (交接)"
    )
    p.add_argument("from_id", metavar="FROM")
    p.add_argument("--to", required=True, metavar="TO")
    _db(p)
    p.set_defaults(run=cmd_handover)
    hs = ledger.add_parser("handovers", help="hand-overs: list, status, confirm")
    _db(hs)
    hs.set_defaults(run=cmd_handovers)
    sub = hs.add_subparsers(dest="handovers_action", metavar="ACTION")
    p = sub.add_parser("status", help="a hand-over's items and their state")
    p.add_argument("id", type=int)
    _db(p)
    p.set_defaults(run=cmd_handover_status)
    p = sub.add_parser("confirm", help="both parties confirm items with no tag at a desk")
    p.add_argument("id", type=int)
    p.add_argument("--from-badge", required=True, metavar="UID")
    p.add_argument("--to-badge", required=True, metavar="UID")
    p.add_argument("--document", metavar="EPC|NUMBER", help="only this document")
    _db(p)
    p.set_defaults(run=cmd_handover_confirm)

    cp = ledger.add_parser("campaign", help="the annual return to issuers (清退)")
    _db(cp)
    cp.set_defaults(run=cmd_campaigns)
    sub = cp.add_subparsers(dest="campaign_action", metavar="ACTION")
    p = sub.add_parser("start", help="list what must go back by the end of YEAR")
    p.add_argument("year", type=int)
    p.add_argument("--issuer", help="only this issuer's documents")
    _db(p)
    p.set_defaults(run=cmd_campaign_start)
    p = sub.add_parser("status", help="per holder: the list and its progress")
    p.add_argument("id", type=int)
    _db(p)
    p.set_defaults(run=cmd_campaign_status)
    p = sub.add_parser("return", help="a document given back to its issuer")
    p.add_argument("id", type=int)
    p.add_argument("document", metavar="EPC|NUMBER")
    p.add_argument("--by", required=True, metavar="PERSON")
    _db(p)
    p.set_defaults(run=cmd_campaign_return)
    p = sub.add_parser("sign-off", help="sign off a holder's list once all of it is back")
    p.add_argument("id", type=int)
    p.add_argument("--holder", required=True, help="a person, or 'secretary' for the cabinets")
    p.add_argument("--by", required=True, metavar="PERSON")
    _db(p)
    p.set_defaults(run=cmd_campaign_sign_off)


def cmd_receive(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _ledger
    from tracker.service.receive import receive

    _emit(
        [
            receive(
                _ledger(args),
                Path(args.file),
                note_count=args.note_count,
                issuer=args.issuer,
                note_no=args.note,
                meeting=args.meeting,
                partial=args.partial,
            )
        ]
    )
    return 0


def cmd_deliveries(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _read
    from tracker.service.receive import deliveries

    _emit(_read(args, deliveries))
    return 0


def cmd_handover(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _ledger
    from tracker.service.handover import start

    _emit(start(_ledger(args), args.from_id, args.to))
    return 0


def cmd_handovers(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _read
    from tracker.service.handover import listing

    _emit(_read(args, listing))
    return 0


def cmd_handover_status(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _read
    from tracker.service.handover import status

    _emit(_read(args, lambda s: status(s, args.id)))
    return 0


def cmd_handover_confirm(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _ledger
    from tracker.service.handover import confirm

    _emit(confirm(_ledger(args), args.id, args.from_badge, args.to_badge, args.document))
    return 0


def cmd_campaigns(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _read
    from tracker.service.campaign import listing

    _emit(_read(args, listing))
    return 0


def cmd_campaign_start(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _ledger
    from tracker.service.campaign import start

    _emit(start(_ledger(args), args.year, args.issuer))
    return 0


def cmd_campaign_status(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _read
    from tracker.service.campaign import status

    _emit(_read(args, lambda s: status(s, args.id)))
    return 0


def cmd_campaign_return(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _ledger
    from tracker.service.campaign import give_back

    _emit(give_back(_ledger(args), args.id, args.document, args.by))
    return 0


def cmd_campaign_sign_off(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _ledger
    from tracker.service.campaign import sign_off

    _emit(sign_off(_ledger(args), args.id, args.holder, args.by))
    return 0
