"""A ledger for the console's tests: one room, people of every role with an account,
documents, one open loan and one active alarm."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tracker.bootstrap import Store, open_store, rules_of
from tracker.config import TrackerConfig
from tracker.domain.levels import Level
from tracker.service.ledger import DocumentIn, Ledger
from tracker.service.writer import Writer
from tracker.store import models as m
from tracker.web import accounts

PASSWORD = "correct horse battery"
T0 = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
#: username -> (role, person id)
ACCOUNTS = {
    "sec": ("secretary", "p-sec"),
    "appr": ("approver", "p-appr"),
    "head": ("dept-head", "p-head"),
    "office": ("secrecy-office", "p-office"),
    "bob": ("borrower", "p-bob"),
    "eve": ("borrower", "p-eve"),
}


@dataclass
class FixedClock:
    t: datetime = T0
    mono: float = 0.0

    def now(self) -> datetime:
        return self.t

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)
        self.mono += seconds


@dataclass
class World:
    store: Store
    clock: FixedClock
    docs: dict[str, int] = field(default_factory=dict)
    alarm_id: str = ""


def ledger(store: Store, now: datetime) -> Ledger:
    return Ledger(store.sessions, rules_of(TrackerConfig()), actor="test", reason="setup", now=now)


def build(db: Path, clock: FixedClock | None = None) -> World:
    clock = clock or FixedClock()
    store = open_store(f"sqlite:///{db}")
    lg = ledger(store, clock.now())
    lg.room_add("hq", "r1", "ctl-1", b"k" * 32, None)
    lg.cabinet_add("hq", "r1", "c1", False)
    for username, (role, pid) in ACCOUNTS.items():
        lg.person_add(pid, f"Person {username}", Level.TOP_SECRET, [role], "office")
        accounts.add_account(lg, username, role, pid, PASSWORD)
    lg.badge_add("A1B2C3D4", "p-bob")
    world = World(store, clock)
    for i, (number, title) in enumerate((("JM-001", "年度计划"), ("JM-002", "Budget"))):
        lg.document_add(
            DocumentIn.build(
                number=number,
                title=title,
                classification="机密",
                tag=f"E200{i:08d}",
                cabinet="hq/r1/c1",
            )
        )
    with store.sessions.begin() as s:
        w = Writer(s, actor="test", at=clock.now(), cause="setup")
        for d in s.query(m.Document):
            world.docs[d.number] = d.id
        doc = s.get(m.Document, world.docs["JM-001"])
        assert doc is not None
        w.change("document.move", doc, status="on_loan", location_cabinet_id=None,
                 holder_id="p-bob")
        w.add("loan.open", m.Loan(document_id=doc.id, person_id="p-bob", kind="loan",
                                  opened="2026-12-01T02:00:00.000Z",
                                  due="2026-12-02T02:00:00.000Z"))
        room = s.query(m.Room).one()
        world.alarm_id = w.raise_alarm(room, "forced_open", "critical", raised=clock.now(),
                                       point="door").alarm_id
    return world


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def login(client: Any, username: str, password: str = PASSWORD) -> Any:
    """Log in through the form (the pre-login token from the page); the response."""
    page = client.get("/login")
    token = _CSRF.search(page.text)
    assert token is not None
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf": token.group(1)},
        follow_redirects=False,
    )


def csrf(client: Any) -> str:
    return str(client.get("/api/me").json()["csrf"])
