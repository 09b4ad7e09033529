"""A virtual badge for pcscd's vpcd driver: the PC/SC badge driver runs unchanged against it.

Debian's ``vsmartcard-vpcd`` package adds two virtual readers to pcscd, ``Virtual PCD 00 00``
and ``Virtual PCD 00 01``. vpcd listens on TCP port 35963 (reader ``00 00``) and 35964
(reader ``00 01``) for a virtual card; this module is that card. Connecting puts the card
on the reader, closing the socket takes it away. Every message is a 2-byte big-endian
length and a payload: a 1-byte payload is a control (0 power off, 1 power on, 2 reset,
4 "send your ATR"), anything longer is a C-APDU answered with an R-APDU.

The card answers what a badge of the ``internal-auth`` profile answers:

- ``FF CA 00 00 00`` (the reader's "get UID"): the UID and ``90 00``;
- ``00 88 00 01 10 <R> 10`` (INTERNAL AUTHENTICATE): ``E(K_card, R)`` and ``90 00``, where
  ``K_card = CMAC(master_key, UID)``; a card made without a master key answers ``6D 00``
  like a UID-only card;
- ``00 C0 00 00 XX`` (GET RESPONSE) after a ``61 XX``;
- unknown commands ``6D 00``, wrong lengths ``67 00``, wrong P1/P2 ``6A 86``.

Behaviours for failure drills: ``"ok"``; ``"wrong-key"`` (personalised under another master
key, so the controller reports ``failed``); ``"mute"`` (answers the reset but never a
command: its reader stays blocked until the card is removed); ``"t0"`` (answers the way a
T=0 card does: ``6C XX`` when the UID's Le is 00 and ``61 10`` + GET RESPONSE for the
authentication).

Trying it on a workstation (as root, or a user pcscd accepts)::

    apt-get install pcscd vsmartcard-vpcd
    pcscd --foreground &                  # add -d for a debug log
    openssl rand -hex 16 > /tmp/master.key
    python -m simulators.vcard --uid 04A1B2C3D4E5F6 --key-file /tmp/master.key &
    ironroom devices badge --reader 'Virtual PCD 00 00' --profile internal-auth \\
        --key-file /tmp/master.key

vpcd takes one card per port: a second card waits, unanswered, until the first one is
removed. pcscd must be running before the card connects.
"""

from __future__ import annotations

import argparse
import logging
import socket
import struct
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TextIO

from devices.badge.crypto import BLOCK_SIZE, card_key, card_response, check_cipher
from devices.badge.crypto import load_master_key as _load_master_key
from devices.lifecycle import Running

log = logging.getLogger(__name__)

VPCD_HOST = "127.0.0.1"
VPCD_PORT = 35963  # reader "Virtual PCD 00 00"; reader "Virtual PCD 00 01" is on 35964
# What a PC/SC contactless reader reports for an ISO 14443-4 card without historical bytes:
# T=0 and T=1 offered, TCK 01.
DEFAULT_ATR = bytes.fromhex("3B80800101")

Behaviour = Literal["ok", "wrong-key", "mute", "t0"]
BEHAVIOURS: tuple[Behaviour, ...] = ("ok", "wrong-key", "mute", "t0")

_POWER_OFF, _POWER_ON, _RESET, _GET_ATR = 0, 1, 2, 4

SW_OK = b"\x90\x00"
SW_WRONG_LENGTH = b"\x67\x00"
SW_WRONG_P1P2 = b"\x6a\x86"
SW_CONDITIONS = b"\x69\x85"
SW_UNKNOWN_INS = b"\x6d\x00"


class VirtualCard(Running):
    """A badge that plugs into vpcd over TCP.

    ``uid``: the UID the reader reports (4, 7 or 10 bytes on real cards). ``master_key``
    and ``cipher`` ("aes" or "sm4"): the site key the card was issued under; without a key
    the card is UID-only. ``port``: 35963 for ``Virtual PCD 00 00``, 35964 for ``00 01``.
    ``behaviour``: see the module docstring.
    """

    def __init__(
        self,
        uid: bytes,
        *,
        master_key: bytes | None = None,
        cipher: str = "aes",
        host: str = VPCD_HOST,
        port: int = VPCD_PORT,
        atr: bytes = DEFAULT_ATR,
        behaviour: str = "ok",
    ) -> None:
        if not 1 <= len(uid) <= 16:
            raise ValueError(f"a UID is 1 to 16 bytes, got {len(uid)}")
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}: use one of {BEHAVIOURS}")
        if not atr:
            raise ValueError("a card needs an ATR")
        self.uid = bytes(uid)
        self.cipher = check_cipher(cipher)
        self.host = host
        self.port = port
        self.atr = bytes(atr)
        self.behaviour = behaviour
        self._key: bytes | None = None
        if behaviour == "wrong-key":
            if master_key is None:
                raise ValueError("behaviour 'wrong-key' needs the master key it must not use")
            wrong_master = bytes(b ^ 0xA5 for b in master_key)
            self._key = card_key(wrong_master, self.uid, self.cipher)
        elif master_key is not None:
            self._key = card_key(master_key, self.uid, self.cipher)
        self.powered = False
        self._pending = b""  # answer waiting for GET RESPONSE
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._seen = threading.Condition()
        self._apdus: list[bytes] = []
        self._contacted = threading.Event()

    # --- the card's answers (no I/O) -----------------------------------------------------

    def respond(self, apdu: bytes) -> bytes | None:
        """The R-APDU for one C-APDU; None means the card stays silent (``"mute"``)."""
        if self.behaviour == "mute":
            return None
        pending, self._pending = self._pending, b""
        if len(apdu) < 5:
            return SW_WRONG_LENGTH
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[4:]
        if (cla, ins) == (0xFF, 0xCA):
            return self._get_uid(p1, p2, body)
        if (cla, ins) == (0x00, 0x88):
            return self._internal_authenticate(p1, p2, body)
        if (cla, ins) == (0x00, 0xC0):
            return self._get_response(p1, p2, body, pending)
        return SW_UNKNOWN_INS

    def _get_uid(self, p1: int, p2: int, body: bytes) -> bytes:
        if (p1, p2) != (0, 0):
            return SW_WRONG_P1P2
        if len(body) != 1:
            return SW_WRONG_LENGTH
        le = body[0]
        if le == len(self.uid) or (le == 0 and self.behaviour != "t0"):
            return self.uid + SW_OK
        return bytes([0x6C, len(self.uid)])

    def _internal_authenticate(self, p1: int, p2: int, body: bytes) -> bytes:
        if self._key is None:
            return SW_UNKNOWN_INS  # a UID-only card has no such command
        if (p1, p2) != (0x00, 0x01):
            return SW_WRONG_P1P2
        # Lc = 16, the challenge, then Le (absent when a T=0 reader strips it).
        if len(body) not in (1 + BLOCK_SIZE, 2 + BLOCK_SIZE) or body[0] != BLOCK_SIZE:
            return SW_WRONG_LENGTH
        answer = card_response(self._key, body[1 : 1 + BLOCK_SIZE], self.cipher)
        le = body[1 + BLOCK_SIZE] if len(body) == 2 + BLOCK_SIZE else None
        if le is None or self.behaviour == "t0":
            self._pending = answer
            return bytes([0x61, len(answer)])
        if le not in (0, BLOCK_SIZE):
            return bytes([0x6C, BLOCK_SIZE])
        return answer + SW_OK

    def _get_response(self, p1: int, p2: int, body: bytes, pending: bytes) -> bytes:
        if (p1, p2) != (0, 0):
            return SW_WRONG_P1P2
        if len(body) != 1:
            return SW_WRONG_LENGTH
        if not pending:
            return SW_CONDITIONS
        le = body[0] or 256
        if le > len(pending):
            self._pending = pending
            return bytes([0x6C, len(pending)])
        out, self._pending = pending[:le], pending[le:]
        if self._pending:
            return out + bytes([0x61, len(self._pending)])
        return out + SW_OK

    def control(self, code: int) -> bytes | None:
        """Handle a vpcd control byte; returns the ATR for "send your ATR"."""
        if code == _GET_ATR:
            return self.atr
        if code in (_POWER_ON, _RESET):
            self.powered = True
            self._pending = b""
        elif code == _POWER_OFF:
            self.powered = False
            self._pending = b""
        else:
            log.debug("vpcd sent unknown control %d", code)
        return None

    # --- vpcd link -----------------------------------------------------------------------

    @property
    def inserted(self) -> bool:
        """True while the card is connected to vpcd."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def apdus(self) -> list[bytes]:
        """Every C-APDU received since the card was made, oldest first."""
        with self._seen:
            return list(self._apdus)

    def wait_for_apdus(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` C-APDUs have arrived; False on timeout."""
        with self._seen:
            return self._seen.wait_for(lambda: len(self._apdus) >= count, timeout)

    def wait_removed(self, timeout: float | None = None) -> bool:
        """Wait until the link to vpcd is gone (removed, or pcscd stopped); False on timeout."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.inserted

    def insert(self, timeout: float | None = 5.0) -> None:
        """Put the card on the reader: connect to vpcd and answer it from a thread.

        With a ``timeout``, also wait until vpcd has talked to the card (it accepts only
        one card per port, and only while pcscd runs), else TimeoutError.
        """
        if self.inserted:
            raise RuntimeError("the card is already inserted")
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except OSError as exc:
            raise ConnectionError(
                f"vpcd is not listening on {self.host}:{self.port} ({exc}): start pcscd "
                "with the vsmartcard-vpcd driver installed"
            ) from exc
        sock.settimeout(None)
        self._sock = sock
        self._contacted.clear()
        self._thread = threading.Thread(
            target=self._serve, args=(sock,), name=f"vcard-{self.uid.hex()}", daemon=True
        )
        self._thread.start()
        if timeout is not None and not self._contacted.wait(timeout):
            self.remove()
            raise TimeoutError(
                f"vpcd on {self.host}:{self.port} did not talk to the card within {timeout} s: "
                "is another card on this port, or is pcscd stopped?"
            )

    def remove(self) -> None:
        """Take the card off the reader (closes the socket)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # vpcd already closed its side
            sock.close()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
        self.powered = False

    # ``with card:`` puts the card on the reader and takes it away again.
    def start(self) -> None:
        self.insert()

    def stop(self) -> None:
        self.remove()

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                header = _recv_exact(sock, 2)
                if header is None:
                    break
                (length,) = struct.unpack(">H", header)
                payload = _recv_exact(sock, length)
                if payload is None:
                    break
                self._contacted.set()
                if length == 1:
                    answer = self.control(payload[0])
                else:
                    with self._seen:
                        self._apdus.append(payload)
                        self._seen.notify_all()
                    answer = self.respond(payload)
                if answer is not None:
                    sock.sendall(struct.pack(">H", len(answer)) + answer)
        except OSError as exc:
            log.debug("virtual card link closed: %s", exc)
        self.powered = False


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def run_card(
    uid_hex: str,
    key_file: str | None,
    cipher: str = "aes",
    port: int = VPCD_PORT,
    seconds: float | None = None,
    *,
    host: str = VPCD_HOST,
    behaviour: str = "ok",
    out: TextIO | None = None,
) -> int:
    """Put one virtual badge on a vpcd reader for ``seconds`` (until Ctrl-C when None).

    Without ``key_file`` the card is UID-only. Returns 0, or 2 with a message on ``out``
    (stderr by default) when the arguments are wrong or vpcd cannot be reached.
    """
    out = out if out is not None else sys.stderr
    try:
        uid = bytes.fromhex(uid_hex)
        master_key = _load_master_key(Path(key_file)) if key_file else None
        card = VirtualCard(
            uid, master_key=master_key, cipher=cipher, host=host, port=port, behaviour=behaviour
        )
    except (OSError, ValueError) as exc:
        print(f"vcard: {exc}", file=out)
        return 2
    try:
        card.insert()
    except (ConnectionError, TimeoutError) as exc:
        print(f"vcard: {exc}", file=out)
        return 2
    print(f"vcard: badge {uid.hex().upper()} on vpcd {host}:{port}", file=out, flush=True)
    try:
        if seconds is None:
            while not card.wait_removed(1.0):
                pass
        else:
            card.wait_removed(seconds)
        if not card.inserted:
            print("vcard: vpcd closed the connection (pcscd stopped?)", file=out)
    except KeyboardInterrupt:
        pass
    finally:
        card.remove()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m simulators.vcard --uid HEX [--key-file F] [--cipher aes|sm4] ...``"""
    parser = argparse.ArgumentParser(
        prog="python -m simulators.vcard", description="Put a virtual badge on a vpcd reader."
    )
    parser.add_argument("--uid", required=True, help="card UID in hex, e.g. 04A1B2C3D4E5F6")
    parser.add_argument("--key-file", help="site master key (hex); omit for a UID-only card")
    parser.add_argument("--cipher", default="aes", choices=["aes", "sm4"])
    parser.add_argument("--host", default=VPCD_HOST)
    parser.add_argument(
        "--port", type=int, default=VPCD_PORT, help="35963: Virtual PCD 00 00, 35964: 00 01"
    )
    parser.add_argument("--seconds", type=float, help="remove the card after this long")
    parser.add_argument("--behaviour", default="ok", choices=list(BEHAVIOURS))
    args = parser.parse_args(argv)
    return run_card(
        args.uid,
        args.key_file,
        args.cipher,
        args.port,
        args.seconds,
        host=args.host,
        behaviour=args.behaviour,
    )


if __name__ == "__main__":
    sys.exit(main())
