"""Scripted days in the simulated room, played on an accelerated clock.

A scenario is data: a local date, a start time, the folders in each cabinet, and steps
at local times. The runner jumps the clock to each step's time, acts on the simulated
hardware, and waits (with a timeout) until the bridge has seen it, so a whole day
plays in seconds and every event carries the simulated time.

Built-in scenarios (``ironroom sim room --scenario NAME``):

``after-hours-door``
    Friday 27 November 2026: the door opens at 23:10 and closes 30 s later.
    Expect ``after_hours_open``, the siren, and the alarm still latched afterwards.
``carry-out``
    Thursday 26 November 2026, folders carried past the portal reader (携带外出): folder 1
    at 09:10 and folder 2 at 09:20 (both 机密), the 绝密 folder at 09:30, folder 1 again
    at 13:00. The ledger decides which passages a carry-out pass covers. The door opens
    at 18:00 and at 19:30 (an extended-hours grant decides whether that is after hours;
    the first step waits for the tracker's policy to carry the grants).
``day``
    Thursday 26 November 2026: opening at 08:31; a badge at cabinet c1, the unlock, a
    folder out and the cabinet closed; a folder read at the desk; the folder back at
    10:15; closing at 17:20 and the room armed; a tamper at 23:10.
``destruction``
    Thursday 26 November 2026 from 09:00, folders 1 and 2 in cabinet c1 (销毁, at the
    desk's badge reader): the secretary's badge at 09:00:00 and
    again at 09:00:30 (the same person twice), a second person's badge at 09:04:00 (too
    long after), the secretary's at 09:05:00 (inside two minutes of it); then folder 1
    read by the portal reader at 09:10 and folder 2 taken out of c1 at 09:12: the tags of
    what the ledger destroyed, seen again.
``idle``
    Nothing happens: heartbeats only. For benchmarks and soak runs.
``inventory``
    Thursday 26 November 2026 from 09:00: folder 1 in cabinet c1; folders 3 and 2 and a
    tag the ledger does not know in c2 (folder 2's home is c1); folder 4 in no cabinet.
    Nothing else happens, so the room stays up for an inventory (清查) to be run.
``stream``
    A window opened and closed 20,000 times, a simulated second apart, in working
    hours: a steady stream of events for fault and load tests.

A step whose wait times out is a failed step: the summary at the end says how many
steps were played and how many failed, and ``ironroom sim room`` exits 1 when one did.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the room pulls in the whole bridge; `ironroom --help` lists names only
    from simulators.room import Commander, SimulatedRoom

log = logging.getLogger(__name__)

#: real seconds a step waits for the bridge to have seen what it did
STEP_TIMEOUT_S = 5.0

SECRETARY = "04A1B2C3D4E5F6"
#: the destruction scenario's second witness (监销人)
WITNESS = "04C1D2E3F4A5B6"
FOLDER_1 = "E28011700000020A1B2C3D01"
FOLDER_2 = "E28011700000020A1B2C3D02"
FOLDER_3 = "E28011700000020A1B2C3D03"
FOLDER_4 = "E28011700000020A1B2C3D04"
STRAY_TAG = "E28011700000020A1B2C3DFF"
DESK_TAG = "0A1B2C3D4E"
#: the carry-out scenario's 绝密 folder
FOLDER_TOP = "E28011700000020A1B2C3D04"


@dataclass(frozen=True)
class Step:
    at: str  # local HH:MM:SS on the scenario's day
    action: str
    target: str = ""
    value: str = ""


@dataclass(frozen=True)
class Scenario:
    name: str
    day: str
    start: str
    steps: tuple[Step, ...]
    tags: dict[str, tuple[str, ...]] = field(default_factory=dict)


SCENARIOS: dict[str, Scenario] = {
    "after-hours-door": Scenario(
        name="after-hours-door",
        day="2026-11-27",
        start="23:09:50",
        steps=(
            Step("23:10:00", "open", "door"),
            Step("23:10:30", "close", "door"),
        ),
    ),
    "carry-out": Scenario(
        name="carry-out",
        day="2026-11-26",
        start="09:00:00",
        steps=(
            Step("09:00:01", "policy", "extended"),
            Step("09:10:00", "portal", "portal", FOLDER_1),
            Step("09:20:00", "portal", "portal", FOLDER_2),
            Step("09:30:00", "portal", "portal", FOLDER_TOP),
            Step("13:00:00", "portal", "portal", FOLDER_1),
            Step("18:00:00", "open", "door"),
            Step("18:00:05", "close", "door"),
            Step("19:30:00", "open", "door"),
            Step("19:30:05", "close", "door"),
        ),
    ),
    "day": Scenario(
        name="day",
        day="2026-11-26",
        start="08:20:00",
        tags={"cabinet:c1": (FOLDER_1, FOLDER_2), "cabinet:c2": (FOLDER_3,)},
        steps=(
            Step("08:31:00", "open", "door"),
            Step("08:31:05", "close", "door"),
            Step("08:40:00", "badge", "cabinet:c1", SECRETARY),
            Step("08:40:01", "grant", "c1", SECRETARY),
            Step("08:40:05", "open", "cabinet:c1"),
            Step("08:40:08", "take_tag", "cabinet:c1", FOLDER_1),
            Step("08:40:12", "close", "cabinet:c1"),
            Step("08:45:00", "desk", "desk", DESK_TAG),
            Step("10:15:00", "badge", "cabinet:c1", SECRETARY),
            Step("10:15:01", "grant", "c1", SECRETARY),
            Step("10:15:05", "open", "cabinet:c1"),
            Step("10:15:08", "put_tag", "cabinet:c1", FOLDER_1),
            Step("10:15:12", "close", "cabinet:c1"),
            Step("17:20:00", "open", "door"),
            Step("17:20:05", "close", "door"),
            Step("17:21:00", "arm"),
            Step("23:10:00", "activate", "tamper:t1"),
            Step("23:10:20", "deactivate", "tamper:t1"),
        ),
    ),
    "destruction": Scenario(
        name="destruction",
        day="2026-11-26",
        start="08:59:00",
        tags={"cabinet:c1": (FOLDER_1, FOLDER_2)},
        steps=(
            Step("09:00:00", "badge", "desk", SECRETARY),
            Step("09:00:30", "badge", "desk", SECRETARY),
            Step("09:04:00", "badge", "desk", WITNESS),
            Step("09:05:00", "badge", "desk", SECRETARY),
            Step("09:10:00", "portal", "portal", FOLDER_1),
            Step("09:12:00", "take_tag", "cabinet:c1", FOLDER_2),
        ),
    ),
    "idle": Scenario(name="idle", day="2026-11-26", start="09:00:00", steps=()),
    # The room after hours with nothing happening: for acting on it by hand (the console's
    # controls in the demo, whose browser test opens the door and waits for the alarm).
    "night": Scenario(
        name="night",
        day="2026-11-26",
        start="22:00:00",
        tags={"cabinet:c1": (FOLDER_1, FOLDER_2), "cabinet:c2": (FOLDER_3,)},
        steps=(),
    ),
    "inventory": Scenario(
        name="inventory",
        day="2026-11-26",
        start="09:00:00",
        tags={"cabinet:c1": (FOLDER_1,), "cabinet:c2": (FOLDER_3, FOLDER_2, STRAY_TAG)},
        steps=(),
    ),
    "stream": Scenario(
        name="stream",
        day="2026-11-26",
        start="09:00:00",
        steps=(Step("09:00:01", "toggle", "window:w1", "20000"),),
    ),
}


def scenario_start(room_cfg: object, scenario: Scenario) -> datetime:
    from simulators.room import local_start

    return local_start(room_cfg, scenario.day, scenario.start)  # type: ignore[arg-type]


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> bool:
    """Poll ``cond`` until true or ``timeout`` (real seconds); logs when it gives up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    log.warning("scenario: gave up waiting for %s", what)
    return False


class ScenarioRunner:
    """Plays a scenario on a :class:`SimulatedRoom` whose clock is a ``SimClock``."""

    def __init__(
        self,
        room: SimulatedRoom,
        scenario: Scenario,
        *,
        commander: Commander | None = None,
        step_timeout: float | None = None,
        pace_s: float = 0.0,
        tracker: bool = False,
    ) -> None:
        self.room = room
        self.scenario = scenario
        self.commander = commander
        #: a real tracker decides the unlocks: the scenario sends none of its own
        self.tracker = tracker
        self.step_timeout = STEP_TIMEOUT_S if step_timeout is None else step_timeout
        self.pace_s = pace_s  # real seconds between steps, so a person can follow
        self.done = threading.Event()
        self.stop = threading.Event()
        self.steps_done = 0
        #: one line per failed step (or the setup): the step and what it waited for in vain
        self.failed: list[str] = []
        self._missed: list[str] = []

    @property
    def steps_failed(self) -> int:
        return sum(1 for f in self.failed if not f.startswith("setup:"))

    def _wait(self, cond: Callable[[], bool], what: str) -> bool:
        """``wait_for`` with the step's timeout; a wait that times out fails the step (one
        cut short because the run is being stopped does not)."""
        ok = wait_for(lambda: self.stop.is_set() or cond(), self.step_timeout, what)
        if self.stop.is_set():
            return False
        if not ok:
            self._missed.append(what)
        return ok

    def populate(self) -> None:
        """Put the scenario's folders in their cabinets before the bridge starts."""
        for reader, epcs in self.scenario.tags.items():
            for i, epc in enumerate(epcs):
                self.room.sims[reader].put(epc, rssi=-50 - i)

    def settle(self) -> None:
        """Wait until the bridge holds every folder the scenario put in a cabinet."""
        self._missed = []
        for reader, epcs in self.scenario.tags.items():
            for epc in epcs:

                def held(r: str = reader, e: str = epc) -> bool:
                    return e in self.room.controller.present_tags(r)

                self._wait(held, f"{epc} in {reader}")
        if self._missed:
            self.failed.append(f"setup: gave up waiting for {', '.join(self._missed)}")

    def run(self) -> None:
        from simulators.room import local_start

        step: Step | None = None
        try:
            self.settle()
            for step in self.scenario.steps:
                if self.stop.wait(self.pace_s if self.steps_done else 0):
                    return
                when = local_start(self.room.cfg, self.scenario.day, step.at)
                self.room.clock.advance_to(when)  # type: ignore[attr-defined]
                self._missed = []
                self._let_time_pass()
                self._do(step)
                self.steps_done += 1
                if self._missed:
                    missed = ", ".join(self._missed)
                    self.failed.append(f"{_describe(step)}: gave up waiting for {missed}")
                    log.warning("scenario: step failed: %s", self.failed[-1])
            self.done.set()
        except Exception as exc:
            log.exception("scenario %s failed", self.scenario.name)
            if step is not None:
                self.steps_done += 1
                self.failed.append(f"{_describe(step)}: {exc!r}")
            raise

    def _let_time_pass(self) -> None:
        """Let the bridge's rule loop run twice at the new time, so what the jump made
        due (relocking, held-open) happens before the step, as it would in real time."""
        bridge = self.room.bridge
        start = bridge.ticks
        self._wait(lambda: bridge.ticks >= start + 2, "the bridge to tick")

    def _do(self, step: Step) -> None:
        room, ctl = self.room, self.room.controller
        log.info("scenario %s: %s %s %s", step.at, step.action, step.target, step.value)
        if step.action in ("open", "activate"):
            room.gpio.set(step.target, True)
        elif step.action in ("close", "deactivate"):
            room.gpio.set(step.target, False)
        elif step.action == "badge" and not any(b.reader == step.target for b in room.cfg.badges):
            log.info("scenario: no badge reader at %s in this run; badge step skipped", step.target)
        elif step.action == "badge":
            bridge = room.bridge
            before = bridge.badge_reads
            room.present_badge(step.target, step.value)
            self._wait(lambda: bridge.badge_reads > before, "the badge read")
            room.take_badge(step.target)
        elif step.action == "grant":
            # The tracker's answer to the badge when online (played here unless a real
            # tracker runs); offline the bridge has already decided from its cached policy.
            linked = room.bridge.link is not None and room.bridge.link.connected
            if self.commander is not None and linked and not self.tracker:
                self.commander.send(
                    "cabinet.unlock",
                    {"cabinet": step.target, "seconds": 20, "badge": step.value},
                    name="unlock",
                )
            self._wait(lambda: not room.gpio.locked(step.target), "the unlock")
        elif step.action == "take_tag":
            room.sims[step.target].take(step.value)
            self._wait(
                lambda: step.value not in ctl.present_tags(step.target),
                f"{step.value} to leave {step.target}",
            )
        elif step.action == "put_tag":
            room.sims[step.target].put(step.value, rssi=-50)
            self._wait(
                lambda: step.value in ctl.present_tags(step.target),
                f"{step.value} in {step.target}",
            )
        elif step.action in ("desk", "portal"):  # a tag read once by that reader
            sim = room.sims[step.target]
            sim.put(step.value)
            self._wait(
                lambda: step.value in ctl.present_tags(step.target), f"the {step.action} to see it"
            )
            sim.take(step.value)
            self._wait(
                lambda: step.value not in ctl.present_tags(step.target),
                f"it to leave the {step.action}",
            )
        elif step.action == "policy":
            # the tracker's policy.update with this key, applied before the clock jumps on
            # (a command signed at one simulated time is stale a few jumps later)
            self._wait(lambda: step.target in ctl.policy, f"a policy with {step.target!r}")
        elif step.action == "toggle":
            for _ in range(int(step.value)):
                if self.stop.is_set():
                    return
                room.gpio.set(step.target, True)
                room.clock.advance(1)  # type: ignore[attr-defined]
                room.gpio.set(step.target, False)
                room.clock.advance(1)  # type: ignore[attr-defined]
        elif step.action == "arm":
            if self.commander is not None and room.bridge.link and room.bridge.link.connected:
                self.commander.send("arming.set", {"state": "armed"}, name="arming")
                self._wait(lambda: ctl.armed, "arming")
        else:
            raise ValueError(f"unknown scenario action {step.action!r}")


def play(
    cfg: Any,
    scenario: Scenario,
    *,
    stop: threading.Event,
    seconds: float | None = None,
    speed: float = 1.0,
    pace_s: float = 0.0,
    badges: bool = True,
    on_room: Callable[[SimulatedRoom], Any] | None = None,
    tracker: bool = False,
) -> ScenarioRunner:
    """Run the real bridge on the simulated room and play ``scenario`` until ``stop`` is
    set or ``seconds`` have passed; everything is closed on the way out (the bridge
    publishes ``offline``). ``on_room`` sees the room before it starts."""
    from simulators.clock import SimClock
    from simulators.room import Commander, SimulatedRoom

    if badges and cfg.badges:
        from simulators.pcscd import ensure_pcscd

        ensure_pcscd()
    clock = SimClock(scenario_start(cfg, scenario), speed=speed)
    room = SimulatedRoom(cfg, clock=clock, badges=badges)
    commander = Commander(room.cfg, room.bridge.command_key, clock)
    runner = ScenarioRunner(room, scenario, commander=commander, pace_s=pace_s, tracker=tracker)
    cleanup: Any = None
    try:
        if on_room is not None:
            cleanup = on_room(room)
        runner.populate()
        room.start()
        commander.start()
        thread = threading.Thread(target=runner.run, name="scenario", daemon=True)
        thread.start()
        deadline = None if seconds is None else time.monotonic() + seconds
        # Wake now and then: a signal (Ctrl-C) is only handled when the main thread runs.
        while not stop.wait(0.2):
            if deadline is not None and time.monotonic() >= deadline:
                break
        runner.stop.set()
        thread.join(5)
    finally:
        runner.stop.set()
        commander.stop()
        room.close()
        if callable(cleanup):
            cleanup()
    log.log(
        logging.WARNING if runner.failed else logging.INFO,
        "scenario %s: %d of %d steps played, %d failed",
        scenario.name,
        runner.steps_done,
        len(scenario.steps),
        runner.steps_failed,
    )
    for line in runner.failed:
        log.warning("scenario %s: %s", scenario.name, line)
    return runner


def _describe(step: Step) -> str:
    return " ".join(part for part in (step.at, step.action, step.target, step.value) if part)
