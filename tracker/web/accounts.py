"""Console accounts and logins: add an account, check a password with the limits on
failures, record logins, logouts and denials. Each is one transaction through the
:class:`~tracker.service.writer.Writer`, so every step is in the audit chain."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from protocol.timefmt import format_ts
from tracker.domain.levels import ROLES
from tracker.service.ledger import Ledger, LedgerError
from tracker.service.writer import Writer
from tracker.store import models as m

MIN_PASSWORD = 10
_HASHER = PasswordHasher()  # argon2id with the library's recommended parameters
#: verified against when the username is unknown, so both cost the same time
_DUMMY = _HASHER.hash("not a password of anyone")


@dataclass(frozen=True)
class Limits:
    failures: int = 5  # consecutive failures of one account before it locks
    lock_minutes: int = 15
    client_failures: int = 20  # failures from one address within the window: refused
    client_window_minutes: int = 15


@dataclass(frozen=True)
class Principal:
    username: str
    role: str
    person_id: str


class LoginRefused(Exception):
    """``reason`` is ``failed`` (wrong name or password) or ``locked``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def add_account(
    ledger: Ledger, username: str, role: str, person_id: str, password: str
) -> dict[str, object]:
    if not username or len(username) > 64 or not username.isprintable() or " " in username:
        raise LedgerError(f"username {username!r}: 1-64 printable characters, no spaces")
    if role not in ROLES:
        raise LedgerError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise LedgerError(f"the password needs at least {MIN_PASSWORD} characters")
    with ledger.change() as w:
        if w.s.get(m.Person, person_id) is None:
            raise LedgerError(f"no person {person_id}")
        if w.s.get(m.Account, username) is not None:
            raise LedgerError(f"account {username} exists already")
        w.add(
            "account.add",
            m.Account(
                username=username,
                password_hash=hash_password(password),
                role=role,
                person_id=person_id,
                active=True,
                failed=0,
                locked_until=None,
                created=w.at,
            ),
        )
    return {"username": username, "role": role, "person": person_id}


def _record(w: Writer, username: str, client: str, outcome: str, detail: str | None) -> None:
    w.add(
        f"login.{outcome}",
        m.Login(
            ts=w.at, username=username[:64], client=client[:64], outcome=outcome, detail=detail
        ),
    )


def record(
    sessions: sessionmaker[Session],
    now: datetime,
    username: str,
    client: str,
    outcome: str,
    detail: str | None = None,
) -> None:
    """Record a logout or a denial (one transaction, audited)."""
    with sessions.begin() as s:
        _record(
            Writer(s, actor=f"web:{username}", at=now, cause=detail),
            username,
            client,
            outcome,
            detail,
        )


def login(
    sessions: sessionmaker[Session],
    now: datetime,
    username: str,
    password: str,
    client: str,
    limits: Limits = Limits(),
) -> Principal:
    """Check a login; the attempt is recorded whatever its outcome. A locked account or
    an address over its budget is refused without looking at the password."""
    at = format_ts(now)
    since = format_ts(now - timedelta(minutes=limits.client_window_minutes))
    # the refusal is raised after the commit, so the attempt stays recorded
    refused: str | None = None
    with sessions.begin() as s:
        w = Writer(s, actor=f"web:{username[:64]}", at=now, cause=f"login from {client}")
        recent = s.scalar(
            select(func.count())
            .select_from(m.Login)
            .where(
                m.Login.client == client[:64],
                m.Login.ts >= since,
                m.Login.outcome.in_(("failed", "locked")),
            )
        )
        acc = s.get(m.Account, username)
        if (recent or 0) >= limits.client_failures:
            _record(w, username, client, "locked", json.dumps({"by": "client"}))
            refused = "locked"
        elif acc is not None and acc.locked_until is not None and acc.locked_until > at:
            _record(w, username, client, "locked", json.dumps({"by": "account"}))
            refused = "locked"
        elif acc is None or not acc.active or not _verify(acc.password_hash, password):
            if acc is None:
                _verify(_DUMMY, password)
            _record(w, username, client, "failed", None)
            refused = "failed"
            if acc is not None and acc.active:
                failed = acc.failed + 1
                if failed >= limits.failures:
                    until = format_ts(now + timedelta(minutes=limits.lock_minutes))
                    w.change("account.lock", acc, failed=0, locked_until=until)
                else:
                    w.change("account.failed", acc, failed=failed)
        else:
            w.change("account.login", acc, failed=0, locked_until=None)
            _record(w, username, client, "ok", None)
            who = Principal(acc.username, acc.role, acc.person_id)
    if refused is not None:
        raise LoginRefused(refused)
    return who


def _verify(hashed: str, password: str) -> bool:
    try:
        return _HASHER.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def principal(s: Session, username: str) -> Principal | None:
    """The account as it is now (None when gone or deactivated)."""
    acc = s.get(m.Account, username)
    if acc is None or not acc.active:
        return None
    return Principal(acc.username, acc.role, acc.person_id)


def listing(s: Session) -> list[dict[str, object]]:
    """Every account, without its hash."""
    return [
        {
            "username": a.username,
            "role": a.role,
            "person": a.person_id,
            "active": a.active,
            "failed": a.failed,
            "locked_until": a.locked_until,
        }
        for a in s.scalars(select(m.Account).order_by(m.Account.username))
    ]


def set_demo_account(
    store: Any, *, username: str, role: str, person: str, password: str, now: datetime
) -> None:
    """Add the account, or give it this role, person and password and unlock it (the
    demo sets new passwords each time it starts on a data folder). Audited."""
    if role not in ROLES:
        raise LedgerError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    with store.sessions.begin() as s:
        w = Writer(s, actor="demo", at=now, cause="demo accounts")
        if s.get(m.Person, person) is None:
            raise LedgerError(f"no person {person}")
        acc = s.get(m.Account, username)
        hashed = hash_password(password)
        if acc is None:
            w.add(
                "account.add",
                m.Account(
                    username=username,
                    password_hash=hashed,
                    role=role,
                    person_id=person,
                    active=True,
                    failed=0,
                    locked_until=None,
                    created=w.at,
                ),
            )
        else:
            w.change(
                "account.password",
                acc,
                password_hash=hashed,
                role=role,
                person_id=person,
                active=True,
                failed=0,
                locked_until=None,
            )


def change_account(ledger: Ledger, username: str, action: str) -> dict[str, object]:
    """``disable``, ``enable`` or ``unlock`` an account (audited ``account.<action>``)."""
    changes: dict[str, dict[str, Any]] = {
        "disable": {"active": False},
        "enable": {"active": True},
        "unlock": {"failed": 0, "locked_until": None},
    }
    if action not in changes:
        raise LedgerError(f"unknown account change {action!r}")
    values = changes[action]
    with ledger.change() as w:
        acc = w.s.get(m.Account, username)
        if acc is None:
            raise LedgerError(f"no account {username}")
        w.change(f"account.{action}", acc, **values)
        return {"username": acc.username, "active": acc.active, "locked_until": acc.locked_until}
