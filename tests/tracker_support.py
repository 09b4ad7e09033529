"""Real processes around ``ironroom tracker``: a Mosquitto that logs subscriptions (so a
test knows when the tracker listens), the tracker in its own process, the ``ironroom``
command line, a config of the test's own, and read-only looks at the SQLite ledger."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocol.envelope import decode_ack, make_event
from protocol.errors import ProtocolError
from protocol.timefmt import format_ts
from simulators.scenarios import FOLDER_1, FOLDER_2, FOLDER_3, SECRETARY
from tests.support import Mosquitto, wait_until

IRONROOM = [sys.executable, "-m", "ironroom.cli"]
SITE, ROOM, CONTROLLER = "hq", "room-101", "room-101-ctl"
CLIENT_ID = "ironroom-tracker-test"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
#: the documents of the day scenario: number, tag, home cabinet
FOLDERS = (
    ("机要〔2026〕1号", FOLDER_1, "c1"),
    ("机要〔2026〕2号", FOLDER_2, "c1"),
    ("机要〔2026〕3号", FOLDER_3, "c2"),
)


def start_broker(workdir: Path, *, persistence: bool = False) -> Mosquitto:
    """A Mosquitto of the test's own that also logs every subscription."""
    mq = Mosquitto(workdir, persistence=persistence)
    mq.conf.write_text(mq.conf.read_text() + "log_type subscribe\nlog_type notice\n")
    mq.start()
    return mq


def broker_log(mq: Mosquitto) -> str:
    return mq.log.read_text(errors="replace") if mq.log.exists() else ""


class Cli:
    """``ironroom ...`` in a process of its own, always on this test's database."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "IRONROOM_DB"}
        return subprocess.run(
            [*IRONROOM, *args, "--db", self.db_url],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )

    def ok(self, *args: str) -> str:
        res = self.run(*args)
        assert res.returncode == 0, (args, res.returncode, res.stdout, res.stderr[-2000:])
        return res.stdout

    def rows(self, *args: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.ok(*args).splitlines() if line.strip()]


def write_key(path: Path) -> Path:
    res = subprocess.run([*IRONROOM, "keys", "generate", str(path)], capture_output=True)
    assert res.returncode == 0, res.stderr
    return path


def write_config(
    path: Path,
    mq: Mosquitto,
    db_url: str,
    *,
    tracker: dict[str, Any] | None = None,
    loans: dict[str, Any] | None = None,
) -> Path:
    """A tracker config: this broker and database, Beijing working hours, the given
    ``[tracker]`` keys and loan periods."""
    lines = ["[tracker]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in (tracker or {}).items()]
    lines += ["", "[database]", f"url = {json.dumps(db_url)}"]
    lines += ["", "[mqtt]", f'broker = "{mq.url}"', f'client_id = "{CLIENT_ID}"']
    lines += ["", "[hours]", 'timezone = "Asia/Shanghai"']
    lines += [f'{d} = ["08:30-12:00", "13:30-17:30"]' for d in WEEKDAYS]
    lines += ["", "[loans]"]
    lines += [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in (loans or {}).items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def setup_day_ledger(cli: Cli, key_file: Path, *, clearance: str) -> None:
    """The day scenario's room, cabinets, secretary and folders, through the ledger
    commands only."""
    cli.ok("ledger", "init")
    cli.ok("ledger", "room", "add", SITE, ROOM, "--controller", CONTROLLER, "--key-file",
           str(key_file))  # fmt: skip
    for cabinet in ("c1", "c2"):
        cli.ok("ledger", "cabinet", "add", SITE, ROOM, cabinet)
    cli.ok("ledger", "person", "add", "sec", "--name", "王秘书", "--clearance", clearance,
           "--role", "secretary", "--dept", "办公室")  # fmt: skip
    cli.ok("ledger", "badge", "add", SECRETARY, "--person", "sec")
    for i, (number, tag, cabinet) in enumerate(FOLDERS, start=1):
        cli.ok("ledger", "document", "add", "--number", number, "--title", f"文件夹{i}",
               "--classification", "机密", "--tag", tag,
               "--cabinet", f"{SITE}/{ROOM}/{cabinet}")  # fmt: skip


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def gone(pid: int) -> bool:
    """The process has ended (a zombie nobody has reaped yet counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


class TrackerProcess:
    """``ironroom tracker`` in its own process; :meth:`start` returns once the broker has
    logged the tracker's subscription (or fails the test)."""

    def __init__(self, config: Path, mq: Mosquitto, db_url: str, logdir: Path) -> None:
        self.config, self.mq, self.db_url, self.logdir = config, mq, db_url, logdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def _subscriptions(self) -> int:
        return broker_log(self.mq).count(f"{CLIENT_ID} 1 ironroom/v1/+/+/status")

    def start(self, timeout: float = 30) -> None:
        before = self._subscriptions()
        self.starts += 1
        self.log = self.logdir / f"tracker-{self.starts}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*IRONROOM, "--log-level", "INFO", "tracker", "--config", str(self.config),
                 "--db", self.db_url],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.wait(lambda: self._subscriptions() > before, timeout, "the tracker's subscription")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-3000:] for p in sorted(self.logdir.glob("tracker-*"))
        )

    def wait(self, cond: Callable[[], Any], timeout: float, what: str) -> Any:
        """``wait_until``, but a tracker that died fails the test at once with its log."""

        def check() -> Any:
            if not self.alive():
                pytest.fail(f"the tracker exited while waiting for {what}:\n{self.log_text()}")
            return cond()

        return wait_until(check, timeout, what)

    def mqtt_pid(self, timeout: float = 30) -> int:
        """The pid of the tracker's MQTT process (``tracker.ingest.netproc``)."""
        assert self.proc is not None

        def find() -> int | None:
            for pid in children(self.proc.pid):  # type: ignore[union-attr]
                if b"tracker.ingest.netproc" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            return None

        return int(self.wait(find, timeout, "the tracker's MQTT process"))

    def kill9(self) -> None:
        """SIGKILL the tracker; its MQTT process must leave on its own (its stdin closed)."""
        assert self.proc is not None and self.alive()
        net = self.mqtt_pid()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        wait_until(lambda: gone(net), 15, "the killed tracker's MQTT process to leave")

    def stop(self) -> int | None:
        """SIGTERM and wait; the exit code (None when it was not running)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                pytest.fail(f"the tracker ignored SIGTERM:\n{self.log_text()}")
        return self.proc.returncode


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the tracker's SQLite ledger (WAL: safe while the tracker writes)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def counters(db: Path) -> dict[str, int]:
    try:
        return dict(query(db, "SELECT name, value FROM counters"))  # type: ignore[arg-type]
    except sqlite3.OperationalError:
        return {}


def event_rows(db: Path) -> int:
    return int(query(db, "SELECT count(*) FROM events")[0][0])


class EventPublisher:
    """Stands in for a controller: makes signed events (``make_event``), each once, and
    publishes them at QoS 1 through the broker with paho.

    ``resend``: behave like the controller's outbox: after a reconnect, or when no ack
    came for ``resend_s``, publish again, byte for byte, everything above the highest seq
    the tracker's signed ``P/ack`` covers. Without it every event is published once and
    only the broker's session can get it to the tracker."""

    def __init__(
        self,
        mq: Mosquitto,
        key: bytes,
        *,
        count: int,
        boot: int = 1,
        rate: float = 2000.0,
        resend: bool = False,
        resend_s: float = 2.0,
    ) -> None:
        self.key, self.count, self.boot, self.rate = key, count, boot, rate
        self.resend, self.resend_s = resend, resend_s
        self.payloads: dict[int, tuple[str, bytes]] = {}
        self.acked = 0
        self.published = 0  # publish calls, resends included
        self.made = 0
        self._rewind = threading.Event()
        self._stop = threading.Event()
        self._last_progress = time.monotonic()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"controller-stand-in-{os.getpid()}-{boot}",
            clean_session=False,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.reconnect_delay_set(0.1, 1.0)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", mq.port, keepalive=10)
        self.client.loop_start()
        self.thread = threading.Thread(target=self._run, name="publisher", daemon=True)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe(f"ironroom/v1/{SITE}/{ROOM}/ack", qos=1)
        self._rewind.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            ack = decode_ack(self.key, msg.topic, bytes(msg.payload))
        except ProtocolError:
            return
        if ack.boot == self.boot and ack.seq > self.acked:
            self.acked = ack.seq
            self._last_progress = time.monotonic()

    def event(self, seq: int) -> tuple[str, bytes]:
        if seq not in self.payloads:
            state = "open" if seq % 2 else "closed"
            self.payloads[seq] = make_event(
                self.key, site=SITE, room=ROOM, controller=CONTROLLER, boot=self.boot, seq=seq,
                ts=format_ts(datetime.now(UTC)), type="sensor.changed",
                data={"point": "window:w1", "kind": "window", "state": state},
            )  # fmt: skip
            self.made = max(self.made, seq)
        return self.payloads[seq]

    def start(self) -> None:
        wait_until(self.client.is_connected, 10, "the publisher to connect")
        self.thread.start()

    def _run(self) -> None:
        nxt = 1
        started = time.monotonic()
        sent_now = 0
        while not self._stop.is_set():
            if self.resend and (
                self._rewind.is_set()
                or (self.acked < nxt - 1 and time.monotonic() - self._last_progress > self.resend_s)
            ):
                self._rewind.clear()
                nxt = min(nxt, self.acked + 1)
                self._last_progress = time.monotonic()
            if nxt > self.count or not self.client.is_connected():
                if not self.resend and nxt > self.count:
                    return
                self._stop.wait(0.01)
                continue
            topic, payload = self.event(nxt)
            self.client.publish(topic, payload, qos=1)
            self.published += 1
            sent_now += 1
            nxt += 1
            ahead = sent_now / self.rate - (time.monotonic() - started)
            if ahead > 0:
                self._stop.wait(ahead)

    def stop(self) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(10)
        self.client.disconnect()
        self.client.loop_stop()
