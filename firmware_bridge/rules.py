"""The controller's local alarm rules: plain functions of their inputs.

They run with no broker and no tracker. Which alarm a change raises:

=============  ====================================================================
cause          when
=============  ====================================================================
after_hours    the door, a window or a cabinet is open outside working hours (on
_open          opening, at boot, or when working hours end while it stays open)
forced_open    a cabinet opens while its lock is locked; the door or a window opens
               while the room is armed
held_open      a door, window or cabinet stays open longer than its limit
tamper         a tamper loop goes active (armed or not)
fire           a smoke detector goes active (armed or not)
water          a water-leak detector goes active (armed or not)
panic          a panic button goes active (armed or not)
motion_armed   motion while the room is armed
=============  ====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

CONTACTS = ("door", "window", "cabinet")
DETECTOR_CAUSE = {"tamper": "tamper", "smoke": "fire", "water": "water", "panic": "panic"}


@dataclass(frozen=True, slots=True)
class Situation:
    """What a rule needs to know about one point at one moment."""

    kind: str
    active: bool  # open (contacts) or active (detectors)
    working: bool  # inside working hours or an extended-hours grant
    armed: bool
    locked: bool | None = None  # a cabinet's lock: True locked, False unlocked, None no lock


def causes_on_change(s: Situation) -> list[str]:
    """Alarm causes raised by a point changing to ``s.active``."""
    if not s.active:
        return []
    causes: list[str] = []
    if s.kind in CONTACTS:
        if not s.working:
            causes.append("after_hours_open")
        if s.kind == "cabinet" and s.locked:
            causes.append("forced_open")
        elif s.kind in ("door", "window") and s.armed:
            causes.append("forced_open")
    elif s.kind in DETECTOR_CAUSE:
        causes.append(DETECTOR_CAUSE[s.kind])
    elif s.kind == "motion" and s.armed:
        causes.append("motion_armed")
    return causes


def causes_while_active(s: Situation, open_for_s: float, held_limit_s: float) -> list[str]:
    """Causes that come with time while a point stays active (checked on every tick)."""
    if not s.active or s.kind not in CONTACTS:
        return []
    causes = []
    if not s.working:
        causes.append("after_hours_open")
    if held_limit_s > 0 and open_for_s >= held_limit_s:
        causes.append("held_open")
    return causes


def state_word(kind: str, active: bool) -> str:
    if kind in CONTACTS:
        return "open" if active else "closed"
    return "active" if active else "inactive"


def may_unlock_offline(
    *,
    reader: str,
    uid: str,
    auth: str,
    allow_uid_only: bool,
    working: bool,
    cabinets: dict[str, tuple[str, ...]],
    locks: set[str],
) -> list[str]:
    """Cabinets a badge opens when the controller decides alone (no broker).

    Only an authenticated badge (``verified``, or ``uid-only`` where that legacy mode
    is switched on), only in working hours, only cabinets the cached policy lists the
    badge for. A badge at a cabinet's own reader opens that cabinet; at the desk it opens
    every cabinet the badge may use.
    """
    authenticated = auth == "verified" or (auth == "uid-only" and allow_uid_only)
    if not authenticated or not working:
        return []
    if reader.startswith("cabinet:"):
        candidates = [reader.split(":", 1)[1]]
    elif reader == "desk":
        candidates = sorted(cabinets)
    else:
        return []
    return [c for c in candidates if c in locks and uid in cabinets.get(c, ())]
