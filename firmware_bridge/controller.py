"""The controller's core: point states, latched alarms, the siren, cabinet locks, tag
presence, badges and commands. Every change becomes a signed event in the outbox.

Thread model: inputs arrive from GPIO callback threads, reader threads, the PC/SC
watcher and the MQTT thread. State changes happen under one lock that is never held
across disk or network I/O; the siren and locks are driven inside it (an alarm must not
wait for a disk). Events made under it, and the settings changed with them (latched
alarms, siren requests, arming, policy), are queued and written to the outbox by the
writer in one transaction, in sequence order; they leave the queue only once that
transaction is committed.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from firmware_bridge import __version__
from firmware_bridge.clock import Clock
from firmware_bridge.config import Config
from firmware_bridge.outbox import Outbox, OutboxError
from firmware_bridge.rules import (
    Situation,
    causes_on_change,
    causes_while_active,
    may_unlock_offline,
    state_word,
)
from protocol.envelope import Command, make_event, make_state
from protocol.hours import (
    Calendar,
    HoursError,
    is_working_time,
    parse_dates,
    parse_grants,
    parse_spans,
    parse_weekly,
)
from protocol.timefmt import format_ts
from protocol.topics import category_of

log = logging.getLogger(__name__)

#: A command may not live longer than this (the replay memory keeps ids that long).
MAX_COMMAND_LIFETIME = timedelta(hours=1)
#: How far a command's ``ts`` may be ahead of this controller's clock. Commands come in
#: the controller's own time as the tracker estimates it from the controller's events
#: (PROTOCOL.md, "Clocks"), so this only has to cover the error of that estimate (the
#: drift since the last heartbeat, delivery delays), not a wrong clock on either side.
CLOCK_SKEW = timedelta(minutes=5)
#: Refusals of messages that could not be verified are answered at most this often, in
#: one ``command.result`` with a count (a flood of garbage must not flood the outbox).
REFUSAL_INTERVAL_S = 1.0
#: The ``command_id`` of a result for messages that were not verified.
UNREADABLE = "unreadable"
#: Tracker siren requests held at once, at most.
MAX_SIREN_REQUESTS = 64
_MISSING = object()


class Switch(Protocol):
    def set(self, on: bool) -> None: ...


class LockLike(Protocol):
    @property
    def locked(self) -> bool: ...

    def lock(self) -> None: ...

    def unlock(self) -> None: ...


class Led(Protocol):
    def set(self, on: bool) -> None: ...

    def blink(self, on_s: float, off_s: float) -> None: ...


@dataclass
class Alarm:
    alarm_id: str
    cause: str
    point: str | None
    severity: str
    raised: str
    silenced: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "alarm_id": self.alarm_id,
            "cause": self.cause,
            "point": self.point,
            "severity": self.severity,
            "raised": self.raised,
            "silenced": self.silenced,
        }


@dataclass
class _Episode:
    """One opening of a contact: when it began and which alarms it already raised."""

    since: float
    raised: set[str]


class Controller:
    def __init__(
        self,
        cfg: Config,
        *,
        key: bytes,
        outbox: Outbox,
        clock: Clock,
        boot: int,
        siren: Switch | None = None,
        led: Led | None = None,
        locks: dict[str, LockLike] | None = None,
        presence: dict[str, Any] | None = None,
        online: Callable[[], bool] = lambda: False,
    ) -> None:
        self.cfg = cfg
        self._key = key
        self.outbox = outbox
        self.clock = clock
        self.boot = boot
        self.seq = 0
        self.siren = siren
        self.led = led
        self.locks = locks or {}
        #: reader -> PresenceTracker (cabinet readers share one instance)
        self.presence = presence or {}
        self._trackers = list({id(t): t for t in self.presence.values()}.values())
        self.online = online
        self.on_events: Callable[[], None] = lambda: None
        self.on_state: Callable[[], None] = lambda: None
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._writer_wake = threading.Condition()
        self._writer_stop = False
        self._pending: deque[tuple[int, int, str, bytes, bool]] = deque()
        #: settings changed but not yet committed (key -> JSON value), written by the
        #: writer with the events made with them
        self._unsaved: dict[str, Any] = {}
        #: how long the writer waits before trying a failed write again
        self.retry_s = 1.0
        self._write_failing_since: float | None = None
        self._write_failures = 0
        self.points: dict[str, bool] = {}
        self.kinds = {i.point: i.kind for i in cfg.inputs}
        self._episodes: dict[str, _Episode] = {}
        self._relock_at: dict[str, float] = {}
        self._started_mono = clock.monotonic()
        self._siren_on = False
        self._led_mode = ""
        self._raised = 0  # alarms raised in this boot: their ids are boot-unique
        # Latched alarms outlive a restart (a power cut must not silence them).
        self.alarms: dict[str, Alarm] = {
            d["alarm_id"]: Alarm(**d) for d in outbox.get("alarms", [])
        }
        self._alarms_dirty = False
        self._to_announce: list[Alarm] = []
        #: the tracker's siren requests (``siren.set``), by its alarm id, kept on disk
        self.siren_requests: dict[str, None] = dict.fromkeys(outbox.get("siren_requests", []))
        self._refused = 0  # unverified messages refused and not yet answered
        self._refused_error = ""
        self._refused_at: float | None = None  # when the last refusal summary was made
        self.armed = bool(outbox.get("armed", cfg.policy.armed))
        self.policy = self._load_policy()
        self.calendar = self._calendar_from_policy()

    # -- plumbing ---------------------------------------------------------------------

    def _emit(self, type_: str, data: dict[str, Any], ts: datetime | str | None = None) -> None:
        """Make and sign one event (under the state lock); written by :meth:`_flush`."""
        self.seq += 1
        topic, payload = make_event(
            self._key,
            site=self.cfg.site,
            room=self.cfg.room,
            controller=self.cfg.controller,
            boot=self.boot,
            seq=self.seq,
            ts=ts or self.clock.now(),
            type=type_,
            data=data,
        )
        self._pending.append((self.boot, self.seq, topic, payload, category_of(type_) == "alarm"))

    def _flush(self) -> None:
        """Get the events made so far written to the outbox, in order.

        With the writer thread running (the daemon starts it) this only wakes it, so a
        GPIO callback never waits for a disk; without it the caller writes.
        """
        if self._writer is not None:
            if self._has_work():  # most tag reads make no event: no wake-up for them
                with self._writer_wake:
                    self._writer_wake.notify()
            return
        self._write_pending()

    def _has_work(self) -> bool:
        return bool(self._pending or self._unsaved or self._alarms_dirty)

    def _write_pending(self) -> None:
        """Commit the events and settings queued so far in one transaction; they leave
        the queue only after the commit, so a failed write loses nothing (it raises
        :class:`OutboxError` and the next call writes them)."""
        with self._write_lock:
            with self._lock:
                if self._alarms_dirty:
                    self._unsaved["alarms"] = [a.as_dict() for a in self.alarms.values()]
                    self._alarms_dirty = False
                rows = list(self._pending)
                meta = dict(self._unsaved)
            if not rows and not meta:
                return
            self.outbox.commit(rows, meta)
            with self._lock:
                # Only the writer takes from the left; new events went to the right.
                for _ in rows:
                    self._pending.popleft()
                for key, value in meta.items():
                    if self._unsaved.get(key, _MISSING) == value:  # unchanged since
                        del self._unsaved[key]
        if rows:
            self.on_events()

    def start_writer(self) -> None:
        """Write events from a thread of their own (one fsync'd batch at a time)."""
        self._writer_stop = False
        self._writer = threading.Thread(target=self._writer_loop, name="outbox-writer")
        self._writer.start()

    def stop_writer(self) -> None:
        """Stop the writer thread after it has written everything made so far."""
        writer = self._writer
        if writer is None:
            return
        with self._writer_wake:
            self._writer_stop = True
            self._writer_wake.notify()
        writer.join()
        self._writer = None
        try:
            self._write_pending()
        except OutboxError as exc:
            log.error("%d events could not be written before stopping: %s", len(self._pending), exc)

    def _writer_loop(self) -> None:
        while True:
            with self._writer_wake:
                if not self._has_work() and not self._writer_stop:
                    self._writer_wake.wait(0.5)
                stopping = self._writer_stop
            try:
                self._write_pending()
            except Exception as exc:  # a full or broken disk: say so loudly, keep the events
                self._write_failed(exc)
                if stopping:
                    return
                time.sleep(self.retry_s)
                continue
            if self._write_failing_since is not None:
                log.warning(
                    "outbox writable again after %d failed writes; nothing was lost",
                    self._write_failures,
                )
                self._write_failing_since = None
                self._write_failures = 0
            if stopping:
                return

    def _write_failed(self, exc: Exception) -> None:
        """Log the first failure of a streak, then once a minute while it lasts."""
        now = time.monotonic()
        self._write_failures += 1
        if self._write_failing_since is None:
            self._write_failing_since = now
            log.error(
                "cannot write to the outbox: %s; %d events kept in memory, retrying",
                exc,
                len(self._pending),
            )
        elif now - self._write_failing_since >= 60.0:
            self._write_failing_since = now
            log.error(
                "still cannot write to the outbox (%d attempts): %s; %d events kept",
                self._write_failures,
                exc,
                len(self._pending),
            )

    def _changed(self) -> None:
        self.on_state()

    def working(self, now: datetime | None = None) -> bool:
        return is_working_time(self.calendar, now or self.clock.now())

    # -- start ------------------------------------------------------------------------

    def start(self, initial: dict[str, bool]) -> None:
        """First event of the boot, then alarms for whatever is already active."""
        with self._lock:
            self._emit(
                "controller.started",
                {
                    "version": __version__,
                    "config_hash": self.cfg.digest[:16],
                    "points": self.cfg.points,
                    "readers": self.cfg.readers,
                },
            )
            now = self.clock.now()
            mono = self.clock.monotonic()
            for point, active in initial.items():
                self.points[point] = active
                if active:
                    kind = self.kinds[point]
                    if kind in ("door", "window", "cabinet"):
                        self._episodes[point] = _Episode(mono, set())
                    for cause in causes_on_change(self._situation(point, now)):
                        if cause != "forced_open":  # a lock state before boot is unknown
                            self._raise(cause, point, now)
            self._drive_outputs()
        self._flush()
        self._changed()

    # -- inputs -----------------------------------------------------------------------

    def on_input(self, point: str, active: bool, mono: float | None = None) -> None:
        """A debounced change of an input point (called from GPIO threads)."""
        now = self.clock.now()
        with self._lock:
            if self.points.get(point) == active:
                return
            self.points[point] = active
            kind = self.kinds[point]
            causes = causes_on_change(self._situation(point, now))
            # Alarm outputs first: the siren must not wait for anything.
            for cause in causes:
                self._raise(cause, point, now, emit=False)
            self._drive_outputs()
            self._emit(
                "sensor.changed",
                {"point": point, "kind": kind, "state": state_word(kind, active)},
                now,
            )
            self._emit_raised()
            if kind in ("door", "window", "cabinet"):
                if active:
                    self._episodes[point] = _Episode(
                        self.clock.monotonic() if mono is None else mono, set(causes)
                    )
                else:
                    self._episodes.pop(point, None)
        self._flush()
        self._changed()

    def _situation(self, point: str, now: datetime) -> Situation:
        kind = self.kinds[point]
        locked = None
        if kind == "cabinet":
            lock = self.locks.get(point.split(":", 1)[1])
            locked = lock.locked if lock is not None else None
        return Situation(
            kind=kind,
            active=self.points.get(point, False),
            working=self.working(now),
            armed=self.armed,
            locked=locked,
        )

    # -- alarms -----------------------------------------------------------------------

    def _raise(self, cause: str, point: str | None, now: datetime, *, emit: bool = True) -> None:
        for alarm in self.alarms.values():
            if alarm.cause == cause and alarm.point == point:
                return  # latched already: one alarm per cause and point until reset
        self._raised += 1
        alarm_id = f"{self.cfg.controller}:{self.boot}:a{self._raised}"
        severity = "critical" if cause in self.cfg.alarms.critical else "warning"
        alarm = Alarm(alarm_id, cause, point, severity, format_ts(now))
        self.alarms[alarm_id] = alarm
        self._alarms_dirty = True
        self._to_announce.append(alarm)
        if emit:
            self._emit_raised()

    def _emit_raised(self) -> None:
        while self._to_announce:
            alarm = self._to_announce.pop(0)
            self._emit(
                "alarm.raised",
                {
                    "alarm_id": alarm.alarm_id,
                    "cause": alarm.cause,
                    "point": alarm.point,
                    "severity": alarm.severity,
                },
                alarm.raised,
            )

    def _drive_outputs(self) -> None:
        sounding = bool(self.siren_requests) or any(
            not a.silenced and a.cause in self.cfg.alarms.siren_causes for a in self.alarms.values()
        )
        if sounding != self._siren_on and self.siren is not None:
            self.siren.set(sounding)
        self._siren_on = sounding
        self._drive_led()

    def _drive_led(self) -> None:
        """Status LED: steady when all is well and online, slow blink offline, fast
        blink while an alarm is latched."""
        if self.led is None:
            return
        mode = "alarm" if self.alarms else "online" if self.online() else "offline"
        if mode == self._led_mode:
            return
        self._led_mode = mode
        if mode == "alarm":
            self.led.blink(0.1, 0.1)
        elif mode == "offline":
            self.led.blink(0.2, 1.8)
        else:
            self.led.set(True)

    def link_changed(self) -> None:
        """The broker connection came or went: the status LED shows it."""
        with self._lock:
            self._drive_led()

    @property
    def siren_on(self) -> bool:
        return self._siren_on

    def silence(self, alarm_id: str | None = None) -> int:
        with self._lock:
            n = 0
            for alarm in self.alarms.values():
                if alarm_id in (None, alarm.alarm_id) and not alarm.silenced:
                    alarm.silenced = True
                    self._alarms_dirty = True
                    n += 1
            self._drive_outputs()
        self._flush()
        self._changed()
        return n

    def reset(self, alarm_id: str | None, by: str) -> int:
        """Clear latched alarms (one or all). A detector that is still active raises
        its alarm again at once: reset is not a way to ignore a live fire or tamper."""
        now = self.clock.now()
        with self._lock:
            gone = [a for a in self.alarms.values() if alarm_id in (None, a.alarm_id)]
            for alarm in gone:
                del self.alarms[alarm.alarm_id]
                self._alarms_dirty = True
                self._emit("alarm.cleared", {"alarm_id": alarm.alarm_id, "by": by})
            for alarm in gone:
                point = alarm.point
                if point in self.kinds and self.kinds[point] not in ("door", "window", "cabinet"):
                    for cause in causes_on_change(self._situation(point, now)):
                        self._raise(cause, point, now)
            self._drive_outputs()
        self._flush()
        self._changed()
        return len(gone)

    # -- time -------------------------------------------------------------------------

    def tick(self) -> None:
        """Time-driven rules: held-open, after-hours for contacts left open, relocking,
        and presence timeouts. Called often (every few tens of ms) by the daemon."""
        now = self.clock.now()
        mono = self.clock.monotonic()
        with self._lock:
            raised_before = self._raised
            for point, ep in self._episodes.items():
                limit = self.cfg.alarms.held_open_s.get(self.kinds[point], 0.0)
                for cause in causes_while_active(
                    self._situation(point, now), mono - ep.since, limit
                ):
                    if cause not in ep.raised:
                        ep.raised.add(cause)
                        self._raise(cause, point, now)
            for cabinet, when in list(self._relock_at.items()):
                if mono >= when:
                    del self._relock_at[cabinet]
                    self._set_lock(cabinet, False, "timeout")
            for tracker in self._trackers:
                self._presence_changes(tracker.tick(mono))
            self._answer_refusals(mono)
            self._drive_outputs()
            raised = self._raised != raised_before
        self._flush()
        if raised:
            self._changed()

    # -- locks ------------------------------------------------------------------------

    def _set_lock(self, cabinet: str, unlocked: bool, reason: str, seconds: float = 0) -> None:
        lock = self.locks[cabinet]
        if unlocked:
            lock.unlock()
            self._relock_at[cabinet] = self.clock.monotonic() + seconds
        else:
            lock.lock()
        self._emit(
            "lock.changed",
            {
                "point": f"lock:{cabinet}",
                "state": "unlocked" if unlocked else "locked",
                "reason": reason,
            },
        )
        self._changed()

    # -- tags -------------------------------------------------------------------------

    def on_tag_read(self, reader: str, epc: str, rssi: int | None, mono: float) -> None:
        tracker = self.presence.get(reader)
        if tracker is None:
            return
        with self._lock:
            self._presence_changes(tracker.observe(reader, epc, rssi, mono))
        self._flush()

    def on_round(self, reader: str, mono: float) -> None:
        tracker = self.presence.get(reader)
        if tracker is None:
            return
        with self._lock:
            self._presence_changes(tracker.end_round(reader, mono))
        self._flush()

    def _presence_changes(self, changes: list[Any]) -> None:
        for ch in changes:
            if ch.reader.startswith("cabinet:"):
                data: dict[str, Any] = {"reader": ch.reader, "epc": ch.epc}
                if ch.kind == "arrived" and ch.rssi is not None:
                    data["rssi"] = ch.rssi
                self._emit("tag.arrived" if ch.kind == "arrived" else "tag.departed", data)
            elif ch.kind == "arrived":
                self._emit("tag.seen", {"reader": ch.reader, "epc": ch.epc, "rssi": ch.rssi})

    def present_tags(self, reader: str) -> list[str]:
        tracker = self.presence.get(reader)
        if tracker is None:
            return []
        with self._lock:
            return sorted(epc for epc, r in tracker.present().items() if r == reader)

    # -- badges -----------------------------------------------------------------------

    def on_badge(self, reader: str, uid: str, auth: str) -> None:
        now = self.clock.now()
        with self._lock:
            self._emit("badge.presented", {"reader": reader, "uid": uid, "auth": auth}, now)
            authenticated = auth == "verified" or (auth == "uid-only" and self.cfg.allow_uid_only)
            resets = bool(self.alarms) and authenticated and uid in self.policy["reset_badges"]
            if not resets and not self.online():
                for cabinet in may_unlock_offline(
                    reader=reader,
                    uid=uid,
                    auth=auth,
                    allow_uid_only=self.cfg.allow_uid_only,
                    working=self.working(now),
                    cabinets=self.policy["cabinets"],
                    locks=set(self.locks),
                ):
                    self._set_lock(cabinet, True, f"badge:{uid}", self._unlock_seconds(cabinet))
        self._flush()
        if resets:
            self.reset(None, uid)

    def _unlock_seconds(self, cabinet: str) -> float:
        for lk in self.cfg.locks:
            if lk.cabinet == cabinet:
                return float(lk.unlock_s)
        return 20.0

    # -- commands ---------------------------------------------------------------------

    def refuse(self, command_id: str, error: str) -> None:
        """Answer a command that could not be decoded. ``command_id`` is the id of a
        command whose signature was verified, or :data:`UNREADABLE`: such refusals are
        answered at most once per :data:`REFUSAL_INTERVAL_S`, in one result that counts
        them (``refused``), so a flood of garbage makes one event a second."""
        if command_id != UNREADABLE:
            log.warning("command %r refused: %s", command_id, _oneline(error))
            with self._lock:
                self._emit(
                    "command.result", {"command_id": command_id, "ok": False, "error": error}
                )
            self._flush()
            return
        with self._lock:
            if not self._refused:
                self._refused_error = error
            self._refused += 1
            self._answer_refusals(self.clock.monotonic())
        self._flush()

    def _answer_refusals(self, mono: float) -> None:
        """One ``command.result`` for the unverified messages refused since the last one,
        once the interval has passed (under the state lock; tick() calls it too)."""
        if not self._refused:
            return
        if self._refused_at is not None and mono - self._refused_at < REFUSAL_INTERVAL_S:
            return
        n, error = self._refused, self._refused_error
        self._refused, self._refused_at = 0, mono
        if n == 1:
            log.warning("unverified command refused: %s", _oneline(error))
        else:
            log.warning("%d unverified commands refused, the first: %s", n, _oneline(error))
        self._emit(
            "command.result",
            {"command_id": UNREADABLE, "ok": False, "error": error, "refused": n},
        )

    def execute(self, cmd: Command) -> None:
        """Run a verified command once, within its validity; always answered."""
        now = self.clock.now()
        extra: dict[str, Any] = {}
        try:
            issued, expires = cmd.issued_at, cmd.expires_at
            if now > expires:
                raise _Refused("expired")
            if issued > now + CLOCK_SKEW:
                raise _Refused("issued in the future: check the clocks")
            if expires - issued > MAX_COMMAND_LIFETIME:
                raise _Refused("lifetime over one hour")
            if not self.outbox.remember_command(cmd.id, expires.timestamp(), now.timestamp()):
                raise _Refused("replayed: this command id was already executed")
            extra = self._run(cmd)
            ok, error = True, None
        except _Refused as exc:
            ok, error = False, str(exc)
        except (ValueError, KeyError) as exc:
            ok, error = False, f"invalid: {exc}"
        with self._lock:
            self._emit("command.result", {"command_id": cmd.id, "ok": ok, "error": error, **extra})
        self._flush()

    def _run(self, cmd: Command) -> dict[str, Any]:
        data = cmd.data
        if cmd.type == "cabinet.unlock":
            cabinet = data["cabinet"]
            if cabinet not in self.locks:
                raise _Refused(f"cabinet {cabinet!r} has no lock here")
            with self._lock:
                self._set_lock(cabinet, True, f"command:{cmd.id}", float(data["seconds"]))
            return {}
        if cmd.type == "alarm.silence":
            return {"count": self.silence(data.get("alarm_id"))}
        if cmd.type == "alarm.reset":
            return {"count": self.reset(data.get("alarm_id"), data.get("by") or "tracker")}
        if cmd.type == "arming.set":
            with self._lock:
                self.armed = data["state"] == "armed"
                self._unsaved["armed"] = self.armed  # written with the command's result
            self._changed()
            return {}
        if cmd.type == "siren.set":
            return self.request_siren(data["alarm_id"], data["state"] == "on")
        if cmd.type == "inventory.run":
            reader = data["reader"]
            if reader not in self.presence:
                raise _Refused(f"no reader {reader!r} here")
            return {"reader": reader, "tags": self.present_tags(reader)}
        if cmd.type == "policy.update":
            self.apply_policy(data)
            return {}
        raise _Refused(f"unsupported command {cmd.type!r}")

    def request_siren(self, alarm_id: str, on: bool) -> dict[str, Any]:
        """The tracker's ``siren.set``: ``on`` holds the siren for one of its alarms,
        ``off`` lets go. The siren sounds while any request or any local siren alarm
        (not silenced) holds it. Requests are kept on disk like latched alarms."""
        with self._lock:
            if on:
                if alarm_id not in self.siren_requests:
                    if len(self.siren_requests) >= MAX_SIREN_REQUESTS:
                        raise _Refused(f"over {MAX_SIREN_REQUESTS} siren requests held")
                    self.siren_requests[alarm_id] = None
            else:
                self.siren_requests.pop(alarm_id, None)
            self._unsaved["siren_requests"] = list(self.siren_requests)
            self._drive_outputs()
            sounding = self._siren_on
        self._changed()
        return {"siren": sounding}

    # -- policy -----------------------------------------------------------------------

    def _load_policy(self) -> dict[str, Any]:
        base: dict[str, Any] = {
            "cabinets": {k: tuple(v) for k, v in self.cfg.policy.cabinets.items()},
            "reset_badges": tuple(self.cfg.policy.reset_badges),
        }
        stored = self.outbox.get("policy")
        if stored:
            base.update(stored)
            base["cabinets"] = {k: tuple(v) for k, v in base["cabinets"].items()}
            base["reset_badges"] = tuple(base["reset_badges"])
        return base

    def _calendar_from_policy(self, policy: dict[str, Any] | None = None) -> Calendar:
        """The configured calendar with whatever the cached policy overrides."""
        p = self.policy if policy is None else policy
        cal = self.cfg.calendar
        parsers = {
            "weekly": ("hours", parse_weekly),
            "holidays": ("holidays", parse_dates),
            "workdays": ("workdays", parse_dates),
            "makeup_hours": ("makeup", parse_spans),
            "grants": ("extended", parse_grants),
        }
        changes: dict[str, Any] = {
            field: parse(p[key], f"policy.{key}")
            for field, (key, parse) in parsers.items()
            if key in p
        }
        if "timezone" in p:
            changes["timezone"] = p["timezone"]
        return dataclasses.replace(cal, **changes)

    def apply_policy(self, update: dict[str, Any]) -> None:
        """Merge a ``policy.update``; checked whole before anything changes, kept on disk."""
        with self._lock:
            merged = dict(self.policy)
            for key in ("hours", "holidays", "workdays", "extended", "timezone", "makeup"):
                if key in update:
                    merged[key] = update[key]
            if "cabinets" in update:
                merged["cabinets"] = {k: tuple(v) for k, v in update["cabinets"].items()}
            if "reset_badges" in update:
                merged["reset_badges"] = tuple(update["reset_badges"])
            try:
                calendar = self._calendar_from_policy(merged)
                calendar.zone  # noqa: B018
            except HoursError as exc:
                raise _Refused(str(exc)) from None
            self._unsaved["policy"] = _jsonable(merged)  # written by the writer
            self.policy = merged
            self.calendar = calendar
        self._flush()
        self._changed()

    # -- heartbeat and state ----------------------------------------------------------

    def heartbeat(self) -> None:
        # Read before taking the state lock: the read waits for a commit in progress.
        try:
            stored = self.outbox.depth()
        except OutboxError as exc:
            log.warning("heartbeat: cannot read the outbox depth: %s", exc)
            stored = 0
        with self._lock:
            self._emit(
                "controller.heartbeat",
                {
                    "uptime_s": int(self.clock.monotonic() - self._started_mono),
                    "outbox_depth": stored + len(self._pending),
                    "armed": self.armed,
                },
            )
        self._flush()

    def state_message(self) -> tuple[str, bytes]:
        with self._lock:
            data = {
                "points": {p: state_word(self.kinds[p], a) for p, a in sorted(self.points.items())}
                | {
                    f"lock:{c}": ("locked" if lk.locked else "unlocked")
                    for c, lk in self.locks.items()
                },
                "armed": self.armed,
                "siren": self._siren_on,
                "alarms": [a.as_dict() for a in self.alarms.values()],
                "siren_requests": list(self.siren_requests),
            }
            return make_state(
                self._key,
                site=self.cfg.site,
                room=self.cfg.room,
                controller=self.cfg.controller,
                boot=self.boot,
                seq=self.seq,
                ts=self.clock.now(),
                data=data,
            )


class _Refused(Exception):
    pass


def _oneline(text: str) -> str:
    """``text`` for a log line: control characters (a newline above all) escaped."""
    return repr(text)[1:-1]


def _jsonable(policy: dict[str, Any]) -> dict[str, Any]:
    out = dict(policy)
    out["cabinets"] = {k: list(v) for k, v in policy["cabinets"].items()}
    out["reset_badges"] = list(policy["reset_badges"])
    return out
