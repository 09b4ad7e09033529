"""Overdue loans (催办, DOMAIN.md rule 6): which reminder steps are due, who is told, what
the message says, and when a failed send is tried again. Pure functions of their inputs,
``now`` included.

A loan is overdue once ``now`` is past its due time. Reminders go to the borrower at
``remind_after`` delays after the due time (``remind-1``, ``remind-2``, ...); at
``escalate_after`` the escalation step (``escalate``) goes to every active secretary and
secrecy office (保密办). In-room loans (绝密, due at closing time) are left to the
closing-time check (``end_of_day_missing``) and get no reminders.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

#: the roles an escalation goes to
ESCALATION_ROLES = frozenset({"secretary", "secrecy-office"})
ESCALATE = "escalate"
#: a failed send is tried again after 30 s, doubling up to an hour
RETRY_FIRST = timedelta(seconds=30)
RETRY_MAX = timedelta(hours=1)

_DELAY = re.compile(r"(\d{1,5})([mhd])")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


def parse_delay(text: object) -> timedelta:
    """``"30m"``, ``"4h"``, ``"3d"``: a whole number of minutes, hours or days (at most
    99999 of them). ``ValueError`` with a one-line reason otherwise."""
    match = _DELAY.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f'expected a delay like "0h", "30m", "1d", got {text!r}')
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True, slots=True)
class Schedule:
    """``[overdue]``: the reminder delays after the due time, the escalation delay, and
    how often the tracker looks (seconds of tracker time)."""

    remind_after: tuple[timedelta, ...] = (timedelta(0), timedelta(days=1), timedelta(days=3))
    escalate_after: timedelta = timedelta(days=7)
    check_s: int = 30

    @staticmethod
    def build(
        remind_after: Sequence[object], escalate_after: object, check_s: int = 30
    ) -> Schedule:
        """Checked: the delays strictly increasing; ``ValueError`` naming the bad one."""
        delays = tuple(parse_delay(d) for d in remind_after)
        for a, b in zip(delays, delays[1:], strict=False):
            if b <= a:
                raise ValueError("the delays must be strictly increasing")
        return Schedule(delays, parse_delay(escalate_after), check_s)


@dataclass(frozen=True, slots=True)
class OverdueLoan:
    loan_id: int
    person_id: str
    document: str  # its number (文号)
    due: datetime
    kind: str  # badge | in-room | ...


@dataclass(frozen=True, slots=True)
class Step:
    """One reminder step of one loan, due at ``at`` (the due time plus its delay)."""

    name: str  # remind-1, remind-2, ..., escalate
    at: datetime

    @property
    def escalation(self) -> bool:
        return self.name == ESCALATE


def is_overdue(loan: OverdueLoan, now: datetime) -> bool:
    return loan.kind != "in-room" and now > loan.due


def reminders_due(
    loan: OverdueLoan,
    now: datetime,
    delays: Sequence[timedelta],
    escalate_after: timedelta,
    *,
    sent: Iterable[str] = (),
) -> list[Step]:
    """The steps of ``loan`` due at ``now`` and not in ``sent``, in order. Nothing for a
    loan not yet overdue or an in-room loan. A step whose delay has passed is due even
    if an earlier one was missed (the tracker was down): each is written once."""
    if not is_overdue(loan, now):
        return []
    done = set(sent)
    steps = [Step(f"remind-{i}", loan.due + d) for i, d in enumerate(delays, start=1)]
    steps.append(Step(ESCALATE, loan.due + escalate_after))
    return sorted(
        (s for s in steps if s.at <= now and s.name not in done), key=lambda s: (s.at, s.name)
    )


def days_overdue(due: datetime, now: datetime) -> int:
    """Whole days past the due time (0 within the first day, and before it)."""
    return max(0, (now - due).days) if now > due else 0


@dataclass(frozen=True, slots=True)
class Contact:
    id: str
    name: str
    email: str | None
    roles: frozenset[str] = field(default_factory=frozenset)
    active: bool = True


def recipients(step: Step, borrower: Contact, people: Iterable[Contact]) -> list[Contact]:
    """A reminder goes to the borrower; the escalation to every active secretary and
    secrecy office (the borrower too when they hold one of those roles)."""
    if not step.escalation:
        return [borrower]
    return sorted(
        (p for p in people if p.active and p.roles & ESCALATION_ROLES), key=lambda p: p.id
    )


@dataclass(frozen=True, slots=True)
class Text:
    subject: str
    body: str


def compose(step: Step, loan: OverdueLoan, borrower: Contact, now: datetime) -> Text:
    """The message of one step, Chinese first with the English after it."""
    days = days_overdue(loan.due, now)
    due = loan.due.strftime("%Y-%m-%d %H:%M UTC")
    if step.escalation:
        return Text(
            subject=f"催办升级 Overdue escalated: {loan.document} ({borrower.name})",
            body=(
                f"{borrower.name}（{borrower.id}）借阅的 {loan.document} 应于 {due} 归还，"
                f"已逾期 {days} 天，经催办仍未归还。\n"
                f"{loan.document}, lent to {borrower.name} ({borrower.id}), was due back "
                f"{due} and is {days} day(s) overdue after reminders.\n"
            ),
        )
    return Text(
        subject=f"催办 Reminder: {loan.document} 已逾期 is overdue",
        body=(
            f"{borrower.name}：您借阅的 {loan.document} 应于 {due} 归还，已逾期 {days} 天。"
            f"请尽快交回机要室；归还前不能再借阅。\n"
            f"{borrower.name}: {loan.document} was due back {due} and is {days} day(s) "
            f"overdue. Please return it to the secure room; until then you may borrow "
            f"nothing more.\n"
        ),
    )


def retry_after(attempts: int) -> timedelta:
    """How long after the ``attempts``-th failed send the next try is made."""
    delay: timedelta = RETRY_FIRST * (2 ** max(0, min(attempts - 1, 20)))
    return min(delay, RETRY_MAX)
