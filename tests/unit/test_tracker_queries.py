"""The ledger's everyday questions (tracker.service.queries) on a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from protocol.timefmt import format_ts
from tracker.bootstrap import open_store
from tracker.domain.levels import Level
from tracker.service.apply import Rules
from tracker.service.ledger import DocumentIn, Ledger
from tracker.service.queries import holdings, overdue, where_is
from tracker.store import models as m

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
TAG1, TAG2, TAG3 = (
    "E2801170000002000000AA01",
    "E2801170000002000000AA02",
    "E2801170000002000000AA03",
)


@pytest.fixture(params=["sqlite", "postgresql"])
def session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
    """The same ledger on SQLite and on PostgreSQL (the listings run on the driver's own
    cursor: both drivers' parameter styles)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    store = open_store(url)
    lg = Ledger(store.sessions, Rules(), "test", "setup", NOW - timedelta(days=30))
    lg.room_add("hq", "room-101", "room-101-ctl", bytes(32), None)
    lg.cabinet_add("hq", "room-101", "c1", False)
    lg.person_add("alice", "Alice", Level.SECRET, ["borrower"], "ops")
    lg.person_add("bob", "Bob", Level.SECRET, ["borrower"], "ops")
    for copy, tag in ((1, TAG1), (2, TAG2)):
        lg.document_add(
            DocumentIn.build(
                number="JM-2026-001",
                title="plan",
                classification="机密",
                tag=tag,
                cabinet="hq/room-101/c1",
                copy=f"{copy}/2",
            )
        )
    lg.document_add(
        DocumentIn.build(
            number="JM-2026-002",
            title="memo",
            classification="秘密",
            tag=TAG3,
            cabinet="hq/room-101/c1",
        )
    )
    with store.sessions.begin() as s:
        ids = {d.tag: d.id for d in s.query(m.Document)}
        # copy 2 out with alice (due tomorrow), the memo out with bob (overdue since
        # yesterday), and an old loan of copy 1 that came back
        for tag, who, opened, due, closed in (
            (TAG2, "alice", NOW - timedelta(hours=2), NOW + timedelta(days=1), None),
            (TAG3, "bob", NOW - timedelta(days=8), NOW - timedelta(days=1), None),
            (TAG1, "alice", NOW - timedelta(days=20), NOW - timedelta(days=13), NOW),
        ):
            s.add(
                m.Loan(
                    document_id=ids[tag],
                    person_id=who,
                    kind="loan",
                    opened=format_ts(opened),
                    due=format_ts(due),
                    closed=format_ts(closed) if closed else None,
                )
            )
            if closed is None:
                s.execute(
                    update(m.Document)
                    .where(m.Document.id == ids[tag])
                    .values(status="on_loan", location_cabinet_id=None, holder_id=who)
                )
    with store.sessions() as s:
        yield s
    store.engine.dispose()


def test_where_is_by_tag_in_any_case(session: Session) -> None:
    [got] = where_is(session, TAG1.lower())
    assert got["number"] == "JM-2026-001" and got["copy"] == "1/2"
    assert (got["status"], got["cabinet"], got["home"]) == (
        "in_cabinet",
        "hq/room-101/c1",
        "hq/room-101/c1",
    )
    assert got["holder"] is None and got["loan"] is None


def test_where_is_by_number_lists_every_copy_with_its_loan(session: Session) -> None:
    got = where_is(session, " JM-2026-001 ")
    assert [g["copy"] for g in got] == ["1/2", "2/2"]
    out = got[1]
    assert (out["status"], out["cabinet"], out["holder"]) == ("on_loan", None, "alice")
    assert out["loan"]["person"] == "alice" and out["loan"]["kind"] == "loan"


def test_where_is_nothing(session: Session) -> None:
    assert where_is(session, "JM-1999-999") == []


def test_holdings_are_open_loans_only(session: Session) -> None:
    got = holdings(session, "alice")
    assert [(h["tag"], h["document"], h["classification"]) for h in got] == [
        (TAG2, "JM-2026-001", "机密")
    ]
    assert holdings(session, "nobody") == []


def test_overdue_is_open_and_past_due(session: Session) -> None:
    got = overdue(session, NOW)
    assert [(o["person"], o["tag"]) for o in got] == [("bob", TAG3)]
    assert len(overdue(session, NOW + timedelta(days=2))) == 2
    assert overdue(session, NOW - timedelta(days=2)) == []
