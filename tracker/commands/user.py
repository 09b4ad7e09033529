"""``ironroom user``: the web console's local accounts.

::

    ironroom user add USERNAME --role ROLE --person ID [--password-file FILE] [--db URL]
    ironroom user disable|enable|unlock USERNAME [--db URL]
    ironroom user list [--db URL]

Without ``--password-file`` the password is asked twice on the terminal. Adding an
account is audited like every ledger change (the hash enters the chain only as a
fingerprint).
"""

from __future__ import annotations

import argparse
from typing import Any

from tracker.domain.levels import ROLES


def add_parsers(ledger: Any, top: Any) -> None:
    from tracker.cli import _db

    users = top.add_parser("user", help="web console accounts").add_subparsers(
        dest="user_action", required=True, metavar="ACTION"
    )
    p = users.add_parser("add", help="add a console account for a person")
    p.add_argument("username")
    p.add_argument("--role", required=True, choices=ROLES, help="the account's role")
    p.add_argument("--person", required=True, help="the person the account acts for")
    p.add_argument("--password-file", help="read the password from this file (first line)")
    _db(p)
    p.set_defaults(run=cmd_user_add)
    for action, help_ in (
        ("disable", "make an account inactive (its sessions end)"),
        ("enable", "make an account active again"),
        ("unlock", "end an account's lock after failed logins"),
    ):
        p = users.add_parser(action, help=help_)
        p.add_argument("username")
        _db(p)
        p.set_defaults(run=cmd_user_change, user_change=action)
    p = users.add_parser("list", help="list the console accounts")
    _db(p)
    p.set_defaults(run=cmd_user_list)


def _password(path: str | None) -> str:
    import getpass

    from tracker.service.ledger import LedgerError

    if path is not None:
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.readline().rstrip("\r\n")
        except OSError as exc:
            raise LedgerError(f"--password-file {path}: {exc.strerror}") from None
    try:
        first = getpass.getpass("Password: ")
        second = getpass.getpass("Password again: ")
    except EOFError:
        raise LedgerError("no password given (use --password-file without a terminal)") from None
    if first != second:
        raise LedgerError("the two passwords differ")
    return first


def cmd_user_add(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _ledger
    from tracker.web.accounts import add_account

    password = _password(args.password_file)
    _emit([add_account(_ledger(args), args.username, args.role, args.person, password)])
    return 0


def cmd_user_change(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _ledger
    from tracker.web.accounts import change_account

    _emit([change_account(_ledger(args), args.username, args.user_change)])
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    from tracker.cli import _emit, _read
    from tracker.web.accounts import listing

    _emit(_read(args, listing))
    return 0
