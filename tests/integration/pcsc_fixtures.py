"""pcscd with the vpcd driver for the PC/SC tests; import the fixtures into a test module.

Uses the pcscd already running (systemd, a developer's shell) or starts ``pcscd
--foreground`` for the session and stops it afterwards. A machine without pcscd or the
vpcd driver fails the tests with the packages to install: these tests never skip.

The vpcd readers are one per machine: two test sessions putting cards on them would
break each other. The fixture therefore holds an exclusive lock file for each test that
uses them; a test of another session waits for it.
"""

from __future__ import annotations

import fcntl
import importlib
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest

from simulators.pcscd import VPCD_READERS, PcscdError, current_readers, ensure_pcscd, stop_pcscd

VPCD_READER, VPCD_READER_2 = VPCD_READERS  # vpcd ports 35963 and 35964
_LOCK_PATH = Path(tempfile.gettempdir()) / "ironroom-vpcd.lock"
_LOCK_TIMEOUT = 300.0


class _VpcdLock:
    """The machine-wide vpcd lock, re-entrant within this process.

    Each test module that imports :func:`pcscd` gets its own instance of the session fixture,
    so one session may enter twice; the OS releases the lock if the process dies.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._depth = 0
        self._handle: IO[str] | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._guard:
            if self._depth == 0:
                self._handle = self._acquire()
            self._depth += 1
        try:
            yield
        finally:
            with self._guard:
                self._depth -= 1
                if self._depth == 0 and self._handle is not None:
                    fcntl.flock(self._handle, fcntl.LOCK_UN)
                    self._handle.close()
                    self._handle = None

    @staticmethod
    def _acquire() -> IO[str]:
        handle = _LOCK_PATH.open("a")
        deadline = time.monotonic() + _LOCK_TIMEOUT
        pause = threading.Event()
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return handle
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.close()
                    pytest.fail(
                        f"another test session has held the vpcd readers ({_LOCK_PATH}) for "
                        f"{_LOCK_TIMEOUT:.0f} s",
                        pytrace=False,
                    )
                pause.wait(0.2)


_VPCD_LOCK = _VpcdLock()


@pytest.fixture(scope="session")
def pcscd_service() -> Iterator[list[str]]:
    """Make sure pcscd runs with the vpcd readers for the session; yields the reader
    names."""
    yield from _pcscd_running()


@pytest.fixture
def pcscd(pcscd_service: list[str]) -> Iterator[list[str]]:
    """The vpcd readers for one test: pcscd running, and the readers this test's alone
    (held for the test, so another session or worker waits only while a test uses them)."""
    with _VPCD_LOCK.held():
        yield pcscd_service


def _pcscd_running() -> Iterator[list[str]]:
    try:
        importlib.import_module("smartcard.scard")
    except ImportError as exc:
        pytest.fail(
            f"pyscard is missing ({exc}): install the project with its 'pcsc' extra "
            "(building pyscard needs the swig and libpcsclite-dev packages)",
            pytrace=False,
        )
    try:
        proc = ensure_pcscd()
    except PcscdError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield current_readers() or []
    finally:
        if proc is not None:
            stop_pcscd(proc)


def _reader_state(reader: str, timeout_ms: int, known: int) -> int | None:
    """pcscd's event state for ``reader`` once it differs from ``known``; None on timeout."""
    scard = importlib.import_module("smartcard.scard")
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hresult == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(hresult)
    try:
        hresult, states = scard.SCardGetStatusChange(context, timeout_ms, [(reader, known)])
        if hresult == scard.SCARD_E_TIMEOUT:
            return None
        assert hresult == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(hresult)
        event: int = states[0][1]
        changed: int = scard.SCARD_STATE_CHANGED
        return event & ~changed
    finally:
        scard.SCardReleaseContext(context)


def card_event_count(reader: str) -> int:
    """pcsc-lite's count of card insertions and removals on ``reader``."""
    scard = importlib.import_module("smartcard.scard")
    state = _reader_state(reader, 0, scard.SCARD_STATE_UNAWARE)
    assert state is not None
    return state >> 16


def wait_for_card_state(
    reader: str, present: bool, timeout: float = 5.0, *, events_after: int | None = None
) -> bool:
    """Wait until pcscd sees a card on ``reader`` (or none); False on timeout.

    With ``events_after``, also wait until pcscd has counted a card event after that count.
    """
    scard = importlib.import_module("smartcard.scard")
    deadline = time.monotonic() + timeout
    state = scard.SCARD_STATE_UNAWARE
    while True:
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            return False
        new_state = _reader_state(reader, remaining_ms, state)
        if new_state is None:
            return False
        state = new_state
        newer = events_after is None or (state >> 16) > events_after
        if bool(state & scard.SCARD_STATE_PRESENT) == present and newer:
            return True
