"""The tracker's store on a real PostgreSQL (a throwaway cluster, psycopg 3): the ledger
and audit commands as separate processes, tamper detection, the ingest pipeline turning a
badge and a departing tag into a loan, and a second tracker on the same database carrying
on where the first stopped."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select

from ironroom import cli as ironroom_cli
from protocol.envelope import decode_ack, make_event
from tracker.bootstrap import Store, open_store, rules_of
from tracker.config import parse_tracker_config
from tracker.domain.levels import Level
from tracker.ingest.pipeline import Message, Processor
from tracker.service.ledger import DocumentIn, Ledger, alarms, loans, show
from tracker.store import models as m
from tracker.store.audit import verify
from tracker.store.db import make_engine

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

IRONROOM = [sys.executable, "-m", "ironroom.cli"]
KEY = bytes(range(32))
SITE, ROOM, CONTROLLER = "hq", "room-101", "room-101-ctl"
UID = "04A1B2C3D4E5F6"
EPC = "E28011700000020A1B2C3D01"
EPC2 = "E28011700000020A1B2C3D02"
#: Thursday 2026-11-26 08:40 in Shanghai: working hours.
T0 = datetime(2026, 11, 26, 0, 40, tzinfo=UTC)
CONFIG = '[hours]\ntimezone = "Asia/Shanghai"\nthu = ["08:30-12:00", "13:30-17:30"]\n'
STARTED = {
    "version": "t",
    "config_hash": "h",
    "points": ["door", "lock:c1"],
    "readers": ["cabinet:c1"],
}


def ironroom(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*IRONROOM, *args], capture_output=True, text=True, timeout=60, check=False
    )


def ok(*args: str) -> list[dict[str, Any]]:
    done = ironroom(*args)
    assert done.returncode == 0, f"ironroom {' '.join(args)}: {done.stderr}"
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def sql(url: str, statement: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(statement).rowcount


# -- the command line --------------------------------------------------------------------


def test_ledger_and_audit_commands_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    db = ["--db", postgres_url]
    init = ironroom("ledger", "init", *db)
    assert init.returncode == 0, init.stderr
    assert "revision 0008" in init.stderr
    assert "postgresql+psycopg" in init.stderr
    again = ironroom("ledger", "init", *db)  # already at the newest revision
    assert again.returncode == 0, again.stderr

    key_file = tmp_path / "room.key"
    key_file.write_text(KEY.hex() + "\n")
    assert (
        ok(
            "ledger",
            "room",
            "add",
            SITE,
            ROOM,
            "--controller",
            CONTROLLER,
            "--key-file",
            str(key_file),
            *db,
        )[0]["generation"]
        == 1
    )
    ok("ledger", "cabinet", "add", SITE, ROOM, "c1", *db)
    ok("ledger", "cabinet", "add", SITE, ROOM, "g1", "--general", *db)
    ok(
        "ledger",
        "person",
        "add",
        "sec",
        "--name",
        "王秘书",
        "--clearance",
        "机密",
        "--role",
        "secretary",
        "--dept",
        "办公室",
        *db,
    )
    ok("ledger", "badge", "add", UID, "--person", "sec", *db)
    ok(
        "ledger",
        "document",
        "add",
        "--number",
        "机发〔2026〕1号",
        "--title",
        "folder 1",
        "--classification",
        "secret",
        "--tag",
        EPC,
        "--cabinet",
        f"{SITE}/{ROOM}/c1",
        "--copy",
        "1/2",
        "--scope",
        "dept:办公室",
        "--no-copying",
        "--issuer",
        "机要处",
        *db,
    )
    delivery = tmp_path / "delivery.csv"
    delivery.write_text(
        "\ufeffnumber,title,classification,tag,cabinet\n"
        f"N-2,folder 2,internal,{EPC2},{SITE}/{ROOM}/g1\n",
        encoding="utf-8",
    )
    assert len(ok("ledger", "import", str(delivery), *db)) == 1

    [doc] = ok("ledger", "show", EPC, *db)
    assert doc["status"] == "in_cabinet"
    assert doc["cabinet"] == f"{SITE}/{ROOM}/c1"
    assert doc["classification"] == "机密"
    assert doc["copy"] == "1/2"
    assert doc["no_copying"] is True
    assert ok("ledger", "show", "N-2", *db)[0]["cabinet"] == f"{SITE}/{ROOM}/g1"
    assert ok("ledger", "loans", *db) == []
    assert ok("ledger", "alarms", "--active", *db) == []
    assert ok("ledger", "events", *db) == []

    # Refusals are one line on stderr and exit 2, and change nothing.
    dup = ironroom("ledger", "person", "add", "sec", "--name", "x", "--clearance", "公开", *db)
    assert dup.returncode == 2 and dup.stderr.count("\n") == 1, dup.stderr
    nothing = ironroom("ledger", "show", "NO-SUCH", *db)
    assert nothing.returncode == 2
    # Longer than its column: SQLite would store it, PostgreSQL refuses it; either way
    # never a traceback.
    long = ironroom(
        "ledger", "person", "add", "p9", "--name", "名" * 300, "--clearance", "公开", *db
    )
    assert long.returncode == 2 and long.stderr.count("\n") == 1, long.stderr
    assert "too long" in long.stderr

    good = ironroom("audit", "verify", *db)
    assert good.returncode == 0, good.stderr
    head = ironroom("audit", "head", *db)
    count, digest = head.stdout.split()
    assert f"{count} entries, head {digest}" in good.stdout
    assert int(count) >= 7


def test_audit_verify_catches_sql_edits_on_postgres(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(postgres_url)
    try:
        _setup(store)
    finally:
        store.engine.dispose()

    def audit_verify() -> tuple[int, str]:
        # In this process (the command line as a separate process is tested above).
        rc = ironroom_cli.main(["audit", "verify", "--db", postgres_url])
        return rc, capsys.readouterr().err

    assert audit_verify() == (0, "")

    # A ledger row edited behind the tracker's back.
    assert sql(postgres_url, "UPDATE people SET clearance = 1 WHERE id = 'sec'") == 1
    rc, err = audit_verify()
    assert rc == 1 and "person sec no longer matches audit entry" in err, err
    sql(postgres_url, "UPDATE people SET clearance = 3 WHERE id = 'sec'")
    assert audit_verify()[0] == 0, "the edit undone verifies again"

    # A boolean flipped (PostgreSQL stores real booleans).
    sql(postgres_url, "UPDATE documents SET no_copying = NOT no_copying WHERE number = 'N1'")
    rc, err = audit_verify()
    assert rc == 1 and "document" in err and "no longer matches" in err, err
    sql(postgres_url, "UPDATE documents SET no_copying = NOT no_copying WHERE number = 'N1'")

    # An audit entry altered, then one removed, then two swapped.
    sql(postgres_url, "UPDATE audit SET reason = 'nothing to see' WHERE id = 3")
    rc, err = audit_verify()
    assert rc == 1 and "entry 3" in err and "altered" in err, err
    sql(postgres_url, "UPDATE audit SET reason = 'setup' WHERE id = 3")
    assert audit_verify()[0] == 0
    sql(
        postgres_url,
        "BEGIN; UPDATE audit SET id = -4 WHERE id = 4; UPDATE audit SET id = 4 WHERE id = 5;"
        " UPDATE audit SET id = 5 WHERE id = -4; COMMIT",
    )
    rc, err = audit_verify()
    assert rc == 1 and "entry 4" in err, err
    sql(postgres_url, "DELETE FROM audit WHERE id = 2")
    rc, err = audit_verify()
    assert rc == 1 and "entry 2 is missing" in err, err


# -- the ingest pipeline -----------------------------------------------------------------


class FakeClock:
    def __init__(self, t: datetime) -> None:
        self.t, self.m = t, 1000.0

    def now(self) -> datetime:
        return self.t

    def monotonic(self) -> float:
        return self.m

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)
        self.m += seconds


@dataclass
class FakePublisher:
    out: list[tuple[str, bytes]] = field(default_factory=list)
    acked: list[Message] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, *, retain: bool) -> bool:
        self.out.append((topic, payload))
        return True

    def ack(self, messages: Any) -> None:
        self.acked.extend(messages)

    def ack_highs(self) -> list[int]:
        return [decode_ack(KEY, t, p).seq for t, p in self.out if t.endswith("/ack")]

    def commands(self, type_: str) -> list[dict[str, Any]]:
        cmds = [json.loads(p) for t, p in self.out if "/cmd/" in t]
        return [c for c in cmds if c["type"] == type_]


class Controller:
    """Signed events of one controller boot, seq 1, 2, 3, ..."""

    def __init__(self, clock: FakeClock, boot: int = 1) -> None:
        self.clock, self.boot, self.seq = clock, boot, 0
        self.made: dict[int, Message] = {}

    def event(self, type_: str, data: dict[str, Any]) -> Message:
        self.seq += 1
        topic, payload = make_event(
            KEY,
            site=SITE,
            room=ROOM,
            controller=CONTROLLER,
            boot=self.boot,
            seq=self.seq,
            ts=self.clock.now(),
            type=type_,
            data=data,
        )
        msg = Message(topic, payload, self.clock.now(), self.clock.monotonic())
        self.made[self.seq] = msg
        return msg

    def again(self, seq: int) -> Message:
        """The same bytes resent (the broker redelivering, the controller resending)."""
        old = self.made[seq]
        return Message(old.topic, old.payload, self.clock.now(), self.clock.monotonic())


def _setup(store: Store) -> None:
    rules = rules_of(parse_tracker_config(CONFIG))
    led = Ledger(store.sessions, rules, actor="test", reason="setup", now=T0)
    led.room_add(SITE, ROOM, CONTROLLER, KEY, None)
    led.cabinet_add(SITE, ROOM, "c1", False)
    led.person_add("sec", "王秘书", Level.SECRET, ["secretary"], None)
    led.badge_add(UID, "sec")
    led.document_add(
        DocumentIn.build(
            number="N1",
            title="folder 1",
            classification="secret",
            tag=EPC,
            cabinet=f"{SITE}/{ROOM}/c1",
        )
    )
    led.document_add(
        DocumentIn.build(
            number="N2",
            title="folder 2",
            classification="secret",
            tag=EPC2,
            cabinet=f"{SITE}/{ROOM}/c1",
        )
    )


@pytest.fixture
def store(postgres_url: str) -> Iterator[Store]:
    st = open_store(postgres_url)
    try:
        _setup(st)
        yield st
    finally:
        st.engine.dispose()


def processor(st: Store, clock: FakeClock, pub: FakePublisher) -> Processor:
    p = Processor(st.sessions, rules_of(parse_tracker_config(CONFIG)), clock=clock, publisher=pub)
    p.load()
    return p


def _events(st: Store) -> list[tuple[int, int, bool]]:
    with st.sessions() as s:
        return [
            tuple(r)
            for r in s.execute(  # type: ignore[misc]
                select(m.Event.boot, m.Event.seq, m.Event.applied).order_by(m.Event.id)
            )
        ]


def _counter(st: Store, name: str) -> int:
    with st.sessions() as s:
        row = s.get(m.Counter, name)
        return row.value if row is not None else 0


def test_store_is_postgres_through_psycopg(store: Store) -> None:
    assert store.engine.dialect.name == "postgresql"
    assert store.engine.dialect.driver == "psycopg"
    with store.engine.connect() as conn:
        types = {
            name: kind
            for name, kind in conn.exec_driver_sql(
                "SELECT table_name || '.' || column_name, data_type"
                " FROM information_schema.columns WHERE table_schema = 'public'"
            )
        }
    assert types["events.id"] == "bigint"
    assert types["audit.id"] == "bigint"
    assert types["events.applied"] == "boolean"
    assert types["events.payload"] == "bytea"


def test_the_migrated_schema_is_the_models_on_postgres(store: Store) -> None:
    """What Alembic made on PostgreSQL is exactly what the models say (lengths, types,
    indexes, constraints), and the BigInteger event ids number themselves."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), m.Base.metadata) == []
        default = conn.exec_driver_sql(
            "SELECT column_default FROM information_schema.columns"
            " WHERE table_name = 'events' AND column_name = 'id'"
        ).scalar()
    assert str(default).startswith("nextval(")


def test_badge_and_departing_tag_make_a_loan_on_postgres(store: Store) -> None:
    clock, pub = FakeClock(T0), FakePublisher()
    ctl = Controller(clock)
    p = processor(store, clock, pub)
    p.process([ctl.event("controller.started", STARTED)])
    clock.advance(2)
    p.process(
        [ctl.event("badge.presented", {"reader": "cabinet:c1", "uid": UID, "auth": "verified"})]
    )
    unlocks = pub.commands("cabinet.unlock")
    assert [u["data"]["cabinet"] for u in unlocks] == ["c1"]
    clock.advance(7)
    p.process([ctl.event("tag.departed", {"reader": "cabinet:c1", "epc": EPC})])

    with store.sessions() as s:
        [loan] = loans(s, open_only=True, person=None)
        [doc] = show(s, EPC)
        assert verify(s).ok
    assert loan["person"] == "sec" and loan["tag"] == EPC and loan["kind"] == "badge"
    assert loan["opened"] == "2026-11-26T00:40:09.000Z"
    assert doc["status"] == "on_loan" and doc["holder"] == "sec"
    assert pub.ack_highs()[-1] == 3

    # The same three again (a broker redelivering after a lost PUBACK): dropped quietly,
    # the ack they missed sent again, nothing applied twice.
    p.process([ctl.again(1), ctl.again(2), ctl.again(3)])
    assert _counter(store, "duplicate") == 3
    assert _counter(store, "applied") == 3
    assert len(_events(store)) == 3
    assert pub.ack_highs()[-1] == 3
    assert len(pub.commands("cabinet.unlock")) == 1
    with store.sessions() as s:
        assert len(loans(s, open_only=False, person=None)) == 1
        assert verify(s).ok

    # Back in its home cabinet: the loan closes.
    clock.advance(60)
    p.process([ctl.event("tag.arrived", {"reader": "cabinet:c1", "epc": EPC})])
    with store.sessions() as s:
        assert loans(s, open_only=True, person=None) == []
        assert show(s, EPC)[0]["status"] == "in_cabinet"
        assert verify(s).ok


def test_the_widest_values_the_protocol_allows_fit_postgres_columns(store: Store) -> None:
    """SQLite stores any length in a VARCHAR(n); PostgreSQL refuses what does not fit, and a
    refused batch would stall the ingest. Every field at the protocol's own limit: a 64-byte
    EPC, 256-character alarm ids and names."""
    clock, pub = FakeClock(T0), FakePublisher()
    ctl = Controller(clock)
    p = processor(store, clock, pub)
    long_epc = "AB" * 64
    alarm_id = "a" * 256
    p.process(
        [
            ctl.event("controller.started", STARTED),
            ctl.event("tag.arrived", {"reader": "cabinet:c1", "epc": long_epc}),
            ctl.event(
                "alarm.raised",
                {
                    "alarm_id": alarm_id,
                    "cause": "forced_open",
                    "point": "door",
                    "severity": "critical",
                },
            ),
            ctl.event("alarm.cleared", {"alarm_id": alarm_id, "by": "b" * 256}),
            ctl.event("command.result", {"command_id": "c" * 256, "ok": True, "error": None}),
            ctl.event(
                "badge.presented",
                {"reader": "cabinet:c1", "uid": "CD" * 64, "auth": "verified", "label": "x" * 256},
            ),
            ctl.event("tag.seen", {"reader": "portal", "epc": "EF" * 64, "rssi": None}),
        ]
    )
    assert pub.ack_highs()[-1] == 7
    with store.sessions() as s:
        incident = s.scalars(select(m.Incident).where(m.Incident.kind == "unknown_tag")).first()
        assert incident is not None and incident.epc == long_epc
        alarm = s.scalars(select(m.Alarm).where(m.Alarm.alarm_id == alarm_id)).one()
        assert alarm.state == "reset" and alarm.ended_by == "b" * 256
        assert verify(s).ok


def test_a_second_tracker_on_the_same_postgres_carries_on(postgres_url: str) -> None:
    first = open_store(postgres_url)
    _setup(first)
    clock, pub1 = FakeClock(T0), FakePublisher()
    ctl = Controller(clock)
    p1 = processor(first, clock, pub1)
    p1.process([ctl.event("controller.started", STARTED)])
    clock.advance(2)
    p1.process(
        [ctl.event("badge.presented", {"reader": "cabinet:c1", "uid": UID, "auth": "verified"})]
    )
    clock.advance(5)
    p1.process([ctl.event("tag.departed", {"reader": "cabinet:c1", "epc": EPC})])
    # seq 5 arrives before 4 (reordered in flight): the first tracker holds it.
    clock.advance(1)
    e4 = ctl.event("controller.heartbeat", {"outbox_depth": 1, "uptime_s": 10, "armed": False})
    clock.advance(1)
    e5 = ctl.event("tag.departed", {"reader": "cabinet:c1", "epc": EPC2})
    p1.process([e5])
    assert pub1.ack_highs()[-1] == 3
    assert _events(first) == [(1, 1, True), (1, 2, True), (1, 3, True), (1, 5, False)]
    first.engine.dispose()  # the first tracker is gone (stopped, crashed, moved)

    second = open_store(postgres_url)  # another process: its own engine, nothing shared
    try:
        clock.advance(1)
        pub2 = FakePublisher()
        p2 = processor(second, clock, pub2)
        # What the broker redelivers to the new tracker: seq 3 again (its PUBACK was lost
        # with the first tracker), then the missing 4, then new events.
        p2.process([ctl.again(3)])
        assert pub2.ack_highs() == [3], "a duplicate is acknowledged from the stored high"
        p2.process([e4])
        assert pub2.ack_highs()[-1] == 5, "seq 4 fills the gap; the held 5 is applied with it"
        clock.advance(10)
        p2.process([ctl.event("tag.arrived", {"reader": "cabinet:c1", "epc": EPC})])
        assert pub2.ack_highs()[-1] == 6

        assert [(b, s_) for b, s_, _ in _events(second)] == [
            (1, 1),
            (1, 2),
            (1, 3),
            (1, 5),
            (1, 4),
            (1, 6),
        ]
        assert all(applied for _, _, applied in _events(second))
        with second.sessions() as s:
            seqs = [int(e["id"].rsplit(":", 1)[1]) for e in _events_cli(s)]
            assert seqs == [1, 2, 3, 4, 5, 6], "the ledger lists events in seq order"
            assert s.get(m.Boot, (1, 1, 1)).high == 6  # type: ignore[union-attr]
            all_loans = loans(s, open_only=False, person=None)
            assert [(ln["tag"], ln["closed"] is None) for ln in all_loans] == [
                (EPC, False),
                (EPC2, True),
            ]
            assert s.scalar(select(func.count()).select_from(m.Loan)) == 2
            assert verify(s).ok
        assert _counter(second, "applied") == 6
        assert _counter(second, "duplicate") == 1
    finally:
        second.engine.dispose()


def test_time_driven_work_on_postgres(store: Store) -> None:
    """The tick: a gap held past the reorder window is recorded and acknowledged past, a
    silent controller raises controller_silent, and a closing time is checked."""
    clock, pub = FakeClock(T0), FakePublisher()
    ctl = Controller(clock)
    p = processor(store, clock, pub)
    p.process([ctl.event("controller.started", STARTED)])
    ctl.event("controller.heartbeat", {"outbox_depth": 0, "uptime_s": 1, "armed": False})
    p.process(
        [ctl.event("controller.heartbeat", {"outbox_depth": 0, "uptime_s": 2, "armed": False})]
    )
    assert pub.ack_highs()[-1] == 1, "seq 2 never came: 3 is held"
    clock.advance(31)
    p.tick()
    assert pub.ack_highs()[-1] == 3
    clock.advance(3600 * 10)  # past 17:30 in Shanghai, and silent all along
    p.tick()
    with store.sessions() as s:
        causes = sorted(a["cause"] for a in alarms(s, active=True))
        assert verify(s).ok
    assert "event_gap" in causes and "controller_silent" in causes, causes


def test_tracker_and_command_line_writing_the_audit_chain_at_once(postgres_url: str) -> None:
    """Two processes' worth of writers (own engines) appending to one chain at the same
    time: the advisory lock keeps the entry ids gapless and the chain verifying."""
    import threading

    setup = open_store(postgres_url)
    _setup(setup)
    setup.engine.dispose()
    errors: list[BaseException] = []
    n = 25

    def cli_writer() -> None:
        st = open_store(postgres_url)
        try:
            rules = rules_of(parse_tracker_config(CONFIG))
            for i in range(n):
                led = Ledger(st.sessions, rules, actor="cli:test", reason=f"person {i}", now=T0)
                led.person_add(f"p{i}", f"person {i}", Level.INTERNAL, [], "dept")
        except BaseException as exc:  # noqa: B036 - reported by the test thread
            errors.append(exc)
        finally:
            st.engine.dispose()

    def tracker_writer() -> None:
        st = open_store(postgres_url)
        try:
            clock = FakeClock(T0)
            ctl = Controller(clock)
            p = processor(st, clock, FakePublisher())
            p.process([ctl.event("controller.started", STARTED)])
            for i in range(n):
                clock.advance(1)
                p.process([ctl.event("tag.arrived", {"reader": "cabinet:c1", "epc": f"{i:024X}"})])
        except BaseException as exc:  # noqa: B036
            errors.append(exc)
        finally:
            st.engine.dispose()

    threads = [threading.Thread(target=cli_writer), threading.Thread(target=tracker_writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors, errors
    check = open_store(postgres_url)
    try:
        with check.sessions() as s:
            v = verify(s)
            assert v.ok, v.problem
            ids = list(s.scalars(select(m.AuditEntry.id).order_by(m.AuditEntry.id)))
            assert ids == list(range(1, len(ids) + 1))
            assert s.scalar(select(func.count()).select_from(m.Incident)) == n
            assert s.scalar(select(func.count()).select_from(m.Person)) == n + 1
    finally:
        check.engine.dispose()


def _events_cli(s: Any) -> list[dict[str, Any]]:
    from tracker.service.ledger import events

    return list(events(s, f"{SITE}/{ROOM}"))


def test_make_engine_normalises_postgres_urls(postgres_url: str) -> None:
    bare = postgres_url.replace("postgresql://", "postgres://", 1)
    for url in (postgres_url, bare):
        engine = make_engine(url)
        try:
            assert engine.url.drivername == "postgresql+psycopg"
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT 1").scalar() == 1
        finally:
            engine.dispose()
