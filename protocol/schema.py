"""Schemas of every event and command ``data`` in PROTOCOL.md.

Each type maps field names to checks. Required fields must be present and valid; keys a
type does not list are allowed (a newer controller may add, say, a ``label``) but must
still be JSON of the contract: strings, integers in [-MAX_INT, MAX_INT], booleans, null,
lists and objects.
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

#: The largest integer anywhere on the wire (boot, seq, uptime_s, outbox_depth, and any
#: integer in ``data`` or a state snapshot): 2**53 - 1, JavaScript's MAX_SAFE_INTEGER.
#: - It is the interoperable range of JSON (RFC 7493, I-JSON, section 2.2): a tracker or
#:   dashboard that reads numbers as IEEE doubles rounds anything larger, and two seqs
#:   that round to one would make two events with one id.
#: - It is far inside SQLite's INTEGER (-2**63 .. 2**63 - 1), so no decoded value can
#:   overflow a column (an ack for seq 2**63 once killed the controller's sender).
#: - No counter reaches it: 2**53 events at a million a second take 285 years, and boot
#:   counts restarts.
#: A signed 64-bit range would meet the SQLite bound only; it breaks the first.
MAX_INT = 2**53 - 1
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
    "overdue_escalated",
    "event_gap",
    "clock_skew",
)
ALARM_CAUSES = CONTROLLER_CAUSES + TRACKER_CAUSES


def _fail(what: str) -> None:
    raise SchemaError(what)


def show(value: Any, limit: int = 60) -> str:
    """``value`` for an error message: short, one line, whatever the wire sent (an
    integer of 4,000 digits or a string of 60 KiB is described, not quoted)."""
    if type(value) is int and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _string(value: Any) -> None:
    if not isinstance(value, str) or not value or len(value) > 256:
        _fail(f"expected a non-empty string of at most 256 characters, got {show(value)}")


def _ident(value: Any) -> None:
    """An id kept on disk, shown in ``state`` and logged: printable, no line breaks."""
    _string(value)
    if not value.isprintable():
        _fail(f"expected printable characters only, got {show(value)}")


def _opt_string(value: Any) -> None:
    if value is not None:
        _string(value)


def _int(lo: int, hi: int = MAX_INT) -> Check:
    if not -MAX_INT <= lo <= hi <= MAX_INT:
        raise ValueError(f"integer range [{lo}, {hi}] is outside the protocol's")

    def check(value: Any) -> None:
        if type(value) is not int or value < lo or value > hi:
            _fail(f"expected an integer in [{lo}, {hi}], got {show(value)}")

    return check


def check_contract_json(value: Any, where: str = "data") -> None:
    """Every integer inside ``value`` (at any depth, listed field or not) is within
    [-MAX_INT, MAX_INT]; ``where`` names the place in the error (``data['hours'][2]``)."""
    if type(value) is int:
        if not -MAX_INT <= value <= MAX_INT:
            raise SchemaError(
                f"{where}: {show(value)} is outside the protocol's integer range "
                f"[-{MAX_INT}, {MAX_INT}]"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            check_contract_json(item, f"{where}[{show(key, 40)}]")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_contract_json(item, f"{where}[{i}]")


def _bool(value: Any) -> None:
    if type(value) is not bool:
        _fail(f"expected true or false, got {show(value)}")


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> None:
        if value not in choices:
            _fail(f"expected one of {list(choices)}, got {show(value)}")

    return check


def _hex(value: Any) -> None:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        _fail(f"expected upper-case hex bytes, got {show(value)}")


def _grammar(check: Callable[[Any], object]) -> Check:
    def run(value: Any) -> None:
        try:
            check(value)
        except TopicError as exc:
            raise SchemaError(str(exc)) from None

    return run


def _string_list(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        _fail(f"expected a list of strings, got {show(value)}")


def _cabinet_reader(value: Any) -> None:
    _grammar(check_reader)(value)
    if not value.startswith("cabinet:"):
        _fail(f"tag presence is reported by cabinet readers only, got {show(value)}")


def _opt(check: Check) -> Check:
    def run(value: Any) -> None:
        if value is not None:
            check(value)

    return run


def _object(value: Any) -> None:
    if not isinstance(value, dict):
        _fail(f"expected an object, got {show(value)}")


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
        _fail(f"expected a lock point lock:<cabinet>, got {show(value)}")


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
    # The tracker's request for the siren, for one of its own critical alarms.
    "siren.set": ({"state": _one_of("on", "off"), "alarm_id": _ident}, {}, None),
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
    if not isinstance(type_, str) or type_ not in types:
        raise SchemaError(f"unknown {kind} type {show(type_)}")
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
    try:
        check_contract_json(data)
    except SchemaError as exc:
        raise SchemaError(f"{type_}: {exc}") from None
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
