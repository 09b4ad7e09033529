"""The one place that wires the tracker: config, store, clock, MQTT, worker."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tracker.clock import Clock, SystemClock
from tracker.config import TrackerConfig
from tracker.ingest.link import NetLink
from tracker.ingest.pipeline import Inbox, Message, Processor
from tracker.notify import make_notifier
from tracker.service.apply import Rules
from tracker.store.db import default_url, make_engine, migrate, readers, sessions

log = logging.getLogger(__name__)


def rules_of(cfg: TrackerConfig) -> Rules:
    return Rules(
        calendar=cfg.calendar,
        policy_calendar=cfg.policy_calendar(),
        loan_days=dict(cfg.loan_days),
        session_s=cfg.session_s,
        unlock_s=cfg.unlock_s,
        allow_uid_only=cfg.allow_uid_only,
        destruction_window_s=cfg.destruction_window_s,
        destruction_reader=cfg.destruction_reader,
        overdue=cfg.overdue,
        notifier=make_notifier(cfg.notify),
    )


@dataclass
class Store:
    engine: Engine
    sessions: sessionmaker[Session]  # changes
    readers: sessionmaker[Session]  # listings, reports, verification


def open_store(url: str | None, *, migrate_now: bool = True) -> Store:
    engine = make_engine(url or default_url())
    if migrate_now:
        migrate(engine)
    return Store(engine, sessions(engine), readers(engine))


class Tracker:
    """The running service. :meth:`run` is the worker loop (the caller's thread)."""

    def __init__(self, cfg: TrackerConfig, *, clock: Clock | None = None) -> None:
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self.store = open_store(cfg.db_url)
        self.inbox = Inbox()
        self.link = NetLink(cfg.mqtt, self.inbox, self.clock)
        self.rules = rules_of(cfg)
        self.processor = Processor(
            self.store.sessions,
            self.rules,
            clock=self.clock,
            publisher=self.link,
            heartbeat_s=cfg.heartbeat_s,
            reorder_window_s=cfg.reorder_window_s,
            command_ttl_s=cfg.command_ttl_s,
        )
        self.ready = threading.Event()
        self.web: Any = None  # the console (tracker.web.server.WebServer) with [web]
        #: the demo's simulated room, acted on from the console (tracker.web.sim.RoomControls)
        self.sim: Any = None

    def run(self, stop: threading.Event) -> None:
        self.processor.load()
        self.link.start()
        if self.cfg.web is not None:
            from tracker.web.server import LinkState, WebServer

            self.web = WebServer(
                self.cfg.web,
                self.store,
                self.clock,
                live=LinkState(self.link),
                rules=self.rules,
                sim=self.sim,
            )
            self.web.start()
        self.ready.set()
        last_tick = 0.0
        try:
            while not stop.is_set():
                batch = self.inbox.take(self.cfg.batch_max, timeout=0.2)
                if batch:
                    self._process(batch, stop)
                mono = self.clock.monotonic()
                if mono - last_tick >= 0.5:
                    last_tick = mono
                    self._guarded(self.processor.tick, "time-driven work")
        finally:
            if self.web is not None:
                self.web.stop()
            self.link.stop()
            self.store.engine.dispose()

    def _process(self, batch: list[Message], stop: threading.Event) -> None:
        rest = self.processor.ingest(batch, stop, interrupt=self.inbox.has_alarms)
        if rest:
            self.inbox.unget(rest)

    def _guarded(self, fn: Callable[[], object], what: str) -> None:
        try:
            fn()
        except Exception:
            log.exception("%s failed; retrying at the next tick", what)
