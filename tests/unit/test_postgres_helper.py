"""simulators.postgres without a server: finding the binaries, and saying what to install
when there are none."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators import postgres
from simulators.postgres import PostgresError, find_bindir


def _fake_bindir(root: Path, version: str) -> Path:
    d = root / version / "bin"
    d.mkdir(parents=True)
    for exe in ("initdb", "postgres"):
        (d / exe).write_text("#!/bin/sh\n")
        (d / exe).chmod(0o755)
    return d


def test_a_missing_server_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)
    with pytest.raises(PostgresError, match=r"make install.*apt-get install postgresql"):
        find_bindir()


def test_the_newest_debian_version_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dirs = [_fake_bindir(tmp_path, v) for v in ("9.6", "15", "16")]
    (tmp_path / "17" / "bin").mkdir(parents=True)  # a client-only install: no server
    monkeypatch.setattr(
        postgres.glob, "glob", lambda pattern: [str(d) for d in dirs] + [str(tmp_path / "17/bin")]
    )
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)
    assert find_bindir() == dirs[2]


def test_as_root_the_server_runs_as_an_unprivileged_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IRONROOM_PG_USER", raising=False)
    monkeypatch.setattr(postgres.os, "geteuid", lambda: 0)
    user = postgres._run_as()
    assert user is not None and user.pw_uid != 0
    monkeypatch.setenv("IRONROOM_PG_USER", "no-such-user-here")
    with pytest.raises(PostgresError, match="no-such-user-here"):
        postgres._run_as()
    monkeypatch.setattr(postgres.os, "geteuid", lambda: 1000)
    assert postgres._run_as() is None, "not root: runs as whoever runs it"
