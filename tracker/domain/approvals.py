"""Approvals (审批): requests for copying (复印), carrying out (携带外出), extended hours and
destruction (销毁), and what an approved one allows.

Pure rules: frozen values in, a decision or a refusal reason out. A refusal is a
sentence (``str``); ``None`` means allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tracker.domain.levels import Level
from tracker.domain.model import Pass, Person

KINDS = ("copy", "carry-out", "hours", "destroy")
STATES = ("pending", "approved", "refused", "expired", "done")

#: Who decides each kind: 领导 (approver) for copying, carrying out and extended hours;
#: 部门负责人 (department head) for a destruction list (DOMAIN.md rule 12).
DECIDER_ROLE = {
    "copy": "approver",
    "carry-out": "approver",
    "hours": "approver",
    "destroy": "dept-head",
}

#: A pending request expires this long after it was made, unless told otherwise.
DEFAULT_EXPIRY = timedelta(days=7)
#: The longest time box of a carry-out pass or an hours grant.
MAX_WINDOW = timedelta(days=31)
#: The most copies one request may ask for.
MAX_COPIES = 99

#: (state, action) -> the state after it. Anything else is refused.
TRANSITIONS = {
    ("pending", "approve"): "approved",
    ("pending", "refuse"): "refused",
    ("pending", "expire"): "expired",
    ("approved", "done"): "done",
}


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """A request as the rules see it."""

    id: int
    kind: str
    state: str
    requester: str
    created: datetime
    expires: datetime
    starts: datetime | None = None
    ends: datetime | None = None


@dataclass(frozen=True, slots=True)
class CopySource:
    """The document a copy would be made of."""

    classification: Level
    no_copying: bool
    status: str  # as ``ledger show`` prints it


@dataclass(frozen=True, slots=True)
class Grant:
    """Extended hours granted for a room: a period that counts as working time."""

    start: datetime
    end: datetime

    def covers(self, when: datetime) -> bool:
        return self.start <= when < self.end


def transition(state: str, action: str) -> str | None:
    """The state after ``action``, or None when ``action`` is not allowed in ``state``."""
    return TRANSITIONS.get((state, action))


def is_expired(req: RequestFacts, now: datetime) -> bool:
    """A pending request past its expiry time (it becomes ``expired``)."""
    return req.state == "pending" and now >= req.expires


def decision_refusal(req: RequestFacts, decider: Person | None, now: datetime) -> str | None:
    """Why ``decider`` may not approve or refuse ``req`` now; None when they may."""
    if decider is None:
        return "no such person"
    if req.state != "pending":
        return f"request {req.id} is {req.state}, not pending"
    if is_expired(req, now):
        return f"request {req.id} expired (it had to be decided before its expiry)"
    if not decider.active:
        return f"{decider.id} is not active"
    if decider.id == req.requester:
        return f"{decider.id} made request {req.id} and cannot decide it"
    role = DECIDER_ROLE[req.kind]
    if role not in decider.roles:
        return f"a {req.kind} request is decided by a person with role {role}; {decider.id} has not"
    return None


def copy_refusal(src: CopySource) -> str | None:
    """Why a document may not be copied at all (DOMAIN.md rule 7); None when it may,
    given an approved request."""
    if src.classification == Level.TOP_SECRET:
        return "绝密 (top-secret) documents are never copied"
    if src.no_copying:
        return "the document is marked 不准翻印 (no copying)"
    if src.status == "destroyed":
        return "the document is destroyed"
    return None


def window_refusal(start: datetime, end: datetime) -> str | None:
    """Why a time box (a carry-out pass, an hours grant) is unusable; None when it is fine."""
    if end <= start:
        return "the end must come after the start"
    if end - start > MAX_WINDOW:
        return f"at most {MAX_WINDOW.days} days"
    return None


def expiry_refusal(created: datetime, expires: datetime) -> str | None:
    if expires <= created:
        return "the expiry must lie in the future"
    return None


def copies_left(approved: int, registered: int) -> int:
    """Copies still to be registered under an approved request."""
    return max(0, approved - registered)


def passes_valid_at(passes: Iterable[Pass], when: datetime) -> tuple[Pass, ...]:
    """The passes whose time box holds ``when`` (a pass ends at its end; no decision is
    needed for that)."""
    return tuple(p for p in passes if p.start <= when < p.end)


def in_grant(grants: Iterable[Grant], when: datetime) -> bool:
    """``when`` falls inside an extended-hours grant: it counts as working time."""
    return any(g.covers(when) for g in grants)
