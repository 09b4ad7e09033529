"""The durable outbox on a real SQLite file: boot counter, event order with alarms apart,
acknowledgements, settings and replay protection, across reopening."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_bridge.outbox import Outbox, OutboxError

TOPIC = "ironroom/v1/hq/room-101/evt/sensor"
ALARM_TOPIC = "ironroom/v1/hq/room-101/evt/alarm"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "outbox.sqlite"


@pytest.fixture
def box(path: Path) -> Iterator[Outbox]:
    ob = Outbox(path)
    yield ob
    ob.close()


def row(boot: int, seq: int, alarm: bool = False) -> tuple[int, int, str, bytes, bool]:
    return (boot, seq, ALARM_TOPIC if alarm else TOPIC, f"{boot}:{seq}".encode(), alarm)


def ids(stored: list) -> list[tuple[int, int]]:  # type: ignore[type-arg]
    return [(s.boot, s.seq) for s in stored]


def test_next_boot_counts_across_reopening(path: Path):
    first = Outbox(path)
    assert [first.next_boot(), first.next_boot()] == [1, 2]
    first.close()
    second = Outbox(path)
    assert second.next_boot() == 3
    second.close()
    assert path.is_file()


def test_append_then_after_in_creation_order_with_alarms_apart(box: Outbox):
    # (boot, seq, alarm) in the order the events were made
    made = [(1, 1, False), (1, 2, True), (1, 3, False), (2, 1, False), (2, 2, True), (2, 3, False)]
    assert box.append([row(b, s, a) for b, s, a in made[:3]]) == 3
    assert box.append([row(b, s, a) for b, s, a in made[3:]]) == 3
    alarms = box.after(0, alarm=True)
    rest = box.after(0, alarm=False)
    assert ids(alarms) == [(1, 2), (2, 2)]
    assert ids(rest) == [(1, 1), (1, 3), (2, 1), (2, 3)]
    assert all(s.alarm for s in alarms) and not any(s.alarm for s in rest)
    assert [s.topic for s in alarms] == [ALARM_TOPIC] * 2
    assert [s.payload for s in rest] == [b"1:1", b"1:3", b"2:1", b"2:3"]
    assert [s.rowid for s in rest] == sorted(s.rowid for s in rest)
    assert ids(box.all()) == [(1, 2), (2, 2), (1, 1), (1, 3), (2, 1), (2, 3)]


def test_after_pages_by_rowid(box: Outbox):
    box.append([row(1, s) for s in range(1, 8)])
    page1 = box.after(0, alarm=False, limit=3)
    page2 = box.after(page1[-1].rowid, alarm=False, limit=3)
    page3 = box.after(page2[-1].rowid, alarm=False, limit=3)
    assert [ids(p) for p in (page1, page2, page3)] == [
        [(1, 1), (1, 2), (1, 3)],
        [(1, 4), (1, 5), (1, 6)],
        [(1, 7)],
    ]
    assert box.after(page3[-1].rowid, alarm=False) == []


def test_append_nothing(box: Outbox):
    assert box.append([]) == 0
    assert box.depth() == 0


def test_a_duplicate_event_id_is_refused_and_the_batch_rolled_back(box: Outbox):
    box.append([row(1, 1)])
    with pytest.raises(OutboxError):
        box.append([row(1, 2), row(1, 1)])
    assert ids(box.all()) == [(1, 1)]
    assert box.append([row(1, 2)]) == 1  # the outbox still works afterwards


@pytest.mark.parametrize(
    ("ack", "gone", "left"),
    [
        ((1, 0), 0, [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)]),
        ((1, 2), 2, [(1, 3), (2, 1), (2, 2)]),
        ((1, 3), 3, [(2, 1), (2, 2)]),
        ((1, 99), 3, [(2, 1), (2, 2)]),
        ((2, 1), 1, [(1, 1), (1, 2), (1, 3), (2, 2)]),
        ((3, 99), 0, [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)]),
    ],
)
def test_ack_prunes_only_its_boot_up_to_seq(
    box: Outbox, ack: tuple[int, int], gone: int, left: list[tuple[int, int]]
):
    box.append([row(1, 1), row(1, 2, alarm=True), row(1, 3), row(2, 1, alarm=True), row(2, 2)])
    assert box.ack(*ack) == gone
    assert sorted(ids(box.all())) == left
    assert box.depth() == len(left)


def test_ack_is_idempotent(box: Outbox):
    box.append([row(1, 1), row(1, 2)])
    assert box.ack(1, 1) == 1
    assert box.ack(1, 1) == 0
    assert ids(box.all()) == [(1, 2)]


def test_depth_counts_both_kinds(box: Outbox):
    assert box.depth() == 0
    box.append([row(1, 1), row(1, 2, alarm=True), row(1, 3)])
    assert box.depth() == 3


def test_rowid_range(box: Outbox):
    assert box.rowid_range() == (0, 0)
    box.append([row(1, 1), row(1, 2, alarm=True), row(1, 3)])
    lo, hi = box.rowid_range()
    assert hi - lo == 2
    assert [s.rowid for s in box.all()] == [lo + 1, lo, hi]
    box.ack(1, 1)
    assert box.rowid_range() == (lo + 1, hi)
    box.ack(1, 3)
    assert box.rowid_range() == (0, 0)


def test_events_survive_reopening(path: Path):
    box = Outbox(path)
    box.append([row(1, 1), row(1, 2, alarm=True)])
    box.ack(1, 1)
    box.close()
    again = Outbox(path)
    try:
        assert ids(again.all()) == [(1, 2)]
        assert again.all()[0].payload == b"1:2"
    finally:
        again.close()


@pytest.mark.parametrize(
    "value",
    [True, 0, "armed", {"c1": ["04A1B2C3D4E5F6"], "hours": {"mon": []}}, [1, "两"], None],
)
def test_get_put_round_trip(path: Path, value: object):
    box = Outbox(path)
    box.put("setting", value)
    assert box.get("setting", "unset") == value
    box.close()
    again = Outbox(path)
    try:
        assert again.get("setting", "unset") == value
    finally:
        again.close()


def test_get_default_and_overwrite(box: Outbox):
    assert box.get("armed") is None
    assert box.get("armed", False) is False
    box.put("armed", True)
    box.put("armed", False)
    assert box.get("armed") is False


def test_settings_do_not_disturb_the_boot_counter(box: Outbox):
    box.put("policy", {"x": 1})
    assert box.next_boot() == 1
    box.put("policy", {"x": 2})
    assert box.next_boot() == 2


def test_remember_command_refuses_a_replay(box: Outbox):
    now = 1_800_000_000.0
    assert box.remember_command("id-1", expires=now + 30, now=now) is True
    assert box.remember_command("id-1", expires=now + 30, now=now + 1) is False
    assert box.remember_command("id-2", expires=now + 30, now=now + 1) is True


def test_remembered_commands_survive_reopening(path: Path):
    now = 1_800_000_000.0
    box = Outbox(path)
    assert box.remember_command("id-1", expires=now + 30, now=now)
    box.close()
    again = Outbox(path)
    try:
        assert again.remember_command("id-1", expires=now + 30, now=now + 10) is False
    finally:
        again.close()


def test_a_command_is_remembered_until_well_after_it_expired(box: Outbox):
    now = 1_800_000_000.0
    assert box.remember_command("id-1", expires=now + 30, now=now)
    # still refused an hour after expiry, when its own expiry refuses it anyway
    assert box.remember_command("id-1", expires=now + 30, now=now + 30 + 3600) is False


def test_an_unusable_file_is_an_outbox_error(tmp_path: Path):
    not_a_db = tmp_path / "outbox.sqlite"
    not_a_db.write_bytes(b"this is not a database file" * 100)
    with pytest.raises(OutboxError):
        Outbox(not_a_db)


def test_appends_are_committed_for_other_readers(box: Outbox, path: Path):
    box.append([row(1, 1), row(1, 2)])
    other = sqlite3.connect(path)
    try:
        assert other.execute("SELECT count(*) FROM events").fetchone()[0] == 2
    finally:
        other.close()


# -- one transaction, errors, durability ------------------------------------------------


def _fail_meta_writes(box: Outbox, key: str) -> None:
    """Make SQLite itself refuse to write setting ``key`` (as a full disk would refuse)."""
    box._db.execute(
        f"CREATE TEMP TRIGGER refuse_{key} BEFORE INSERT ON meta WHEN NEW.key = '{key}' "
        "BEGIN SELECT RAISE(ABORT, 'disk refused the write'); END"
    )


def test_commit_writes_rows_and_settings_in_one_transaction(box: Outbox, path: Path):
    assert box.commit([row(1, 1), row(1, 2, alarm=True)], {"alarms": [{"id": "a1"}]}) == 2
    assert ids(box.all()) == [(1, 2), (1, 1)] and box.get("alarms") == [{"id": "a1"}]
    _fail_meta_writes(box, "alarms")
    with pytest.raises(OutboxError, match="disk refused"):
        box.commit([row(1, 3, alarm=True)], {"alarms": [{"id": "a1"}, {"id": "a2"}]})
    # neither the event nor the setting: the rows were rolled back with it
    assert ids(box.all()) == [(1, 2), (1, 1)] and box.get("alarms") == [{"id": "a1"}]
    assert box.commit([row(1, 3)], {"armed": True}) == 1  # still usable
    other = sqlite3.connect(path)
    try:
        assert other.execute("SELECT count(*) FROM events").fetchone()[0] == 3
    finally:
        other.close()


def test_every_sqlite_failure_is_an_outbox_error(box: Outbox):
    box.append([row(1, 1)])
    _fail_meta_writes(box, "armed")
    with pytest.raises(OutboxError):
        box.put("armed", True)
    with pytest.raises(OutboxError):  # larger than SQLite's INTEGER: not an OverflowError
        box.ack(1, 2**63)
    with pytest.raises(OutboxError):
        box.remember_command("id-1", expires=float("nan"), now=2**70)
    box.close()
    for call in (
        lambda: box.get("armed"),
        box.depth,
        lambda: box.after(0, alarm=False),
        lambda: box.remember_command("id-2", 1.0, 0.0),
        lambda: box.ack(1, 1),
        box.rowid_range,
    ):
        with pytest.raises(OutboxError):
            call()
    assert issubclass(OutboxError, OSError)


def test_a_full_disk_is_an_outbox_error_and_nothing_is_half_written(box: Outbox):
    box.append([row(1, 1)])
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full from now on
    big = [(1, s, TOPIC, bytes(3000), False) for s in range(2, 12)]
    with pytest.raises(OutboxError, match="full"):
        box.commit(big, {"alarms": ["x"]})
    assert ids(box.all()) == [(1, 1)] and box.get("alarms") is None
    box._db.execute("PRAGMA max_page_count = 1073741823")  # space again
    assert box.commit(big, {"alarms": ["x"]}) == 10
    assert box.depth() == 11 and box.get("alarms") == ["x"]


def test_highest_seq_of_each_boot_outlives_the_pruned_rows(path: Path):
    box = Outbox(path)
    box.append([row(1, 1), row(1, 2), row(2, 1)])
    box.append([row(2, 2, alarm=True), row(2, 3)])
    assert box.highest_seqs() == {1: 2, 2: 3}
    box.ack(1, 2)
    box.ack(2, 3)
    assert box.depth() == 0
    box.close()
    again = Outbox(path)
    try:
        assert again.highest_seqs() == {1: 2, 2: 3}
    finally:
        again.close()


@pytest.mark.parametrize(("durable", "level"), [(True, 2), (False, 0)])
def test_a_durable_outbox_runs_with_synchronous_full(path: Path, durable: bool, level: int):
    box = Outbox(path, durable=durable)
    try:
        assert box.synchronous == level  # 2 = FULL: a commit is fsync'd before it returns
        assert box._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        box.close()
