"""Overdue (催办) tracker side: the real Processor on a SQLite file with a clock the test
holds, signed controller events, a real SMTP server (aiosmtpd) on loopback, and the
command line as real processes. A loan made overdue by the tracker's clock or by the
room's own clock; reminders at each delay, each sent once; the escalation alarm raised
and audited; the blocked borrower refused an unlock until the folder is back; failed
sends retried; ``ironroom audit verify`` passes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from protocol.envelope import decode_command, make_event
from tracker.bootstrap import open_store, rules_of
from tracker.config import parse_tracker_config
from tracker.domain.levels import Level
from tracker.ingest.pipeline import Message, Processor
from tracker.notify import NotifySettings, SmtpNotifier
from tracker.service import overdue
from tracker.service.ledger import DocumentIn, Ledger
from tracker.store import models as m

ROOT = Path(__file__).resolve().parents[2]
KEY = bytes(range(32))
SITE, ROOM, CTL = "hq", "room-101", "room-101-ctl"
P1_BADGE, SEC_BADGE = "04A1B2C3D4E5F6", "04A1B2C3D4E5F7"
FOLDER, OTHER = "E28011700000020A1B2C3D01", "E28011700000020A1B2C3D02"
T0 = datetime(2026, 11, 26, 0, 40, tzinfo=UTC)  # 08:40 in Shanghai, a Thursday
DAY = timedelta(days=1)
CONFIG = """
[tracker]
heartbeat_s = 5
[hours]
timezone = "Asia/Shanghai"
mon = ["00:00-23:59"]
tue = ["00:00-23:59"]
wed = ["00:00-23:59"]
thu = ["00:00-23:59"]
fri = ["00:00-23:59"]
sat = ["00:00-23:59"]
sun = ["00:00-23:59"]
{overdue}
[notify]
kind = "smtp"
host = "127.0.0.1"
port = {port}
from = "ironroom@localhost"
timeout_s = 5
"""


OVERDUE = """
[overdue]
remind_after = ["0h", "1d"]
escalate_after = "3d"
check_s = 30
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    def __init__(self) -> None:
        self.mail: list[tuple[list[str], Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        msg = message_from_bytes(envelope.content, policy=policy.default)
        self.mail.append((list(envelope.rcpt_tos), msg))
        return "250 OK"

    def to(self) -> list[list[str]]:
        return [r for r, _ in self.mail]


class Clock:
    def __init__(self) -> None:
        self.t = T0
        self.m = 1000.0

    def now(self) -> datetime:
        return self.t

    def monotonic(self) -> float:
        return self.m

    def advance(self, delta: timedelta) -> None:
        self.t += delta
        self.m += delta.total_seconds()


@dataclass
class Pub:
    out: list[tuple[str, bytes]] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, *, retain: bool) -> bool:
        self.out.append((topic, payload))
        return True

    def ack(self, messages: Any) -> None:
        pass

    def commands(self, type_: str) -> list[Any]:
        cmds = [decode_command(KEY, t, p) for t, p in self.out if "/cmd/" in t]
        return [c for c in cmds if c.type == type_]


@dataclass
class World:
    proc: Processor
    pub: Pub
    clock: Clock
    store: Any
    db: str
    inbox: Inbox
    #: the room's clock minus the tracker's (the controller stamps its events with it)
    room_offset: timedelta = timedelta(0)
    seq: int = 0

    def event(self, type_: str, data: dict[str, Any], later: float = 0) -> Message:
        self.seq += 1
        ts = self.clock.now() + self.room_offset + timedelta(seconds=later)
        topic, payload = make_event(
            KEY, site=SITE, room=ROOM, controller=CTL, boot=1, seq=self.seq, ts=ts,
            type=type_, data=data,
        )  # fmt: skip
        return Message(topic, payload, self.clock.now(), self.clock.monotonic(), self.seq, 1)

    def badge(self, uid: str) -> None:
        self.proc.process(
            [
                self.event(
                    "badge.presented", {"reader": "cabinet:c1", "uid": uid, "auth": "verified"}
                )
            ]
        )

    def borrow(self, uid: str, epc: str) -> None:
        self.badge(uid)
        self.proc.process([self.event("tag.departed", {"reader": "cabinet:c1", "epc": epc}, 5)])

    def give_back(self, epc: str) -> None:
        self.proc.process([self.event("tag.arrived", {"reader": "cabinet:c1", "epc": epc})])

    def heartbeat(self) -> None:
        self.proc.process(
            [self.event("controller.heartbeat", {"uptime_s": 1, "outbox_depth": 0, "armed": False})]
        )

    def later(self, delta: timedelta) -> None:
        """Time passes (past the check interval), the room stays heard, the tick runs."""
        self.clock.advance(delta)
        self.heartbeat()
        self.proc.tick()

    def rows(self, model: Any, *where: Any) -> list[Any]:
        with self.store.sessions() as s:
            return list(s.scalars(select(model).where(*where).order_by(model.id)))

    def steps(self) -> list[str]:
        return [r.step for r in self.rows(m.OverdueReminder)]

    def queue(self, *, pending: bool = False) -> list[dict[str, Any]]:
        with self.store.readers() as s:
            return overdue.reminders_listing(s, pending=pending)

    def overdue(self, person: str | None = None) -> list[dict[str, Any]]:
        with self.store.readers() as s:
            return overdue.overdue_listing(s, self.clock.now() + self.room_offset, person=person)

    def refusals(self) -> list[str]:
        rows = self.rows(m.Incident, m.Incident.kind == "badge_refused")
        return [json.loads(r.detail)["reason"] for r in rows]


@pytest.fixture
def inbox_port() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield inbox, port
    finally:
        ctl.stop()


def make_world(
    tmp_path: Path,
    inbox: Inbox,
    port: int,
    offset: timedelta,
    extra: str = "",
    overdue_table: str = OVERDUE,
    db: str | None = None,
) -> World:
    db = db or f"sqlite:///{tmp_path / 't.db'}"
    store = open_store(db)
    cfg = parse_tracker_config(CONFIG.format(port=port, overdue=overdue_table) + extra)
    led = Ledger(store.sessions, rules_of(cfg), actor="test", reason="setup", now=T0)
    led.room_add(SITE, ROOM, CTL, KEY, None)
    led.cabinet_add(SITE, ROOM, "c1", False)
    led.person_add("p1", "张三", Level.SECRET, ["borrower"], "办公室", email="zhang@example.org")
    led.person_add("sec", "王秘书", Level.TOP_SECRET, ["secretary"], None, email="wang@example.org")
    led.person_add("bmb", "李保密", Level.TOP_SECRET, ["secrecy-office"], None)  # no email
    led.badge_add(P1_BADGE, "p1")
    led.badge_add(SEC_BADGE, "sec")
    for n, tag in ((1, FOLDER), (2, OTHER)):
        led.document_add(
            DocumentIn.build(
                number=f"机要〔2026〕{n}号",
                title=f"文件{n}",
                classification="机密",
                tag=tag,
                cabinet="hq/room-101/c1",
            )
        )
    clock, pub = Clock(), Pub()
    proc = Processor(
        store.sessions,
        rules_of(cfg),
        clock=clock,
        publisher=pub,
        heartbeat_s=5,
        reorder_window_s=30,
        command_ttl_s=60,
    )
    proc.load()
    return World(proc, pub, clock, store, db, inbox, room_offset=offset)


@pytest.fixture
def world(tmp_path: Path, inbox_port: tuple[Inbox, int]) -> Iterator[World]:
    w = make_world(tmp_path, *inbox_port, timedelta(0))
    yield w
    w.store.engine.dispose()


def ironroom(*args: str, db: str) -> tuple[int, list[dict[str, Any]], str]:
    env = {k: v for k, v in os.environ.items() if k != "IRONROOM_DB"}
    env["PYTHONPATH"] = str(ROOT)
    p = subprocess.run(
        [sys.executable, "-m", "ironroom.cli", *args, "--db", db],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    if args[0] == "audit":
        return p.returncode, [{"out": p.stdout}], p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines() if line]
    return p.returncode, rows, p.stderr


def test_reminders_at_each_delay_sent_once_then_escalation(world: World) -> None:
    w = world
    w.borrow(P1_BADGE, FOLDER)
    (loan,) = w.rows(m.Loan)
    assert loan.due == "2026-12-03T00:40:05.000Z"  # 机密: 7 days
    w.proc.tick()
    assert w.steps() == [] and w.inbox.mail == []

    w.later(7 * DAY - timedelta(seconds=10))  # a look 15 s before the due time
    assert w.steps() == []
    w.later(timedelta(seconds=20))  # past it, but the last look was 20 s ago (check_s 30)
    assert w.steps() == []
    # the next look, past the due time: the first reminder, mailed to the borrower
    w.later(timedelta(seconds=11))
    assert w.steps() == ["remind-1"]
    assert w.inbox.to() == [["zhang@example.org"]]
    mail = w.inbox.mail[0][1]
    assert "机要〔2026〕1号" in mail["Subject"] and "已逾期" in mail["Subject"]
    assert "张三" in mail.get_body().get_content()
    assert [(q["step"], q["to"], q["state"], q["channel"]) for q in w.queue()] == [
        ("remind-1", "p1", "sent", "smtp")
    ]
    assert w.queue(pending=True) == []
    # the borrower's badges leave the room's policy
    policy = w.pub.commands("policy.update")[-1].data
    assert P1_BADGE not in policy["cabinets"]["c1"] and SEC_BADGE in policy["cabinets"]["c1"]

    # ticks within the check interval and after it: nothing twice
    for _ in range(3):
        w.proc.tick()
    w.later(timedelta(seconds=31))
    w.later(timedelta(hours=2))
    assert w.steps() == ["remind-1"] and len(w.inbox.mail) == 1

    # the blocked borrower: refused at the cabinet, no unlock
    unlocks = len(w.pub.commands("cabinet.unlock"))
    w.badge(P1_BADGE)
    assert w.refusals()[-1] == "p1 holds an overdue item (机要〔2026〕1号)"
    assert len(w.pub.commands("cabinet.unlock")) == unlocks

    # a day after the due time: the second reminder
    w.later(DAY)
    assert w.steps() == ["remind-1", "remind-2"] and len(w.inbox.mail) == 2

    # three days after: the escalation, an alarm (a warning, no siren) and messages to the
    # secretary (mailed) and the secrecy office (no address: the log line)
    sirens = len(w.pub.commands("siren.set"))
    w.later(2 * DAY)
    assert w.steps() == ["remind-1", "remind-2", "escalate"]
    (alarm,) = w.rows(m.Alarm, m.Alarm.cause == "overdue_escalated")
    assert (alarm.severity, alarm.state, alarm.source) == ("warning", "active", "tracker")
    assert json.loads(alarm.detail)["person"] == "p1"
    assert len(w.pub.commands("siren.set")) == sirens
    (esc,) = w.rows(m.OverdueReminder, m.OverdueReminder.step == "escalate")
    assert esc.alarm_id == alarm.alarm_id
    assert w.inbox.to()[2:] == [["wang@example.org"]]
    assert "催办升级" in w.inbox.mail[2][1]["Subject"]
    sent = [(q["step"], q["to"], q["address"], q["channel"]) for q in w.queue()]
    assert sent == [
        ("remind-1", "p1", "zhang@example.org", "smtp"),
        ("remind-2", "p1", "zhang@example.org", "smtp"),
        ("escalate", "bmb", None, "log"),
        ("escalate", "sec", "wang@example.org", "smtp"),
    ]
    w.later(10 * DAY)
    assert len(w.steps()) == 3 and len(w.inbox.mail) == 3

    (row,) = w.overdue()
    assert (row["document"], row["tag"], row["person"], row["days_overdue"]) == (
        "机要〔2026〕1号",
        FOLDER,
        "p1",
        13,
    )
    assert row["reminders"] == ["remind-1", "remind-2", "escalate"]
    assert w.overdue(person="sec") == []

    # the command line reads the same
    code, rows, err = ironroom("ledger", "overdue", "--person", "p1", db=w.db)
    assert code == 0, err
    assert [(r["document"], r["reminders"]) for r in rows] == [
        ("机要〔2026〕1号", ["remind-1", "remind-2", "escalate"])
    ]
    code, rows, err = ironroom("ledger", "reminders", db=w.db)
    assert code == 0, err
    assert [(r["step"], r["to"], r["state"]) for r in rows] == [
        ("remind-1", "p1", "sent"),
        ("remind-2", "p1", "sent"),
        ("escalate", "bmb", "sent"),
        ("escalate", "sec", "sent"),
    ]
    assert ironroom("ledger", "reminders", "--pending", db=w.db)[:2] == (0, [])

    # the folder back: no longer overdue, the borrower may borrow again
    w.give_back(FOLDER)
    assert w.overdue() == []
    unlocks = len(w.pub.commands("cabinet.unlock"))
    w.borrow(P1_BADGE, OTHER)
    assert len(w.pub.commands("cabinet.unlock")) == unlocks + 1
    assert [ln.person_id for ln in w.rows(m.Loan, m.Loan.closed.is_(None))] == ["p1"]

    # every reminder, message and the alarm are in the chain, which verifies
    code, out, err = ironroom("audit", "verify", db=w.db)
    assert code == 0 and out[0]["out"].startswith("audit chain ok"), err
    with w.store.readers() as s:
        actions = set(s.scalars(select(m.AuditEntry.action)))
    assert {"overdue.remind", "overdue.queue", "overdue.sent", "alarm.raise"} <= actions


def test_a_failed_send_is_kept_and_retried_with_backoff(world: World) -> None:
    w = world
    down = free_port()  # nothing listens there
    good = w.proc.rules.notifier
    w.proc.rules = replace(
        w.proc.rules, notifier=SmtpNotifier(NotifySettings(kind="smtp", port=down, timeout_s=2))
    )
    w.borrow(P1_BADGE, FOLDER)
    w.later(7 * DAY + timedelta(seconds=6))
    (q,) = w.queue(pending=True)
    assert (q["state"], q["attempts"], q["channel"]) == ("pending", 1, None)
    assert q["error"].startswith(f"smtp 127.0.0.1:{down}: ")
    first_try = datetime.fromisoformat(q["next_try"].replace("Z", "+00:00"))
    assert first_try == w.clock.now() + timedelta(seconds=30)
    w.proc.tick()  # not yet time to try again
    assert w.queue(pending=True)[0]["attempts"] == 1
    w.later(timedelta(seconds=31))  # tried again: fails again, the next try later
    (q,) = w.queue(pending=True)
    assert q["attempts"] == 2
    assert q["next_try"] > first_try.strftime("%Y-%m-%dT%H:%M:%S")
    w.proc.rules = replace(w.proc.rules, notifier=good)  # the mail server is back
    w.later(timedelta(seconds=61))
    assert w.queue(pending=True) == []
    (q,) = w.queue()
    assert (q["state"], q["attempts"], q["error"], q["channel"]) == ("sent", 3, None, "smtp")
    assert w.inbox.to() == [["zhang@example.org"]]
    w.later(timedelta(minutes=5))
    assert len(w.inbox.mail) == 1
    code, out, err = ironroom("audit", "verify", db=w.db)
    assert code == 0 and out[0]["out"].startswith("audit chain ok"), err


def test_the_rooms_own_clock_decides(tmp_path: Path, inbox_port: tuple[Inbox, int]) -> None:
    """A room whose clock runs 20 days behind the tracker's (a simulated day in the past):
    the loan is overdue by the room's time, not the tracker's."""
    w = make_world(tmp_path, *inbox_port, -20 * DAY)
    try:
        w.heartbeat()
        w.borrow(P1_BADGE, FOLDER)
        w.later(DAY)  # the tracker's time is far past the due date; the room's is not
        assert w.steps() == []
        w.later(6 * DAY + timedelta(seconds=10))  # the room's time past the due date
        assert w.steps() == ["remind-1"]
        (rem,) = w.rows(m.OverdueReminder)
        assert rem.created == (w.clock.now() + w.room_offset).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        assert len(w.inbox.mail) == 1
        # the borrower's badge, stamped in the room's time, is refused
        w.badge(P1_BADGE)
        assert w.refusals()[-1].startswith("p1 holds an overdue item")
        code, out, err = ironroom("audit", "verify", db=w.db)
        assert code == 0 and out[0]["out"].startswith("audit chain ok"), err
    finally:
        w.store.engine.dispose()


def test_blocked_in_the_policy_before_any_reminder(
    tmp_path: Path, inbox_port: tuple[Inbox, int]
) -> None:
    """The first reminder a day after the due time: the borrower's badges leave the
    room's policy at the due time all the same, once, and come back with the folder."""
    table = '[overdue]\nremind_after = ["1d"]\n'
    w = make_world(tmp_path, *inbox_port, timedelta(0), overdue_table=table)
    try:
        w.borrow(P1_BADGE, FOLDER)
        w.proc.tick()  # what the command line queued at setup goes out first
        w.later(7 * DAY + timedelta(seconds=6))
        assert w.steps() == []
        policies = w.pub.commands("policy.update")
        assert P1_BADGE not in policies[-1].data["cabinets"]["c1"]
        w.later(timedelta(minutes=5))
        assert len(w.pub.commands("policy.update")) == len(policies)  # not sent again
        w.later(DAY)
        assert w.steps() == ["remind-1"]
        w.give_back(FOLDER)
        assert P1_BADGE in w.pub.commands("policy.update")[-1].data["cabinets"]["c1"]
    finally:
        w.store.engine.dispose()


def test_in_room_loans_get_no_reminders(tmp_path: Path, inbox_port: tuple[Inbox, int]) -> None:
    """机密 lent for in-room use only (``[loans] secret = "in-room"``): due at closing
    time, left to the closing-time check; no reminders, nobody blocked."""
    w = make_world(tmp_path, *inbox_port, timedelta(0), '[loans]\nsecret = "in-room"\n')
    try:
        w.borrow(P1_BADGE, FOLDER)
        assert [ln.kind for ln in w.rows(m.Loan)] == ["in-room"]
        w.later(30 * DAY)
        assert w.steps() == [] and w.overdue() == [] and w.inbox.mail == []
        assert not w.refusals()
        w.badge(P1_BADGE)
        assert not any("overdue" in r for r in w.refusals())
    finally:
        w.store.engine.dispose()


def test_person_email_on_the_command_line(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    code, rows, err = ironroom(
        "ledger", "person", "add", "p9", "--name", "赵六", "--clearance", "秘密",
        "--email", "zhao@example.org", db=db,
    )  # fmt: skip
    assert code == 0, err
    assert rows[0]["email"] == "zhao@example.org"
    code, rows, err = ironroom(
        "ledger", "person", "add", "p8", "--name", "x", "--clearance", "秘密",
        "--email", "not an address", db=db,
    )  # fmt: skip
    assert (code, rows) == (2, [])
    assert err.splitlines() == [
        "ironroom: --email 'not an address': expected an address like name@example.org"
    ]
    code, out, err = ironroom("audit", "verify", db=db)
    assert code == 0 and out[0]["out"].startswith("audit chain ok"), err


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return str(request.getfixturevalue("postgres_url"))


def test_on_postgresql(postgres_url: str, tmp_path: Path, inbox_port: tuple[Inbox, int]) -> None:
    """The same workflow on PostgreSQL: reminders, the escalation, the chain."""
    w = make_world(tmp_path, *inbox_port, timedelta(0), db=postgres_url)
    try:
        w.borrow(P1_BADGE, FOLDER)
        w.proc.tick()
        w.later(7 * DAY + timedelta(seconds=6))
        w.later(3 * DAY)
        assert w.steps() == ["remind-1", "remind-2", "escalate"]
        assert len(w.rows(m.Alarm, m.Alarm.cause == "overdue_escalated")) == 1
        assert w.inbox.to() == [["zhang@example.org"]] * 2 + [["wang@example.org"]]
        w.later(DAY)
        assert len(w.inbox.mail) == 3 and w.queue(pending=True) == []
        code, out, err = ironroom("audit", "verify", db=w.db)
        assert code == 0 and out[0]["out"].startswith("audit chain ok"), err
    finally:
        w.store.engine.dispose()


def test_upgrading_a_ledger_with_people_keeps_the_chain_verifying(any_db: str) -> None:
    """People registered before the email column: the migration records the new column
    in the chain, so ``audit verify`` still passes after the upgrade."""
    from alembic import command
    from sqlalchemy import text

    from protocol.canonical import canonical
    from tracker.store.audit import GENESIS, entry_hash, verify
    from tracker.store.db import alembic_config, make_engine, migrate, sessions

    engine = make_engine(any_db)
    command.upgrade(alembic_config(engine), "0001")
    after = {"id": "p1", "name": "张三", "dept": None, "clearance": 3, "roles": '["borrower"]'}
    fields = {
        "id": 1,
        "ts": "2026-11-26T00:40:00.000Z",
        "actor": "cli:test",
        "action": "person.add",
        "entity": "person",
        "entity_key": "p1",
        "before": None,
        "after": canonical({**after, "active": True}).decode(),
        "reason": "ironroom ledger person add p1",
    }
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO people (id, name, dept, clearance, roles, active, audit_id)"
                " VALUES ('p1', '张三', NULL, 3, '[\"borrower\"]', TRUE, 1)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO audit (id, ts, actor, action, entity, entity_key, before, after,"
                " reason, prev, hash) VALUES (:id, :ts, :actor, :action, :entity,"
                " :entity_key, :before, :after, :reason, :prev, :hash)"
            ),
            {**fields, "prev": GENESIS, "hash": entry_hash(GENESIS, fields)},
        )
    migrate(engine)
    try:
        with sessions(engine)() as s:
            verdict = verify(s)
            assert verdict.ok, verdict
            (entry,) = s.scalars(select(m.AuditEntry).where(m.AuditEntry.id == 2))
            assert (entry.action, entry.entity_key) == ("person.schema", "p1")
            assert json.loads(entry.after)["email"] is None
            assert s.get(m.Person, "p1").email is None  # type: ignore[union-attr]
    finally:
        engine.dispose()
