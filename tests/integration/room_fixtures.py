"""The simulated room with the real bridge in this process, on a test's own broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from firmware_bridge.config import Config
from protocol.envelope import make_command
from simulators.clock import SimClock
from simulators.room import SimulatedRoom, load_sim_config
from tests.support import Mosquitto

FRIDAY_10 = "2026-11-27T10:00:00+08:00"


def room_config(tmp_path: Path, broker_url: str, *, resend_s: float = 1.0) -> Config:
    """The built-in example room on ``broker_url``; the outbox is resent after
    ``resend_s`` without an ack (a minute in production, short here)."""
    cfg = load_sim_config(None, tmp_path / "data").with_overrides(broker=broker_url)
    return replace(cfg, mqtt=replace(cfg.mqtt, resend_s=resend_s))


def signed_command(
    cfg: Config,
    key: bytes,
    type_: str,
    data: dict[str, Any],
    *,
    now: datetime,
    lifetime: float = 30,
    cid: str | None = None,
    name: str | None = None,
) -> tuple[str, bytes, str]:
    cid = cid or str(uuid.uuid4())
    topic, payload = make_command(
        key,
        site=cfg.site,
        room=cfg.room,
        id=cid,
        issued=now,
        expires=now + timedelta(seconds=lifetime),
        type=type_,
        data=data,
        name=name,
    )
    return topic, payload, cid


@pytest.fixture
def sim_room(tmp_path: Path, broker: Mosquitto) -> Iterator[SimulatedRoom]:
    """The built-in example room, bridge started, on a Friday at 10:00 Beijing time."""
    clock = SimClock(datetime.fromisoformat(FRIDAY_10))
    room = SimulatedRoom(room_config(tmp_path, broker.url), clock=clock, badges=False)
    room.start()
    try:
        yield room
    finally:
        room.close()
