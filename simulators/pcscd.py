"""Make sure pcscd runs with the vpcd virtual readers, for the simulated room and tests.

pcscd is a system daemon; the simulated room uses the one that runs (systemd's socket
activation on Debian) or starts ``pcscd --foreground`` itself and stops it on exit.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from firmware_bridge.errors import BridgeError

VPCD_READERS = ("Virtual PCD 00 00", "Virtual PCD 00 01")
INSTALL_HINT = "install them with `apt-get install pcscd vsmartcard-vpcd`"


class PcscdError(BridgeError, RuntimeError):
    """pcscd or the vpcd driver is missing or does not come up."""


def pcscd_binary() -> str | None:
    found = shutil.which("pcscd")
    if found:
        return found
    for candidate in ("/usr/sbin/pcscd", "/usr/local/sbin/pcscd"):
        if Path(candidate).is_file():
            return candidate
    return None


def current_readers() -> list[str] | None:
    """The PC/SC readers, or None when pcscd cannot be reached."""
    from devices.badge.errors import PcscUnavailable
    from devices.badge.pcsc import list_readers

    try:
        return list_readers()
    except PcscUnavailable:
        return None


def ensure_pcscd(timeout: float = 15.0) -> subprocess.Popen[bytes] | None:
    """Return None if pcscd already serves the vpcd readers, else start it and return the
    process (stopped at exit). Raises :class:`PcscdError` with what to install."""
    readers = current_readers()
    if readers is not None:
        if VPCD_READERS[0] not in readers:
            raise PcscdError(
                f"pcscd is running without the vpcd readers (readers: {readers}): "
                f"{INSTALL_HINT} and restart pcscd"
            )
        return None
    binary = pcscd_binary()
    if binary is None:
        raise PcscdError(f"pcscd is not installed: {INSTALL_HINT}")
    log = tempfile.NamedTemporaryFile(prefix="pcscd-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen([binary, "--foreground"], stdout=log, stderr=subprocess.STDOUT)
    atexit.register(stop_pcscd, proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PcscdError(
                f"pcscd exited with {proc.returncode} (log {log.name}); it usually needs root: "
                "run as root or start the system service (`systemctl start pcscd`)"
            )
        readers = current_readers()
        if readers is not None and VPCD_READERS[0] in readers:
            return proc
        time.sleep(0.1)
    stop_pcscd(proc)
    raise PcscdError(
        f"pcscd did not show the {VPCD_READERS[0]!r} reader within {timeout:.0f} s "
        f"(log {log.name}): {INSTALL_HINT}"
    )


def stop_pcscd(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
