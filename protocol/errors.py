"""One exception tree for the wire contract; each also inherits ``ValueError`` so callers
that only know the builtin still catch it."""


class ProtocolError(ValueError):
    """Anything on the wire that does not follow PROTOCOL.md."""


class TopicError(ProtocolError):
    """A topic or a name (site, room, controller, point, reader) outside the grammar."""


class EnvelopeError(ProtocolError):
    """A payload that is not a well-formed envelope (bad JSON, missing or mistyped field)."""


class SchemaError(EnvelopeError):
    """An envelope whose ``type`` is unknown or whose ``data`` does not fit that type."""


class BadSignature(ProtocolError):
    """Missing, malformed or wrong ``sig``: the message was forged, altered or moved."""
