"""Smart-card badges over PC/SC: the ``internal-auth`` challenge-response and legacy UIDs.

Configure with a PC/SC reader name (or none for every reader), a profile and, for
``internal-auth``, the site master key file (32 hex digits, mode 0600, owned by the service
user). See ``docs/badges.md``; try a reader with ``ironroom devices badge``.
"""

from .crypto import card_key, card_response, expected_response, load_master_key
from .errors import BadgeError, CardError, NoReader, PcscUnavailable
from .pcsc import BadgePresentation, BadgeWatcher, list_readers, read_badge

__all__ = [
    "BadgeError",
    "BadgePresentation",
    "BadgeWatcher",
    "CardError",
    "NoReader",
    "PcscUnavailable",
    "card_key",
    "card_response",
    "expected_response",
    "list_readers",
    "load_master_key",
    "read_badge",
]
