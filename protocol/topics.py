"""Build and parse every topic of the contract, in one place.

``P = ironroom/v1/<site>/<room>``; ``P/evt/<category>``, ``P/state``, ``P/status``,
``P/ack`` and ``P/cmd/<name>``.
"""

import re
from dataclasses import dataclass
from functools import lru_cache

from protocol.errors import TopicError
from protocol.names import check_name

ROOT = "ironroom"
VERSION = "v1"
EVENT_CATEGORIES = ("sensor", "tag", "badge", "alarm", "lock", "controller", "command")
_CMD_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class Topic:
    site: str
    room: str
    kind: str  # "evt", "state", "status", "ack" or "cmd"
    name: str | None = None  # event category or command name

    def __str__(self) -> str:
        base = room_prefix(self.site, self.room) + "/" + self.kind
        return base + "/" + self.name if self.name is not None else base


def room_prefix(site: str, room: str) -> str:
    return f"{ROOT}/{VERSION}/{check_name(site, 'site')}/{check_name(room, 'room')}"


def event_topic(site: str, room: str, event_type: str) -> str:
    return f"{room_prefix(site, room)}/evt/{category_of(event_type)}"


def state_topic(site: str, room: str) -> str:
    return room_prefix(site, room) + "/state"


def status_topic(site: str, room: str) -> str:
    return room_prefix(site, room) + "/status"


def ack_topic(site: str, room: str) -> str:
    return room_prefix(site, room) + "/ack"


def command_topic(site: str, room: str, name: str) -> str:
    if not _CMD_NAME.fullmatch(name):
        raise TopicError(f"command name {name!r} is not valid")
    return f"{room_prefix(site, room)}/cmd/{name}"


def command_filter(site: str, room: str) -> str:
    """Subscription filter for every command addressed to one room."""
    return room_prefix(site, room) + "/cmd/+"


def event_filter(site: str = "+", room: str = "+") -> str:
    """Subscription filter for events; ``+`` stands for every site or room."""
    site_part = site if site == "+" else check_name(site, "site")
    room_part = room if room == "+" else check_name(room, "room")
    return f"{ROOT}/{VERSION}/{site_part}/{room_part}/evt/+"


def category_of(event_type: str) -> str:
    category, dot, rest = event_type.partition(".")
    if not dot or not rest or category not in EVENT_CATEGORIES:
        raise TopicError(f"event type {event_type!r} has no known category")
    return category


@lru_cache(maxsize=4096)  # a tracker sees the same few topics per room again and again
def parse_topic(topic: str) -> Topic:
    """Parse any IronRoom topic; raises :class:`TopicError` for anything else."""
    parts = topic.split("/")
    if len(parts) < 5 or parts[0] != ROOT or parts[1] != VERSION:
        raise TopicError(f"not an {ROOT}/{VERSION} topic: {topic!r}")
    site = check_name(parts[2], "site")
    room = check_name(parts[3], "room")
    kind = parts[4]
    rest = parts[5:]
    if kind in ("state", "status", "ack") and not rest:
        return Topic(site, room, kind)
    if kind == "evt" and len(rest) == 1 and rest[0] in EVENT_CATEGORIES:
        return Topic(site, room, kind, rest[0])
    if kind == "cmd" and len(rest) == 1 and _CMD_NAME.fullmatch(rest[0]):
        return Topic(site, room, kind, rest[0])
    raise TopicError(f"unknown topic shape: {topic!r}")
