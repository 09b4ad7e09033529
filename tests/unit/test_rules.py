"""The controller's local alarm rules and the offline unlock decision, table-driven."""

from __future__ import annotations

import itertools

import pytest

from firmware_bridge.rules import (
    Situation,
    causes_on_change,
    causes_while_active,
    may_unlock_offline,
    state_word,
)
from protocol.errors import SchemaError
from protocol.names import SENSOR_KINDS
from protocol.schema import CONTROLLER_CAUSES, check_event_data

CONTACTS = ("door", "window", "cabinet")
DETECTORS = {"tamper": "tamper", "smoke": "fire", "water": "water", "panic": "panic"}

# (kind, working, armed, locked) -> causes when the point becomes open/active
ON_CHANGE: list[tuple[str, bool, bool, bool | None, list[str]]] = [
    # the door
    ("door", True, False, None, []),
    ("door", False, False, None, ["after_hours_open"]),
    ("door", True, True, None, ["forced_open"]),
    ("door", False, True, None, ["after_hours_open", "forced_open"]),
    # a window behaves like the door
    ("window", True, False, None, []),
    ("window", False, False, None, ["after_hours_open"]),
    ("window", True, True, None, ["forced_open"]),
    ("window", False, True, None, ["after_hours_open", "forced_open"]),
    # a cabinet: forced when its lock is locked, whatever the arming
    ("cabinet", True, False, False, []),
    ("cabinet", True, False, True, ["forced_open"]),
    ("cabinet", True, True, False, []),
    ("cabinet", True, True, True, ["forced_open"]),
    ("cabinet", False, False, False, ["after_hours_open"]),
    ("cabinet", False, False, True, ["after_hours_open", "forced_open"]),
    ("cabinet", False, True, True, ["after_hours_open", "forced_open"]),
    ("cabinet", True, True, None, []),
    ("cabinet", False, True, None, ["after_hours_open"]),
    # detectors raise whether the room is armed or not, in or out of hours
    *[
        (kind, working, armed, None, [cause])
        for kind, cause in DETECTORS.items()
        for working, armed in itertools.product((True, False), repeat=2)
    ],
    # motion only counts when armed
    ("motion", True, False, None, []),
    ("motion", False, False, None, []),
    ("motion", True, True, None, ["motion_armed"]),
    ("motion", False, True, None, ["motion_armed"]),
    # outputs and unknown kinds never raise
    ("siren", False, True, None, []),
    ("lock", False, True, True, []),
    ("gate", False, True, None, []),
]


@pytest.mark.parametrize(
    ("kind", "working", "armed", "locked", "expected"),
    ON_CHANGE,
    ids=[
        f"{k}-{'work' if w else 'off'}-{'armed' if a else 'disarmed'}-{lk}"
        for k, w, a, lk, _ in ON_CHANGE
    ],
)
def test_causes_on_change(
    kind: str, working: bool, armed: bool, locked: bool | None, expected: list[str]
):
    s = Situation(kind=kind, active=True, working=working, armed=armed, locked=locked)
    assert causes_on_change(s) == expected


def test_every_kind_appears_in_the_table():
    assert set(SENSOR_KINDS) <= {row[0] for row in ON_CHANGE}


@pytest.mark.parametrize("kind", [*SENSOR_KINDS, "siren"])
def test_closing_or_going_quiet_raises_nothing(kind: str):
    for working, armed, locked in itertools.product(
        (True, False), (True, False), (True, False, None)
    ):
        s = Situation(kind=kind, active=False, working=working, armed=armed, locked=locked)
        assert causes_on_change(s) == []
        assert causes_while_active(s, open_for_s=10**6, held_limit_s=1) == []


def test_every_cause_raised_is_a_controller_cause():
    for kind, working, armed, locked, _ in ON_CHANGE:
        s = Situation(kind=kind, active=True, working=working, armed=armed, locked=locked)
        assert set(causes_on_change(s)) <= set(CONTROLLER_CAUSES)


# (kind, working, open_for_s, held_limit_s) -> causes on a tick while open/active
WHILE_ACTIVE: list[tuple[str, bool, float, float, list[str]]] = [
    ("door", True, 0, 120, []),
    ("door", True, 119.9, 120, []),
    ("door", True, 120, 120, ["held_open"]),
    ("door", True, 3600, 120, ["held_open"]),
    ("door", False, 0, 120, ["after_hours_open"]),
    ("door", False, 120, 120, ["after_hours_open", "held_open"]),
    ("cabinet", True, 599, 600, []),
    ("cabinet", True, 600, 600, ["held_open"]),
    ("cabinet", False, 5, 600, ["after_hours_open"]),
    ("window", True, 10**6, 0, []),  # a limit of 0 switches held_open off
    ("window", False, 10**6, 0, ["after_hours_open"]),
    ("smoke", True, 10**6, 1, []),
    ("tamper", False, 10**6, 1, []),
    ("motion", False, 10**6, 1, []),
    ("panic", True, 10**6, 1, []),
]


@pytest.mark.parametrize(
    ("kind", "working", "open_for", "limit", "expected"),
    WHILE_ACTIVE,
    ids=[f"{k}-{'work' if w else 'off'}-{o}s-of-{lim}s" for k, w, o, lim, _ in WHILE_ACTIVE],
)
def test_causes_while_active(
    kind: str, working: bool, open_for: float, limit: float, expected: list[str]
):
    s = Situation(kind=kind, active=True, working=working, armed=False)
    assert causes_while_active(s, open_for_s=open_for, held_limit_s=limit) == expected


@pytest.mark.parametrize(
    ("kind", "active", "word"),
    [
        ("door", True, "open"),
        ("door", False, "closed"),
        ("window", True, "open"),
        ("cabinet", False, "closed"),
        ("tamper", True, "active"),
        ("motion", False, "inactive"),
        ("panic", True, "active"),
        ("smoke", True, "active"),
        ("water", False, "inactive"),
    ],
)
def test_state_word(kind: str, active: bool, word: str):
    assert state_word(kind, active) == word


WIRE_STATES = ("open", "closed", "active", "inactive")


@pytest.mark.parametrize("kind", SENSOR_KINDS)
@pytest.mark.parametrize("active", [True, False])
def test_state_word_fits_the_wire_schema(kind: str, active: bool):
    point = kind if kind == "door" else f"{kind}:x1"
    word = state_word(kind, active)
    pair = {state_word(kind, True), state_word(kind, False)}
    assert word in WIRE_STATES and len(pair) == 2, "two different words, both on the wire"
    for state in WIRE_STATES:
        data = {"point": point, "kind": kind, "state": state}
        if state in pair:
            assert check_event_data("sensor.changed", data) is None
        else:  # the schema tells the families apart, so the word it took is the right one
            with pytest.raises(SchemaError, match=f"state of a {kind} point"):
                check_event_data("sensor.changed", data)


# -- offline unlock ---------------------------------------------------------------------

ALICE = "04A1B2C3D4E5F6"
BOB = "04B0B0B0B0B0B0"
EVE = "04EEEEEEEEEEEE"
POLICY = {"c1": (ALICE,), "c2": (ALICE, BOB), "c3": (ALICE, BOB)}
LOCKS = {"c1", "c2"}  # c3 has no lock

# (reader, uid, auth, allow_uid_only, working) -> cabinets unlocked
UNLOCK: list[tuple[str, str, str, bool, bool, list[str]]] = [
    ("desk", ALICE, "verified", False, True, ["c1", "c2"]),
    ("desk", BOB, "verified", False, True, ["c2"]),
    ("desk", EVE, "verified", False, True, []),
    ("cabinet:c1", ALICE, "verified", False, True, ["c1"]),
    ("cabinet:c2", ALICE, "verified", False, True, ["c2"]),
    ("cabinet:c1", BOB, "verified", False, True, []),
    ("cabinet:c3", ALICE, "verified", False, True, []),  # no lock to open
    ("cabinet:c9", ALICE, "verified", False, True, []),  # not in the policy
    ("portal", ALICE, "verified", False, True, []),
    ("desk", ALICE, "verified", False, False, []),  # out of hours
    ("cabinet:c1", ALICE, "verified", True, False, []),
    ("desk", ALICE, "uid-only", False, True, []),
    ("cabinet:c1", ALICE, "uid-only", False, True, []),
    ("desk", ALICE, "uid-only", True, True, ["c1", "c2"]),
    ("cabinet:c2", BOB, "uid-only", True, True, ["c2"]),
    ("desk", ALICE, "uid-only", True, False, []),
    ("desk", ALICE, "failed", False, True, []),
    ("desk", ALICE, "failed", True, True, []),
    ("cabinet:c1", ALICE, "failed", True, True, []),
    # only the three values of the contract mean anything; others authenticate nobody
    ("desk", ALICE, "", True, True, []),
    ("desk", ALICE, "unknown", False, True, []),
    ("cabinet:c1", ALICE, "VERIFIED", False, True, []),
]


@pytest.mark.parametrize(
    ("reader", "uid", "auth", "allow", "working", "expected"),
    UNLOCK,
    ids=[
        f"{r}-{u[-2:]}-{a or 'empty'}-{'allow' if al else 'strict'}-{'work' if w else 'off'}"
        for r, u, a, al, w, _ in UNLOCK
    ],
)
def test_may_unlock_offline(
    reader: str, uid: str, auth: str, allow: bool, working: bool, expected: list[str]
):
    got = may_unlock_offline(
        reader=reader,
        uid=uid,
        auth=auth,
        allow_uid_only=allow,
        working=working,
        cabinets=POLICY,
        locks=LOCKS,
    )
    assert got == expected


def test_nothing_opens_with_an_empty_policy_or_no_locks():
    for cabinets, locks in [({}, LOCKS), (POLICY, set())]:
        assert (
            may_unlock_offline(
                reader="desk",
                uid=ALICE,
                auth="verified",
                allow_uid_only=True,
                working=True,
                cabinets=cabinets,
                locks=locks,
            )
            == []
        )
