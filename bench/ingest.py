"""Tracker benchmark: ingest throughput, alarm latency, ledger query times.

    .venv/bin/python bench/ingest.py [--quick | --tiny] [--db postgresql://...] [--postgres]

Prints exactly one JSON line on stdout; progress and diagnostics go to stderr. Every
figure is measured in this run (bench/README.md says what each one means). The run starts
its own Mosquitto on a free 127.0.0.1 port, ``ironroom tracker`` as a process of its own
on a fresh database (an SQLite file in a temporary folder by default), simulated
controllers in processes of their own, and a bare paho subscriber as the baseline, and
stops them all before exiting.

``--db postgresql://USER@HOST/DB`` runs the same against that PostgreSQL server: the run
creates a database of its own there (``ironroom_bench_<hex>``, so the user needs
CREATEDB), and drops it at the end. ``--postgres`` starts a throwaway cluster
(``simulators.postgres``, fsync on) and does the same in it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import multiprocessing as mp
import os
import platform
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import (  # bench/ is on the path: these run as scripts
    PROJECT_DIR,
    BenchError,
    percentile,
    project_python,
    tail,
    wait_until,
)
from _common import targets as targets_of

from simulators.broker import BrokerError, MosquittoProcess, stop_process

log = logging.getLogger("bench.ingest")

SITE = "bench"
ALARM_ROOM = "alarms"
EVT_FILTER = "ironroom/v1/+/+/evt/+"

TARGETS: dict[str, tuple[str, float]] = {
    "events_per_s": (">=", 5000.0),
    "ratio": (">=", 0.5),
    "lost": ("<=", 0.0),
    "duplicated": ("<=", 0.0),
    "alarm_p99_ms_idle": ("<=", 100.0),
    "alarm_p99_ms_loaded": ("<=", 500.0),
    "where_is_ms": ("<=", 5.0),
    "holdings_ms": ("<=", 5.0),
    "overdue_ms": ("<=", 5.0),
}


@dataclass(frozen=True)
class Plan:
    """How much work each part does."""

    rooms: int
    publishers: int
    flood_per_room: int
    loaded_seconds: float
    loaded_share: float  # of the flood's sustained rate
    idle_alarms: int
    loaded_alarms: int
    alarm_every: int  # every Nth event of a stream is an alarm.raised
    docs_per_room: int
    ledger_events: int
    ledger_documents: int
    ledger_people: int
    query_calls: int


FULL = Plan(
    rooms=8,
    publishers=4,
    flood_per_room=12_500,
    loaded_seconds=20.0,
    loaded_share=0.9,
    idle_alarms=200,
    loaded_alarms=100,
    alarm_every=500,
    docs_per_room=20,
    ledger_events=1_000_000,
    ledger_documents=100_000,
    ledger_people=10_000,
    query_calls=2000,
)
QUICK = Plan(
    rooms=4,
    publishers=2,
    flood_per_room=2500,
    loaded_seconds=6.0,
    loaded_share=0.9,
    idle_alarms=40,
    loaded_alarms=30,
    alarm_every=200,
    docs_per_room=10,
    ledger_events=100_000,
    ledger_documents=10_000,
    ledger_people=1000,
    query_calls=300,
)
TINY = Plan(
    rooms=2,
    publishers=2,
    flood_per_room=300,
    loaded_seconds=2.0,
    loaded_share=0.5,
    idle_alarms=5,
    loaded_alarms=5,
    alarm_every=50,
    docs_per_room=4,
    ledger_events=3000,
    ledger_documents=500,
    ledger_people=50,
    query_calls=30,
)


# -- small helpers ----------------------------------------------------------------------


def r3(x: float) -> float:
    return round(x, 3)


def windowed_rate(samples: list[tuple[float, int]], total: int) -> float:
    """Rows per second between the samples where 5 % and 95 % of ``total`` were reached
    (the start-up and the tail left out); samples are (time, rows so far)."""
    lo, hi = 0.05 * total, 0.95 * total
    a = next((s for s in samples if s[1] >= lo), None)
    b = next((s for s in samples if s[1] >= hi), None)
    if a is None or b is None or b[0] <= a[0]:
        return float("nan")
    return (b[1] - a[1]) / (b[0] - a[0])


@dataclass
class RoomSpec:
    site: str
    room: str
    controller: str
    key: bytes
    cabinets: list[str]
    tags: list[tuple[str, str]]  # (epc, home cabinet)
    next_seq: int = 1

    def take(self, n: int) -> int:
        """Reserve ``n`` seqs of boot 1; returns the first."""
        first = self.next_seq
        self.next_seq += n
        return first


# -- what a controller sends ---------------------------------------------------------------


def stream_event(spec: RoomSpec, seq: int, ts: datetime, alarm_every: int) -> tuple[str, bytes]:
    """The benchmark's mix: every ``alarm_every``-th event an ``alarm.raised``; else 70 %
    ``sensor.changed`` (door and cabinet contacts), 20 % ``tag.arrived`` of a document in
    its home cabinet, 10 % ``tag.seen`` at the desk (a room with no ``tags``: sensors
    only)."""
    from protocol.envelope import make_event

    base = {"site": spec.site, "room": spec.room, "controller": spec.controller, "boot": 1}
    if alarm_every and seq % alarm_every == 0:
        return make_event(
            spec.key,
            **base,
            seq=seq,
            ts=ts,
            type="alarm.raised",
            data={
                "alarm_id": f"{spec.controller}:1:{seq}",
                "cause": "held_open",
                "point": "door",
                "severity": "warning",
            },
        )
    kind = seq % 10
    if kind < 7 or not spec.tags:  # a room streaming no tags: sensors only
        point = "door" if kind < 4 else f"cabinet:{spec.cabinets[seq % len(spec.cabinets)]}"
        data: dict[str, Any] = {
            "point": point,
            "kind": point.split(":", 1)[0],
            "state": "open" if (seq // 10) % 2 else "closed",
        }
        return make_event(spec.key, **base, seq=seq, ts=ts, type="sensor.changed", data=data)
    epc, cabinet = spec.tags[seq % len(spec.tags)]
    if kind < 9:
        data = {"reader": f"cabinet:{cabinet}", "epc": epc, "rssi": -50}
        return make_event(spec.key, **base, seq=seq, ts=ts, type="tag.arrived", data=data)
    data = {"reader": "desk", "epc": epc, "rssi": -55}
    return make_event(spec.key, **base, seq=seq, ts=ts, type="tag.seen", data=data)


def alarm_event(spec: RoomSpec, seq: int) -> tuple[str, bytes, str]:
    from protocol.envelope import make_event

    alarm_id = f"{spec.controller}:1:{seq}"
    topic, payload = make_event(
        spec.key,
        site=spec.site,
        room=spec.room,
        controller=spec.controller,
        boot=1,
        seq=seq,
        ts=datetime.now(UTC),
        type="alarm.raised",
        data={
            "alarm_id": alarm_id,
            "cause": "forced_open",
            "point": "door",
            "severity": "critical",
        },
    )
    return topic, payload, alarm_id


def heartbeat_event(spec: RoomSpec, seq: int) -> tuple[str, bytes]:
    from protocol.envelope import make_event

    return make_event(
        spec.key,
        site=spec.site,
        room=spec.room,
        controller=spec.controller,
        boot=1,
        seq=seq,
        ts=datetime.now(UTC),
        type="controller.heartbeat",
        data={"uptime_s": 1, "outbox_depth": 0, "armed": False},
    )


def _mqtt_client(client_id: str, inflight: int = 1000) -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    return client


# -- processes: publishers and the baseline subscriber (multiprocessing, spawned) -------


def publisher_main(
    name: str,
    port: int,
    jobs: list[tuple[RoomSpec, int, int]],
    rate: float | None,
    alarm_every: int,
    kind: str,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    """One process standing in for a few controllers: signs its whole stream first, then
    publishes it (QoS 1) as fast as it can or at ``rate`` events/s, and reports.
    ``kind`` is ``raw`` (:mod:`_rawpub`, the default) or ``paho``."""
    try:
        publish = _publish_raw if kind == "raw" else _publish_paho
        out.put(publish(name, port, _stream(jobs, rate, alarm_every), rate, ready, go))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        out.put({"name": name, "error": f"{type(exc).__name__}: {exc}"})
        ready.set()


def _stream(
    jobs: list[tuple[RoomSpec, int, int]], rate: float | None, alarm_every: int
) -> list[tuple[str, bytes]]:
    """Every message of these rooms, signed, the rooms interleaved as a broker sees them."""
    per_room_rate = (rate / len(jobs)) if rate else 1000.0
    start = datetime.now(UTC) + timedelta(seconds=1)
    longest = max(n for _, _, n in jobs)
    msgs: list[tuple[str, bytes]] = []
    for k in range(longest):
        ts = start + timedelta(seconds=k / per_room_rate)
        for spec, first, n in jobs:
            if k < n:
                msgs.append(stream_event(spec, first + k, ts, alarm_every))
    return msgs


def _paced(total: int, rate: float | None, t0: float) -> Iterator[int]:
    """How many messages should be out by now, until all are: at once without a rate."""
    if rate is None:
        yield total
        return
    while True:
        due = min(total, int((time.monotonic() - t0) * rate) + 1)
        yield due
        if due >= total:
            return
        time.sleep(0.005)  # pacing the stream, not waiting for anything


def _report(name: str, sent: int, acked: int, t0: float, t1: float) -> dict[str, Any]:
    """What a publisher tells the parent: counts, and when it started, ended, was acked."""
    return {
        "name": name,
        "sent": sent,
        "acked": acked,
        "t_first": t0,
        "t_last": t1,
        "t_acked": time.monotonic(),
    }


def _publish_raw(
    name: str,
    port: int,
    msgs: list[tuple[str, bytes]],
    rate: float | None,
    ready: Any,
    go: Any,
) -> dict[str, Any]:
    from _rawpub import RawPublisher

    client = RawPublisher("127.0.0.1", port, f"bench-pub-{name}-{os.getpid()}")
    packets = client.encode(msgs)
    client.connect()
    try:
        ready.set()
        go.wait()
        t0 = time.monotonic()
        sent = 0
        for due in _paced(len(packets), rate, t0):
            if due > sent:
                client.send(packets[sent:due])
                sent = due
        t1 = time.monotonic()
        if not client.wait_acked(120) and client.error:
            raise BenchError(f"publisher {name}: {client.error}")
        return _report(name, len(msgs), client.acked, t0, t1)
    finally:
        client.close()


def _publish_paho(
    name: str,
    port: int,
    msgs: list[tuple[str, bytes]],
    rate: float | None,
    ready: Any,
    go: Any,
) -> dict[str, Any]:
    acked = 0
    lock = threading.Lock()
    connected = threading.Event()
    done = threading.Event()

    def on_publish(client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        nonlocal acked
        with lock:
            acked += 1
            if acked >= len(msgs):
                done.set()

    # no in-flight limit: with one, paho walks the in-flight messages at every PUBACK
    client = _mqtt_client(f"bench-pub-{name}-{os.getpid()}", inflight=0)
    client.on_publish = on_publish
    client.on_connect = lambda *a: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        if not connected.wait(10):
            raise BenchError("publisher could not connect")
        ready.set()
        go.wait()
        t0 = time.monotonic()
        sent = 0
        for due in _paced(len(msgs), rate, t0):
            while sent < due:
                client.publish(*msgs[sent], qos=1)
                sent += 1
        t1 = time.monotonic()
        done.wait(120)
        return _report(name, len(msgs), acked, t0, t1)
    finally:
        client.disconnect()
        client.loop_stop()


def baseline_main(port: int, ready: Any, stop: Any, out: Any) -> None:
    """A bare paho subscriber: counts every event message and when it came, nothing else."""
    times: list[float] = []
    stamp = time.monotonic
    client = _mqtt_client(f"bench-baseline-{os.getpid()}")
    client.on_message = lambda c, u, msg: times.append(stamp())
    client.on_subscribe = lambda *a: ready.set()
    client.on_connect = lambda c, u, f, r, p: c.subscribe(EVT_FILTER, qos=1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    stop.wait()
    client.disconnect()
    client.loop_stop()
    n = len(times)
    samples = [(t, i + 1) for i, t in enumerate(times)]
    out.put(
        {
            "count": n,
            "rate": windowed_rate(samples, n) if n > 1 else float("nan"),
            "t_first": times[0] if times else None,
            "t_last": times[-1] if times else None,
        }
    )


# -- the database from the benchmark's side ------------------------------------------------


class Poller:
    """Reads the tracker's database without taking its write lock (SQLite: autocommit
    reads in WAL mode; PostgreSQL: an autocommit connection)."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import make_url

        u = make_url(url)
        self.sqlite = u.get_backend_name() == "sqlite"
        if self.sqlite:
            self.conn: Any = sqlite3.connect(u.database or "", isolation_level=None, timeout=30)
            self.mark = "?"
        else:
            import psycopg

            plain = u.set(drivername="postgresql").render_as_string(hide_password=False)
            self.conn = psycopg.connect(plain, autocommit=True)
            self.mark = "%s"

    def all(self, sql: str, *params: Any) -> list[Any]:
        return list(self.conn.execute(sql.replace("?", self.mark), params).fetchall())

    def one(self, sql: str, *params: Any) -> Any:
        return self.conn.execute(sql.replace("?", self.mark), params).fetchone()

    def events(self) -> int:
        return int(self.one("SELECT count(*) FROM events")[0])

    def events_since(self, top: int | None) -> tuple[int, int | None]:
        """(rows with an id above ``top``, the highest id now); all rows for None."""
        if top is None:
            n, hi = self.one("SELECT count(*), max(id) FROM events")
        else:
            n, hi = self.one("SELECT count(*), max(id) FROM events WHERE id > ?", top)
        return int(n), (top if hi is None else int(hi))

    def has_alarm(self, alarm_id: str) -> bool:
        return self.one("SELECT 1 FROM alarms WHERE alarm_id = ?", alarm_id) is not None

    def close(self) -> None:
        self.conn.close()


class CountSampler:
    """Counts the events table every ``step`` seconds in a thread: (monotonic, rows)."""

    def __init__(self, url: str, base: int, step: float = 0.02) -> None:
        self.url, self.base, self.step = url, base, step
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CountSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        # Counted on from the highest id seen, so each poll reads only the rows that came
        # since the last one (a full count(*) every 20 ms would cost the machine more
        # than the tracker's own reads). The tracker is the only writer and commits its
        # rows in id order, so no row can appear below the highest id already seen.
        p = Poller(self.url)
        try:
            total, top = p.events_since(None)
            while not self._stop.is_set():
                n, top = p.events_since(top)
                total += n
                self.samples.append((time.monotonic(), total - self.base))
                self._stop.wait(self.step)
        finally:
            p.close()

    def last(self) -> int:
        return self.samples[-1][1] if self.samples else 0


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Run:
    root: Path
    plan: Plan
    db_url: str
    profile: Path | None
    sensors_only: bool = False
    batch_max: int | None = None
    publisher: str = "raw"
    broker: MosquittoProcess | None = None
    tracker: subprocess.Popen[bytes] | None = None
    tracker_log: Path | None = None
    specs: list[RoomSpec] = field(default_factory=list)
    alarm_spec: RoomSpec | None = None
    room_ids: dict[str, int] = field(default_factory=dict)
    alarm_ids: list[str] = field(default_factory=list)
    ctx: Any = None

    # -- set up ----------------------------------------------------------------------

    def start_broker(self) -> None:
        try:
            self.broker = MosquittoProcess(self.root / "broker")
            self.broker.start()
        except BrokerError as exc:
            raise BenchError(str(exc)) from None
        log.info("mosquitto on 127.0.0.1:%d", self.broker.port)

    def setup_ledger(self) -> None:
        """Rooms with their controllers' keys, cabinets and tagged documents, through the
        ledger's own service (as ``ironroom ledger`` does)."""
        from tracker.domain.levels import Level
        from tracker.service.apply import Rules
        from tracker.service.ledger import DocumentIn, Ledger
        from tracker.store.db import make_engine, migrate, sessions

        engine = make_engine(self.db_url)
        migrate(engine)
        lg = Ledger(sessions(engine), Rules(), "bench", "benchmark setup", datetime.now(UTC))
        rng = random.Random(6)
        names = [f"r{i:02d}" for i in range(self.plan.rooms)] + [ALARM_ROOM]
        for i, room in enumerate(names):
            spec = RoomSpec(SITE, room, f"{room}-ctl", rng.randbytes(32), ["c1", "c2"], [])
            lg.room_add(SITE, room, spec.controller, spec.key, None)
            for cab in spec.cabinets:
                lg.cabinet_add(SITE, room, cab, False)
            for j in range(self.plan.docs_per_room if room != ALARM_ROOM else 0):
                epc = f"E2B0{i:04X}{j:08X}"
                cab = spec.cabinets[j % 2]
                lg.document_add(
                    DocumentIn(
                        number=f"BENCH-{room}-{j:04d}",
                        title=f"benchmark folder {j} of {room}",
                        classification=Level.SECRET,
                        tag=epc,
                        cabinet=f"{SITE}/{room}/{cab}",
                    )
                )
                if not self.sensors_only:
                    spec.tags.append((epc, cab))
            if room == ALARM_ROOM:
                self.alarm_spec = spec
            else:
                self.specs.append(spec)
        with engine.connect() as conn:
            from sqlalchemy import select

            from tracker.store import models as m

            self.room_ids = {r: i for r, i in conn.execute(select(m.Room.room, m.Room.id))}
        engine.dispose()

    def start_tracker(self) -> None:
        assert self.broker is not None
        cfg = self.root / "tracker.toml"
        cfg.write_text(
            "[tracker]\n"
            "heartbeat_s = 3600  # the simulated controllers send no heartbeats of their own\n"
            + (f"batch_max = {self.batch_max}\n" if self.batch_max else "")
            + "[mqtt]\n"
            f'broker = "mqtt://127.0.0.1:{self.broker.port}"\n'
            f'client_id = "ironroom-tracker-bench-{os.getpid()}"\n'
            "[hours]\n"
            'timezone = "Asia/Shanghai"\n',
            encoding="utf-8",
        )
        self.tracker_log = self.root / "tracker.log"
        cmd = [project_python()]
        if self.profile is not None:
            cmd += ["-m", "cProfile", "-o", str(self.profile)]
        cmd += ["-m", "ironroom.cli", "tracker", "--config", str(cfg), "--db", self.db_url]
        with open(self.tracker_log, "ab") as err:
            self.tracker = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=PROJECT_DIR
            )
        log.info("tracker pid %d", self.tracker.pid)
        # Until the tracker has subscribed, nothing is queued for it: send each room's
        # first event (the same bytes again and again: a duplicate is dropped quietly)
        # until every one is a row.
        firsts = []
        for spec in [*self.specs, self.alarm_spec]:
            assert spec is not None
            firsts.append(heartbeat_event(spec, spec.take(1)))
        client = self._client("bench-hello")
        poller = Poller(self.db_url)
        try:
            deadline = time.monotonic() + 60
            while poller.events() < len(firsts):
                if self.tracker.poll() is not None:
                    raise BenchError(f"the tracker exited: {tail(self.tracker_log)}")
                if time.monotonic() > deadline:
                    raise BenchError(f"the tracker stored nothing: {tail(self.tracker_log)}")
                for topic, payload in firsts:
                    client.publish(topic, payload, qos=1)
                time.sleep(0.5)
        finally:
            poller.close()
            client.disconnect()
            client.loop_stop()
        log.info("tracker ingesting")

    def _client(self, name: str) -> Any:
        assert self.broker is not None
        connected = threading.Event()
        client = _mqtt_client(f"{name}-{os.getpid()}")
        client.on_connect = lambda *a: connected.set()
        client.connect("127.0.0.1", self.broker.port)
        client.loop_start()
        if not connected.wait(10):
            raise BenchError("could not connect to the broker")
        return client

    def stop_tracker(self) -> None:
        stop_process(self.tracker, "tracker", timeout=30)
        self.tracker = None

    # -- streams ---------------------------------------------------------------------

    def publishers(self, per_room: int, rate: float | None) -> tuple[list[Any], Any, Any]:
        """Spawn the controller processes for ``per_room`` events a room; they sign
        everything first and wait for ``go``."""
        assert self.broker is not None
        go = self.ctx.Event()
        out = self.ctx.Queue()
        groups: list[list[tuple[RoomSpec, int, int]]] = [[] for _ in range(self.plan.publishers)]
        for i, spec in enumerate(self.specs):
            first = spec.take(per_room)
            for seq in range(first, first + per_room):
                if self.plan.alarm_every and seq % self.plan.alarm_every == 0:
                    self.alarm_ids.append(f"{spec.controller}:1:{seq}")
            groups[i % len(groups)].append((spec, first, per_room))
        procs, readies = [], []
        for k, jobs in enumerate(g for g in groups if g):
            ready = self.ctx.Event()
            share = rate * len(jobs) / len(self.specs) if rate else None
            p = self.ctx.Process(
                target=publisher_main,
                args=(
                    f"p{k}",
                    self.broker.port,
                    jobs,
                    share,
                    self.plan.alarm_every,
                    self.publisher,
                    ready,
                    go,
                    out,
                ),
                daemon=True,
            )
            p.start()
            procs.append(p)
            readies.append(ready)
        for ready in readies:
            if not ready.wait(300):
                raise BenchError("a publisher did not get ready")
        return procs, go, out

    def collect(self, procs: list[Any], out: Any) -> list[dict[str, Any]]:
        results = [out.get(timeout=300) for _ in procs]
        for p in procs:
            p.join(30)
        for r in results:
            if "error" in r:
                raise BenchError(f"publisher {r['name']}: {r['error']}")
            if r["acked"] != r["sent"]:
                raise BenchError(f"publisher {r['name']}: {r['acked']} of {r['sent']} acked")
        return results

    def flood(self) -> dict[str, Any]:
        """Every controller publishes its stream as fast as it can; the tracker's rows and
        the baseline subscriber's messages are counted over the same stream."""
        assert self.broker is not None
        per_room = self.plan.flood_per_room
        total = per_room * len(self.specs)
        b_ready, b_stop, b_out = self.ctx.Event(), self.ctx.Event(), self.ctx.Queue()
        baseline = self.ctx.Process(
            target=baseline_main, args=(self.broker.port, b_ready, b_stop, b_out), daemon=True
        )
        baseline.start()
        if not b_ready.wait(30):
            raise BenchError("the baseline subscriber did not subscribe")
        log.info("flood: %d events from %d rooms", total, len(self.specs))
        procs, go, out = self.publishers(per_room, None)
        poller = Poller(self.db_url)
        base = poller.events()
        with CountSampler(self.db_url, base) as sampler:
            t_go = time.monotonic()
            go.set()
            pubs = self.collect(procs, out)
            wait_until(
                lambda: sampler.last() >= total, max(120.0, total / 100), "the flood's rows", 0.05
            )
        b_stop.set()
        bstats = b_out.get(timeout=60)
        baseline.join(10)
        poller.close()
        samples = sampler.samples
        t_done = next(t for t, n in samples if n >= total)
        t_pub0 = min(r["t_first"] for r in pubs)
        t_pub1 = max(r["t_last"] for r in pubs)
        rate = windowed_rate(samples, total)
        if math.isnan(rate):  # too few commits to leave the ends out (tiny runs)
            rate = total / (t_done - t_go)
        base_rate = bstats["rate"]
        if math.isnan(base_rate) and bstats["count"]:
            base_rate = bstats["count"] / max(1e-6, bstats["t_last"] - t_go)
        log.info("flood: tracker %.0f/s, baseline %.0f/s", rate, base_rate)
        return {
            "events_per_s": round(rate, 1),
            "baseline_per_s": round(base_rate, 1),
            "ratio": r3(rate / base_rate) if base_rate else float("nan"),
            "flood_events": total,
            "flood_rooms": len(self.specs),
            "flood_publishers": len(pubs),
            "flood_seconds": round(t_done - t_go, 2),
            "flood_overall_per_s": round(total / (t_done - t_go), 1),
            "publish_per_s": round(total / (t_pub1 - t_pub0), 1) if t_pub1 > t_pub0 else None,
            "baseline_count": bstats["count"],
            "baseline_seconds": r3(bstats["t_last"] - bstats["t_first"])
            if bstats["count"]
            else None,
        }

    def alarm_once(self, client: Any, poller: Poller, timeout: float = 30.0) -> float:
        """Publish one alarm of the alarm room; milliseconds until its row is committed."""
        assert self.alarm_spec is not None
        topic, payload, alarm_id = alarm_event(self.alarm_spec, self.alarm_spec.take(1))
        self.alarm_ids.append(alarm_id)
        t0 = time.perf_counter()
        client.publish(topic, payload, qos=1)
        deadline = t0 + timeout
        while not poller.has_alarm(alarm_id):
            if time.perf_counter() > deadline:
                raise BenchError(f"alarm {alarm_id} never committed")
            time.sleep(0.001)
        return (time.perf_counter() - t0) * 1000.0

    def idle_alarms(self) -> dict[str, Any]:
        client = self._client("bench-alarms-idle")
        poller = Poller(self.db_url)
        lat = []
        try:
            for _ in range(self.plan.idle_alarms):
                lat.append(self.alarm_once(client, poller))
                time.sleep(0.02)
        finally:
            poller.close()
            client.disconnect()
            client.loop_stop()
        return {
            "alarm_p99_ms_idle": r3(percentile(lat, 99)),
            "alarm_p50_ms_idle": r3(percentile(lat, 50)),
            "alarm_max_ms_idle": r3(max(lat)),
            "alarm_samples_idle": len(lat),
        }

    def loaded(self, flood_rate: float) -> dict[str, Any]:
        """The controllers stream at ``loaded_share`` of ``flood_rate``; alarms from
        another room meanwhile, one at a time, spread over the stream while its rows are
        still coming."""
        if not flood_rate or math.isnan(flood_rate):
            raise BenchError("no flood rate to load the tracker with")
        target = flood_rate * self.plan.loaded_share
        per_room = max(1, int(target * self.plan.loaded_seconds / len(self.specs)))
        total = per_room * len(self.specs)
        log.info("loaded: %d events at %.0f/s, alarms meanwhile", total, target)
        procs, go, out = self.publishers(per_room, target)
        client = self._client("bench-alarms-loaded")
        poller = Poller(self.db_url)
        lat: list[float] = []
        base = poller.events()
        try:
            with CountSampler(self.db_url, base, step=0.1) as sampler:
                t_go = time.monotonic()
                go.set()
                time.sleep(min(1.0, self.plan.loaded_seconds / 5))
                spacing = self.plan.loaded_seconds * 0.7 / max(1, self.plan.loaded_alarms)
                while len(lat) < self.plan.loaded_alarms and sampler.last() < total:
                    t = time.monotonic()
                    lat.append(self.alarm_once(client, poller))
                    time.sleep(max(0.0, spacing - (time.monotonic() - t)))
                pubs = self.collect(procs, out)
                expected = total + len(lat)
                wait_until(
                    lambda: sampler.last() >= expected, max(60.0, total / 100), "loaded rows", 0.05
                )
        finally:
            poller.close()
            client.disconnect()
            client.loop_stop()
        if not lat:
            raise BenchError("no alarm was sent while the stream ran")
        t_pub1 = max(r["t_last"] for r in pubs)
        t_done = next(t for t, n in sampler.samples if n >= expected)
        return {
            "alarm_p99_ms_loaded": r3(percentile(lat, 99)),
            "alarm_p50_ms_loaded": r3(percentile(lat, 50)),
            "alarm_max_ms_loaded": r3(max(lat)),
            "alarm_samples_loaded": len(lat),
            "loaded_target_per_s": round(target, 1),
            "loaded_events_per_s": round(windowed_rate(sampler.samples, expected), 1),
            "loaded_events": total,
            "loaded_lag_s": r3(t_done - t_pub1),
            "loaded_seconds": round(t_done - t_go, 2),
        }

    def check(self) -> dict[str, Any]:
        """The events table against what was published: every (room, boot, seq) once."""
        poller = Poller(self.db_url)
        try:
            lost = duplicated = 0
            for spec in [*self.specs, self.alarm_spec]:
                assert spec is not None
                high = spec.next_seq - 1
                n, distinct, inside = poller.one(
                    "SELECT count(*), count(DISTINCT seq), "
                    "sum(CASE WHEN boot = 1 AND seq BETWEEN 1 AND ? THEN 1 ELSE 0 END) "
                    "FROM events WHERE room_id = ?",
                    high,
                    self.room_ids[spec.room],
                )
                lost += high - min(high, int(inside or 0))
                duplicated += (int(n) - int(distinct)) + (int(distinct) - int(inside or 0))
            stored = {
                a for (a,) in poller.all("SELECT alarm_id FROM alarms WHERE source = 'controller'")
            }
            rows = int(poller.one("SELECT count(*) FROM alarms WHERE source = 'controller'")[0])
            unapplied = int(poller.one("SELECT count(*) FROM events WHERE NOT applied")[0])
            counters = dict(poller.all("SELECT name, value FROM counters"))
        finally:
            poller.close()
        want = set(self.alarm_ids)
        return {
            "lost": lost,
            "duplicated": duplicated,
            "alarms_lost": len(want - stored),
            "alarms_duplicated": rows - len(stored) + len(stored - want),
            "events_unapplied": unapplied,
            "events_published": sum(s.next_seq - 1 for s in [*self.specs, self.alarm_spec] if s),
            "tracker_counters": {k: int(v) for k, v in sorted(counters.items())},
        }


# -- the ledger of a million events, and its queries ---------------------------------------


def bulk_ledger(url: str, plan: Plan, rng: random.Random, now: datetime) -> dict[str, Any]:
    """People, documents, loans and events straight into the tables (SQLAlchemy Core, no
    audit entries: this is volume for the queries, not ledger history)."""
    from sqlalchemy import func, insert, select, text

    from protocol.timefmt import format_ts
    from tracker.store import models as m
    from tracker.store.db import make_engine, migrate

    engine = make_engine(url)
    migrate(engine)
    t0 = time.monotonic()
    ts_now = format_ts(now)
    chunk = 20_000
    with engine.begin() as conn:
        existing = int(conn.execute(select(func.count()).select_from(m.Event)).scalar_one())
        rooms = []
        for i in range(10):
            rid = conn.execute(
                insert(m.Room).returning(m.Room.id),
                {
                    "site": "bulk",
                    "room": f"b{i:02d}",
                    "controller": f"b{i:02d}-ctl",
                    "event_key": rng.randbytes(32).hex(),
                    "command_key": rng.randbytes(32).hex(),
                    "generation": 1,
                },
            ).scalar_one()
            rooms.append(rid)
        cabinets = []
        for rid in rooms:
            for c in range(10):
                cid = conn.execute(
                    insert(m.Cabinet).returning(m.Cabinet.id),
                    {"room_id": rid, "name": f"c{c}", "general": False},
                ).scalar_one()
                cabinets.append(cid)
        people = [f"p{i:05d}" for i in range(plan.ledger_people)]
        conn.execute(
            insert(m.Person),
            [
                {
                    "id": p,
                    "name": f"person {p}",
                    "dept": f"dept-{i % 40}",
                    "clearance": rng.choice((2, 3, 4)),
                    "roles": '["borrower"]',
                    "active": True,
                }
                for i, p in enumerate(people)
            ],
        )
        # 5 % of the documents out on open loans, a tenth of those overdue; three closed
        # loans of history per document on average.
        n_docs = plan.ledger_documents
        on_loan = set(rng.sample(range(n_docs), n_docs // 20))
        holder = {d: rng.choice(people) for d in on_loan}
        docs = []
        for d in range(n_docs):
            cab = cabinets[d % len(cabinets)]
            out = d in on_loan
            docs.append(
                {
                    "number": f"BQ-2026-{d // 2:06d}",
                    "copy_no": d % 2 + 1,
                    "copies": 2,
                    "title": f"document {d}",
                    "classification": 3,
                    "scope": "[]",
                    "no_copying": False,
                    "home_cabinet_id": cab,
                    "tag": f"E2C0{d:012X}",
                    "status": "on_loan" if out else "in_cabinet",
                    "location_cabinet_id": None if out else cab,
                    "holder_id": holder.get(d),
                    "registered": ts_now,
                }
            )
        for i in range(0, len(docs), chunk):
            conn.execute(insert(m.Document), docs[i : i + chunk])
        first_doc = int(
            conn.execute(
                select(func.min(m.Document.id)).where(m.Document.tag.like("E2C0%"))
            ).scalar_one()
        )
        loans = []
        for d in range(n_docs):
            for k in range(rng.randint(2, 4)):
                opened = now - timedelta(days=400 - k * 90, hours=rng.randint(0, 200))
                loans.append(
                    {
                        "document_id": first_doc + d,
                        "person_id": rng.choice(people),
                        "kind": "loan",
                        "opened": format_ts(opened),
                        "due": format_ts(opened + timedelta(days=7)),
                        "closed": format_ts(opened + timedelta(days=rng.randint(1, 7))),
                        "misplaced": False,
                    }
                )
        for d in sorted(on_loan):
            late = rng.random() < 0.1
            opened = now - timedelta(days=10 if late else 2, hours=rng.randint(0, 48))
            due = (
                now - timedelta(days=1, hours=rng.randint(0, 48))
                if late
                else now + timedelta(days=rng.randint(1, 7))
            )
            loans.append(
                {
                    "document_id": first_doc + d,
                    "person_id": holder[d],
                    "kind": "loan",
                    "opened": format_ts(opened),
                    "due": format_ts(due),
                    "closed": None,
                    "misplaced": False,
                }
            )
        for i in range(0, len(loans), chunk):
            conn.execute(insert(m.Loan), loans[i : i + chunk])
        n_events = max(0, plan.ledger_events - existing)
        payload = b'{"v":1,"type":"sensor.changed","sig":"' + b"0" * 64 + b'"}'
        seq = [0] * len(rooms)
        done = 0
        while done < n_events:
            rows = []
            for j in range(min(chunk, n_events - done)):
                r = (done + j) % len(rooms)
                seq[r] += 1
                ts = format_ts(now - timedelta(seconds=n_events - done - j))
                rows.append(
                    {
                        "room_id": rooms[r],
                        "generation": 1,
                        "boot": 1,
                        "seq": seq[r],
                        "ts": ts,
                        "type": "sensor.changed",
                        "data": '{"kind":"door","point":"door","state":"open"}',
                        "payload": payload,
                        "received": ts,
                        "applied": True,
                    }
                )
            conn.execute(insert(m.Event), rows)
            done += len(rows)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    with engine.connect() as conn:
        counts = {
            name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for name, t in (
                ("events", m.Event),
                ("documents", m.Document),
                ("people", m.Person),
                ("loans", m.Loan),
            )
        }
    engine.dispose()
    log.info("ledger: %s in %.1f s", counts, time.monotonic() - t0)
    return {"ledger_" + k: v for k, v in counts.items()} | {
        "ledger_load_s": round(time.monotonic() - t0, 1),
        "ledger_open_loans": len(on_loan),
    }


def bench_queries(url: str, plan: Plan, now: datetime) -> dict[str, Any]:
    from tracker.service.queries import holdings, overdue, where_is
    from tracker.store.db import make_engine, sessions

    engine = make_engine(url)
    rng = random.Random(7)
    n_docs = plan.ledger_documents
    out: dict[str, Any] = {}
    rows: dict[str, list[int]] = {}

    def timed(name: str, call: Callable[[Any, int], list[Any]]) -> None:
        lat, sizes = [], []
        with sessions(engine)() as s:
            call(s, 0)  # statement caches warm
            for i in range(plan.query_calls):
                t0 = time.perf_counter_ns()
                result = call(s, i)
                lat.append((time.perf_counter_ns() - t0) / 1e6)
                sizes.append(len(result))
        out[f"{name}_ms"] = r3(percentile(lat, 99))
        out[f"{name}_p50_ms"] = r3(percentile(lat, 50))
        rows[name] = sizes

    def by_tag_or_number(s: Any, i: int) -> list[Any]:
        d = rng.randrange(n_docs)
        found = where_is(s, f"E2C0{d:012X}" if i % 2 else f"BQ-2026-{d // 2:06d}")
        if not found:
            raise BenchError(f"where_is found no document {d}")
        return found

    timed("where_is", by_tag_or_number)
    timed("holdings", lambda s, i: holdings(s, f"p{rng.randrange(plan.ledger_people):05d}"))
    timed("overdue", lambda s, i: overdue(s, now))
    engine.dispose()
    out["query_calls"] = plan.query_calls
    out["overdue_rows"] = rows["overdue"][-1]
    out["holdings_rows_mean"] = r3(sum(rows["holdings"]) / len(rows["holdings"]))
    return out


# -- databases ----------------------------------------------------------------------------------


@contextlib.contextmanager
def database(args: argparse.Namespace, root: Path) -> Iterator[str]:
    """The URL the run uses: an SQLite file in ``root``; a database of the run's own on
    the PostgreSQL server ``--db`` names; or one in a throwaway cluster (``--postgres``)."""
    if args.postgres:
        from simulators.postgres import PostgresCluster

        with PostgresCluster(durable=True) as pg:
            log.info("throwaway PostgreSQL on 127.0.0.1:%d", pg.port)
            yield pg.create_database("ironroom_bench")
        return
    if not args.db:
        yield f"sqlite:///{root / 'tracker.db'}"
        return
    import psycopg
    from psycopg import sql
    from sqlalchemy import make_url

    u = make_url(args.db)
    if u.get_backend_name() != "postgresql":
        raise BenchError("--db takes a postgresql:// URL (SQLite is the default)")
    name = f"ironroom_bench_{os.urandom(4).hex()}"
    admin = u.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield u.set(database=name).render_as_string(hide_password=False)
    finally:
        if not args.keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="IronRoom tracker benchmark (one JSON line)")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a shorter run")
    size.add_argument("--tiny", action="store_true", help="a few seconds (smoke tests)")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--db", help="a PostgreSQL server to run against (postgresql://...)")
    where.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL cluster")
    ap.add_argument(
        "--sensors-only", action="store_true", help="no tag events in the stream (comparison)"
    )
    ap.add_argument("--batch-max", type=int, help="the tracker's batch_max (default: its own)")
    ap.add_argument(
        "--publisher",
        choices=["raw", "paho"],
        default="raw",
        help="how the simulated controllers publish (bench/_rawpub.py, or paho: comparison)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--profile-tracker", type=Path, help="cProfile the tracker into this file")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    log.setLevel(logging.INFO)

    def on_term(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    plan = TINY if args.tiny else QUICK if args.quick else FULL
    root = Path(tempfile.mkdtemp(prefix="ironroom-bench-ingest-"))
    result: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "plan": "tiny" if args.tiny else "quick" if args.quick else "full",
        "database": "postgresql" if (args.db or args.postgres) else "sqlite",
        "stream": "sensors only" if args.sensors_only else "70% sensors, 30% tags",
        "tracker_batch_max": args.batch_max or "default",
        "publisher": args.publisher,
        "tmp_dir": str(root),
    }
    code = 0
    started = time.monotonic()
    run: Run | None = None
    try:
        with database(args, root) as url:
            run = Run(
                root, plan, url, args.profile_tracker.resolve() if args.profile_tracker else None
            )
            run.sensors_only = args.sensors_only
            run.batch_max = args.batch_max
            run.publisher = args.publisher
            run.ctx = mp.get_context("spawn")
            run.start_broker()
            run.setup_ledger()
            run.start_tracker()
            result.update(run.flood())
            result.update(run.idle_alarms())
            # Load at a share of what the tracker kept up with, publishers running
            # alongside (the flood's whole span), so the stream does not outrun it.
            capacity = min(result["events_per_s"], result["flood_overall_per_s"])
            result.update(run.loaded(capacity))
            result.update(run.check())
            run.stop_tracker()
            now = datetime.now(UTC)
            result.update(bulk_ledger(url, plan, random.Random(6), now))
            result.update(bench_queries(url, plan, now))
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        result["error"] = f"{type(exc).__name__}: {exc}"
        if run is not None and run.tracker_log is not None:
            print(tail(run.tracker_log), file=sys.stderr)
        code = 1
    finally:
        if run is not None:
            run.stop_tracker()
            if run.broker is not None:
                run.broker.stop()
        result["bench_seconds"] = round(time.monotonic() - started, 1)
        result["targets"] = targets_of(result, TARGETS)
        if args.keep:
            log.info("kept %s", root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
