"""Destruction rules: who may witness, the two-person window, presence of every listed
document, and what is recorded when nothing is destroyed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tracker.domain import destruction as dx
from tracker.domain import rules
from tracker.domain.levels import Level
from tracker.domain.model import Document, Person, RaiseAlarm, Record

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
S = timedelta(seconds=1)
W = timedelta(seconds=120)
ROOM = "hq/room-101"

SEC = Person("sec", "秘书", Level.SECRET, frozenset({"secretary"}))
HEAD = Person("head", "部门负责人", Level.SECRET, frozenset({"dept-head"}))
GONE = Person("gone", "离任", Level.SECRET, active=False)


def item(i: int = 1, status: str = "in_cabinet", room: str | None = ROOM, **kw: str) -> dx.Item:
    return dx.Item(i, f"机要〔2026〕{i}号", 1, status, room, kw.get("home", ROOM), kw.get("holder"))


def lst(*items: dx.Item, rid: int = 7) -> dx.DestroyList:
    return dx.DestroyList(rid, tuple(items))


def badge(
    person: Person | None,
    *,
    earlier: list[dx.Witness],
    lists: list[dx.DestroyList] | None = None,
    auth: str = "verified",
    at: datetime = T0,
    allow_uid_only: bool = False,
) -> list[dx.Outcome]:
    return dx.desk_badge(
        room=ROOM,
        uid="04BB" if person is HEAD else "04AA",
        auth=auth,
        person=person,
        now=at,
        earlier=earlier,
        lists=[lst(item(1), item(2))] if lists is None else lists,
        window=W,
        allow_uid_only=allow_uid_only,
    )


def kinds(out: list[dx.Outcome]) -> list[str]:
    return [o.kind if isinstance(o, Record) else "destroy" for o in out]


FIRST = dx.Witness("sec", "04AA", T0 - 30 * S)


@pytest.mark.parametrize(
    ("person", "earlier", "at", "auth", "expected"),
    [
        pytest.param(HEAD, [FIRST], T0, "verified", ["destruction_witness", "destroy"], id="pair"),
        pytest.param(
            HEAD, [FIRST], FIRST.at + W, "verified", ["destruction_witness", "destroy"], id="edge"
        ),
        pytest.param(
            HEAD, [FIRST], FIRST.at + W + S, "verified", ["destruction_witness"], id="too late"
        ),
        pytest.param(SEC, [FIRST], T0, "verified", ["destruction_refused"], id="same person"),
        pytest.param(HEAD, [], T0, "verified", ["destruction_witness"], id="single badge"),
        pytest.param(HEAD, [FIRST], T0, "failed", ["destruction_refused"], id="auth failed"),
        pytest.param(HEAD, [FIRST], T0, "uid-only", ["destruction_refused"], id="uid-only"),
        pytest.param(None, [FIRST], T0, "verified", ["destruction_refused"], id="unknown badge"),
        pytest.param(GONE, [FIRST], T0, "verified", ["destruction_refused"], id="not active"),
        pytest.param(
            HEAD,
            [dx.Witness("sec", "04AA", T0 + 5 * S)],
            T0,
            "verified",
            ["destruction_witness"],
            id="a witness after now does not count",
        ),
    ],
)
def test_two_people_within_the_window(
    person: Person | None, earlier: list[dx.Witness], at: datetime, auth: str, expected: list[str]
) -> None:
    assert kinds(badge(person, earlier=earlier, at=at, auth=auth)) == expected


def test_the_pair_names_both_witnesses_and_every_document() -> None:
    out = badge(HEAD, earlier=[FIRST])
    d = out[-1]
    assert isinstance(d, dx.Destroy)
    assert d == dx.Destroy(7, FIRST, dx.Witness("head", "04BB", T0), (1, 2))


def test_the_newest_other_witness_is_paired() -> None:
    older = dx.Witness("sec", "04AA", T0 - 100 * S)
    newer = dx.Witness("sec2", "04CC", T0 - 10 * S)
    d = badge(HEAD, earlier=[older, newer, dx.Witness("head", "04BB", T0 - 5 * S)])[-1]
    assert isinstance(d, dx.Destroy) and d.first == newer


def test_uid_only_where_the_site_allows_it() -> None:
    assert kinds(badge(HEAD, earlier=[FIRST], auth="uid-only", allow_uid_only=True))[-1] == (
        "destroy"
    )


def test_no_list_waiting_means_no_record() -> None:
    assert badge(HEAD, earlier=[FIRST], lists=[]) == []


def test_a_late_badge_says_why_it_waits() -> None:
    out = badge(HEAD, earlier=[FIRST], at=FIRST.at + W + S)
    assert isinstance(out[0], Record)
    assert "too long before" in str(out[0].detail["note"])


def test_a_refusal_names_its_reason() -> None:
    out = badge(SEC, earlier=[FIRST])
    assert isinstance(out[0], Record)
    assert "same person" in str(out[0].detail["reason"])
    assert out[0].detail["requests"] == [7]


@pytest.mark.parametrize(
    ("it", "missing"),
    [
        pytest.param(item(2), None, id="in its cabinet"),
        pytest.param(item(2, "misplaced"), None, id="misplaced in the room"),
        pytest.param(item(2, "on_loan", None, holder="sec"), None, id="on loan to a witness"),
        pytest.param(item(2, "on_loan", None, holder="head"), None, id="to the other witness"),
        pytest.param(item(2, "on_loan", None, holder="bob"), "on loan to bob", id="to another"),
        pytest.param(
            item(2, "on_loan", None, holder="sec", home="hq/room-102"),
            "on loan to sec",
            id="on loan from another room",
        ),
        pytest.param(item(2, room="hq/room-102"), "in another room", id="another room"),
        pytest.param(item(2, "missing", None), "missing", id="missing"),
        pytest.param(item(2, "destroyed", None), "destroyed already", id="destroyed"),
        pytest.param(item(2, "returned", None), "given back", id="returned"),
    ],
)
def test_every_document_must_be_present(it: dx.Item, missing: str | None) -> None:
    out = badge(HEAD, earlier=[FIRST], lists=[lst(item(1), it)])
    last = out[-1]
    if missing is None:
        assert isinstance(last, dx.Destroy) and last.documents == (1, 2)
    else:
        assert isinstance(last, Record) and last.kind == "destruction_refused"
        assert last.detail["request"] == 7
        reasons = last.detail["missing"]
        assert isinstance(reasons, dict)
        assert list(reasons) == ["机要〔2026〕2号 copy 1"]
        assert missing in reasons["机要〔2026〕2号 copy 1"]


def test_each_list_is_carried_out_whole_or_not_at_all() -> None:
    ready = lst(item(1), rid=7)
    blocked = lst(item(2), item(3, "missing", None), rid=8)
    out = badge(HEAD, earlier=[FIRST], lists=[ready, blocked])
    assert kinds(out) == ["destruction_witness", "destroy", "destruction_refused"]
    assert isinstance(out[1], dx.Destroy) and out[1].request_id == 7


def test_an_empty_list_destroys_nothing() -> None:
    assert kinds(badge(HEAD, earlier=[FIRST], lists=[lst()]))[-1] == "destruction_refused"


# A retired tag (its document destroyed, the tag still bound to it) read anywhere raises
# destroyed_tag_seen: departing or arriving at a cabinet, at the desk or the portal.
RETIRED = Document(
    5, "机要〔2026〕5号", Level.SECRET, "E2001", "hq/room-101/c1", status="destroyed"
)


@pytest.mark.parametrize(
    ("event", "point"),
    [
        ("departed", "cabinet:c1"),
        ("arrived", "cabinet:c2"),
        ("desk", "desk"),
        ("portal", "portal"),
    ],
)
def test_a_retired_tag_seen_again_raises_destroyed_tag_seen(event: str, point: str) -> None:
    if event == "departed":
        out = rules.tag_departed(
            doc=RETIRED,
            epc="E2001",
            cabinet="hq/room-101/c1",
            sessions=(),
            people={},
            now=T0,
            closing=None,
        )
    elif event == "arrived":
        out = rules.tag_arrived(doc=RETIRED, epc="E2001", cabinet="hq/room-101/c2", now=T0)
    else:
        out = rules.tag_seen(doc=RETIRED, epc="E2001", reader=event, sessions=(), passes=(), now=T0)
    assert out == [
        RaiseAlarm(
            "destroyed_tag_seen",
            "critical",
            point=point,
            document_id=5,
            detail={"epc": "E2001", "number": "机要〔2026〕5号"},
        )
    ]


# -- the config: [destruction] window_s and reader ------------------------------------

HOURS = '[hours]\nmon = ["08:30-17:30"]\n'


def test_the_window_and_reader_default_and_load() -> None:
    from tracker.bootstrap import rules_of
    from tracker.config import parse_tracker_config

    cfg = parse_tracker_config(HOURS)
    assert (cfg.destruction_window_s, cfg.destruction_reader) == (120, "desk")
    cfg = parse_tracker_config(HOURS + '[destruction]\nwindow_s = 30\nreader = "cabinet:c1"\n')
    assert (cfg.destruction_window_s, cfg.destruction_reader) == (30, "cabinet:c1")
    r = rules_of(cfg)
    assert (r.destruction_window_s, r.destruction_reader) == (30, "cabinet:c1")


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ("window_s = 0", "destruction.window_s: expected seconds 1..3600, got 0"),
        ("window_s = 3601", "destruction.window_s: expected seconds 1..3600"),
        ("window_s = true", "destruction.window_s: expected seconds"),
        ('window_s = "120"', "destruction.window_s: expected seconds"),
        ('reader = "portal"', 'destruction.reader: expected "desk" or "cabinet:<id>"'),
        ('reader = "cabinet:"', "destruction.reader: expected"),
        ('reader = "cabinet:C 1"', "destruction.reader: expected"),
        ("reader = 1", "destruction.reader: expected"),
        ("witnesses = 2", "destruction: unknown keys ['witnesses']"),
    ],
)
def test_bad_destruction_config_names_the_key(table: str, error: str) -> None:
    from pathlib import Path

    from tracker.config import TrackerConfigError, parse_tracker_config

    with pytest.raises(TrackerConfigError) as exc:
        parse_tracker_config(HOURS + f"[destruction]\n{table}\n", source=Path("t.toml"))
    assert str(exc.value).startswith("t.toml: ") and error in str(exc.value)
