"""A Mosquitto of one's own on 127.0.0.1, for tests, benchmarks and trying things out.

It writes its own config (a free loopback port, queues that never drop QoS 1 messages,
optional TLS, passwords and persistence) into a folder it is given, and can be stopped and
started again on the same port, which is how the fault tests take the broker away.
"""

from __future__ import annotations

import getpass
import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """Mosquitto is missing, exited, or does not listen."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(
    proc: subprocess.Popen[Any] | None, name: str = "process", timeout: float = 10.0
) -> None:
    """SIGTERM, then SIGKILL if it does not go; only this one process id."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("%s (pid %d) ignored SIGTERM; killing it", name, proc.pid)
        proc.kill()
        proc.wait(5)


class MosquittoProcess:
    def __init__(
        self,
        workdir: Path,
        *,
        persistence: bool = False,
        tls: tuple[Path, Path, Path] | None = None,
        password_file: Path | None = None,
        config: str | None = None,
    ) -> None:
        """``config``: a whole Mosquitto config of one's own instead of the one made here
        (e.g. the deployed one, its paths pointed at test files); ``{port}`` and
        ``{workdir}`` in it are replaced by this broker's port and folder."""
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise BrokerError("mosquitto is not installed: apt-get install mosquitto")
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        # Run as the current user: as root, Mosquitto would switch to "mosquitto", who
        # cannot read files in a private folder.
        lines = [f"user {getpass.getuser()}", f"listener {self.port} 127.0.0.1"]
        if tls is not None:
            lines += [f"cafile {tls[0]}", f"certfile {tls[1]}", f"keyfile {tls[2]}"]
        lines += [
            "allow_anonymous false" if password_file else "allow_anonymous true",
            *([f"password_file {password_file}"] if password_file else []),
            # The default (1000) silently drops QoS 1 messages for an offline subscriber.
            "max_queued_messages 1000000",
            "max_inflight_messages 0",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {workdir}/",
            "autosave_interval 1",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if config is not None:
            text = config.replace("{port}", str(self.port)).replace("{workdir}", str(workdir))
            self.conf.write_text(text)
        else:
            self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not self.listening():
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"mosquitto did not listen on 127.0.0.1:{self.port}")
            time.sleep(0.02)

    def listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise BrokerError(f"mosquitto exited: {self.log.read_text(errors='replace')[-1000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.proc, "mosquitto")
        self.proc = None
