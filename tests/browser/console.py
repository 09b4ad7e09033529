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
KEY = b"k" * 32  # the room's event key
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
    lg.room_add("hq", "r1", "ctl-1", KEY, None)
    lg.cabinet_add("hq", "r1", "c1", False)
    for username, (role, pid) in ACCOUNTS.items():
        lg.person_add(pid, f"Person {username}", Level.TOP_SECRET, [role], "office")
        accounts.add_account(lg, username, role, pid, PASSWORD)
    lg.badge_add("A1B2C3D4", "p-bob")
    lg.badge_add("A1B2C3D5", "p-eve")
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
        w.change(
            "document.move", doc, status="on_loan", location_cabinet_id=None, holder_id="p-bob"
        )
        w.add(
            "loan.open",
            m.Loan(
                document_id=doc.id,
                person_id="p-bob",
                kind="loan",
                opened="2026-12-01T02:00:00.000Z",
                due="2026-12-02T02:00:00.000Z",
            ),
        )
        room = s.query(m.Room).one()
        world.alarm_id = w.raise_alarm(
            room, "forced_open", "critical", raised=clock.now(), point="door"
        ).alarm_id
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


class _Pub:
    def publish(self, topic: str, payload: bytes, *, retain: bool) -> bool:
        return True

    def ack(self, messages: Any) -> None:
        pass


def feed(world: World, events: list[tuple[str, dict[str, Any]]], *, first_seq: int = 1) -> None:
    """Signed events of hq/r1 through the tracker's own ingest, one batch each, a
    second apart from the world's clock."""
    from dataclasses import replace

    from protocol.envelope import make_event
    from protocol.hours import Calendar, parse_weekly
    from tracker.ingest.pipeline import Message, Processor

    always = parse_weekly(
        {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}, "hours"
    )
    cfg = replace(TrackerConfig(), calendar=Calendar(timezone="UTC", weekly=always))
    p = Processor(world.store.sessions, rules_of(cfg), clock=world.clock, publisher=_Pub())
    p.load()
    for seq, (type_, data) in enumerate(events, first_seq):
        world.clock.advance(1)
        topic, payload = make_event(
            KEY,
            site="hq",
            room="r1",
            controller="ctl-1",
            boot=1,
            seq=seq,
            ts=world.clock.now(),
            type=type_,
            data=data,
        )
        p.process([Message(topic, payload, world.clock.now(), 0.0)])


def borrow(world: World, *, first_seq: int = 1) -> None:
    """Eve badges at cabinet c1 and takes JM-002 out: a loan opened by the ingest."""
    feed(
        world,
        [
            ("badge.presented", {"reader": "cabinet:c1", "uid": "A1B2C3D5", "auth": "verified"}),
            ("tag.departed", {"reader": "cabinet:c1", "epc": "E20000000001"}),
        ],
        first_seq=first_seq,
    )


def copy_of(template: World, db: Path) -> World:
    """A world of the test's own: a copy of a built one's database file (built once,
    since every account's password is hashed with argon2)."""
    import shutil

    src = template.store.engine.url.database
    assert src is not None
    template.store.engine.dispose()
    shutil.copy(src, db)
    return World(
        open_store(f"sqlite:///{db}"), FixedClock(), dict(template.docs), template.alarm_id
    )
