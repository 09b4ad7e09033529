"""The annual return (清退) as an operator runs it: ``ironroom ledger campaign
start|status|return|sign-off`` as separate processes on a SQLite file of the test's
own; a returned document's tag read again comes through the tracker's own ingest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_handover_cli import EPC, P3, Room, add_doc, make_site, verified
from tests.integration.test_ledger_cli import Result, ironroom, ok, qok

pytestmark = [pytest.mark.timeout(180)]


@pytest.fixture
def db(tmp_path: Path) -> str:
    """F-1 (省委, 2026), F-2 on loan to p3 (省委, 2026), F-3 (市委, 2025), F-4 (省委,
    2027: not yet), F-5 (no return date)."""
    db = make_site(tmp_path)
    add_doc(db, 1, "机密", "--issuer", "省委办公厅", "--return-by", "2026-06-30")
    add_doc(db, 2, "机密", "--issuer", "省委办公厅", "--return-by", "2026-12-31")
    add_doc(db, 3, "秘密", "--issuer", "市委办公室", "--return-by", "2025-03-01")
    add_doc(db, 4, "机密", "--issuer", "省委办公厅", "--return-by", "2027-01-01")
    add_doc(db, 5, "机密", "--issuer", "省委办公厅")
    room = Room(db)
    room.feed(*room.take(0, P3, EPC[2]))
    return db


def holders(rows: list[dict[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    return {
        r["holder"]: [(i["number"], i["state"]) for i in r["items"]] for r in rows if "holder" in r
    }


def fails(db: str, *args: str) -> str:
    r: Result = ironroom("ledger", "campaign", *args, db=db)
    return r.failed().removeprefix("ironroom: ")


def test_a_campaign_to_completion(db: str) -> None:
    rows = ok("ledger", "campaign", "start", "2026", db=db)
    head = rows[0]
    assert (head["campaign"], head["year"], head["issuer"], head["state"]) == (
        1,
        2026,
        None,
        "open",
    )
    assert (head["returned"], head["total"], head["holders"], head["signed_off"]) == (0, 3, 2, 0)
    assert holders(rows) == {
        "p3": [("F-2", "pending")],
        "secretary": [("F-3", "pending"), ("F-1", "pending")],
    }
    assert ok("ledger", "campaign", "status", "1", db=db) == rows
    assert fails(db, "sign-off", "1", "--holder", "p3", "--by", "sec1") == (
        "campaign 1, holder p3: 1 of 1 items are not back yet"
    )

    # p3's copy given back: its loan closes, it leaves the ledger's custody
    rows = ok("ledger", "campaign", "return", "1", EPC[2], "--by", "p3", db=db)
    assert holders(rows)["p3"] == [("F-2", "returned")]
    p3 = next(r for r in rows if r.get("holder") == "p3")
    assert (p3["returned"], p3["total"], p3["items"][0]["returned_by"]) == (1, 1, "p3")
    shown = qok("ledger", "show", "F-2", db=db)[0]
    assert (shown["status"], shown["holder"], shown["cabinet"], shown["loan"]) == (
        "returned",
        None,
        None,
        None,
    )
    assert [x["closed"] is not None for x in qok("ledger", "loans", db=db)] == [True]
    assert fails(db, "return", "1", EPC[2], "--by", "p3") == "F-2 copy 1: it is returned already"

    assert fails(db, "sign-off", "1", "--holder", "p3", "--by", "p5") == (
        "campaign 1, holder p3: a sign-off needs the secretary or secrecy-office role"
    )
    rows = ok("ledger", "campaign", "sign-off", "1", "--holder", "p3", "--by", "sec1", db=db)
    assert (rows[0]["signed_off"], rows[0]["state"]) == (1, "open")
    assert fails(db, "sign-off", "1", "--holder", "p3", "--by", "sec1") == (
        "campaign 1, holder p3: signed off already"
    )

    # the cabinets' list, by number
    ok("ledger", "campaign", "return", "1", "F-1", "--by", "sec1", db=db)
    ok("ledger", "campaign", "return", "1", "F-3", "--by", "sec1", db=db)
    rows = ok("ledger", "campaign", "sign-off", "1", "--holder", "secretary", "--by", "sec2",
              db=db)  # fmt: skip
    assert (rows[0]["state"], rows[0]["returned"], rows[0]["signed_off"]) == ("complete", 3, 2)
    assert rows[0]["completed"] is not None
    assert [c["state"] for c in ok("ledger", "campaign", db=db)] == ["complete"]
    assert fails(db, "return", "1", "F-1", "--by", "sec1") == "F-1 copy 1: the campaign is complete"
    # what was not due stays
    assert [qok("ledger", "show", f"F-{n}", db=db)[0]["status"] for n in (4, 5)] == [
        "in_cabinet",
        "in_cabinet",
    ]
    verified(db)


def test_a_returned_tag_read_again_is_recorded(db: str) -> None:
    ok("ledger", "campaign", "start", "2026", "--issuer", "省委办公厅", db=db)
    ok("ledger", "campaign", "return", "1", "F-1", "--by", "sec1", db=db)
    room = Room(db)
    room.feed(
        (1000, "tag.arrived", {"reader": "cabinet:c1", "epc": EPC[1]}),
        room.seen(1010, EPC[1]),
    )
    assert qok("ledger", "show", "F-1", db=db)[0]["status"] == "returned"
    r = ironroom("audit", "log", "--entity", "incident", db=db)
    assert r.code == 0, r.err
    kinds = [x["action"] for x in r.rows]
    assert kinds.count("incident.returned_tag_seen") == 2
    assert ok("ledger", "alarms", db=db) == []
    verified(db)


def test_campaign_scope_and_refusals(db: str) -> None:
    assert fails(db, "start", "2024") == (
        "nothing to return for 2024: no document with a return-by date in or before that year"
    )
    assert fails(db, "status", "1") == "no campaign 1"
    rows = ok("ledger", "campaign", "start", "2026", "--issuer", "市委办公室", db=db)
    assert holders(rows) == {"secretary": [("F-3", "pending")]}
    assert fails(db, "start", "2026", "--issuer", "市委办公室") == (
        "campaign 1 for 2026 (市委办公室) is open already"
    )
    # another campaign leaves out what the first one tracks
    rows = ok("ledger", "campaign", "start", "2027", db=db)
    assert holders(rows) == {
        "p3": [("F-2", "pending")],
        "secretary": [("F-1", "pending"), ("F-4", "pending")],
    }
    assert fails(db, "return", "2", "F-3", "--by", "sec1") == (
        "campaign 2 lists no document with tag or number 'F-3'"
    )
    assert fails(db, "return", "2", "F-1", "--by", "nobody") == "no person nobody"
    assert fails(db, "sign-off", "2", "--holder", "p5", "--by", "sec1") == (
        "campaign 2 has no list for holder 'p5'"
    )
    assert fails(db, "start", "99") == "year 99: expected a year such as 2026"
    r = ironroom("ledger", "campaign", "start", "soon", db=db)
    assert r.code == 2 and "invalid int value" in r.err
    verified(db)
