"""The shipped configuration examples load, and say what they claim."""

from __future__ import annotations

from pathlib import Path

from firmware_bridge.config import load_config
from simulators.room import load_sim_config

ROOT = Path(__file__).resolve().parents[2]


def test_pi_example_loads_with_every_part() -> None:
    cfg = load_config(ROOT / "deploy/examples/room.toml")
    assert cfg.pin_factory == "lgpio"
    assert cfg.mqtt.broker.startswith("mqtts://")
    assert cfg.key_file == ROOT / "deploy/examples/controller.key"
    assert {i.kind for i in cfg.inputs} == {
        "door",
        "window",
        "cabinet",
        "tamper",
        "motion",
        "panic",
        "smoke",
        "water",
    }
    assert [lk.point for lk in cfg.locks] == ["lock:c1", "lock:c2"]
    assert cfg.readers == ["cabinet:c1", "cabinet:c2", "portal", "desk", "cabinet:c1"]
    assert not cfg.allow_uid_only


def test_sim_example_is_the_builtin_room(tmp_path: Path) -> None:
    shipped = (ROOT / "deploy/examples/room-sim.toml").read_text()
    builtin = (ROOT / "simulators/room-sim.toml").read_text()
    assert shipped == builtin
    cfg = load_sim_config(ROOT / "deploy/examples/room-sim.toml", tmp_path)
    assert cfg.data_dir == tmp_path.resolve()
    assert cfg.pin_factory == "mock"
    assert all(r.port == "sim" for r in cfg.rfid)


def test_tracker_example_loads_with_every_part() -> None:
    from tracker.config import load_tracker_config
    from tracker.domain.levels import Level

    cfg = load_tracker_config(ROOT / "deploy/examples/tracker.toml")
    assert cfg.mqtt.broker == "mqtts://broker.example.internal:8883"
    assert cfg.mqtt.ca_file == ROOT / "deploy/examples/ca.crt"
    assert cfg.db_url == "sqlite:////var/lib/ironroom/tracker.db"
    assert cfg.loan_days[Level.TOP_SECRET] is None and cfg.loan_days[Level.SECRET] == 7
    assert cfg.reorder_window_s == 30 and cfg.session_s == 120
    # the calendar is the bridge's: the same file keys give the same hours
    room = load_config(ROOT / "deploy/examples/room.toml")
    assert cfg.calendar.weekly == room.calendar.weekly
    assert cfg.calendar.holidays == room.calendar.holidays
    assert cfg.policy_calendar()["hours"]["mon"] == ["08:30-12:00", "13:30-17:30"]


def test_tracker_sim_example_has_the_simulated_rooms_hours(tmp_path: Path) -> None:
    from tracker.config import load_tracker_config

    cfg = load_tracker_config(ROOT / "deploy/examples/tracker-sim.toml").check_files()
    room = load_sim_config(None, tmp_path)
    assert cfg.calendar == room.calendar
    assert cfg.mqtt.broker == room.mqtt.broker
