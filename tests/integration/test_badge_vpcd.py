"""The real pyscard path: pcscd + vpcd + the project's virtual card."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devices.badge import cli
from devices.badge.errors import NoReader
from devices.badge.pcsc import BadgePresentation, BadgeWatcher, list_readers
from simulators.vcard import VirtualCard
from tests.integration.pcsc_fixtures import (
    VPCD_READER,
    VPCD_READER_2,
    card_event_count,
    wait_for_card_state,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

MASTER = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
UID = bytes.fromhex("04A1B2C3D4E5F6")
UID_2 = bytes.fromhex("04112233445566")
PORT = 35963  # Virtual PCD 00 00
PORT_2 = 35964  # Virtual PCD 00 01
WAIT = 10.0
CHECKOUT = Path(__file__).resolve().parents[2]


class Recorder:
    """Collects the watcher's callbacks and lets a test wait for them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, BadgePresentation | str]] = []
        self._changed = threading.Condition()

    def on_badge(self, presentation: BadgePresentation) -> None:
        with self._changed:
            self.events.append(("badge", presentation))
            self._changed.notify_all()

    def on_removed(self, reader: str) -> None:
        with self._changed:
            self.events.append(("removed", reader))
            self._changed.notify_all()

    @property
    def badges(self) -> list[BadgePresentation]:
        with self._changed:
            return [item for kind, item in self.events if isinstance(item, BadgePresentation)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        with self._changed:
            assert self._changed.wait_for(predicate, timeout), f"timed out; got {self.events}"

    def next_badge(self, count: int) -> BadgePresentation:
        """Wait for the ``count``-th presentation (1-based) and return it."""
        self.wait_for(lambda: sum(kind == "badge" for kind, _ in self.events) >= count)
        return self.badges[count - 1]


@pytest.fixture
def readers_empty(pcscd: list[str]) -> Iterator[None]:
    """Each test starts and ends with no card on either vpcd reader."""
    for reader in (VPCD_READER, VPCD_READER_2):
        assert wait_for_card_state(reader, present=False, timeout=WAIT), f"{reader} not empty"
    yield
    for reader in (VPCD_READER, VPCD_READER_2):
        assert wait_for_card_state(reader, present=False, timeout=WAIT), f"{reader} not empty"


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def watcher(recorder: Recorder, profile: str = "internal-auth", **kwargs: object) -> BadgeWatcher:
    options: dict[str, object] = {"readers": [VPCD_READER], "master_key": MASTER}
    options.update(kwargs)
    return BadgeWatcher(
        profile=profile,
        on_badge=recorder.on_badge,
        on_removed=recorder.on_removed,
        **options,  # type: ignore[arg-type]
    )


def test_list_readers_shows_both_vpcd_readers(pcscd: list[str]) -> None:
    readers = list_readers()
    assert VPCD_READER in readers and VPCD_READER_2 in readers


def test_uid_profile_reports_uid_only(readers_empty: None, recorder: Recorder) -> None:
    with watcher(recorder, "uid", allow_uid_only=True, master_key=None):
        with VirtualCard(UID):
            badge = recorder.next_badge(1)
    assert badge == BadgePresentation(VPCD_READER, "04A1B2C3D4E5F6", "uid-only", None)


@pytest.mark.parametrize("cipher", ["aes", "sm4"])
def test_internal_auth_verifies(readers_empty: None, recorder: Recorder, cipher: str) -> None:
    with watcher(recorder, cipher=cipher):
        with VirtualCard(UID, master_key=MASTER, cipher=cipher) as card:
            badge = recorder.next_badge(1)
            apdus = card.apdus
    assert (badge.reader, badge.uid, badge.auth) == (VPCD_READER, "04A1B2C3D4E5F6", "verified")
    assert apdus[0] == bytes.fromhex("FFCA000000")
    assert apdus[1][:5] == bytes.fromhex("0088000110") and len(apdus[1]) == 22


def test_t0_card_is_verified_through_pcscd(readers_empty: None, recorder: Recorder) -> None:
    with watcher(recorder):
        with VirtualCard(UID, master_key=MASTER, behaviour="t0") as card:
            badge = recorder.next_badge(1)
            apdus = card.apdus
    assert badge.auth == "verified", badge.error
    assert bytes.fromhex("FFCA000007") in apdus  # resent after 6C 07
    assert bytes.fromhex("00C0000010") in apdus  # GET RESPONSE after 61 10


def test_wrong_key_card_fails(readers_empty: None, recorder: Recorder) -> None:
    with watcher(recorder):
        with VirtualCard(UID, master_key=MASTER, behaviour="wrong-key"):
            badge = recorder.next_badge(1)
    assert (badge.uid, badge.auth) == ("04A1B2C3D4E5F6", "failed")
    assert badge.error is not None and "wrong answer" in badge.error


def test_uid_only_card_fails_internal_auth(readers_empty: None, recorder: Recorder) -> None:
    with watcher(recorder):
        with VirtualCard(UID):
            badge = recorder.next_badge(1)
    assert badge.auth == "failed"
    assert badge.error is not None and "6D00" in badge.error


def test_remove_and_reinsert_gives_a_second_presentation(
    readers_empty: None, recorder: Recorder
) -> None:
    card = VirtualCard(UID, master_key=MASTER)
    with watcher(recorder):
        card.insert()
        first = recorder.next_badge(1)
        card.remove()
        recorder.wait_for(lambda: ("removed", VPCD_READER) in recorder.events)
        card.insert()
        second = recorder.next_badge(2)
        card.remove()
        recorder.wait_for(lambda: recorder.events.count(("removed", VPCD_READER)) == 2)
    assert first.auth == second.auth == "verified"
    assert [kind for kind, _ in recorder.events] == ["badge", "removed", "badge", "removed"]


def test_card_swapped_quickly_is_a_new_presentation(
    readers_empty: None, recorder: Recorder
) -> None:
    with watcher(recorder):
        first_card = VirtualCard(UID, master_key=MASTER)
        first_card.insert()
        recorder.next_badge(1)
        first_card.remove()
        with VirtualCard(UID_2, master_key=MASTER):
            second = recorder.next_badge(2)
    assert [badge.uid for badge in recorder.badges] == ["04A1B2C3D4E5F6", "04112233445566"]
    assert second.auth == "verified"
    assert ("removed", VPCD_READER) in recorder.events


def test_mute_card_pulled_mid_read_fails_and_watcher_goes_on(
    readers_empty: None, recorder: Recorder
) -> None:
    with watcher(recorder):
        mute = VirtualCard(UID, master_key=MASTER, behaviour="mute")
        mute.insert()
        assert mute.wait_for_apdus(1, WAIT), "the watcher never sent a command"
        events = card_event_count(VPCD_READER)
        mute.remove()  # the reader was blocked on this card until now
        failed = recorder.next_badge(1)
        # vpcd drops a card whose transmit failed without telling pcscd's poller; a card put
        # on before the poller's next look would never be seen. Wait for that look.
        assert wait_for_card_state(VPCD_READER, present=False, timeout=WAIT, events_after=events)
        with VirtualCard(UID_2, master_key=MASTER):
            good = recorder.next_badge(2)
    assert (failed.uid, failed.auth) == ("", "failed")
    assert failed.error is not None and "card I/O failed" in failed.error
    assert (good.uid, good.auth) == ("04112233445566", "verified")


def test_card_already_on_the_reader_is_reported_at_start(
    readers_empty: None, recorder: Recorder
) -> None:
    with VirtualCard(UID, master_key=MASTER):
        assert wait_for_card_state(VPCD_READER, present=True, timeout=WAIT)
        with watcher(recorder):
            badge = recorder.next_badge(1)
    assert badge.auth == "verified"


def test_all_readers_and_the_second_vpcd_port(readers_empty: None, recorder: Recorder) -> None:
    with watcher(recorder, readers=None):
        with VirtualCard(UID, master_key=MASTER, port=PORT_2):
            badge = recorder.next_badge(1)
    assert (badge.reader, badge.auth) == (VPCD_READER_2, "verified")


def test_watcher_only_reports_its_own_reader(readers_empty: None, recorder: Recorder) -> None:
    with watcher(recorder):  # Virtual PCD 00 00 only
        with VirtualCard(UID_2, master_key=MASTER, port=PORT_2):
            assert wait_for_card_state(VPCD_READER_2, present=True, timeout=WAIT)
            with VirtualCard(UID, master_key=MASTER, port=PORT):
                badge = recorder.next_badge(1)
    assert [b.uid for b in recorder.badges] == ["04A1B2C3D4E5F6"]
    assert badge.reader == VPCD_READER


def test_bogus_reader_name_is_no_reader(pcscd: list[str]) -> None:
    bogus = BadgeWatcher(
        readers=["Bogus Reader 99"], profile="internal-auth", master_key=MASTER, on_badge=print
    )
    with pytest.raises(NoReader) as raised:
        bogus.start()
    assert isinstance(raised.value, LookupError)
    assert "'Bogus Reader 99'" in str(raised.value) and repr(VPCD_READER) in str(raised.value)
    assert not bogus.running


# --- the installer CLI --------------------------------------------------------------------


class Lines(io.StringIO):
    """A StringIO whose lines a test can wait for."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def flush(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def wait_lines(self, count: int) -> list[str]:
        with self.changed:
            ok = self.changed.wait_for(lambda: self.getvalue().count("\n") >= count, WAIT)
        assert ok, f"timed out waiting for {count} lines: {self.getvalue()!r}"
        return self.getvalue().splitlines()


def start_cli(
    reader: str, profile: str, key_file: str | None
) -> tuple[threading.Thread, threading.Event, Lines, io.StringIO, list[int]]:
    """``cli.run`` in a thread until the returned event is set."""
    out, err, stop, result = Lines(), io.StringIO(), threading.Event(), []

    def target() -> None:
        result.append(cli.run(reader, profile, key_file, "aes", None, out, err=err, stop=stop))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, stop, out, err, result


def test_cli_prints_one_json_line_per_card(readers_empty: None, tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    key_file.write_text(MASTER.hex() + "\n")
    key_file.chmod(0o600)
    thread, stop, out, err, result = start_cli(VPCD_READER, "internal-auth", str(key_file))
    with VirtualCard(UID, master_key=MASTER):
        out.wait_lines(1)
    assert wait_for_card_state(VPCD_READER, present=False, timeout=WAIT)
    with VirtualCard(UID_2, master_key=MASTER, behaviour="wrong-key"):
        lines = out.wait_lines(2)
    stop.set()
    thread.join(WAIT)
    assert result == [0]
    assert lines == [
        '{"reader":"Virtual PCD 00 00","uid":"04A1B2C3D4E5F6","auth":"verified"}',
        '{"reader":"Virtual PCD 00 00","uid":"04112233445566","auth":"failed"}',
    ]
    assert "wrong answer" in err.getvalue()


def test_cli_uid_profile_and_seconds(readers_empty: None) -> None:
    with VirtualCard(UID):
        assert wait_for_card_state(VPCD_READER, present=True, timeout=WAIT)
        out, err = io.StringIO(), io.StringIO()
        code = cli.run(VPCD_READER, "uid", None, "aes", 1.5, out, err=err)
    assert code == 0
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {"reader": VPCD_READER, "uid": "04A1B2C3D4E5F6", "auth": "uid-only"}
    ]
    assert "UID only" in err.getvalue()


def test_cli_bogus_reader_exits_2(pcscd: list[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert cli.run("Bogus Reader 99", "uid", None, "aes", 1.0, out, err=err) == 2
    assert out.getvalue() == ""
    assert err.getvalue().count("\n") == 1 and "Bogus Reader 99" in err.getvalue()


# --- pcscd unreachable --------------------------------------------------------------------

_NO_PCSCD = """
import io, json, sys
from devices.badge import cli
from devices.badge.errors import PcscUnavailable
from devices.badge.pcsc import list_readers
try:
    list_readers()
except PcscUnavailable as exc:
    caught = {"message": str(exc), "connection_error": isinstance(exc, ConnectionError)}
else:
    caught = None
err = io.StringIO()
code = cli.run(None, "uid", None, "aes", 1.0, io.StringIO(), err=err)
print(json.dumps({"caught": caught, "cli_code": code, "cli_err": err.getvalue()}))
"""


def test_pcscd_unreachable_is_pcsc_unavailable(pcscd: list[str], tmp_path: Path) -> None:
    # pcsc-lite's client reads its socket path from PCSCLITE_CSOCK_NAME once per process.
    env = dict(os.environ, PCSCLITE_CSOCK_NAME=str(tmp_path / "no-pcscd.comm"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CHECKOUT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", _NO_PCSCD],
        env=env,
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["caught"] is not None, "list_readers did not raise PcscUnavailable"
    assert report["caught"]["connection_error"] is True
    assert "pcscd is not running" in report["caught"]["message"]
    assert "pcscd --foreground" in report["caught"]["message"]
    assert report["cli_code"] == 2
    assert report["cli_err"].count("\n") == 1 and "pcscd is not running" in report["cli_err"]
