"""A throwaway PostgreSQL cluster for the session and a fresh database for each test.

The cluster is :class:`simulators.postgres.PostgresCluster` (Debian's ``postgresql``,
installed by ``make install``); a machine without it fails these tests with what to
install: they never skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from simulators.postgres import PostgresCluster, PostgresError


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    try:
        cluster = PostgresCluster()
    except PostgresError as exc:
        pytest.fail(str(exc))
    try:
        cluster.start()
    except PostgresError as exc:
        cluster.stop()
        pytest.fail(str(exc))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """``postgresql://ironroom@127.0.0.1:PORT/DB``: an empty database of this test's own."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    url = postgres_cluster.create_database(name)
    try:
        yield url
    finally:
        postgres_cluster.drop_database(name)
