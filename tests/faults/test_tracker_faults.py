"""Faults for real on the tracker's side: `ironroom tracker` killed with SIGKILL mid-stream
and started again, and the broker stopped and started while events flow. Events are made
and signed once (protocol.envelope.make_event) by a stand-in controller publishing through
a real Mosquitto; afterwards the events table is counted per (boot, seq)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from protocol.signing import parse_key
from tests.support import Mosquitto, wait_until
from tests.tracker_support import (
    CLIENT_ID,
    Cli,
    EventPublisher,
    TrackerProcess,
    broker_log,
    counters,
    event_rows,
    gone,
    query,
    start_broker,
    write_config,
    write_key,
)

pytestmark = pytest.mark.faults


def _room(tmp_path: Path, mq: Mosquitto, request: pytest.FixtureRequest):
    db = tmp_path / "ledger.db"
    url = f"sqlite:///{db}"
    cli = Cli(url)
    key_file = write_key(tmp_path / "controller.key")
    cli.ok("ledger", "init")
    cli.ok("ledger", "room", "add", "hq", "room-101", "--controller", "room-101-ctl",
           "--key-file", str(key_file))  # fmt: skip
    # a long heartbeat: the stand-in sends none, and silence is not what is tested here
    cfg = write_config(
        tmp_path / "tracker.toml",
        mq,
        url,
        tracker={"heartbeat_s": 600, "reorder_window_s": 30, "batch_max": 500},
    )
    tracker = TrackerProcess(cfg, mq, url, tmp_path)
    request.addfinalizer(tracker.stop)
    return cli, db, parse_key(key_file.read_text()), tracker


def _exactly_once(cli: Cli, db: Path, pub: EventPublisher, n: int) -> dict[str, int]:
    """Every event of boot 1 in the events table once, seq 1..n, byte for byte what was
    published, applied; nothing refused; the chain whole."""
    dup = query(db, "SELECT boot, seq, count(*) FROM events GROUP BY boot, seq HAVING count(*) > 1")
    assert dup == [], f"events stored twice: {dup[:5]}"
    rows = query(db, "SELECT boot, seq, applied, payload FROM events ORDER BY boot, seq")
    assert [(b, s) for b, s, _, _ in rows] == [(1, s) for s in range(1, n + 1)], "1..n, no gap"
    assert all(applied for _, _, applied, _ in rows)
    assert all(bytes(p) == pub.payloads[s][1] for _, s, _, p in rows), "stored byte for byte"
    assert query(db, "SELECT high, closed FROM boots") == [(n, 0)]
    got = counters(db)
    assert got.get("applied") == n, got  # each applied once: the counter is in the same commit
    assert not [k for k in got if k.startswith("refused")], got
    assert query(db, "SELECT count(*) FROM security") == [(0,)]
    # no gap was ever skipped, nothing alarmed (the stream is sensor changes in a window)
    assert query(db, "SELECT cause FROM alarms") == []
    events = cli.rows("ledger", "events", "--room", "hq/room-101")
    assert [e["id"] for e in events] == [f"room-101-ctl:1:{s}" for s in range(1, n + 1)]
    res = cli.run("audit", "verify")
    assert res.returncode == 0, res.stderr
    return got


def _streaming(tmp_path: Path, request: pytest.FixtureRequest, n: int):
    """A tracker running, and a stand-in controller publishing ``n`` events at 800/s, each
    exactly once: only the tracker's persistent session (and its PUBACK after commit) can
    bring what it had not committed back to it."""
    mq = start_broker(tmp_path / "mosquitto")
    request.addfinalizer(mq.stop)
    cli, db, key, tracker = _room(tmp_path, mq, request)
    tracker.start()
    pub = EventPublisher(mq, key, count=n, rate=800, resend=False)
    request.addfinalizer(pub.stop)
    pub.start()
    return cli, db, tracker, pub


def test_tracker_killed_twice_mid_stream_applies_every_event_once(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    n = 20_000
    cli, db, tracker, pub = _streaming(tmp_path, request, n)

    kills = []
    for threshold in (n // 4, n // 2):
        tracker.wait(lambda t=threshold: event_rows(db) >= t, 60, f"{threshold} events stored")
        tracker.kill9()
        kills.append((event_rows(db), pub.published))
        tracker.start()
    assert all(published < n for _, published in kills), ("killed mid-stream", kills)

    tracker.wait(lambda: event_rows(db) >= n, 120, f"all {n} events stored")
    wait_until(lambda: not pub.thread.is_alive(), 30, "the publisher to finish")
    assert pub.published == n, "each event was published once"
    tracker.wait(lambda: pub.acked == n, 30, "the tracker's signed ack of the last event")
    assert tracker.stop() == 0
    got = _exactly_once(cli, db, pub, n)
    assert tracker.log_text().count("(session present: True)") == 2, "the session was kept"
    # What was committed came again only if its PUBACK was lost with the killed tracker:
    # at most a batch (500) per kill. Without PUBACKs the broker would send it all again.
    assert got.get("duplicate", 0) <= 2 * 500, got


def test_mqtt_process_killed_mid_stream_is_restarted_and_every_event_applied_once(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The tracker's MQTT client runs in a process of its own; SIGKILL it twice while
    events flow. The tracker starts it again, and the broker redelivers what the tracker
    had not acknowledged."""
    n = 8_000
    cli, db, tracker, pub = _streaming(tmp_path, request, n)
    for threshold in (n // 4, n // 2):
        tracker.wait(lambda t=threshold: event_rows(db) >= t, 60, f"{threshold} events stored")
        net = tracker.mqtt_pid()
        os.kill(net, signal.SIGKILL)
        wait_until(lambda p=net: gone(p), 10, "the MQTT process to die")
        tracker.wait(lambda p=net: tracker.mqtt_pid() != p, 30, "a new MQTT process")
    assert pub.published < n, "killed mid-stream"
    tracker.wait(lambda: event_rows(db) >= n, 120, f"all {n} events stored")
    wait_until(lambda: not pub.thread.is_alive(), 30, "the publisher to finish")
    tracker.wait(lambda: pub.acked == n, 30, "the tracker's signed ack of the last event")
    assert tracker.alive(), "the tracker itself carried on"
    net = tracker.mqtt_pid()
    assert tracker.stop() == 0
    assert gone(net), "the MQTT process leaves with the tracker"
    got = _exactly_once(cli, db, pub, n)
    assert got.get("duplicate", 0) <= 2 * 500, got  # as above: the PUBACKs reached the broker
    log = tracker.log_text()
    assert log.count("the MQTT process ended (exit -9); starting it again") == 2, log


def test_broker_stopped_and_started_while_events_flow(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    n = 12_000
    mq = start_broker(tmp_path / "mosquitto")  # no persistence: the broker forgets all
    request.addfinalizer(mq.stop)
    cli, db, key, tracker = _room(tmp_path, mq, request)
    tracker.start()
    # This stand-in resends like the controller's outbox: from the tracker's last ack.
    pub = EventPublisher(mq, key, count=n, rate=800, resend=True, resend_s=2.0)
    request.addfinalizer(pub.stop)
    pub.start()

    tracker.wait(lambda: event_rows(db) >= n // 3, 60, f"{n // 3} events stored")
    subscribed = broker_log(mq).count(f"{CLIENT_ID} 1 ironroom/v1/+/+/status")
    mq.stop()
    at_stop = (event_rows(db), pub.made)
    assert at_stop[1] < n, "stopped mid-stream"
    tracker.wait(
        lambda: "disconnected from the broker" in tracker.log_text(), 30, "the tracker to notice"
    )
    wait_until(lambda: not pub.client.is_connected(), 30, "the publisher to notice")
    stored_while_down = event_rows(db)
    mq.start()
    tracker.wait(
        lambda: broker_log(mq).count(f"{CLIENT_ID} 1 ironroom/v1/+/+/status") > subscribed,
        60,
        "the tracker to reconnect and subscribe again",
    )
    tracker.wait(lambda: event_rows(db) >= n, 120, f"all {n} events stored")
    tracker.wait(lambda: pub.acked == n, 60, "the tracker's signed ack of the last event")
    assert tracker.stop() == 0
    assert event_rows(db) > stored_while_down >= at_stop[0]
    assert pub.published >= n
    got = _exactly_once(cli, db, pub, n)
    # the stand-in resent what the broker lost; the tracker dropped the copies quietly
    assert pub.published > n and got.get("duplicate", 0) > 0, (pub.published, got)
