"""The tracker's ledger rules (tracker/domain/rules.py), table by table: who may read
what, badges, folders leaving and coming back, desk and portal sightings, closing time,
the controller's policy, clocks and silence."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tracker.domain.levels import Level
from tracker.domain.model import (
    CloseLoan,
    Decision,
    Document,
    Loan,
    Move,
    OpenLoan,
    OpenSession,
    Pass,
    Person,
    RaiseAlarm,
    Record,
    Scope,
    Session,
    Unlock,
)
from tracker.domain.rules import (
    DEFAULT_LOAN_DAYS,
    BadgeContext,
    badge_presented,
    clock_offset,
    end_of_day_missing,
    in_scope,
    is_silent,
    is_skewed,
    loan_due,
    may_take_from,
    rate_limited,
    read_refusal,
    room_policy,
    session_for,
    tag_arrived,
    tag_departed,
    tag_seen,
)

# -- facts shared by the tables -------------------------------------------------------

NOW = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a Wednesday
CLOSING = datetime(2026, 9, 30, 9, 30, tzinfo=UTC)  # 17:30 in Shanghai
C1, C2, C3 = "hq/r101/c1", "hq/r101/c2", "hq/r101/c3"
EPC = "E2000017221101441890ABCD"

TS, S, C, IN, P = (
    Level.TOP_SECRET,
    Level.SECRET,
    Level.CONFIDENTIAL,
    Level.INTERNAL,
    Level.PUBLIC,
)


def person(
    pid: str = "alice",
    clearance: Level = S,
    *roles: str,
    dept: str | None = "ops",
    active: bool = True,
) -> Person:
    return Person(pid, pid.title(), clearance, frozenset(roles), dept, active)


ALICE = person("alice", S, "borrower", dept="ops")
BOB = person("bob", C, "borrower", dept="legal")
SECRETARY = person("sec", TS, "secretary", dept="office")
PEOPLE = {p.id: p for p in (ALICE, BOB, SECRETARY)}


def doc(
    level: Level = S,
    *scope: str,
    id: int = 1,
    status: str = "in_cabinet",
    home: str = C1,
    location: str | None = C1,
    holder: str | None = None,
    tag: str | None = EPC,
) -> Document:
    return Document(
        id=id,
        number=f"办〔2026〕{id}号",
        classification=level,
        tag=tag,
        home=home,
        scope=tuple(Scope.parse(s) for s in scope),
        status=status,
        location=location,
        holder=holder,
    )


def on_loan(level: Level = S, holder: str = "alice") -> Document:
    return replace(doc(level), status="on_loan", location=None, holder=holder)


def session(
    pid: str = "alice",
    *cabinets: str,
    reader: str = "cabinet:c1",
    opened: datetime = NOW - timedelta(seconds=30),
    seconds: int = 120,
) -> Session:
    return Session(
        person_id=pid,
        uid=f"UID-{pid}",
        reader=reader,
        cabinets=frozenset(cabinets or (C1,)),
        opened=opened,
        until=opened + timedelta(seconds=seconds),
    )


# -- Level ----------------------------------------------------------------------------

ALL_NAMES = (
    "绝密 (top-secret) | 机密 (secret) | 秘密 (confidential) | 内部 (internal) | 公开 (public)"
)


@pytest.mark.parametrize(
    ("text", "level"),
    [
        pytest.param("绝密", TS, id="zh-绝密"),
        pytest.param("机密", S, id="zh-机密"),
        pytest.param("秘密", C, id="zh-秘密"),
        pytest.param("内部", IN, id="zh-内部"),
        pytest.param("公开", P, id="zh-公开"),
        pytest.param("top-secret", TS, id="en-top-secret"),
        pytest.param("secret", S, id="en-secret"),
        pytest.param("confidential", C, id="en-confidential"),
        pytest.param("internal", IN, id="en-internal"),
        pytest.param("public", P, id="en-public"),
        pytest.param("Top-Secret", TS, id="en-mixed-case"),
        pytest.param("  机密\n", S, id="zh-surrounding-space"),
        pytest.param(" PUBLIC ", P, id="en-upper-with-space"),
    ],
)
def test_level_parse(text: str, level: Level) -> None:
    assert Level.parse(text) is level


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("top secret", id="space-not-hyphen"),
        pytest.param("TOP_SECRET", id="enum-name"),
        pytest.param("top_secret", id="underscore"),
        pytest.param("4", id="number"),
        pytest.param("秘", id="half-a-name"),
        pytest.param("绝 密", id="split-chinese"),
        pytest.param("机密 secret", id="both-names"),
        pytest.param("restricted", id="other-scheme"),
        pytest.param("涉密", id="umbrella-term"),
    ],
)
def test_level_parse_refuses(text: str) -> None:
    message = f"unknown classification {text!r}; use one of {ALL_NAMES}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Level.parse(text)


@pytest.mark.parametrize(
    ("level", "chinese", "english", "classified"),
    [
        pytest.param(TS, "绝密", "top-secret", True, id="绝密"),
        pytest.param(S, "机密", "secret", True, id="机密"),
        pytest.param(C, "秘密", "confidential", True, id="秘密"),
        pytest.param(IN, "内部", "internal", False, id="内部"),
        pytest.param(P, "公开", "public", False, id="公开"),
    ],
)
def test_level_names(level: Level, chinese: str, english: str, classified: bool) -> None:
    assert (level.chinese, level.english, level.classified) == (chinese, english, classified)
    assert Level.parse(chinese) is Level.parse(english) is level


def test_levels_are_ordered() -> None:
    assert sorted(Level, reverse=True) == [TS, S, C, IN, P]


# -- who may read what ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "scope", "inside"),
    [
        pytest.param(ALICE, (), True, id="empty-scope"),
        pytest.param(ALICE, ("person:alice",), True, id="person-listed"),
        pytest.param(ALICE, ("person:bob",), False, id="other-person-listed"),
        pytest.param(ALICE, ("dept:ops",), True, id="own-dept"),
        pytest.param(ALICE, ("dept:legal",), False, id="other-dept"),
        pytest.param(person("x", S, dept=None), ("dept:ops",), False, id="no-dept"),
        pytest.param(ALICE, ("role:borrower",), True, id="own-role"),
        pytest.param(ALICE, ("role:approver",), False, id="other-role"),
        pytest.param(ALICE, ("person:bob", "dept:legal", "role:borrower"), True, id="any-entry"),
        pytest.param(ALICE, ("person:bob", "dept:legal", "role:approver"), False, id="no-entry"),
        pytest.param(ALICE, ("person:ops",), False, id="dept-name-as-person"),
        pytest.param(ALICE, ("dept:alice",), False, id="person-id-as-dept"),
        pytest.param(SECRETARY, ("person:bob",), True, id="secretary-always-inside"),
        pytest.param(
            person("sec2", P, "secretary", dept=None), ("dept:legal",), True, id="secretary-no-dept"
        ),
    ],
)
def test_in_scope(who: Person, scope: tuple[str, ...], inside: bool) -> None:
    assert in_scope(who, [Scope.parse(s) for s in scope]) is inside


@pytest.mark.parametrize(
    ("who", "document", "refusal"),
    [
        pytest.param(ALICE, doc(C), None, id="clearance-above"),
        pytest.param(ALICE, doc(S), None, id="clearance-equal"),
        pytest.param(ALICE, doc(TS), "alice's clearance 机密 is below 绝密", id="clearance-below"),
        pytest.param(BOB, doc(S), "bob's clearance 秘密 is below 机密", id="one-level-below"),
        pytest.param(ALICE, doc(S, "person:alice"), None, id="scope-person"),
        pytest.param(
            ALICE,
            doc(S, "person:bob"),
            "alice is outside the need-to-know scope of 办〔2026〕1号",
            id="scope-other-person",
        ),
        pytest.param(ALICE, doc(S, "dept:ops"), None, id="scope-dept"),
        pytest.param(
            ALICE,
            doc(S, "dept:legal"),
            "alice is outside the need-to-know scope of 办〔2026〕1号",
            id="scope-other-dept",
        ),
        pytest.param(ALICE, doc(S, "role:borrower"), None, id="scope-role"),
        pytest.param(SECRETARY, doc(TS, "person:bob"), None, id="secretary-outside-scope"),
        pytest.param(
            person("sec", C, "secretary"),
            doc(TS),
            "sec's clearance 秘密 is below 绝密",
            id="secretary-still-needs-clearance",
        ),
        pytest.param(
            ALICE,
            doc(TS, "person:bob"),
            "alice's clearance 机密 is below 绝密",
            id="clearance-checked-before-scope",
        ),
        pytest.param(
            person("alice", TS, active=False), doc(P), "alice is not active", id="inactive"
        ),
        pytest.param(None, doc(P), "no badge session", id="nobody"),
    ],
)
def test_read_refusal(who: Person | None, document: Document, refusal: str | None) -> None:
    assert read_refusal(who, document) == refusal


@pytest.mark.parametrize(
    ("who", "docs", "may"),
    [
        pytest.param(ALICE, [doc(S)], True, id="readable-in-cabinet"),
        pytest.param(ALICE, [doc(TS, id=1), doc(S, "dept:legal", id=2)], False, id="none-readable"),
        pytest.param(ALICE, [doc(TS, id=1), doc(C, id=2)], True, id="one-of-two"),
        pytest.param(ALICE, [doc(S, status="misplaced")], True, id="misplaced-counts"),
        pytest.param(ALICE, [on_loan(S, "bob")], False, id="on-loan-not-there"),
        pytest.param(ALICE, [doc(S, status="missing", location=None)], False, id="missing"),
        pytest.param(ALICE, [doc(S, status="destroyed", location=None)], False, id="destroyed"),
        pytest.param(ALICE, [], False, id="empty-cabinet"),
        pytest.param(person("alice", TS, active=False), [doc(P)], False, id="inactive"),
        pytest.param(SECRETARY, [doc(TS, "person:bob")], True, id="secretary"),
    ],
)
def test_may_take_from(who: Person, docs: list[Document], may: bool) -> None:
    assert may_take_from(who, docs) is may


# -- badges ---------------------------------------------------------------------------


def ctx(**kw: object) -> BadgeContext:
    base: dict[str, object] = {
        "reader": "cabinet:c1",
        "uid": "04A1B2C3",
        "auth": "verified",
        "allow_uid_only": False,
        "person": ALICE,
        "cabinets": {C1: ("c1", [doc(S)])},
        "locked_cabinets": frozenset({"c1", "c2", "c3"}),
        "working": True,
    }
    base.update(kw)
    return BadgeContext(**base)  # type: ignore[arg-type]


def refused(reason: str, pid: str | None = "alice", reader: str = "cabinet:c1") -> Record:
    return Record(
        "badge_refused",
        person_id=pid,
        detail={"reader": reader, "uid": "04A1B2C3", "reason": reason},
    )


def opened(
    pid: str = "alice", *cabinets: str, reader: str = "cabinet:c1", s: int = 120
) -> OpenSession:
    return OpenSession(
        Session(
            pid, "04A1B2C3", reader, frozenset(cabinets or (C1,)), NOW, NOW + timedelta(seconds=s)
        )
    )


DESK_CABINETS = {
    C1: ("c1", [doc(S, id=1, home=C1)]),
    C2: ("c2", [doc(TS, id=2, home=C2, location=C2)]),
    C3: ("c3", [doc(IN, id=3, home=C3, location=C3)]),
}


@pytest.mark.parametrize(
    ("context", "decisions"),
    [
        pytest.param(ctx(), [opened(), Unlock("c1", 20, "04A1B2C3")], id="verified-may-take"),
        pytest.param(
            ctx(auth="failed"), [refused("badge authentication failed")], id="failed-auth"
        ),
        pytest.param(
            ctx(auth="failed", person=None),
            [refused("badge authentication failed", None)],
            id="failed-auth-unknown-badge",
        ),
        pytest.param(
            ctx(auth="uid-only"),
            [refused("uid-only badges are not accepted at this site")],
            id="uid-only-not-allowed",
        ),
        pytest.param(
            ctx(auth="uid-only", allow_uid_only=True),
            [opened(), Unlock("c1", 20, "04A1B2C3")],
            id="uid-only-allowed",
        ),
        pytest.param(
            ctx(auth="failed", allow_uid_only=True),
            [refused("badge authentication failed")],
            id="failed-even-where-uid-only-allowed",
        ),
        pytest.param(ctx(person=None), [refused("unknown badge", None)], id="unknown-badge"),
        pytest.param(
            ctx(person=replace(ALICE, active=False)),
            [refused("alice is not active")],
            id="inactive-person",
        ),
        pytest.param(
            ctx(blocked="overdue: 办〔2026〕7号 was due 2026-09-20"),
            [refused("overdue: 办〔2026〕7号 was due 2026-09-20")],
            id="blocked-person",
        ),
        pytest.param(
            ctx(working=False),
            [refused("outside working hours and no extended-hours grant")],
            id="outside-working-hours",
        ),
        pytest.param(
            ctx(working=False, blocked="overdue"),
            [refused("overdue")],
            id="blocked-reported-before-hours",
        ),
        pytest.param(
            ctx(cabinets={C1: ("c1", [doc(TS)])}),
            [opened(), refused("nothing here this person may take")],
            id="nothing-takeable",
        ),
        pytest.param(
            ctx(cabinets={C1: ("c1", [])}),
            [opened(), refused("nothing here this person may take")],
            id="empty-cabinet",
        ),
        pytest.param(
            ctx(cabinets={C1: ("c1", [on_loan(S, "bob")])}),
            [opened(), refused("nothing here this person may take")],
            id="only-document-on-loan",
        ),
        pytest.param(
            ctx(reader="desk", cabinets=DESK_CABINETS),
            [
                opened("alice", C1, C2, C3, reader="desk"),
                Unlock("c1", 20, "04A1B2C3"),
                Unlock("c3", 20, "04A1B2C3"),
            ],
            id="desk-covers-several-cabinets",
        ),
        pytest.param(
            ctx(reader="desk", cabinets=DESK_CABINETS, person=SECRETARY),
            [
                opened("sec", C1, C2, C3, reader="desk"),
                Unlock("c1", 20, "04A1B2C3"),
                Unlock("c2", 20, "04A1B2C3"),
                Unlock("c3", 20, "04A1B2C3"),
            ],
            id="desk-secretary-every-cabinet",
        ),
        pytest.param(
            ctx(reader="desk", cabinets=DESK_CABINETS, locked_cabinets=frozenset({"c1", "c2"})),
            [opened("alice", C1, C2, C3, reader="desk"), Unlock("c1", 20, "04A1B2C3")],
            id="desk-cabinet-without-lock",
        ),
        pytest.param(
            ctx(locked_cabinets=frozenset()),
            [opened()],
            id="takeable-cabinet-without-lock-is-not-a-refusal",
        ),
        pytest.param(
            ctx(unlock_s=45, session_s=300),
            [opened(s=300), Unlock("c1", 45, "04A1B2C3")],
            id="unlock-and-session-seconds",
        ),
        pytest.param(ctx(reader="portal"), [], id="portal-reader-ignored"),
        pytest.param(ctx(reader="c1"), [], id="malformed-reader-ignored"),
    ],
)
def test_badge_presented(context: BadgeContext, decisions: list[Decision]) -> None:
    assert badge_presented(context, NOW) == decisions


# -- loans ----------------------------------------------------------------------------

OPENED = NOW


@pytest.mark.parametrize(
    ("level", "closing", "days", "due", "kind"),
    [
        pytest.param(TS, CLOSING, DEFAULT_LOAN_DAYS, CLOSING, "in-room", id="绝密-due-at-closing"),
        pytest.param(TS, None, DEFAULT_LOAN_DAYS, OPENED, "in-room", id="绝密-day-off-due-now"),
        pytest.param(
            TS,
            OPENED - timedelta(hours=1),
            DEFAULT_LOAN_DAYS,
            OPENED,
            "in-room",
            id="绝密-closing-before-opening",
        ),
        pytest.param(TS, OPENED, DEFAULT_LOAN_DAYS, OPENED, "in-room", id="绝密-opened-at-closing"),
        pytest.param(
            S, CLOSING, DEFAULT_LOAN_DAYS, OPENED + timedelta(days=7), "badge", id="机密-7d"
        ),
        pytest.param(
            C, CLOSING, DEFAULT_LOAN_DAYS, OPENED + timedelta(days=14), "badge", id="秘密-14d"
        ),
        pytest.param(
            IN, CLOSING, DEFAULT_LOAN_DAYS, OPENED + timedelta(days=30), "badge", id="内部-30d"
        ),
        pytest.param(
            P, None, DEFAULT_LOAN_DAYS, OPENED + timedelta(days=30), "badge", id="公开-30d-day-off"
        ),
        pytest.param(
            S, CLOSING, {**DEFAULT_LOAN_DAYS, S: None}, CLOSING, "in-room", id="configured-in-room"
        ),
        pytest.param(
            TS,
            CLOSING,
            {**DEFAULT_LOAN_DAYS, TS: 1},
            OPENED + timedelta(days=1),
            "badge",
            id="configured-绝密-1d",
        ),
        pytest.param(
            C, CLOSING, {**DEFAULT_LOAN_DAYS, C: 0}, OPENED, "badge", id="configured-zero-days"
        ),
    ],
)
def test_loan_due(
    level: Level,
    closing: datetime | None,
    days: Mapping[Level, int | None],
    due: datetime,
    kind: str,
) -> None:
    assert loan_due(level, OPENED, closing, days) == (due, kind)


def test_default_loan_days() -> None:
    assert DEFAULT_LOAN_DAYS == {TS: None, S: 7, C: 14, IN: 30, P: 30}


OLD = session("alice", opened=NOW - timedelta(seconds=90))
NEW = session("bob", opened=NOW - timedelta(seconds=10))
EXPIRED = session("carol", opened=NOW - timedelta(seconds=200))  # until NOW - 80 s
DESK = session("dave", C1, C2, reader="desk", opened=NOW - timedelta(seconds=5))
ENDS_NOW = session("erin", opened=NOW - timedelta(seconds=120))
STARTS_LATER = session("frank", opened=NOW + timedelta(seconds=1))
OTHER = session("gina", C2, opened=NOW - timedelta(seconds=1))


@pytest.mark.parametrize(
    ("sessions", "cabinet", "found"),
    [
        pytest.param([OLD, NEW], C1, NEW, id="newest-of-two"),
        pytest.param([NEW, OLD], C1, NEW, id="newest-whatever-the-order"),
        pytest.param([OLD, EXPIRED], C1, OLD, id="expired-skipped"),
        pytest.param([EXPIRED], C1, None, id="only-expired"),
        pytest.param([ENDS_NOW], C1, ENDS_NOW, id="until-is-inclusive"),
        pytest.param([STARTS_LATER], C1, None, id="not-yet-open"),
        pytest.param([OTHER], C1, None, id="other-cabinet"),
        pytest.param([OTHER, OLD], C2, OTHER, id="its-own-cabinet"),
        pytest.param([OLD, NEW, DESK], C2, DESK, id="desk-covers-c2"),
        pytest.param([OLD, NEW, DESK], C1, DESK, id="desk-is-newest-on-c1"),
        pytest.param([OLD, DESK], C3, None, id="nobody-covers-c3"),
        pytest.param([], C1, None, id="no-sessions"),
    ],
)
def test_session_for(sessions: list[Session], cabinet: str, found: Session | None) -> None:
    assert session_for(sessions, cabinet, NOW) == found


# -- folders leaving ------------------------------------------------------------------


def removal(reason: str, pid: str | None = None, document: Document | None = None) -> RaiseAlarm:
    d = document or doc()
    return RaiseAlarm(
        "unauthorized_removal",
        "critical",
        point="cabinet:c1",
        document_id=d.id,
        detail={"epc": EPC, "number": d.number, "person": pid, "reason": reason},
    )


MISSING = Move(1, "missing", None, None)
ALICE_LOAN = [
    OpenLoan(1, "alice", NOW, NOW + timedelta(days=7), "badge"),
    Move(1, "on_loan", None, "alice"),
]


@pytest.mark.parametrize(
    ("document", "sessions", "decisions"),
    [
        pytest.param(doc(S), [session("alice")], ALICE_LOAN, id="loan-to-reader-in-session"),
        pytest.param(
            doc(S, "dept:ops"), [session("alice")], ALICE_LOAN, id="loan-inside-dept-scope"
        ),
        pytest.param(
            doc(S),
            [session("alice", C1, C2, reader="desk")],
            ALICE_LOAN,
            id="loan-under-desk-session",
        ),
        pytest.param(
            doc(C),
            [session("alice")],
            [
                OpenLoan(1, "alice", NOW, NOW + timedelta(days=14), "badge"),
                Move(1, "on_loan", None, "alice"),
            ],
            id="秘密-loan-14d",
        ),
        pytest.param(
            doc(TS),
            [session("sec")],
            [OpenLoan(1, "sec", NOW, CLOSING, "in-room"), Move(1, "on_loan", None, "sec")],
            id="绝密-in-room-loan",
        ),
        pytest.param(
            doc(S),
            [session("sec", opened=NOW - timedelta(seconds=60)), session("alice")],
            ALICE_LOAN,
            id="newest-session-takes-it",
        ),
        pytest.param(
            doc(S),
            [session("alice"), session("bob", opened=NOW - timedelta(seconds=5))],
            [removal("bob's clearance 秘密 is below 机密", "bob"), MISSING],
            id="newest-session-may-not-read",
        ),
        pytest.param(doc(S), [], [removal("no badge session"), MISSING], id="no-session"),
        pytest.param(
            doc(S),
            [session("alice", opened=NOW - timedelta(seconds=121))],
            [removal("no badge session"), MISSING],
            id="session-expired",
        ),
        pytest.param(
            doc(S),
            [session("alice", C2)],
            [removal("no badge session"), MISSING],
            id="session-at-other-cabinet",
        ),
        pytest.param(
            doc(S),
            [session("zoe")],
            [removal("no badge session"), MISSING],
            id="session-of-unknown-person",
        ),
        pytest.param(
            doc(TS),
            [session("alice")],
            [removal("alice's clearance 机密 is below 绝密", "alice", doc(TS)), MISSING],
            id="clearance-too-low",
        ),
        pytest.param(
            doc(S, "person:bob"),
            [session("alice")],
            [removal("alice is outside the need-to-know scope of 办〔2026〕1号", "alice"), MISSING],
            id="out-of-scope",
        ),
        pytest.param(
            on_loan(S, "bob"),
            [session("alice")],
            [CloseLoan(1, NOW), *ALICE_LOAN],
            id="still-on-loan-leaves-again",
        ),
        pytest.param(
            on_loan(S, "bob"),
            [],
            [CloseLoan(1, NOW), removal("no badge session"), MISSING],
            id="still-on-loan-leaves-without-session",
        ),
        pytest.param(
            doc(S, status="missing", location=None),
            [session("alice")],
            ALICE_LOAN,
            id="missing-document-taken-properly",
        ),
    ],
)
def test_tag_departed(
    document: Document, sessions: list[Session], decisions: list[Decision]
) -> None:
    out = tag_departed(
        doc=document,
        epc=EPC,
        cabinet=C1,
        sessions=sessions,
        people=PEOPLE,
        now=NOW,
        closing=CLOSING,
    )
    assert out == decisions
    assert all(d.siren for d in out if isinstance(d, RaiseAlarm))


def test_tag_departed_by_inactive_person() -> None:
    people = {"alice": replace(ALICE, active=False)}
    out = tag_departed(
        doc=doc(P),
        epc=EPC,
        cabinet=C1,
        sessions=[session("alice")],
        people=people,
        now=NOW,
        closing=CLOSING,
    )
    assert out == [removal("alice is not active", "alice", doc(P)), MISSING]


def test_tag_departed_uses_configured_days() -> None:
    out = tag_departed(
        doc=doc(S),
        epc=EPC,
        cabinet=C1,
        sessions=[session("alice")],
        people=PEOPLE,
        now=NOW,
        closing=CLOSING,
        days={**DEFAULT_LOAN_DAYS, S: 3},
    )
    assert out == [
        OpenLoan(1, "alice", NOW, NOW + timedelta(days=3), "badge"),
        Move(1, "on_loan", None, "alice"),
    ]


@pytest.mark.parametrize(
    ("rule", "kwargs", "decisions"),
    [
        pytest.param(
            "departed",
            {"cabinet": C1},
            [Record("unknown_tag", epc=EPC, detail={"reader": C1, "event": "departed"})],
            id="departed-unknown",
        ),
        pytest.param(
            "arrived",
            {"cabinet": C2},
            [Record("unknown_tag", epc=EPC, detail={"reader": C2, "event": "arrived"})],
            id="arrived-unknown",
        ),
        pytest.param(
            "seen",
            {"reader": "portal"},
            [Record("unknown_tag", epc=EPC, detail={"reader": "portal", "event": "seen"})],
            id="seen-unknown-at-portal",
        ),
        pytest.param(
            "seen",
            {"reader": "desk"},
            [Record("unknown_tag", epc=EPC, detail={"reader": "desk", "event": "seen"})],
            id="seen-unknown-at-desk",
        ),
    ],
)
def test_unknown_tag(rule: str, kwargs: dict[str, str], decisions: list[Decision]) -> None:
    assert _run(rule, None, **kwargs) == decisions


DESTROYED = doc(S, status="destroyed", location=None)


@pytest.mark.parametrize(
    ("rule", "kwargs", "point"),
    [
        pytest.param("departed", {"cabinet": C1}, "cabinet:c1", id="departed"),
        pytest.param("arrived", {"cabinet": C2}, "cabinet:c2", id="arrived"),
        pytest.param("seen", {"reader": "desk"}, "desk", id="seen-at-desk"),
        pytest.param("seen", {"reader": "portal"}, "portal", id="seen-at-portal"),
    ],
)
def test_destroyed_tag_seen(rule: str, kwargs: dict[str, str], point: str) -> None:
    out = _run(rule, DESTROYED, **kwargs)
    assert out == [
        RaiseAlarm(
            "destroyed_tag_seen",
            "critical",
            point=point,
            document_id=1,
            detail={"epc": EPC, "number": "办〔2026〕1号"},
        )
    ]
    assert isinstance(out[0], RaiseAlarm) and out[0].siren is True


def _run(rule: str, document: Document | None, **kw: str) -> list[Decision]:
    sessions = [session("alice", C1, C2, reader="desk")]
    if rule == "departed":
        return tag_departed(
            doc=document,
            epc=EPC,
            sessions=sessions,
            people=PEOPLE,
            now=NOW,
            closing=CLOSING,
            cabinet=kw["cabinet"],
        )
    if rule == "arrived":
        return tag_arrived(doc=document, epc=EPC, now=NOW, cabinet=kw["cabinet"])
    return tag_seen(
        doc=document,
        epc=EPC,
        sessions=sessions,
        passes=[Pass("alice", frozenset({1}), NOW, CLOSING)],
        now=NOW,
        reader=kw["reader"],
    )


# -- folders coming back --------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "cabinet", "decisions"),
    [
        pytest.param(
            on_loan(S),
            C1,
            [CloseLoan(1, NOW, False), Move(1, "in_cabinet", C1, None)],
            id="home-closes-loan",
        ),
        pytest.param(
            on_loan(S),
            C2,
            [
                CloseLoan(1, NOW, True),
                Move(1, "misplaced", C2, None),
                Record("misplaced", epc=EPC, document_id=1, detail={"cabinet": C2, "home": C1}),
            ],
            id="other-cabinet-closes-loan-misplaced",
        ),
        pytest.param(
            doc(S, status="missing", location=None),
            C1,
            [Move(1, "in_cabinet", C1, None)],
            id="missing-back-home",
        ),
        pytest.param(
            doc(S, status="missing", location=None),
            C3,
            [
                Move(1, "misplaced", C3, None),
                Record("misplaced", epc=EPC, document_id=1, detail={"cabinet": C3, "home": C1}),
            ],
            id="missing-into-other-cabinet",
        ),
        pytest.param(
            doc(S, status="misplaced", location=C2),
            C1,
            [Move(1, "in_cabinet", C1, None)],
            id="misplaced-moved-home",
        ),
        pytest.param(
            doc(S, status="in_cabinet", location=C2),
            C1,
            [Move(1, "in_cabinet", C1, None)],
            id="wrong-location-corrected",
        ),
        pytest.param(doc(S), C1, [], id="already-in-place"),
        pytest.param(doc(TS), C1, [], id="already-in-place-绝密"),
    ],
)
def test_tag_arrived(document: Document, cabinet: str, decisions: list[Decision]) -> None:
    assert tag_arrived(doc=document, epc=EPC, cabinet=cabinet, now=NOW) == decisions


# -- desk and portal ------------------------------------------------------------------


def lateral(by: str, holder: str = "alice") -> Record:
    return Record(
        "lateral_pass",
        epc=EPC,
        document_id=1,
        person_id=by,
        detail={"holder": holder, "number": "办〔2026〕1号"},
    )


def exit_alarm(reason: str, document: Document | None = None) -> RaiseAlarm:
    d = document or doc()
    return RaiseAlarm(
        "classified_exit",
        "critical",
        point="portal",
        document_id=d.id,
        detail={"epc": EPC, "number": d.number, "reason": reason},
    )


PASS = Pass("alice", frozenset({1}), NOW - timedelta(hours=1), NOW + timedelta(hours=1))
NO_PASS = "no approved carry-out pass"
NEVER = "绝密 documents never leave the room"
BOB_DESK = session("bob", C1, reader="desk")


@pytest.mark.parametrize(
    ("document", "reader", "sessions", "passes", "decisions"),
    [
        pytest.param(on_loan(S), "desk", [BOB_DESK], [], [lateral("bob")], id="desk-lateral-pass"),
        pytest.param(
            on_loan(S),
            "desk",
            [BOB_DESK, session("sec", reader="desk", opened=NOW - timedelta(seconds=3))],
            [],
            [lateral("sec")],
            id="desk-lateral-newest-other",
        ),
        pytest.param(
            on_loan(S),
            "desk",
            [BOB_DESK, session("alice", reader="desk", opened=NOW - timedelta(seconds=1))],
            [],
            [lateral("bob")],
            id="desk-holder-newest-still-lateral",
        ),
        pytest.param(
            on_loan(S), "desk", [session("alice", reader="desk")], [], [], id="desk-same-holder"
        ),
        pytest.param(
            on_loan(S),
            "desk",
            [session("bob", reader="desk", opened=NOW - timedelta(seconds=200))],
            [],
            [],
            id="desk-other-session-expired",
        ),
        pytest.param(on_loan(S), "desk", [session("bob")], [], [], id="desk-other-cabinet-session"),
        pytest.param(doc(S), "desk", [BOB_DESK], [], [], id="desk-not-on-loan"),
        pytest.param(on_loan(S), "desk", [], [], [], id="desk-no-session"),
        pytest.param(on_loan(S), "cabinet:c1", [BOB_DESK], [], [], id="cabinet-reader-seen"),
        pytest.param(
            on_loan(TS),
            "portal",
            [],
            [PASS],
            [exit_alarm(NEVER, doc(TS))],
            id="portal-绝密-with-pass",
        ),
        pytest.param(
            doc(TS), "portal", [], [], [exit_alarm(NEVER, doc(TS))], id="portal-绝密-no-pass"
        ),
        pytest.param(
            on_loan(S),
            "portal",
            [],
            [PASS],
            [Record("portal_pass", epc=EPC, document_id=1, person_id="alice")],
            id="portal-valid-pass",
        ),
        pytest.param(
            on_loan(S),
            "portal",
            [],
            [Pass("alice", frozenset({2}), PASS.start, PASS.end), PASS],
            [Record("portal_pass", epc=EPC, document_id=1, person_id="alice")],
            id="portal-second-pass-valid",
        ),
        pytest.param(
            doc(S),
            "portal",
            [],
            [Pass("bob", frozenset({1}), PASS.start, PASS.end)],
            [Record("portal_pass", epc=EPC, document_id=1, person_id="bob")],
            id="portal-pass-of-a-person-not-the-borrower",
        ),
        pytest.param(on_loan(S), "portal", [], [], [exit_alarm(NO_PASS)], id="portal-no-pass"),
        pytest.param(
            on_loan(S),
            "portal",
            [],
            [Pass("alice", frozenset({2}), PASS.start, PASS.end)],
            [exit_alarm(NO_PASS)],
            id="portal-pass-for-other-document",
        ),
        pytest.param(
            on_loan(S),
            "portal",
            [],
            [Pass("alice", frozenset({1}), NOW - timedelta(hours=2), NOW)],
            [exit_alarm(NO_PASS)],
            id="portal-pass-ended",
        ),
        pytest.param(
            on_loan(S),
            "portal",
            [],
            [Pass("alice", frozenset({1}), NOW + timedelta(seconds=1), CLOSING)],
            [exit_alarm(NO_PASS)],
            id="portal-pass-not-yet-valid",
        ),
        pytest.param(
            doc(IN), "portal", [], [], [exit_alarm(NO_PASS, doc(IN))], id="portal-内部-no-pass"
        ),
    ],
)
def test_tag_seen(
    document: Document,
    reader: str,
    sessions: list[Session],
    passes: list[Pass],
    decisions: list[Decision],
) -> None:
    out = tag_seen(doc=document, epc=EPC, reader=reader, sessions=sessions, passes=passes, now=NOW)
    assert out == decisions
    assert all(d.siren for d in out if isinstance(d, RaiseAlarm))


# -- closing time ---------------------------------------------------------------------


def loan(kind: str, due: datetime, pid: str = "alice") -> Loan:
    return Loan(1, pid, NOW, due, kind)


def eod(document: Document) -> RaiseAlarm:
    return RaiseAlarm(
        "end_of_day_missing",
        "critical",
        document_id=document.id,
        detail={"number": document.number, "status": document.status, "holder": document.holder},
    )


LATER = CLOSING + timedelta(days=7)


@pytest.mark.parametrize(
    ("document", "open_loan", "missing"),
    [
        pytest.param(doc(S), None, False, id="机密-in-cabinet"),
        pytest.param(doc(TS), None, False, id="绝密-in-cabinet"),
        pytest.param(doc(S, status="misplaced", location=C2), None, False, id="misplaced"),
        pytest.param(doc(S, status="destroyed", location=None), None, False, id="destroyed"),
        pytest.param(on_loan(S), loan("badge", LATER), False, id="valid-loan-past-closing"),
        pytest.param(
            on_loan(C),
            loan("badge", CLOSING + timedelta(seconds=1)),
            False,
            id="loan-due-just-after-closing",
        ),
        pytest.param(on_loan(TS), loan("in-room", CLOSING), True, id="绝密-in-room-due-at-closing"),
        pytest.param(on_loan(S), loan("in-room", CLOSING), True, id="机密-in-room-due-at-closing"),
        pytest.param(
            on_loan(S), loan("badge", CLOSING - timedelta(days=1)), True, id="overdue-loan"
        ),
        pytest.param(on_loan(S), None, True, id="on-loan-without-loan-row"),
        pytest.param(doc(S, status="missing", location=None), None, True, id="机密-missing"),
        pytest.param(doc(C, status="missing", location=None), None, True, id="秘密-missing"),
        pytest.param(doc(TS, status="missing", location=None), None, True, id="绝密-missing"),
        pytest.param(doc(IN, status="missing", location=None), None, False, id="内部-missing"),
        pytest.param(doc(P, status="missing", location=None), None, False, id="公开-missing"),
        pytest.param(on_loan(IN), loan("in-room", CLOSING), False, id="内部-in-room-loan"),
    ],
)
def test_end_of_day_missing(document: Document, open_loan: Loan | None, missing: bool) -> None:
    loans = {} if open_loan is None else {document.id: open_loan}
    assert end_of_day_missing([document], loans, CLOSING) == ([eod(document)] if missing else [])


def test_end_of_day_missing_many_documents_in_order() -> None:
    docs = [
        doc(S, id=3, status="missing", location=None),
        doc(S, id=1),
        replace(on_loan(TS), id=2),
        replace(on_loan(S), id=4),
        doc(IN, id=5, status="missing", location=None),
    ]
    loans = {2: Loan(2, "alice", NOW, CLOSING, "in-room"), 4: Loan(4, "alice", NOW, LATER, "badge")}
    assert end_of_day_missing(docs, loans, CLOSING) == [eod(docs[0]), eod(docs[2])]


# -- the controller's policy ----------------------------------------------------------

CAROL = person("carol", TS, "secretary", active=False)  # left the post
DAVE = person("dave", TS, "borrower")  # blocked: overdue
ERIN = person("erin", P, "secrecy-office", dept="保密办")
POLICY_PEOPLE = {p.id: p for p in (ALICE, BOB, SECRETARY, CAROL, DAVE, ERIN)}
BADGES = {
    "A1": "alice",
    "A2": "alice",
    "B1": "bob",
    "S1": "sec",
    "K1": "carol",
    "D1": "dave",
    "E1": "erin",
    "Z1": "zoe",  # a badge whose person is not in the ledger
}
CALENDAR: dict[str, object] = {
    "timezone": "Asia/Shanghai",
    "weekly": {"mon": ["08:30-12:00", "13:30-17:30"]},
    "holidays": ["2026-10-01"],
    "workdays": ["2026-10-10"],
    "grants": [],
}


@pytest.mark.parametrize(
    ("cabinets", "allowed"),
    [
        pytest.param({"c1": [doc(S)]}, {"c1": ["A1", "A2", "S1"]}, id="机密-cabinet"),
        pytest.param({"c1": [doc(C)]}, {"c1": ["A1", "A2", "B1", "S1"]}, id="秘密-cabinet"),
        pytest.param({"c1": [doc(P)]}, {"c1": ["A1", "A2", "B1", "E1", "S1"]}, id="公开-cabinet"),
        pytest.param({"c1": [doc(TS)]}, {"c1": ["S1"]}, id="绝密-only-secretary"),
        pytest.param(
            {"c1": [doc(C, "person:bob")]}, {"c1": ["B1", "S1"]}, id="scope-person-and-secretary"
        ),
        pytest.param({"c1": [doc(P, "dept:保密办")]}, {"c1": ["E1", "S1"]}, id="scope-dept"),
        pytest.param({"c1": [on_loan(P)]}, {"c1": []}, id="nothing-there"),
        pytest.param({"c1": []}, {"c1": []}, id="empty-cabinet"),
        pytest.param(
            {"c2": [doc(TS, id=2)], "c1": [doc(C, id=1), doc(TS, id=3)]},
            {"c1": ["A1", "A2", "B1", "S1"], "c2": ["S1"]},
            id="per-cabinet",
        ),
    ],
)
def test_room_policy(
    cabinets: dict[str, Sequence[Document]], allowed: dict[str, list[str]]
) -> None:
    policy = room_policy(
        cabinets=cabinets,
        people=POLICY_PEOPLE,
        badges=BADGES,
        calendar=CALENDAR,
        blocked=frozenset({"dave"}),
    )
    assert policy == {"cabinets": allowed, "reset_badges": ["E1", "S1"], **CALENDAR}


def test_room_policy_unblocked_person_comes_back() -> None:
    policy = room_policy(
        cabinets={"c1": [doc(TS)]}, people=POLICY_PEOPLE, badges=BADGES, calendar={}
    )
    assert policy == {"cabinets": {"c1": ["D1", "S1"]}, "reset_badges": ["E1", "S1"]}


# -- clocks, silence, repeats ---------------------------------------------------------


@pytest.mark.parametrize(
    ("event_ts", "received", "offset", "skewed"),
    [
        pytest.param(NOW, NOW, timedelta(0), False, id="in-step"),
        pytest.param(
            NOW + timedelta(seconds=30), NOW, timedelta(seconds=30), False, id="ahead-30s"
        ),
        pytest.param(
            NOW + timedelta(seconds=60), NOW, timedelta(seconds=60), False, id="ahead-60s"
        ),
        pytest.param(
            NOW + timedelta(seconds=60, milliseconds=1),
            NOW,
            timedelta(seconds=60, milliseconds=1),
            True,
            id="ahead-60.001s",
        ),
        pytest.param(
            NOW - timedelta(seconds=60), NOW, timedelta(seconds=-60), False, id="behind-60s"
        ),
        pytest.param(
            NOW - timedelta(seconds=61), NOW, timedelta(seconds=-61), True, id="behind-61s"
        ),
        pytest.param(
            datetime(1970, 1, 1, tzinfo=UTC),
            NOW,
            datetime(1970, 1, 1, tzinfo=UTC) - NOW,
            True,
            id="no-rtc-1970",
        ),
    ],
)
def test_clock_offset_and_skew(
    event_ts: datetime, received: datetime, offset: timedelta, skewed: bool
) -> None:
    assert clock_offset(event_ts, received) == offset
    assert is_skewed(offset) is skewed


@pytest.mark.parametrize(
    ("last_heard", "now", "interval", "since", "silent"),
    [
        pytest.param(100.0, 190.0, 30.0, 0.0, False, id="exactly-3-intervals"),
        pytest.param(100.0, 190.001, 30.0, 0.0, True, id="just-over-3-intervals"),
        pytest.param(100.0, 130.0, 30.0, 0.0, False, id="one-interval"),
        pytest.param(100.0, 250.0, 30.0, 240.0, True, id="last-heard-wins-over-since"),
        pytest.param(None, 90.0, 30.0, 0.0, False, id="never-heard-3-intervals-since-start"),
        pytest.param(None, 91.0, 30.0, 0.0, True, id="never-heard-past-3-intervals"),
        pytest.param(None, 150.0, 30.0, 100.0, False, id="never-heard-recent-start"),
        pytest.param(100.0, 400.0, 100.0, 0.0, False, id="long-interval"),
    ],
)
def test_is_silent(
    last_heard: float | None, now: float, interval: float, since: float, silent: bool
) -> None:
    assert is_silent(last_heard, now, interval, since) is silent


MINUTE = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("last", "now", "limited"),
    [
        pytest.param(None, NOW, False, id="first-one"),
        pytest.param(NOW, NOW, True, id="same-instant"),
        pytest.param(NOW - timedelta(seconds=59), NOW, True, id="within-the-minute"),
        pytest.param(NOW - MINUTE, NOW, False, id="a-minute-later"),
        pytest.param(NOW - timedelta(hours=1), NOW, False, id="long-after"),
    ],
)
def test_rate_limited(last: datetime | None, now: datetime, limited: bool) -> None:
    assert rate_limited(last, now, MINUTE) is limited
