"""The IronRoom wire contract (PROTOCOL.md, version 1): names, topics, canonical JSON,
signing, envelopes and the schema of every event and command type.

Standard library only: both the room controller and the tracker import it, and nothing
else builds or parses a topic or an envelope.
"""

from protocol.canonical import canonical
from protocol.envelope import (
    Command,
    Event,
    decode_ack,
    decode_command,
    decode_event,
    decode_state,
    make_ack,
    make_command,
    make_event,
    make_state,
)
from protocol.errors import (
    BadSignature,
    EnvelopeError,
    ProtocolError,
    SchemaError,
    TopicError,
)
from protocol.schema import MAX_INT
from protocol.signing import sign, verify
from protocol.timefmt import format_ts, parse_ts
from protocol.topics import Topic, parse_topic, room_prefix

PROTOCOL_VERSION = 1

__all__ = [
    "MAX_INT",
    "PROTOCOL_VERSION",
    "BadSignature",
    "Command",
    "EnvelopeError",
    "Event",
    "ProtocolError",
    "SchemaError",
    "Topic",
    "TopicError",
    "canonical",
    "decode_ack",
    "decode_command",
    "decode_event",
    "decode_state",
    "format_ts",
    "make_ack",
    "make_command",
    "make_event",
    "make_state",
    "parse_topic",
    "parse_ts",
    "room_prefix",
    "sign",
    "verify",
]
