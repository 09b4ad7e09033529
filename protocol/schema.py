"""Schemas of every event and command ``data`` in PROTOCOL.md.

Each type maps field names to checks. Required fields must be present and valid; keys a
type does not list are allowed (a newer controller may add, say, a ``label``) but must
still be JSON of the contract: strings, integers, booleans, null, lists and objects.
"""

import re
from collections.abc import Callable, Mapping
from typing import Any

from protocol.errors import SchemaError, TopicError
from protocol.names import (
    CONTACT_KINDS,
    SENSOR_KINDS,
    check_name,
    check_point,
    check_reader,
    point_kind,
)

Check = Callable[[Any], None]
_HEX = re.compile(r"(?:[0-9A-F]{2}){1,64}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

CONTROLLER_CAUSES = (
    "after_hours_open",
    "forced_open",
    "held_open",
    "tamper",
    "fire",
    "water",
    "panic",
    "motion_armed",
)
TRACKER_CAUSES = (
    "unauthorized_removal",
    "classified_exit",
    "destroyed_tag_seen",
    "controller_silent",
    "forged_message",
    "end_of_day_missing",
)
ALARM_CAUSES = CONTROLLER_CAUSES + TRACKER_CAUSES


def _fail(what: str) -> None:
    raise SchemaError(what)


def _string(value: Any) -> None:
    if not isinstance(value, str) or not value or len(value) > 256:
        _fail(f"expected a non-empty string of at most 256 characters, got {value!r}")


def _opt_string(value: Any) -> None:
    if value is not None:
        _string(value)


def _int(lo: int, hi: int | None = None) -> Check:
    def check(value: Any) -> None:
        if type(value) is not int or value < lo or (hi is not None and value > hi):
            _fail(
                f"expected an integer in [{lo}, {hi if hi is not None else '...'}], got {value!r}"
            )

    return check


def _bool(value: Any) -> None:
    if type(value) is not bool:
        _fail(f"expected true or false, got {value!r}")


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> None:
        if value not in choices:
            _fail(f"expected one of {list(choices)}, got {value!r}")

    return check


def _hex(value: Any) -> None:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        _fail(f"expected upper-case hex bytes, got {value!r}")


def _grammar(check: Callable[[Any], object]) -> Check:
    def run(value: Any) -> None:
        try:
            check(value)
        except TopicError as exc:
            raise SchemaError(str(exc)) from None

    return run


def _string_list(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        _fail(f"expected a list of strings, got {value!r}")


def _cabinet_reader(value: Any) -> None:
    _grammar(check_reader)(value)
    if not value.startswith("cabinet:"):
        _fail(f"tag presence is reported by cabinet readers only, got {value!r}")


def _opt(check: Check) -> Check:
    def run(value: Any) -> None:
        if value is not None:
            check(value)

    return run


def _object(value: Any) -> None:
    if not isinstance(value, dict):
        _fail(f"expected an object, got {value!r}")


def _sensor_state(data: Mapping[str, Any]) -> None:
    kind = data["kind"]
    if point_kind(data["point"]) != kind:
        _fail(f"point {data['point']!r} is not of kind {kind!r}")
    want = ("open", "closed") if kind in CONTACT_KINDS else ("active", "inactive")
    if data["state"] not in want:
        _fail(f"state of a {kind} point must be one of {list(want)}, got {data['state']!r}")


def _lock_point(value: Any) -> None:
    _grammar(check_point)(value)
    if not value.startswith("lock:"):
        _fail(f"expected a lock point lock:<cabinet>, got {value!r}")


#: type -> (required fields, optional fields, cross-field check)
Spec = tuple[dict[str, Check], dict[str, Check], Callable[[Mapping[str, Any]], None] | None]

EVENT_TYPES: dict[str, Spec] = {
    "controller.started": (
        {
            "version": _string,
            "config_hash": _string,
            "points": _string_list,
            "readers": _string_list,
        },
        {},
        None,
    ),
    "controller.heartbeat": (
        {"uptime_s": _int(0), "outbox_depth": _int(0), "armed": _bool},
        {},
        None,
    ),
    "sensor.changed": (
        {
            "point": _grammar(check_point),
            "kind": _one_of(*SENSOR_KINDS),
            "state": _one_of("open", "closed", "active", "inactive"),
        },
        {},
        _sensor_state,
    ),
    "tag.arrived": (
        {"reader": _cabinet_reader, "epc": _hex},
        {"rssi": _opt(_int(-128, 127))},
        None,
    ),
    "tag.departed": ({"reader": _cabinet_reader, "epc": _hex}, {}, None),
    "tag.seen": (
        {"reader": _one_of("portal", "desk"), "epc": _hex, "rssi": _opt(_int(-128, 127))},
        {},
        None,
    ),
    "badge.presented": (
        {
            "reader": _grammar(check_reader),
            "uid": _hex,
            "auth": _one_of("verified", "uid-only", "failed"),
        },
        {"label": _opt_string},
        None,
    ),
    "alarm.raised": (
        {
            "alarm_id": _string,
            "cause": _one_of(*ALARM_CAUSES),
            "point": _opt(_grammar(check_point)),
            "severity": _one_of("critical", "warning"),
        },
        {},
        None,
    ),
    "alarm.cleared": ({"alarm_id": _string, "by": _string}, {}, None),
    "lock.changed": (
        {
            "point": _lock_point,
            "state": _one_of("locked", "unlocked"),
            "reason": _string,
        },
        {},
        None,
    ),
    "command.result": (
        {"command_id": _string, "ok": _bool, "error": _opt_string},
        {},
        None,
    ),
}


def _policy(data: Mapping[str, Any]) -> None:
    # Structure only; the controller validates meaning (times, dates) when it applies it.
    for key in ("holidays", "workdays"):
        if key in data:
            _string_list(data[key])
    if "cabinets" in data:
        cabinets = data["cabinets"]
        _object(cabinets)
        for cab, badges in cabinets.items():
            _grammar(lambda v: check_name(v, "cabinet"))(cab)
            _string_list(badges)
            for badge in badges:
                _hex(badge)


COMMAND_TYPES: dict[str, Spec] = {
    "cabinet.unlock": (
        {"cabinet": _grammar(lambda v: check_name(v, "cabinet")), "seconds": _int(1, 600)},
        {"badge": _opt(_hex)},
        None,
    ),
    "alarm.silence": ({}, {"alarm_id": _opt_string}, None),
    "alarm.reset": ({}, {"alarm_id": _opt_string, "by": _opt_string}, None),
    "arming.set": ({"state": _one_of("armed", "disarmed")}, {}, None),
    "inventory.run": ({"reader": _cabinet_reader}, {"rounds": _int(1, 100)}, None),
    "policy.update": (
        {},
        {
            "hours": _object,
            "holidays": _string_list,
            "workdays": _string_list,
            "extended": lambda v: (
                None if isinstance(v, list) else _fail("extended: expected a list")
            ),
            "cabinets": _object,
            "reset_badges": _string_list,
            "timezone": _string,
        },
        _policy,
    ),
}


def check_data(kind: str, types: Mapping[str, Spec], type_: Any, data: Any) -> None:
    """Check ``data`` against the schema of ``type_``; ``kind`` is 'event' or 'command'."""
    if type_ not in types:
        raise SchemaError(f"unknown {kind} type {type_!r}")
    if not isinstance(data, dict):
        raise SchemaError(f"{type_}: 'data' must be an object")
    required, optional, cross = types[type_]
    for field, check in required.items():
        if field not in data:
            raise SchemaError(f"{type_}: missing data field {field!r}")
        _checked(type_, field, check, data[field])
    for field, check in optional.items():
        if field in data:
            _checked(type_, field, check, data[field])
    if cross is not None:
        try:
            cross(data)
        except TopicError as exc:
            raise SchemaError(f"{type_}: {exc}") from None
        except SchemaError as exc:
            raise SchemaError(f"{type_}: {exc}") from None


def _checked(type_: str, field: str, check: Check, value: Any) -> None:
    try:
        check(value)
    except SchemaError as exc:
        raise SchemaError(f"{type_}: field {field!r}: {exc}") from None


def check_event_data(type_: Any, data: Any) -> None:
    check_data("event", EVENT_TYPES, type_, data)


def check_command_data(type_: Any, data: Any) -> None:
    check_data("command", COMMAND_TYPES, type_, data)


def is_uuid(text: Any) -> bool:
    return isinstance(text, str) and _UUID.fullmatch(text) is not None
