"""``ironroom tracker``, ``ironroom ledger ...`` and ``ironroom audit ...``.

Every command takes ``--db URL`` (default ``$IRONROOM_DB``, else ``sqlite:///ironroom.db``).
Listings print one JSON object per line; an error is one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import getpass
import json
import shlex
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tracker.domain.levels import ROLES, Level

LEVEL_HELP = "绝密|机密|秘密|内部|公开 or top-secret|secret|confidential|internal|public"


def _level(text: str) -> Level:
    from tracker.service.ledger import LedgerError

    try:
        return Level.parse(text)
    except ValueError as exc:
        raise LedgerError(str(exc)) from None


def _db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="database URL (default: $IRONROOM_DB, else sqlite:///ironroom.db)")


def add_parsers(sub: Any) -> None:
    t = sub.add_parser("tracker", help="run the tracker: ingest, ledger, commands")
    t.add_argument("--config", required=True, help="tracker config (TOML)")
    t.add_argument("--broker", help="broker URL (overrides the config)")
    _db(t)
    t.set_defaults(run=cmd_tracker)

    lg = sub.add_parser("ledger", help="the document ledger").add_subparsers(
        dest="ledger", required=True, metavar="ACTION"
    )
    p = lg.add_parser("init", help="create or migrate the database")
    _db(p)
    p.set_defaults(run=cmd_init)

    room = lg.add_parser("room", help="rooms and their controllers").add_subparsers(
        dest="room_action", required=True, metavar="ACTION"
    )
    p = room.add_parser("add", help="register a room and its controller's keys")
    p.add_argument("site")
    p.add_argument("room")
    p.add_argument("--controller", required=True)
    p.add_argument("--key-file", required=True, help="the controller's event key (hex)")
    p.add_argument("--command-key-file", help="the room's command key (default: the event key)")
    _db(p)
    p.set_defaults(run=cmd_room_add)
    p = room.add_parser("reenrol", help="a replaced or wiped controller: accept its next boot")
    p.add_argument("site")
    p.add_argument("room")
    p.add_argument("--key-file", help="the new controller's key (default: unchanged)")
    _db(p)
    p.set_defaults(run=cmd_room_reenrol)

    cab = lg.add_parser("cabinet", help="cabinets").add_subparsers(
        dest="cabinet_action", required=True, metavar="ACTION"
    )
    p = cab.add_parser("add", help="register a cabinet (classified unless --general)")
    p.add_argument("site")
    p.add_argument("room")
    p.add_argument("cabinet")
    p.add_argument("--general", action="store_true", help="a cabinet for 内部/公开 documents")
    _db(p)
    p.set_defaults(run=cmd_cabinet_add)

    per = lg.add_parser("person", help="people").add_subparsers(
        dest="person_action", required=True, metavar="ACTION"
    )
    p = per.add_parser("add", help="register a person")
    p.add_argument("id")
    p.add_argument("--name", required=True)
    p.add_argument("--clearance", required=True, help=LEVEL_HELP)
    p.add_argument("--role", action="append", default=[], help=" | ".join(ROLES))
    p.add_argument("--dept")
    p.add_argument("--email", help="where overdue reminders (催办) are mailed")
    _db(p)
    p.set_defaults(run=cmd_person_add)

    bad = lg.add_parser("badge", help="badges").add_subparsers(
        dest="badge_action", required=True, metavar="ACTION"
    )
    p = bad.add_parser("add", help="give a person a badge")
    p.add_argument("uid")
    p.add_argument("--person", required=True)
    _db(p)
    p.set_defaults(run=cmd_badge_add)

    doc = lg.add_parser("document", help="documents").add_subparsers(
        dest="document_action", required=True, metavar="ACTION"
    )
    p = doc.add_parser("add", help="register one document or copy and bind its tag")
    p.add_argument("--number", required=True, help="文号")
    p.add_argument("--title", required=True)
    p.add_argument("--classification", required=True, help=LEVEL_HELP)
    p.add_argument("--tag", required=True, help="EPC in hex")
    p.add_argument("--cabinet", required=True, help="home cabinet SITE/ROOM/CABINET")
    p.add_argument("--copy", help="K/N: copy K of N (份号)")
    p.add_argument("--scope", action="append", default=[], help="person:ID | dept:D | role:R")
    p.add_argument("--no-copying", action="store_true", help="不准翻印")
    p.add_argument("--issuer")
    p.add_argument("--period", help="secrecy period in years (default 30/20/10 by level)")
    p.add_argument("--declassify-on", help="declassification date YYYY-MM-DD")
    p.add_argument("--return-by", help="return-to-issuer date YYYY-MM-DD (清退)")
    _db(p)
    p.set_defaults(run=cmd_document_add)

    p = lg.add_parser("import", help="register a delivery from CSV (all rows or none)")
    p.add_argument("file")
    _db(p)
    p.set_defaults(run=cmd_import)
    p = lg.add_parser("show", help="a document by tag or number")
    p.add_argument("what")
    _db(p)
    p.set_defaults(run=cmd_show)
    p = lg.add_parser("loans", help="loans")
    p.add_argument("--open", action="store_true")
    p.add_argument("--person")
    _db(p)
    p.set_defaults(run=cmd_loans)
    p = lg.add_parser("alarms", help="alarms")
    p.add_argument("--active", action="store_true")
    _db(p)
    p.set_defaults(run=cmd_alarms)
    al = lg.add_parser("alarm", help="act on one alarm").add_subparsers(
        dest="alarm_action", required=True, metavar="ACTION"
    )
    p = al.add_parser("reset", help="reset a latched alarm, with a reason")
    p.add_argument("alarm_id")
    p.add_argument("--by", required=True, help="the person resetting it")
    p.add_argument("--reason", required=True)
    _db(p)
    p.set_defaults(run=cmd_alarm_reset)
    p = lg.add_parser("events", help="the physical events applied, in order")
    p.add_argument("--room", help="SITE/ROOM")
    _db(p)
    p.set_defaults(run=cmd_events)

    from tracker.commands import add_parsers as add_workflow_parsers

    add_workflow_parsers(lg, sub)

    au = sub.add_parser("audit", help="the audit chain").add_subparsers(
        dest="audit", required=True, metavar="ACTION"
    )
    p = au.add_parser("verify", help="check the whole chain and every audited row")
    _db(p)
    p.set_defaults(run=cmd_audit_verify)
    p = au.add_parser("head", help="print the entry count and head hash, for anchoring")
    _db(p)
    p.set_defaults(run=cmd_audit_head)
    p = au.add_parser("log", help="the audit entries, oldest first (one JSON object a line)")
    p.add_argument("--entity", help="room, cabinet, person, badge, document, loan, alarm, incident")
    p.add_argument("--key", help="the entity's key (its id)")
    p.add_argument(
        "--document", help="every entry about one document (tag or number) and its loans"
    )
    _db(p)
    p.set_defaults(run=cmd_audit_log)


def run(args: argparse.Namespace) -> int:
    """Run a tracker, ledger or audit command; known failures are one line, exit 2."""
    from tracker.config import TrackerConfigError
    from tracker.service.ledger import LedgerError
    from tracker.store.db import StoreError

    try:
        fn: Callable[[argparse.Namespace], int] = args.run
        return fn(args)
    except (LedgerError, StoreError, TrackerConfigError) as exc:
        print(f"ironroom: {str(exc).translate(_ONE_LINE)}", file=sys.stderr)
        return 2


#: An error is one line whatever it quotes (a CSV field may hold a line break).
_ONE_LINE = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


# -- helpers ---------------------------------------------------------------------------


def _emit(rows: Iterable[dict[str, Any]]) -> None:
    for row in rows:
        sys.stdout.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    sys.stdout.flush()


def _store(args: argparse.Namespace, *, migrate_now: bool = True) -> Any:
    from tracker.bootstrap import open_store

    return open_store(args.db, migrate_now=migrate_now)


def _ledger(args: argparse.Namespace) -> Any:
    """A ledger acting for the person at the keyboard; the audit reason is the command
    line itself."""
    from tracker.bootstrap import rules_of
    from tracker.clock import SystemClock
    from tracker.config import TrackerConfig
    from tracker.service.ledger import Ledger

    store = _store(args)
    argv = ["ironroom", *sys.argv[1:]] if sys.argv and sys.argv[0] else ["ironroom"]
    return Ledger(
        store.sessions,
        rules_of(TrackerConfig()),
        actor=f"cli:{_user()}",
        reason=shlex.join(argv),
        now=SystemClock().now(),
    )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _read(args: argparse.Namespace, fn: Callable[[Any], Any]) -> Any:
    store = _store(args)
    try:
        with store.readers() as s:
            return fn(s)
    finally:
        store.engine.dispose()


# -- commands --------------------------------------------------------------------------


def cmd_tracker(args: argparse.Namespace) -> int:
    from ironroom.cli import _stop_on_signals
    from tracker.bootstrap import Tracker
    from tracker.config import load_tracker_config

    cfg = load_tracker_config(args.config).with_overrides(broker=args.broker, db=args.db)
    cfg.check_files()
    stop: threading.Event = _stop_on_signals()
    Tracker(cfg).run(stop)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from tracker.store.db import migrate

    store = _store(args, migrate_now=False)
    rev = migrate(store.engine)
    print(f"database {store.engine.url.render_as_string()} at revision {rev}", file=sys.stderr)
    return 0


def cmd_room_add(args: argparse.Namespace) -> int:
    from tracker.service.ledger import read_key

    key = read_key(args.key_file)
    ckey = read_key(args.command_key_file) if args.command_key_file else None
    _emit([_ledger(args).room_add(args.site, args.room, args.controller, key, ckey)])
    return 0


def cmd_room_reenrol(args: argparse.Namespace) -> int:
    from tracker.service.ledger import read_key

    key = read_key(args.key_file) if args.key_file else None
    _emit([_ledger(args).room_reenrol(args.site, args.room, key)])
    return 0


def cmd_cabinet_add(args: argparse.Namespace) -> int:
    _emit([_ledger(args).cabinet_add(args.site, args.room, args.cabinet, args.general)])
    return 0


def cmd_person_add(args: argparse.Namespace) -> int:
    clearance = _level(args.clearance)
    ledger = _ledger(args)
    row = ledger.person_add(args.id, args.name, clearance, args.role, args.dept, email=args.email)
    _emit([row])
    return 0


def cmd_badge_add(args: argparse.Namespace) -> int:
    _emit([_ledger(args).badge_add(args.uid, args.person)])
    return 0


def cmd_document_add(args: argparse.Namespace) -> int:
    from tracker.service.ledger import DocumentIn, FieldError, LedgerError

    try:
        doc = DocumentIn.build(
            number=args.number,
            title=args.title,
            classification=args.classification,
            tag=args.tag,
            cabinet=args.cabinet,
            copy=args.copy,
            scope=args.scope,
            no_copying=args.no_copying,
            issuer=args.issuer,
            period=args.period,
            declassify_on=args.declassify_on,
            return_by=args.return_by,
        )
    except FieldError as exc:  # named as the option that was typed
        raise LedgerError(f"--{exc.field.replace('_', '-')}: {exc.why}") from None
    _emit([_ledger(args).document_add(doc)])
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    _emit(_ledger(args).import_csv(Path(args.file)))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from tracker.service.ledger import show

    _emit(_read(args, lambda s: show(s, args.what)))
    return 0


def cmd_loans(args: argparse.Namespace) -> int:
    from tracker.service.ledger import loans

    _emit(_read(args, lambda s: loans(s, open_only=args.open, person=args.person)))
    return 0


def cmd_alarms(args: argparse.Namespace) -> int:
    from tracker.service.ledger import alarms

    _emit(_read(args, lambda s: alarms(s, active=args.active)))
    return 0


def cmd_alarm_reset(args: argparse.Namespace) -> int:
    _emit([_ledger(args).alarm_reset(args.alarm_id, args.by, args.reason)])
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from tracker.service.ledger import events

    _read(args, lambda s: _emit(events(s, args.room)))
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from tracker.store.audit import verify

    v = _read(args, verify)
    if v.ok:
        print(f"audit chain ok: {v.count} entries, head {v.head}")
        return 0
    where = f"entry {v.bad_entry}: " if v.bad_entry is not None else ""
    print(f"audit chain BROKEN at {where}{v.problem}", file=sys.stderr)
    return 1


def cmd_audit_head(args: argparse.Namespace) -> int:
    from tracker.store.audit import head

    count, digest = _read(args, head)
    print(f"{count} {digest}")
    return 0


def cmd_audit_log(args: argparse.Namespace) -> int:
    from tracker.store.audit import entries

    _read(
        args, lambda s: _emit(entries(s, entity=args.entity, key=args.key, document=args.document))
    )
    return 0
