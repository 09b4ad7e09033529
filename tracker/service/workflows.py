"""Where the workflows of DOMAIN.md rules 6-13 meet the ingest.

Each workflow module exposes what it does with an applied controller event
(``on_event``), with the passing of time (``on_tick``, inside the tick's transaction) and,
for work that leaves the process (a reminder mailed), after that transaction has
committed (``after_commit``). The lists below name them; the ingest calls them in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from protocol.envelope import Event
from tracker.service.writer import Writer
from tracker.store import models as m

if TYPE_CHECKING:
    from tracker.service.apply import Rules

#: (writer, room, event, rules, event time): inside the event's transaction
EventHandler = Callable[[Writer, m.Room, Event, "Rules", datetime], None]
#: (session, tracker time, each room's own clock now by room id, rules): returns the ids
#: of the commands it queued (published after commit)
TickHandler = Callable[[Session, datetime, dict[int, datetime], "Rules"], list[str]]
#: (sessions, tracker time, rules): after the tick committed
AfterCommit = Callable[[sessionmaker[Session], datetime, "Rules"], None]


def event_handlers() -> Sequence[EventHandler]:
    from tracker.service import destruction, handover, inventory

    return (handover.on_event, inventory.on_event, destruction.on_event)


def tick_handlers() -> Sequence[TickHandler]:
    from tracker.service import inventory, overdue, requests

    return (requests.expire_pending, inventory.on_tick, overdue.on_tick)


def after_commit_handlers() -> Sequence[AfterCommit]:
    from tracker.service import overdue

    return (overdue.after_commit,)


def on_event(w: Writer, room: m.Room, ev: Event, cfg: Rules, when: datetime) -> None:
    for handler in event_handlers():
        handler(w, room, ev, cfg, when)


def on_tick(s: Session, now: datetime, room_now: dict[int, datetime], cfg: Rules) -> list[str]:
    commands: list[str] = []
    for handler in tick_handlers():
        commands += handler(s, now, room_now, cfg)
    return commands


def after_commit(sessions: sessionmaker[Session], now: datetime, cfg: Rules) -> None:
    for handler in after_commit_handlers():
        handler(sessions, now, cfg)
