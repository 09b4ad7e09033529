"""``ironroom devices badge``: try a PC/SC badge reader at install time.

Prints one JSON line per badge put on the reader, for example::

    {"reader":"ACS ACR122U PICC Interface 00 00","uid":"04A1B2C3D4E5F6","auth":"verified"}

``auth`` is ``verified`` (the badge proved it holds its key), ``failed`` (it did not; the
reason goes to stderr) or ``uid-only`` (``--profile uid``: the UID was read, nothing was
proved). Use ``--profile internal-auth --key-file FILE`` with the site master key to check
that badges were issued for this site, and ``--reader NAME`` (the name as pcscd reports it,
see ``pcsc_scan``) to watch one reader only. Messages go to stderr; stdout carries only the
JSON lines, so the output can be piped into ``jq``.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import TextIO

from .crypto import check_cipher, load_master_key
from .errors import BadgeError
from .pcsc import PROFILES, BadgePresentation, BadgeWatcher


def format_presentation(presentation: BadgePresentation) -> str:
    """One compact JSON line: reader, uid, auth."""
    return json.dumps(presentation.as_event(), separators=(",", ":"))


def run(
    reader: str | None,
    profile: str,
    key_file: str | None,
    cipher: str,
    seconds: float | None,
    out: TextIO,
    *,
    err: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Watch ``reader`` (every reader when None) and print each badge to ``out``.

    Returns 0 after ``seconds`` (or once ``stop`` is set, or on Ctrl-C when ``seconds`` is
    None); 2 with a one-line message on ``err`` (stderr by default) when the arguments are
    wrong, pcscd is not running or the reader does not exist. Asking for ``profile="uid"``
    here is the explicit switch that UID-only badges need.
    """
    err = err if err is not None else sys.stderr

    def fail(message: str) -> int:
        print(f"badge: {message}", file=err, flush=True)
        return 2

    if profile not in PROFILES:
        return fail(f"unknown profile {profile!r}: use internal-auth or uid")
    try:
        cipher = check_cipher(cipher)
    except ValueError as exc:
        return fail(str(exc))
    master_key = None
    if profile == "internal-auth":
        if not key_file:
            return fail(
                "--profile internal-auth needs --key-file FILE (the site master key, 32 hex digits)"
            )
        try:
            master_key = load_master_key(key_file)
        except (OSError, ValueError) as exc:
            return fail(f"cannot use the key file: {exc}")
    elif key_file:
        print("badge: --key-file is not used with --profile uid", file=err, flush=True)

    lock = threading.Lock()

    def on_badge(presentation: BadgePresentation) -> None:
        with lock:
            out.write(format_presentation(presentation) + "\n")
            out.flush()
        if presentation.error:
            print(f"badge: {presentation.reader}: {presentation.error}", file=err, flush=True)

    watcher = BadgeWatcher(
        readers=[reader] if reader else None,
        profile=profile,
        master_key=master_key,
        cipher=cipher,
        on_badge=on_badge,
        allow_uid_only=True,
    )
    try:
        watcher.start()
    except BadgeError as exc:
        return fail(str(exc))
    where = repr(reader) if reader else "every reader"
    note = " (UID only: proves nothing, UIDs can be cloned)" if profile == "uid" else ""
    print(f"badge: watching {where}, profile {profile}{note}", file=err, flush=True)
    done = stop if stop is not None else threading.Event()
    try:
        done.wait(seconds)
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
    return 0
