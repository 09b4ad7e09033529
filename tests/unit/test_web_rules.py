"""The console's pure parts: the role map and the choice of language."""

from __future__ import annotations

import pytest

from tracker.domain.levels import ROLES
from tracker.web import i18n, roles

ROLE_TABLE = [
    # (role, permission, allowed)
    ("secretary", "live", True),
    ("secretary", "alarms.ack", True),
    ("secretary", "alarms.reset", True),
    ("secretary", "register.read", True),
    ("secretary", "people.read", True),
    ("secretary", "audit.verify", False),
    ("approver", "register.read", True),
    ("approver", "loans.read", True),
    ("approver", "alarms.read", False),
    ("approver", "alarms.reset", False),
    ("approver", "people.read", False),
    ("approver", "live", False),
    ("dept-head", "register.read", True),
    ("dept-head", "alarms.read", True),
    ("dept-head", "alarms.ack", False),
    ("dept-head", "alarms.reset", False),
    ("secrecy-office", "audit.verify", True),
    ("secrecy-office", "alarms.read", True),
    ("secrecy-office", "alarms.reset", True),
    ("secrecy-office", "alarms.ack", False),
    ("secrecy-office", "people.read", True),
    ("borrower", "register.own", True),
    ("borrower", "loans.own", True),
    ("borrower", "register.read", False),
    ("borrower", "loans.read", False),
    ("borrower", "live", False),
    ("borrower", "alarms.read", False),
    ("approver", "approvals.decide", True),
    ("dept-head", "approvals.decide", True),
    ("secretary", "approvals.decide", False),
    ("secretary", "approvals.read", True),
    ("borrower", "approvals.read", False),
    ("secretary", "inventory.start", True),
    ("secrecy-office", "inventory.start", False),
    ("secrecy-office", "inventory.read", True),
    ("approver", "inventory.read", False),
    ("secretary", "reports", True),
    ("secrecy-office", "reports", True),
    ("dept-head", "reports", False),
    ("borrower", "reports", False),
    ("secretary", "people.manage", True),
    ("secrecy-office", "people.manage", False),
    ("dept-head", "people.manage", False),
    ("secretary", "no.such.permission", False),
    ("intruder", "register.own", False),
]


@pytest.mark.parametrize(("role", "permission", "expected"), ROLE_TABLE)
def test_role_map(role: str, permission: str, expected: bool) -> None:
    assert roles.allowed(role, permission) is expected


def test_roles_are_the_domains() -> None:
    assert roles.ALL == set(ROLES)
    for perm, holders in roles.PERMISSIONS.items():
        assert holders <= roles.ALL, perm


LANG_TABLE = [
    # (cookie, Accept-Language, chosen)
    (None, None, "zh-CN"),
    (None, "", "zh-CN"),
    (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
    (None, "zh-TW", "zh-CN"),
    (None, "en-US,en;q=0.9", "en"),
    (None, "fr-FR, en;q=0.5", "en"),
    (None, "en;q=0.3, zh;q=0.8", "zh-CN"),
    (None, "zh;q=0.2, en;q=0.9", "en"),
    (None, "de-DE", "zh-CN"),
    (None, "en;q=abc, zh", "zh-CN"),
    ("en", "zh-CN", "en"),
    ("zh-CN", "en-US", "zh-CN"),
    ("klingon", "en-US", "en"),
]


@pytest.mark.parametrize(("cookie", "accept", "expected"), LANG_TABLE)
def test_language_choice(cookie: str | None, accept: str | None, expected: str) -> None:
    assert i18n.choose(cookie, accept) == expected


def test_catalogues_have_the_same_keys() -> None:
    zh, en = i18n.MESSAGES["zh-CN"], i18n.MESSAGES["en"]
    assert set(zh) == set(en)
    assert all(zh.values()) and all(en.values())
    assert i18n.translator("xx") is zh


POINTS = [
    # (point, state, group, shown as)
    ("door", "open", "door", "door"),
    ("window:w1", "closed", "windows", "window:w1"),
    ("cabinet:c1", "closed", "cabinets", "c1"),
    ("lock:c1", "locked", "locks", "c1"),
    ("tamper:t1", "inactive", "other", "tamper:t1"),
    ("smoke:s1", "active", "other", "smoke:s1"),
]


@pytest.mark.parametrize(("point", "state", "group", "name"), POINTS)
def test_live_points_grouped(point: str, state: str, group: str, name: str) -> None:
    from tracker.web.views import _group

    grouped = _group({point: state})
    assert grouped[group] == {name: state}
    assert all(not v for k, v in grouped.items() if k != group)
