"""Overdue loans (催办, DOMAIN.md rule 6): the reminders, their messages, the listings.

The service API (the command line, the reports and a console call the same functions):

- :func:`on_tick` is the tick handler: at most once every ``[overdue] check_s`` seconds it
  writes each reminder step that has come due (one ``overdue_reminders`` row per loan and
  step, never twice) with a message per recipient, raises ``overdue_escalated`` at the
  escalation step, and queues a ``policy.update`` for the rooms concerned (an overdue
  borrower's badges leave the cabinets' lists).
- :func:`after_commit` sends the queued messages through the notifier, each marked sent
  (or its error, tried again later) in a transaction of its own.
- :func:`overdue_listing` (``ironroom ledger overdue``) and :func:`reminders_listing`
  (``ironroom ledger reminders``) take a Session.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from protocol.timefmt import format_ts, parse_ts
from tracker.domain import overdue as od
from tracker.notify import LogNotifier, Message, NotifyError
from tracker.service.apply import Rules, queue_policy
from tracker.service.writer import Writer
from tracker.store import models as m

log = logging.getLogger(__name__)

CAUSE = "overdue_escalated"
#: messages handed to the notifier per tick at most: a slow mail server delays the
#: tracker's next batch of events by this many sends at worst
SEND_PER_TICK = 5


# -- the tick: reminders due --------------------------------------------------------------


def on_tick(s: Session, now: datetime, room_now: dict[int, datetime], cfg: Rules) -> list[str]:
    """Tick handler: look for overdue loans at most every ``check_s`` seconds of tracker
    time (the last look is kept in the database, so a restart does not look again at
    once). Returns the commands queued (``policy.update``)."""
    check = s.get(m.OverdueCheck, 1)
    if check is not None:
        last = parse_ts(check.checked)
        if last <= now < last + timedelta(seconds=cfg.overdue.check_s):
            return []
        check.checked = format_ts(now)
    else:
        s.add(m.OverdueCheck(id=1, checked=format_ts(now)))
    return check_overdue(s, now, room_now, cfg)


def check_overdue(
    s: Session, now: datetime, room_now: dict[int, datetime], cfg: Rules
) -> list[str]:
    """Write every reminder step due now (each loan judged on its room's clock, the
    tracker's for a room not heard from), inside the caller's transaction."""
    latest = max([now, *room_now.values()])
    rows = s.execute(
        select(m.Loan, m.Document, m.Cabinet.room_id)
        .join(m.Document, m.Document.id == m.Loan.document_id)
        .outerjoin(m.Cabinet, m.Cabinet.id == m.Document.home_cabinet_id)
        .where(m.Loan.closed.is_(None), m.Loan.kind != "in-room", m.Loan.due < format_ts(latest))
        .order_by(m.Loan.due, m.Loan.id)
    ).all()
    if not rows:
        return []
    sent: dict[int, set[str]] = {}
    for loan_id, name in s.execute(
        select(m.OverdueReminder.loan_id, m.OverdueReminder.step).where(
            m.OverdueReminder.loan_id.in_([r[0].id for r in rows])
        )
    ):
        sent.setdefault(loan_id, set()).add(name)
    sched = cfg.overdue
    people: dict[str, od.Contact] | None = None
    w: Writer | None = None
    touched: dict[int, datetime] = {}
    for loan, doc, room_id in rows:
        clock = room_now.get(room_id, now) if room_id is not None else now
        value = _loan(loan, doc)
        if not od.is_overdue(value, clock):
            continue
        if room_id is not None:
            touched[room_id] = clock
        steps = od.reminders_due(
            value, clock, sched.remind_after, sched.escalate_after, sent=sent.get(loan.id, ())
        )
        if not steps:
            continue
        if people is None:
            people = {p.id: _contact(p) for p in s.scalars(select(m.Person))}
        if w is None:
            w = Writer(s, actor="tracker", at=now, cause="overdue check")
        room = s.get(m.Room, room_id) if room_id is not None else None
        borrower = people.get(loan.person_id) or od.Contact(loan.person_id, loan.person_id, None)
        for step in steps:
            _write_step(w, room, value, doc, step, borrower, people, clock, now)
    commands = list(w.commands) if w is not None else []
    for room_id, clock in sorted(touched.items()):
        # an overdue borrower's badges leave the room's lists (sent only when the policy
        # changed), on the room's own clock: who is blocked is a matter of its time; this
        # writer queues the command only, no audited change
        pw = Writer(s, actor="tracker", at=clock, cause="overdue check")
        queue_policy(pw, s.get(m.Room, room_id), cfg, force=False)  # type: ignore[arg-type]
        commands += pw.commands
    return commands


def _write_step(
    w: Writer,
    room: m.Room | None,
    loan: od.OverdueLoan,
    doc: m.Document,
    step: od.Step,
    borrower: od.Contact,
    people: dict[str, od.Contact],
    clock: datetime,
    now: datetime,
) -> None:
    reminder = m.OverdueReminder(
        loan_id=loan.loan_id,
        step=step.name,
        document_id=doc.id,
        person_id=loan.person_id,
        due_at=format_ts(step.at),
        created=format_ts(clock),
    )
    if step.escalation:
        alarm = w.raise_alarm(
            room,
            CAUSE,
            "warning",
            raised=clock,
            document_id=doc.id,
            detail={
                "loan": loan.loan_id,
                "person": loan.person_id,
                "document": loan.document,
                "due": format_ts(loan.due),
                "days_overdue": od.days_overdue(loan.due, clock),
            },
        )
        reminder.alarm_id = alarm.alarm_id
    w.add("overdue.remind", reminder)
    text = od.compose(step, loan, borrower, clock)
    for person in od.recipients(step, borrower, people.values()):
        w.add(
            "overdue.queue",
            m.OverdueMessage(
                reminder_id=reminder.id,
                person_id=person.id,
                address=person.email,
                subject=text.subject,
                body=text.body,
                state="pending",
                attempts=0,
                created=format_ts(now),
                next_try=format_ts(now),
            ),
        )


# -- after the tick committed: sending ---------------------------------------------------


def after_commit(sessions: sessionmaker[Session], now: datetime, cfg: Rules) -> None:
    """Send what is queued and due (at most :data:`SEND_PER_TICK`). Each message leaves
    the queue only once it was handed over and that was committed; a failure is kept
    with its error and tried again after a growing delay. The first failure ends this
    round (the mail server is likely down for the rest too)."""
    with _reader(sessions) as s:
        ids = list(
            s.scalars(
                select(m.OverdueMessage.id)
                .where(m.OverdueMessage.state == "pending")
                .where(m.OverdueMessage.next_try <= format_ts(now))
                .order_by(m.OverdueMessage.next_try, m.OverdueMessage.id)
                .limit(SEND_PER_TICK)
            )
        )
        queued = {
            r.id: (r.address, r.subject, r.body, r.person_id)
            for r in s.scalars(select(m.OverdueMessage).where(m.OverdueMessage.id.in_(ids)))
        }
    for mid in ids:
        address, subject, body, person = queued[mid]
        notifier = cfg.notifier if address else LogNotifier()
        error = None
        try:
            notifier.send(Message((address,) if address else (), subject, body, name=person))
        except NotifyError as exc:
            error = str(exc)
        with sessions.begin() as s:
            row = s.get(m.OverdueMessage, mid)
            if row is None or row.state != "pending":
                continue
            attempts = row.attempts + 1
            if error is None:
                w = Writer(s, actor="tracker", at=now, cause="overdue reminder sent")
                w.change(
                    "overdue.sent",
                    row,
                    state="sent",
                    channel=notifier.channel,
                    attempts=attempts,
                    sent=format_ts(now),
                    error=None,
                )
            else:
                w = Writer(s, actor="tracker", at=now, cause="overdue reminder not sent")
                w.change(
                    "overdue.failed",
                    row,
                    attempts=attempts,
                    error=error,
                    next_try=format_ts(now + od.retry_after(attempts)),
                )
        if error is not None:
            log.warning("reminder %d not sent (attempt %d): %s", mid, attempts, error)
            return


# -- listings -----------------------------------------------------------------------------


def overdue_listing(
    s: Session, now: datetime, *, person: str | None = None
) -> list[dict[str, Any]]:
    """Open loans past their due time at ``now`` (in-room loans excepted), oldest due
    first: document (文号), tag, person, due, days_overdue, the reminder steps written."""
    stmt = (
        select(m.Loan, m.Document)
        .join(m.Document, m.Document.id == m.Loan.document_id)
        .where(m.Loan.closed.is_(None), m.Loan.kind != "in-room", m.Loan.due < format_ts(now))
        .order_by(m.Loan.due, m.Loan.id)
    )
    if person is not None:
        stmt = stmt.where(m.Loan.person_id == person)
    rows = s.execute(stmt).all()
    steps: dict[int, list[str]] = {}
    for loan_id, step in s.execute(
        select(m.OverdueReminder.loan_id, m.OverdueReminder.step)
        .where(m.OverdueReminder.loan_id.in_([r[0].id for r in rows]))
        .order_by(m.OverdueReminder.due_at, m.OverdueReminder.id)
    ):
        steps.setdefault(loan_id, []).append(step)
    return [
        {
            "loan": loan.id,
            "document": doc.number,
            "title": doc.title,
            "tag": doc.tag,
            "person": loan.person_id,
            "opened": loan.opened,
            "due": loan.due,
            "days_overdue": od.days_overdue(parse_ts(loan.due), now),
            "reminders": steps.get(loan.id, []),
        }
        for loan, doc in rows
    ]


def reminders_listing(s: Session, *, pending: bool = False) -> list[dict[str, Any]]:
    """The reminders' messages, oldest first (``pending``: those not yet sent)."""
    stmt = (
        select(m.OverdueMessage, m.OverdueReminder, m.Document.number)
        .join(m.OverdueReminder, m.OverdueReminder.id == m.OverdueMessage.reminder_id)
        .join(m.Document, m.Document.id == m.OverdueReminder.document_id)
        .order_by(m.OverdueMessage.id)
    )
    if pending:
        stmt = stmt.where(m.OverdueMessage.state == "pending")
    return [
        {
            "id": msg.id,
            "loan": rem.loan_id,
            "step": rem.step,
            "document": number,
            "borrower": rem.person_id,
            "to": msg.person_id,
            "address": msg.address,
            "state": msg.state,
            "channel": msg.channel,
            "attempts": msg.attempts,
            "error": msg.error,
            "created": msg.created,
            "next_try": msg.next_try,
            "sent": msg.sent,
            "alarm": rem.alarm_id,
        }
        for msg, rem, number in s.execute(stmt).all()
    ]


# -- helpers ------------------------------------------------------------------------------


def _reader(sessions: sessionmaker[Session]) -> Session:
    """A session that only reads (on SQLite no write lock: this runs every tick)."""
    bind = sessions.kw.get("bind")
    if bind is None:
        return sessions()
    return Session(bind.execution_options(ironroom_readonly=True), expire_on_commit=False)


def _loan(loan: m.Loan, doc: m.Document) -> od.OverdueLoan:
    return od.OverdueLoan(loan.id, loan.person_id, doc.number, parse_ts(loan.due), loan.kind)


def _contact(row: m.Person) -> od.Contact:
    return od.Contact(
        id=row.id,
        name=row.name,
        email=row.email,
        roles=frozenset(json.loads(row.roles)),
        active=row.active,
    )
