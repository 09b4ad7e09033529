"""The grammar of names: sites, rooms, controllers, points and readers."""

import re

from protocol.errors import TopicError

NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")

#: Point kinds that take an id (``window:w1``) and those that stand alone.
POINT_KINDS_WITH_ID = ("window", "cabinet", "tamper", "motion", "panic", "smoke", "water", "lock")
POINT_KINDS_ALONE = ("door", "siren")
#: Sensor kinds as carried in ``sensor.changed``: smoke and water points keep their names.
SENSOR_KINDS = ("door", "window", "cabinet", "tamper", "motion", "panic", "smoke", "water")
#: Sensor kinds whose states are ``open``/``closed``; the rest are ``active``/``inactive``.
CONTACT_KINDS = ("door", "window", "cabinet")
READERS_ALONE = ("desk", "portal")


def is_name(text: object) -> bool:
    return isinstance(text, str) and NAME_RE.fullmatch(text) is not None


def check_name(text: object, what: str = "name") -> str:
    if not is_name(text):
        raise TopicError(
            f"{what} {text!r} is not valid: 1-32 characters of a-z, 0-9 and '-', "
            "starting with a letter or digit"
        )
    return text  # type: ignore[return-value]


def point_kind(point: object) -> str:
    """The kind of a point name (``window:w1`` -> ``window``); raises on a bad name."""
    if not isinstance(point, str):
        raise TopicError(f"point must be a string, got {point!r}")
    kind, sep, ident = point.partition(":")
    if not sep:
        if kind in POINT_KINDS_ALONE:
            return kind
        raise TopicError(f"point {point!r}: expected one of {POINT_KINDS_ALONE} or kind:<id>")
    if kind not in POINT_KINDS_WITH_ID:
        raise TopicError(f"point {point!r}: unknown kind {kind!r}")
    check_name(ident, f"id of point {point!r}")
    return kind


def check_point(point: object) -> str:
    point_kind(point)
    return point  # type: ignore[return-value]


def check_reader(reader: object) -> str:
    """``desk``, ``portal`` or ``cabinet:<id>``."""
    if isinstance(reader, str):
        if reader in READERS_ALONE:
            return reader
        kind, sep, ident = reader.partition(":")
        if sep and kind == "cabinet" and is_name(ident):
            return reader
    raise TopicError(f"reader {reader!r}: expected 'desk', 'portal' or 'cabinet:<id>'")
