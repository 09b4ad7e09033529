"""The ledger facts the rules look at: plain frozen values, built by the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tracker.domain.levels import Level

#: ``status`` of a document, as ``ironroom ledger show`` prints it.
#: ``returned``: given back to its issuer (清退), no longer in the ledger's custody.
STATUSES = ("in_cabinet", "on_loan", "misplaced", "missing", "destroyed", "returned")

#: The tracker's own alarms that sound the room's siren (``siren.set``): someone in the
#: room is doing something wrong right now. The others (``forged_message``,
#: ``controller_silent``, ``end_of_day_missing``, ``overdue_escalated``) are for the
#: console and the secrecy office; ``event_gap`` and ``clock_skew`` are warnings.
SIREN_CAUSES = frozenset({"unauthorized_removal", "classified_exit", "destroyed_tag_seen"})


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str
    clearance: Level
    roles: frozenset[str] = frozenset()
    dept: str | None = None
    active: bool = True


@dataclass(frozen=True, slots=True)
class Scope:
    """One entry of a need-to-know scope (知悉范围): a person, a department or a role."""

    kind: str  # "person" | "dept" | "role"
    value: str

    @classmethod
    def parse(cls, text: str) -> Scope:
        kind, sep, value = text.partition(":")
        if not sep or kind not in ("person", "dept", "role") or not value.strip():
            raise ValueError(f"scope {text!r}: expected person:ID, dept:NAME or role:ROLE")
        return cls(kind, value.strip())

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


@dataclass(frozen=True, slots=True)
class Document:
    id: int
    number: str
    classification: Level
    tag: str | None
    home: str  # cabinet key "site/room/cabinet"
    scope: tuple[Scope, ...] = ()
    status: str = "in_cabinet"
    location: str | None = None  # the cabinet it is in, None while out
    holder: str | None = None  # the person it is on loan to


@dataclass(frozen=True, slots=True)
class Loan:
    document_id: int
    person_id: str
    opened: datetime
    due: datetime
    kind: str  # "badge" (taken with a badge session) | "in-room" (绝密: back by closing)


@dataclass(frozen=True, slots=True)
class Session:
    """A badge accepted at a reader: who, where, and until when a folder leaving a
    cabinet counts as taken by them."""

    person_id: str
    uid: str
    reader: str  # "cabinet:<id>" or "desk"
    cabinets: frozenset[str]  # cabinet keys the session covers
    opened: datetime
    until: datetime

    def covers(self, cabinet: str, when: datetime) -> bool:
        return cabinet in self.cabinets and self.opened <= when <= self.until


@dataclass(frozen=True, slots=True)
class Pass:
    """An approved carry-out pass (携带外出): a person, documents and a time box."""

    person_id: str
    documents: frozenset[int]
    start: datetime
    end: datetime

    def allows(self, document_id: int, when: datetime) -> bool:
        return document_id in self.documents and self.start <= when < self.end


# -- decisions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenLoan:
    document_id: int
    person_id: str
    opened: datetime
    due: datetime
    kind: str


@dataclass(frozen=True, slots=True)
class CloseLoan:
    document_id: int
    closed: datetime
    misplaced: bool = False


@dataclass(frozen=True, slots=True)
class Move:
    """Where a document now is and in which status."""

    document_id: int
    status: str
    location: str | None
    holder: str | None


@dataclass(frozen=True, slots=True)
class RaiseAlarm:
    cause: str
    severity: str  # "critical" | "warning"
    point: str | None = None
    document_id: int | None = None
    detail: dict[str, object] = field(default_factory=dict)

    @property
    def siren(self) -> bool:
        """The tracker sounds the room's siren for a person's physical wrongdoing."""
        return self.cause in SIREN_CAUSES


@dataclass(frozen=True, slots=True)
class Record:
    """Something worth keeping that is not an alarm: ``unknown_tag``, ``misplaced``,
    ``lateral_pass``, ``badge_refused``, ``portal_pass``."""

    kind: str
    epc: str | None = None
    document_id: int | None = None
    person_id: str | None = None
    detail: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OpenSession:
    session: Session


@dataclass(frozen=True, slots=True)
class Unlock:
    cabinet: str  # the cabinet's own name in its room (the command's "cabinet")
    seconds: int
    badge: str


Decision = OpenLoan | CloseLoan | Move | RaiseAlarm | Record | OpenSession | Unlock
