"""``ironroom ledger`` commands: dossiers (立卷).

::

    ironroom ledger dossier add NAME [--title T] [--document DOC]...
    ironroom ledger dossier remove NAME --document DOC [--document DOC]...
    ironroom ledger dossier show NAME
    ironroom ledger dossier list
"""

from __future__ import annotations

import argparse
from typing import Any

DOC_HELP = "a document: its tag, its number (one copy), or NUMBER/K (copy K); repeatable"


def add_parsers(ledger: Any, top: Any) -> None:
    from tracker.cli import _db

    dz = ledger.add_parser("dossier", help="dossiers (立卷) and their computed marking")
    sub = dz.add_subparsers(dest="dossier_action", required=True, metavar="ACTION")
    p = sub.add_parser("add", help="create a dossier, or file documents in it")
    p.add_argument("name", help="the dossier's name (卷号)")
    p.add_argument("--title", help="the dossier's title")
    p.add_argument("--document", action="append", default=[], help=DOC_HELP)
    _db(p)
    p.set_defaults(run=cmd_add)
    p = sub.add_parser("remove", help="take documents out of a dossier")
    p.add_argument("name")
    p.add_argument("--document", action="append", default=[], help=DOC_HELP)
    _db(p)
    p.set_defaults(run=cmd_remove)
    p = sub.add_parser("show", help="a dossier: its marking and its contents")
    p.add_argument("name")
    _db(p)
    p.set_defaults(run=cmd_show)
    p = sub.add_parser("list", help="every dossier and its marking")
    _db(p)
    p.set_defaults(run=cmd_list)


def cmd_add(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _ledger
    from tracker.service import dossier

    _emit([dossier.add(_ledger(args), args.name, title=args.title, documents=args.document)])
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _ledger
    from tracker.service import dossier

    _emit([dossier.remove(_ledger(args), args.name, args.document)])
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _read
    from tracker.service import dossier

    _emit([_read(args, lambda s: dossier.show(s, args.name))])
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _read
    from tracker.service import dossier

    _emit(_read(args, dossier.listing))
    return 0
