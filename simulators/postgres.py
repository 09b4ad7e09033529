"""A throwaway PostgreSQL cluster on 127.0.0.1, for tests, benchmarks and trying things out.

It uses the Debian server binaries (``/usr/lib/postgresql/<version>/bin``, package
``postgresql``, which ``make install`` installs): ``initdb`` in a temporary folder of its
own, the server on a free loopback port with its unix sockets in that folder, and trust
authentication for 127.0.0.1 only. :meth:`PostgresCluster.create_database` gives a fresh
database and its ``postgresql://USER@127.0.0.1:PORT/DB`` URL; :meth:`PostgresCluster.stop`
stops the server and removes the folder.

PostgreSQL refuses to run as root. Run as root, the cluster belongs to an unprivileged
user: ``$IRONROOM_PG_USER`` if set, else ``postgres`` (the Debian package's own user), else
``nobody``; the folder is made and owned by that user.

``python -m simulators.postgres`` starts one, prints its URL and runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from simulators.broker import free_port

log = logging.getLogger(__name__)

INSTALL_HINT = "run `make install` (or `apt-get install postgresql`)"
SUPERUSER = "ironroom"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresError(RuntimeError):
    """The server binaries are missing, or the cluster does not start."""


def _version_key(path: str) -> tuple[int, ...]:
    ver = Path(path).parent.name
    return tuple(int(p) for p in re.findall(r"\d+", ver)) or (0,)


def find_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/*/bin`` with ``initdb`` and ``postgres``, else the
    folder of an ``initdb`` on ``PATH``."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for folder in candidates:
        d = Path(folder)
        if all(os.access(d / exe, os.X_OK) for exe in ("initdb", "postgres")):
            return d
    raise PostgresError(
        f"the PostgreSQL server (initdb, postgres) is not installed: {INSTALL_HINT}"
    )


def _run_as() -> pwd.struct_passwd | None:
    """Whom to run the server as (None: the current user, who is not root)."""
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get("IRONROOM_PG_USER")
    for name in [wanted] if wanted else ["postgres", "nobody"]:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresError(
        f"PostgreSQL does not run as root and there is no user {wanted or 'postgres or nobody'}"
        " to run it as"
    )


class PostgresCluster:
    """One throwaway cluster. Use as a context manager, or :meth:`start` and :meth:`stop`."""

    def __init__(
        self,
        *,
        parent: Path | None = None,
        durable: bool = False,
        settings: dict[str, str] | None = None,
    ) -> None:
        """``parent``: where the temporary folder goes (default: the system's temp folder;
        it must be reachable by the server's user). ``durable``: keep ``fsync`` on (off by
        default: a throwaway cluster needs no crash safety, and tests run faster).
        ``settings``: more ``postgresql.conf`` lines, name to value."""
        self.bindir = find_bindir()
        self.user = _run_as()
        self.durable = durable
        self.settings = dict(settings or {})
        self.dir = Path(tempfile.mkdtemp(prefix="ironroom-pg-", dir=parent))
        if self.user is not None:
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.data = self.dir / "data"
        self.logfile = self.dir / "server.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._initdb()

    # -- URLs ------------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    # -- running things as the cluster's user ----------------------------------------

    def _popen_kw(self) -> dict[str, Any]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        kw: dict[str, Any] = {"cwd": self.dir, "env": env}
        if self.user is not None:
            env["HOME"] = str(self.dir)
            env["USER"] = env["LOGNAME"] = self.user.pw_name
            kw.update(user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[])
        return kw

    def _initdb(self) -> None:
        cmd = [
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, **self._popen_kw())
        if done.returncode != 0:
            self._remove()
            raise PostgresError(f"initdb failed: {(done.stderr or done.stdout).strip()[-1000:]}")
        # Trust, and only over TCP from 127.0.0.1: no unix-socket or IPv6 logins at all.
        (self.data / "pg_hba.conf").write_text(
            "# throwaway test cluster\nhost all all 127.0.0.1/32 trust\n"
        )

    def _write_config(self) -> None:
        lines = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.dir}'",
            "max_connections": "100",
            "logging_collector": "off",
        }
        if not self.durable:
            lines.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        lines.update(self.settings)
        (self.data / "postgresql.auto.conf").write_text(
            "".join(f"{k} = {v}\n" for k, v in lines.items())
        )

    # -- life cycle ----------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        """Start the server on a free loopback port and wait until it accepts connections
        (another process taking the port first: tried again on another)."""
        for attempt in range(3):
            self.port = free_port()
            self._write_config()
            with open(self.logfile, "ab") as logf:
                self.proc = subprocess.Popen(
                    [str(self.bindir / "postgres"), "-D", str(self.data)],
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    **self._popen_kw(),
                )
            try:
                self._wait_ready(timeout)
                return
            except PostgresError:
                self._stop_server()
                if attempt < 2 and "could not bind" in self._log_tail():
                    continue
                raise

    def _log_tail(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        last = ""
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise PostgresError(
                    f"postgres exited with code {self.proc.returncode}: {self._log_tail()}"
                )
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                last = str(exc).strip()
            if time.monotonic() > deadline:
                raise PostgresError(
                    f"postgres did not accept connections on 127.0.0.1:{self.port} within "
                    f"{timeout:g} s ({last}): {self._log_tail()}"
                )
            time.sleep(0.05)

    def create_database(self, name: str) -> str:
        """A new empty database (UTF-8); returns its URL."""
        import psycopg
        from psycopg import sql

        if not _NAME.match(name):
            raise ValueError(f"not a plain database name: {name!r}")
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever still uses it."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def stop(self) -> None:
        """Stop the server and remove the cluster's folder."""
        with self._lock:
            self._stop_server()
            self._remove()

    def _stop_server(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        # SIGINT: fast shutdown (clients disconnected); SIGQUIT: immediate; then SIGKILL.
        for sig, wait in ((signal.SIGINT, 15.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                log.warning("postgres (pid %d) still running after %s", proc.pid, sig.name)

    def _remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        if self.proc is None:
            try:
                self.start()
            except BaseException:
                self.stop()
                raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m simulators.postgres",
        description="run a throwaway PostgreSQL cluster on 127.0.0.1 until Ctrl-C",
    )
    p.add_argument("--database", default="ironroom", help="database to create")
    p.add_argument("--durable", action="store_true", help="keep fsync on (for benchmarks)")
    args = p.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with PostgresCluster(durable=args.durable) as pg:
            print(pg.create_database(args.database), flush=True)
            while not stop.is_set() and pg.proc is not None and pg.proc.poll() is None:
                stop.wait(0.5)
    except PostgresError as exc:
        print(f"postgres: {exc}", flush=True)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
