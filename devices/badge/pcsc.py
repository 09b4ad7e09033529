"""Smart-card badges read through PC/SC (pcscd + pyscard).

Installing a reader: plug a PC/SC (CCID) contactless reader into the controller, install
``pcscd`` (and ``libccid``, Debian's package for CCID readers) and check that
``pcsc_scan`` shows the reader and the badges. Install the driver's extra
(``pip install 'ironroom[pcsc]'``, which builds pyscard and needs ``swig`` and
``libpcsclite-dev``). The reader's PC/SC name, exactly as :func:`list_readers` or
``ironroom devices badge`` prints it, is what the bridge configuration names; leave it out
to accept badges on every reader. On Debian pcscd asks polkit who may use it: a service
user that is not root needs a polkit rule granting ``org.debian.pcsc-lite.access_pcsc``
and ``org.debian.pcsc-lite.access_card``.

Two profiles (HARDWARE.md):

``internal-auth``
    The controller reads the UID (PC/SC pseudo-APDU ``FF CA 00 00 00``), sends a fresh
    random 16-byte challenge ``R`` as INTERNAL AUTHENTICATE ``00 88 00 01 10 <R> 10`` and
    checks the answer against ``E(CMAC(master_key, UID), R)``. Needs the site master key
    (:func:`devices.badge.crypto.load_master_key`). Result ``"verified"`` or ``"failed"``.
``uid``
    Legacy: the UID alone, reported as ``"uid-only"``. UIDs are public and clonable, so
    this profile is refused unless the caller passes ``allow_uid_only=True``.

This is the only module that imports pyscard (``smartcard``); it does so on first use, so
the rest of the project runs where pyscard is not installed.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, Protocol

from devices.lifecycle import Running

from .crypto import BLOCK_SIZE, check_cipher, verify_response
from .errors import BadgeError, CardError, NoReader, PcscUnavailable

log = logging.getLogger(__name__)

Auth = Literal["verified", "uid-only", "failed"]
PROFILES = ("uid", "internal-auth")

GET_UID = bytes.fromhex("FFCA000000")
INTERNAL_AUTHENTICATE = bytes.fromhex("00880001")
GET_RESPONSE = bytes.fromhex("00C00000")
SW_OK = 0x9000
MAX_UID_LEN = 16
# A card may chain 61xx/6Cxx a few times; a card that never stops is broken or hostile.
_MAX_EXCHANGES = 8
_MAX_RESPONSE_LEN = 4096
# pcsc-lite's pseudo-reader that changes when a reader is plugged in or removed.
_PNP_READER = "\\\\?PnP?\\Notification"

_NO_PYSCARD = (
    "pyscard is not installed: install it with `pip install 'ironroom[pcsc]'` "
    "(building it needs the swig and libpcsclite-dev packages)"
)

_SW_MEANINGS = {
    0x6300: "operation failed",
    0x6700: "wrong length",
    0x6982: "security status not satisfied",
    0x6985: "conditions of use not satisfied",
    0x6A81: "function not supported",
    0x6A82: "not found",
    0x6A86: "wrong P1/P2",
    0x6B00: "wrong P1/P2",
    0x6D00: "instruction not supported",
    0x6E00: "class not supported",
}


class CardConnection(Protocol):
    """What :func:`read_badge` needs from a connected card: pyscard's ``CardConnection``
    fits, and so does any object whose ``transmit`` takes the C-APDU as a list of ints and
    returns ``(data, sw1, sw2)``."""

    def transmit(self, command: list[int]) -> tuple[list[int], int, int]: ...


@dataclass(frozen=True)
class BadgePresentation:
    """One badge put on a reader.

    ``uid`` is upper-case hex ("" when even the UID could not be read); ``error`` says why
    ``auth`` is ``"failed"`` and is None otherwise.
    """

    reader: str
    uid: str
    auth: Auth
    error: str | None = None

    def as_event(self) -> dict[str, str]:
        """The fields every badge event carries (reader, uid, auth)."""
        return {"reader": self.reader, "uid": self.uid, "auth": self.auth}


def check_profile(profile: str, *, allow_uid_only: bool, master_key: bytes | None) -> None:
    """Refuse a profile the caller has not configured for (ValueError says what to do)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown badge profile {profile!r}: use 'internal-auth' or 'uid'")
    if profile == "uid" and not allow_uid_only:
        raise ValueError(
            "badge profile 'uid' trusts the card UID alone, which anyone can read and clone: "
            "use 'internal-auth', or switch UID-only badges on explicitly for this site "
            "(allow_uid_only=True)"
        )
    if profile == "internal-auth" and master_key is None:
        raise ValueError("badge profile 'internal-auth' needs the site master key")


# --- reading one card ------------------------------------------------------------------


def _describe_sw(sw: int) -> str:
    meaning = _SW_MEANINGS.get(sw)
    return f"SW {sw:04X} ({meaning})" if meaning else f"SW {sw:04X}"


def _transmit(connection: CardConnection, apdu: bytes) -> tuple[bytes, int]:
    """One exchange; every failure of the connection becomes a CardError."""
    try:
        data, sw1, sw2 = connection.transmit(list(apdu))
        body = bytes(data)
        if not (0 <= sw1 <= 0xFF and 0 <= sw2 <= 0xFF):
            raise ValueError(f"status word out of range: {sw1!r} {sw2!r}")
    # The connection is a seam (pyscard, a simulator, a test double): whatever it raises
    # means this card could not be read, which is a result, not a crash.
    except Exception as exc:
        raise CardError(f"card I/O failed: {exc}") from exc
    return body, (sw1 << 8) | sw2


def _command(connection: CardConnection, apdu: bytes, what: str) -> bytes:
    """Send a case-2/case-4 APDU (ending in Le) and return the data of its 90 00 answer.

    T=0 cards answer ``61 XX`` (XX more bytes: fetch them with GET RESPONSE) or ``6C XX``
    (wrong Le: send the same command again with Le = XX); both may repeat.
    """
    data, sw = _transmit(connection, apdu)
    collected = b""
    for _ in range(_MAX_EXCHANGES):
        if sw >> 8 == 0x61:
            collected += data
            apdu = GET_RESPONSE + bytes([sw & 0xFF])
        elif sw >> 8 == 0x6C:
            apdu = apdu[:-1] + bytes([sw & 0xFF])
        else:
            break
        if len(collected) > _MAX_RESPONSE_LEN:
            raise CardError(f"{what}: card sent more than {_MAX_RESPONSE_LEN} bytes")
        data, sw = _transmit(connection, apdu)
    else:
        raise CardError(f"{what}: card kept asking for more exchanges ({_describe_sw(sw)})")
    if sw != SW_OK:
        raise CardError(f"{what} refused: {_describe_sw(sw)}")
    return collected + data


def _reader_name(connection: object) -> str:
    get_reader = getattr(connection, "getReader", None)
    if get_reader is None:
        return ""
    try:
        return str(get_reader())
    except Exception:  # a name is only a label: never fail a read for it
        return ""


def read_badge(
    connection: CardConnection,
    *,
    profile: str,
    master_key: bytes | None = None,
    cipher: str = "aes",
    rng: Callable[[int], bytes] = os.urandom,
    reader: str | None = None,
) -> BadgePresentation:
    """Read one badge over an open connection.

    Card problems (status words, short or wrong answers, a card pulled away mid-read) give
    ``auth="failed"`` with the reason in ``error``; only bad arguments raise (ValueError).
    ``reader`` names the reader in the result (default: ``connection.getReader()``).
    The UID-only policy is the caller's: see :func:`check_profile`.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown badge profile {profile!r}: use 'internal-auth' or 'uid'")
    cipher = check_cipher(cipher)
    if profile == "internal-auth" and master_key is None:
        raise ValueError("badge profile 'internal-auth' needs the site master key")
    name = reader if reader is not None else _reader_name(connection)

    try:
        uid = _command(connection, GET_UID, "UID read")
    except CardError as exc:
        return BadgePresentation(name, "", "failed", str(exc))
    if not 1 <= len(uid) <= MAX_UID_LEN:
        return BadgePresentation(name, "", "failed", f"UID read: {len(uid)}-byte UID")
    uid_hex = uid.hex().upper()
    if profile == "uid":
        return BadgePresentation(name, uid_hex, "uid-only")

    assert master_key is not None
    challenge = rng(BLOCK_SIZE)
    if len(challenge) != BLOCK_SIZE:
        raise ValueError(f"rng returned {len(challenge)} bytes, expected {BLOCK_SIZE}")
    apdu = INTERNAL_AUTHENTICATE + bytes([BLOCK_SIZE]) + challenge + bytes([BLOCK_SIZE])
    try:
        answer = _command(connection, apdu, "INTERNAL AUTHENTICATE")
    except CardError as exc:
        return BadgePresentation(name, uid_hex, "failed", str(exc))
    if len(answer) != BLOCK_SIZE:
        reason = f"INTERNAL AUTHENTICATE: {len(answer)}-byte answer, expected {BLOCK_SIZE}"
        return BadgePresentation(name, uid_hex, "failed", reason)
    if verify_response(master_key, uid, challenge, answer, cipher):
        return BadgePresentation(name, uid_hex, "verified")
    reason = "INTERNAL AUTHENTICATE: wrong answer (card not issued under this site key)"
    return BadgePresentation(name, uid_hex, "failed", reason)


# --- pcscd ------------------------------------------------------------------------------


def _scard() -> ModuleType:
    try:
        return importlib.import_module("smartcard.scard")
    except ImportError as exc:  # also raised when libpcsclite itself is missing
        raise BadgeError(_NO_PYSCARD) from exc


def _hr(value: int) -> int:
    return value & 0xFFFFFFFF


def _pcsc_failure(scard: ModuleType, hresult: int, doing: str) -> BadgeError:
    """The exception for a failed PC/SC call, with the installer's next step in it."""
    message = scard.SCardGetErrorMessage(hresult)
    code = _hr(hresult)
    if code in (_hr(scard.SCARD_E_NO_SERVICE), _hr(scard.SCARD_E_SERVICE_STOPPED)):
        return PcscUnavailable(message)
    if code in (_hr(scard.SCARD_E_NO_ACCESS), _hr(scard.SCARD_W_SECURITY_VIOLATION)):
        return BadgeError(
            f"{doing}: pcscd refused access ({message}): run as root or allow this user "
            "through polkit (org.debian.pcsc-lite.access_pcsc)"
        )
    return BadgeError(f"{doing}: {message} (0x{code:08X})")


def _establish(scard: ModuleType) -> Any:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if _hr(hresult) != _hr(scard.SCARD_S_SUCCESS):
        raise _pcsc_failure(scard, hresult, "cannot open a PC/SC context")
    return context


def _release(scard: ModuleType, context: Any) -> None:
    hresult = scard.SCardReleaseContext(context)
    if _hr(hresult) != _hr(scard.SCARD_S_SUCCESS):
        log.debug("SCardReleaseContext: %s", scard.SCardGetErrorMessage(hresult))


def _list(scard: ModuleType, context: Any) -> list[str]:
    hresult, names = scard.SCardListReaders(context, [])
    if _hr(hresult) == _hr(scard.SCARD_E_NO_READERS_AVAILABLE):
        return []
    if _hr(hresult) != _hr(scard.SCARD_S_SUCCESS):
        raise _pcsc_failure(scard, hresult, "cannot list PC/SC readers")
    return [str(name) for name in names]


def list_readers() -> list[str]:
    """Names of the PC/SC readers pcscd knows, in its order.

    Raises PcscUnavailable when pcscd is not running, BadgeError when pyscard is missing.
    """
    scard = _scard()
    context = _establish(scard)
    try:
        return _list(scard, context)
    finally:
        _release(scard, context)


def _connect(reader: str) -> Any:
    pcsc_reader = importlib.import_module("smartcard.pcsc.PCSCReader")
    connection = pcsc_reader.PCSCReader(reader).createConnection()
    try:
        connection.connect()
    except BaseException:
        connection.release()
        raise
    return connection


def _close(connection: Any) -> None:
    for step in (connection.disconnect, connection.release):
        try:
            step()
        except Exception as exc:  # the card may already be gone: nothing left to close
            log.debug("closing the card connection: %s", exc)


# --- watching readers -------------------------------------------------------------------

OnBadge = Callable[[BadgePresentation], None]
OnRemoved = Callable[[str], None]


class BadgeWatcher(Running):
    """Reads every badge put on the watched readers and reports it to ``on_badge``.

    ``readers``: PC/SC reader names to watch, ``None`` for every reader (including readers
    plugged in later). ``profile``: ``"internal-auth"`` (needs ``master_key``) or ``"uid"``
    (needs ``allow_uid_only=True``). ``cipher``: ``"aes"`` or ``"sm4"``, as the badges were
    issued. ``on_badge`` is called once per insertion, from the watcher's thread, with
    the card already disconnected; ``on_removed`` gets the reader name when the card leaves.
    A badge already on a reader when the watcher starts is reported too. Pulling a badge
    and putting it back gives a new presentation.

    :meth:`start` raises PcscUnavailable when pcscd is not running and NoReader when a
    named reader (or, with ``readers=None``, any reader) is missing. Later pcscd restarts
    are ridden out: the watcher reconnects on its own.

    ``rng`` makes the challenges (default ``os.urandom``); ``poll_interval`` bounds how long
    :meth:`stop` may wait for the thread (insertions are reported as they happen).

    A card that accepts a command and never answers blocks its reader until it is pulled
    away (vpcd has no timeout; real readers give up by themselves).
    """

    def __init__(
        self,
        *,
        readers: Sequence[str] | None = None,
        profile: str,
        master_key: bytes | None = None,
        cipher: str = "aes",
        on_badge: OnBadge,
        on_removed: OnRemoved | None = None,
        allow_uid_only: bool = False,
        rng: Callable[[int], bytes] = os.urandom,
        poll_interval: float = 0.5,
    ) -> None:
        check_profile(profile, allow_uid_only=allow_uid_only, master_key=master_key)
        if readers is not None and not readers:
            raise ValueError("readers: name at least one PC/SC reader, or pass None for all")
        self.readers = list(readers) if readers is not None else None
        self.profile = profile
        self.cipher = check_cipher(cipher)
        self._master_key = master_key
        self._on_badge = on_badge
        self._on_removed = on_removed
        self._rng = rng
        self._timeout_ms = max(1, int(poll_interval * 1000))
        self._poll_interval = poll_interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._context: Any = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> None:
        """Connect to pcscd, check the readers exist and start watching in a thread."""
        if self._thread is not None:
            raise RuntimeError("BadgeWatcher already started")
        scard = _scard()
        context = _establish(scard)
        try:
            available = _list(scard, context)
            if self.readers is None:
                if not available:
                    raise NoReader(None, available)
            else:
                missing = [name for name in self.readers if name not in available]
                if missing:
                    raise NoReader(missing, available)
        except BaseException:
            _release(scard, context)
            raise
        self._context = context
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(scard,), name="badge-watcher", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching and wait (up to ``timeout`` s) for the thread to finish."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        with self._lock:
            if self._context is not None:
                scard = _scard()
                scard.SCardCancel(self._context)  # wakes a pending status wait
        thread.join(timeout)
        if thread.is_alive():
            # Keep the thread: it still owns its PC/SC context, and start() must not race it.
            log.warning(
                "badge watcher still busy after %.1f s: a card that does not answer holds "
                "its reader until it is removed",
                timeout,
            )
            return
        self._thread = None

    @property
    def running(self) -> bool:
        """True while the watcher thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    # the thread

    def _run(self, scard: ModuleType) -> None:
        try:
            self._watch(scard)
        except Exception:
            log.exception("badge watcher stopped by an unexpected error")
        finally:
            with self._lock:
                if self._context is not None:
                    _release(scard, self._context)
                    self._context = None

    def _watch(self, scard: ModuleType) -> None:
        states: dict[str, int] = {}  # reader -> last event state (card event count on top)
        pnp_state = scard.SCARD_STATE_UNAWARE
        readers = self._watched(self._list_or_empty(scard))
        ok = _hr(scard.SCARD_S_SUCCESS)
        quiet = (_hr(scard.SCARD_E_TIMEOUT), _hr(scard.SCARD_E_CANCELLED))
        lost = (
            _hr(scard.SCARD_E_NO_SERVICE),
            _hr(scard.SCARD_E_SERVICE_STOPPED),
            _hr(scard.SCARD_E_INVALID_HANDLE),
            _hr(scard.SCARD_F_COMM_ERROR),
        )
        while not self._stop.is_set():
            query = [(name, states.get(name, scard.SCARD_STATE_UNAWARE)) for name in readers]
            query.append((_PNP_READER, pnp_state))
            hresult, changes = scard.SCardGetStatusChange(self._context, self._timeout_ms, query)
            code = _hr(hresult)
            if code in quiet:
                continue
            if code in lost:
                for name in readers:
                    self._forget(scard, name, states)
                if not self._reconnect(scard):
                    return
                pnp_state = scard.SCARD_STATE_UNAWARE
                readers = self._watched(self._list_or_empty(scard))
                continue
            relist = code == _hr(scard.SCARD_E_UNKNOWN_READER)
            if code == ok:
                for name, event, _atr in changes:
                    if not event & scard.SCARD_STATE_CHANGED:
                        continue
                    if name == _PNP_READER:
                        pnp_state = event & ~scard.SCARD_STATE_CHANGED
                        relist = True
                    else:
                        self._changed(scard, name, states, event)
            elif not relist:
                log.warning("PC/SC status wait failed: %s", scard.SCardGetErrorMessage(hresult))
                self._stop.wait(self._poll_interval)
                continue
            if relist:
                now = self._watched(self._list_or_empty(scard))
                for name in readers:
                    if name not in now:
                        log.warning("badge reader %r disappeared", name)
                        self._forget(scard, name, states)
                for name in now:
                    if name not in readers:
                        log.info("badge reader %r appeared", name)
                readers = now

    def _watched(self, available: list[str]) -> list[str]:
        if self.readers is None:
            return available
        return [name for name in available if name in self.readers]

    def _list_or_empty(self, scard: ModuleType) -> list[str]:
        try:
            return _list(scard, self._context)
        except BadgeError as exc:
            log.warning("%s", exc)
            return []

    def _reconnect(self, scard: ModuleType) -> bool:
        """pcscd went away (restart, upgrade): get a new context once it is back.

        False when the watcher was stopped first.
        """
        retry = max(self._poll_interval, 1.0)
        log.warning("lost pcscd; reconnecting every %.1f s", retry)
        while not self._stop.is_set():
            with self._lock:
                if self._context is not None:
                    _release(scard, self._context)
                    self._context = None
                try:
                    self._context = _establish(scard)
                except BadgeError:
                    pass
                else:
                    log.info("reconnected to pcscd")
                    return True
            self._stop.wait(retry)
        return False

    def _forget(self, scard: ModuleType, name: str, states: dict[str, int]) -> None:
        state = states.pop(name, scard.SCARD_STATE_UNAWARE)
        if state & scard.SCARD_STATE_PRESENT:
            self._notify_removed(name)

    def _changed(self, scard: ModuleType, name: str, states: dict[str, int], event: int) -> None:
        old = states.get(name, scard.SCARD_STATE_UNAWARE)
        states[name] = event & ~scard.SCARD_STATE_CHANGED
        was_present = bool(old & scard.SCARD_STATE_PRESENT)
        present = bool(event & scard.SCARD_STATE_PRESENT)
        # pcsc-lite counts card insertions and removals in the top 16 bits: a card pulled
        # and put back between two waits shows up only there.
        swapped = old != scard.SCARD_STATE_UNAWARE and (old >> 16) != (event >> 16)
        if was_present and (swapped or not present):
            self._notify_removed(name)
        if present and (swapped or not was_present):
            if event & scard.SCARD_STATE_MUTE:
                reason = "card does not answer the reset (mute): wrong side or a broken card"
                self._notify(BadgePresentation(name, "", "failed", reason))
            else:
                self._notify(self._read(name))

    def _read(self, reader: str) -> BadgePresentation:
        try:
            connection = _connect(reader)
        except Exception as exc:
            return BadgePresentation(reader, "", "failed", f"cannot connect to the card: {exc}")
        try:
            return read_badge(
                connection,
                profile=self.profile,
                master_key=self._master_key,
                cipher=self.cipher,
                rng=self._rng,
                reader=reader,
            )
        except Exception as exc:  # one bad card must not stop the door
            log.exception("reading the badge on %r failed", reader)
            return BadgePresentation(reader, "", "failed", f"badge read failed: {exc}")
        finally:
            _close(connection)

    def _notify(self, presentation: BadgePresentation) -> None:
        try:
            self._on_badge(presentation)
        except Exception:
            log.exception("on_badge callback failed for %s", presentation)

    def _notify_removed(self, reader: str) -> None:
        if self._on_removed is None:
            return
        try:
            self._on_removed(reader)
        except Exception:
            log.exception("on_removed callback failed for reader %r", reader)
