from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.pcsc_fixtures import pcscd, pcscd_service  # noqa: F401  (fixtures)
from tests.integration.pg_fixtures import postgres_cluster, postgres_url  # noqa: F401
from tests.integration.room_fixtures import sim_room  # noqa: F401
from tests.support import Mosquitto


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
