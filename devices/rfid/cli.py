"""Installer check for an RFID reader: print tags as they come and go, one JSON line each.

``ironroom devices rfid --driver rdm6300|m100 --port URL [--seconds N]`` prints::

    {"event":"present","tag":"62E3086CED"}
    {"event":"present","tag":"30751FEB705C5904E3D50D70","rssi":-55}
    {"event":"gone","tag":"62E3086CED"}

"present" is printed once per tag while it stays (``rssi`` in dBm, M100 only); "gone"
after 0.5 s without a frame (RDM6300) or 3 inventory rounds of 0.1 s without a read (M100).
"""

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from devices.rfid.errors import RfidError
from devices.rfid.presence import PresenceChange, PresenceTracker
from devices.rfid.readers import open_reader

RDM6300_TIMEOUT_S = 0.5
M100_ROUND_S = 0.1
M100_MISSING_ROUNDS = 3
_TICK_S = 0.05


def _line(change: PresenceChange) -> str:
    event: dict[str, str | int] = {
        "event": "present" if change.kind == "arrived" else "gone",
        "tag": change.epc,
    }
    if change.kind == "arrived" and change.rssi is not None:
        event["rssi"] = change.rssi
    return json.dumps(event, separators=(",", ":"))


def run(
    driver: str,
    port: str,
    seconds: float | None,
    out: TextIO,
    *,
    clock: Callable[[], float] = time.monotonic,
    err: TextIO | None = None,
) -> int:
    """Watch ``port`` with ``driver`` for ``seconds`` (until Ctrl-C if None).

    Returns 0 when done, 2 if the driver is unknown or the port cannot be opened (one line
    on ``err``, stderr by default). Later port failures are reported on ``err`` while the
    reader keeps reopening the port.
    """
    err = sys.stderr if err is None else err
    driver = driver.lower()
    lock = threading.Lock()
    if driver == "rdm6300":
        tracker = PresenceTracker(timeout_s=RDM6300_TIMEOUT_S)
    else:
        tracker = PresenceTracker(missing_rounds=M100_MISSING_ROUNDS)

    def emit(changes: list[PresenceChange]) -> None:
        for change in changes:
            out.write(_line(change) + "\n")
            out.flush()

    def on_read(tag: str, rssi: int | None, t: float) -> None:
        with lock:
            emit(tracker.observe(port, tag, rssi, t))

    def on_round(t: float) -> None:
        with lock:
            emit(tracker.end_round(port, t))

    def on_error(exc: Exception) -> None:
        with lock:
            print(f"rfid: {exc}", file=err, flush=True)

    kw: dict[str, object] = {"on_read": on_read, "on_error": on_error, "clock": clock}
    if driver == "m100":
        kw |= {"on_round": on_round, "round_s": M100_ROUND_S}
    try:
        reader = open_reader(driver, port, **kw)
        reader.start()
    except RfidError as exc:
        print(f"rfid: {exc}", file=err, flush=True)
        return 2

    try:
        end = None if seconds is None else clock() + seconds
        while True:
            now = clock()
            if end is not None and now >= end:
                break
            with lock:
                emit(tracker.tick(now))
            time.sleep(_TICK_S)
    except KeyboardInterrupt:
        pass
    finally:
        reader.stop()
    return 0
