"""The approval rules: who decides, state changes, expiry, copying, time boxes, passes and
extended-hours grants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tracker.domain import approvals as ap
from tracker.domain import rules
from tracker.domain.levels import Level
from tracker.domain.model import Document, Pass, Person, RaiseAlarm, Record

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)

SEC = Person("sec", "秘书", Level.SECRET, frozenset({"secretary"}))
APP = Person("app", "领导", Level.SECRET, frozenset({"approver"}))
HEAD = Person("head", "部门负责人", Level.SECRET, frozenset({"dept-head"}))
BOTH = Person("both", "兼任", Level.SECRET, frozenset({"approver", "dept-head"}))
BOR = Person("bor", "借阅人", Level.SECRET, frozenset({"borrower", "secretary"}))
GONE = Person("gone", "离任", Level.SECRET, frozenset({"approver"}), active=False)


def req(kind: str = "copy", state: str = "pending", by: str = "sec") -> ap.RequestFacts:
    return ap.RequestFacts(7, kind, state, by, created=T0, expires=T0 + 24 * H)


@pytest.mark.parametrize(
    ("request_", "decider", "at", "refused"),
    [
        (req("copy"), APP, T0, None),
        (req("carry-out"), APP, T0, None),
        (req("hours"), APP, T0, None),
        (req("destroy"), HEAD, T0, None),
        (req("destroy"), BOTH, T0, None),
        (req("copy"), BOTH, T0, None),
        (req("destroy"), APP, T0, "role dept-head"),
        (req("copy"), HEAD, T0, "role approver"),
        (req("hours"), BOR, T0, "role approver"),
        (req("copy", by="app"), APP, T0, "cannot decide it"),
        (req("copy", state="approved"), APP, T0, "is approved, not pending"),
        (req("copy", state="refused"), APP, T0, "is refused, not pending"),
        (req("copy", state="expired"), APP, T0, "is expired, not pending"),
        (req("destroy", state="done"), HEAD, T0, "is done, not pending"),
        (req("copy"), APP, T0 + 24 * H, "expired"),
        (req("copy"), APP, T0 + 24 * H - timedelta(milliseconds=1), None),
        (req("copy"), GONE, T0, "not active"),
        (req("copy"), None, T0, "no such person"),
    ],
)
def test_who_decides(
    request_: ap.RequestFacts, decider: Person | None, at: datetime, refused: str | None
) -> None:
    why = ap.decision_refusal(request_, decider, at)
    if refused is None:
        assert why is None
    else:
        assert why is not None and refused in why


@pytest.mark.parametrize(
    ("state", "action", "after"),
    [
        ("pending", "approve", "approved"),
        ("pending", "refuse", "refused"),
        ("pending", "expire", "expired"),
        ("approved", "done", "done"),
        ("pending", "done", None),
        ("approved", "approve", None),
        ("approved", "refuse", None),
        ("approved", "expire", None),
        ("refused", "approve", None),
        ("expired", "approve", None),
        ("done", "done", None),
        ("refused", "done", None),
    ],
)
def test_transitions(state: str, action: str, after: str | None) -> None:
    assert ap.transition(state, action) == after


@pytest.mark.parametrize(
    ("state", "at", "expired"),
    [
        ("pending", T0, False),
        ("pending", T0 + 24 * H - timedelta(milliseconds=1), False),
        ("pending", T0 + 24 * H, True),
        ("pending", T0 + 48 * H, True),
        ("approved", T0 + 48 * H, False),  # a decided request does not expire
        ("refused", T0 + 48 * H, False),
    ],
)
def test_expiry(state: str, at: datetime, expired: bool) -> None:
    assert ap.is_expired(req(state=state), at) is expired


@pytest.mark.parametrize(
    ("level", "no_copying", "status", "refused"),
    [
        (Level.SECRET, False, "in_cabinet", None),
        (Level.CONFIDENTIAL, False, "on_loan", None),
        (Level.INTERNAL, False, "in_cabinet", None),
        (Level.TOP_SECRET, False, "in_cabinet", "绝密"),
        (Level.SECRET, True, "in_cabinet", "不准翻印"),
        (Level.TOP_SECRET, True, "in_cabinet", "绝密"),
        (Level.SECRET, False, "destroyed", "destroyed"),
    ],
)
def test_copy_allowed(level: Level, no_copying: bool, status: str, refused: str | None) -> None:
    why = ap.copy_refusal(ap.CopySource(level, no_copying, status))
    if refused is None:
        assert why is None
    else:
        assert why is not None and refused in why


@pytest.mark.parametrize(
    ("start", "end", "refused"),
    [
        (T0, T0 + H, None),
        (T0, T0 + timedelta(days=31), None),
        (T0, T0, "after the start"),
        (T0, T0 - H, "after the start"),
        (T0, T0 + timedelta(days=31, seconds=1), "at most 31 days"),
    ],
)
def test_time_box(start: datetime, end: datetime, refused: str | None) -> None:
    why = ap.window_refusal(start, end)
    assert (why is None) if refused is None else (why is not None and refused in why)


@pytest.mark.parametrize(
    ("created", "expires", "ok"),
    [(T0, T0 + H, True), (T0, T0, False), (T0, T0 - H, False)],
)
def test_expiry_must_be_later(created: datetime, expires: datetime, ok: bool) -> None:
    assert (ap.expiry_refusal(created, expires) is None) is ok


@pytest.mark.parametrize(
    ("approved", "registered", "left"), [(3, 0, 3), (3, 2, 1), (3, 3, 0), (1, 5, 0)]
)
def test_copies_left(approved: int, registered: int, left: int) -> None:
    assert ap.copies_left(approved, registered) == left


PASS = Pass("sec", frozenset({1, 2}), T0, T0 + 2 * H)


@pytest.mark.parametrize(
    ("at", "valid"),
    [
        (T0 - timedelta(milliseconds=1), False),
        (T0, True),
        (T0 + H, True),
        (T0 + 2 * H - timedelta(milliseconds=1), True),
        (T0 + 2 * H, False),  # a pass simply stops at its end
    ],
)
def test_pass_validity(at: datetime, valid: bool) -> None:
    assert (ap.passes_valid_at([PASS], at) == (PASS,)) is valid


GRANTS = [ap.Grant(T0 + 9 * H, T0 + 12 * H), ap.Grant(T0 + 30 * H, T0 + 31 * H)]


@pytest.mark.parametrize(
    ("at", "working"),
    [
        (T0 + 8 * H, False),
        (T0 + 9 * H, True),
        (T0 + 11 * H, True),
        (T0 + 12 * H, False),
        (T0 + 30 * H + timedelta(minutes=30), True),
        (T0 + 32 * H, False),
    ],
)
def test_grants_count_as_working_time(at: datetime, working: bool) -> None:
    assert ap.in_grant(GRANTS, at) is working
    assert ap.in_grant([], at) is False


def _doc(did: int, level: Level) -> Document:
    return Document(did, f"N{did}", level, f"E2801170000000000000000{did}", "hq/r1/c1")


@pytest.mark.parametrize(
    ("doc", "passes", "outcome"),
    [
        (_doc(1, Level.SECRET), [PASS], "portal_pass"),
        (_doc(3, Level.SECRET), [PASS], "classified_exit"),  # not on the pass
        (_doc(1, Level.SECRET), [], "classified_exit"),
        (_doc(2, Level.TOP_SECRET), [PASS], "classified_exit"),  # 绝密: even with a pass
    ],
)
def test_portal_with_passes(doc: Document, passes: list[Pass], outcome: str) -> None:
    got = rules.tag_seen(
        doc=doc, epc=doc.tag or "", reader="portal", sessions=(), passes=passes, now=T0 + H
    )
    assert len(got) == 1
    d = got[0]
    if outcome == "portal_pass":
        assert isinstance(d, Record) and d.kind == "portal_pass"
    else:
        assert isinstance(d, RaiseAlarm) and d.cause == outcome and d.siren


def test_every_kind_has_a_decider() -> None:
    assert set(ap.DECIDER_ROLE) == set(ap.KINDS)
