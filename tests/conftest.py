from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.pcsc_fixtures import pcscd  # noqa: F401  (fixtures for every test)
from tests.integration.pg_fixtures import postgres_cluster, postgres_url  # noqa: F401
from tests.integration.room_fixtures import sim_room  # noqa: F401
from tests.support import Mosquitto


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist (make test runs two workers), every test that uses the vpcd readers,
    through the ``pcscd`` fixture, runs on the same worker: there is one pair of readers
    per machine, held by one session at a time (tests/integration/pcsc_fixtures.py)."""
    for item in items:
        if "pcscd" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("vpcd"))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto of this test's own, on a free loopback port."""
    mq = Mosquitto(tmp_path / "mosquitto")
    mq.start()
    try:
        yield mq
    finally:
        mq.stop()


@pytest.fixture
def key() -> bytes:
    return bytes(range(32))
