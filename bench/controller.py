"""Controller benchmark: alarm latency, RFID capacity, outbox durability cost, memory.

    .venv/bin/python bench/controller.py [--quick]

Prints exactly one JSON line on stdout; progress and diagnostics go to stderr. Every
figure is measured in this run (see bench/README.md for what each one means). The run
starts its own Mosquitto on a free 127.0.0.1 port, an acker process standing in for the
tracker, and a bridge process for the memory figure, and stops them all before exiting.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import random
import re
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from _common import (  # bench/ is on the path: these run as scripts
    BENCH_DIR,
    PROJECT_DIR,
    BenchError,
    percentile,
    project_python,
    tail,
    wait_until,
)
from _common import targets as targets_of

from simulators.broker import BrokerError, MosquittoProcess, stop_process

log = logging.getLogger("bench")

#: Friday 27 November 2026, 23:00 in the example room's zone: a working day, outside its
#: hours, so opening the door raises ``after_hours_open`` (a siren cause).
NIGHT = "2026-11-27T23:00:00+08:00"
SITE, ROOM, CONTROLLER = "hq", "room-101", "room-101-ctl"

TARGETS: dict[str, tuple[str, float]] = {
    "edge_to_siren_p99_ms": ("<=", 5.0),
    "m100_reads_per_s": (">=", 50_000.0),
    "bridge_rss_mb": ("<=", 60.0),
}


@dataclass(frozen=True)
class Plan:
    """How much work each part does (``--quick`` shrinks everything)."""

    outbox_single: int
    outbox_batched: int
    outbox_batch: int
    m100_reads: int
    m100_repeats: int
    edge_samples: int
    edge_warmup: int
    edge_pause_ms: float
    rss_seconds: float


FULL = Plan(
    outbox_single=2000,
    outbox_batched=20_000,
    outbox_batch=100,
    m100_reads=200_000,
    m100_repeats=3,
    edge_samples=1000,
    edge_warmup=30,
    edge_pause_ms=10.0,
    rss_seconds=20.0,
)
QUICK = Plan(
    outbox_single=200,
    outbox_batched=2000,
    outbox_batch=100,
    m100_reads=30_000,
    m100_repeats=1,
    edge_samples=150,
    edge_warmup=10,
    edge_pause_ms=5.0,
    rss_seconds=5.0,
)


# -- small helpers ----------------------------------------------------------------------


def ms(ns: float) -> float:
    return round(ns / 1e6, 4)


def rate(count: int, elapsed_ns: int) -> float:
    return round(count / (elapsed_ns / 1e9), 1) if elapsed_ns > 0 else float("inf")


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def filesystem_of(path: Path) -> str:
    """``fstype device on mountpoint`` for the mount holding ``path`` (Linux)."""
    real = os.path.realpath(path)
    best = ("", "unknown", "unknown")
    try:
        with open("/proc/self/mounts", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                dev, mnt, fstype = parts[0], parts[1].replace("\\040", " "), parts[2]
                inside = real == mnt or real.startswith(mnt.rstrip("/") + "/")
                if inside and len(mnt) >= len(best[0]):
                    best = (mnt, fstype, dev)
    except OSError:
        pass
    return f"{best[1]} {best[2]} on {best[0] or '?'}"


# -- processes: broker and acker ----------------------------------------------------------


class Broker(MosquittoProcess):
    """A Mosquitto of our own on 127.0.0.1 (``simulators.broker``), failing as a BenchError."""

    def __init__(self, workdir: Path) -> None:
        try:
            super().__init__(workdir)
        except BrokerError as exc:
            raise BenchError(str(exc)) from None

    def start(self, timeout: float = 10.0) -> None:
        try:
            super().start(timeout)
        except BrokerError as exc:
            raise BenchError(str(exc)) from None
        log.info("mosquitto pid %d on 127.0.0.1:%d", self.proc.pid if self.proc else 0, self.port)


class AckerProcess:
    """``bench/_acker.py`` in a process of its own (paho publishers and subscribers in
    one process starve each other, so the tracker's side must not share the bridge's)."""

    def __init__(self, port: int, key_file: Path, log_path: Path) -> None:
        self.port = port
        self.key_file = key_file
        self.log_path = log_path
        self.proc: subprocess.Popen[str] | None = None
        self._err: IO[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        self._err = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                project_python(),
                str(BENCH_DIR / "_acker.py"),
                "--port",
                str(self.port),
                "--key-file",
                str(self.key_file),
                "--site",
                SITE,
                "--room",
                ROOM,
            ],
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            cwd=PROJECT_DIR,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            raise BenchError(f"acker did not subscribe (got {line!r}): {tail(self.log_path)}")
        log.info("acker pid %d subscribed", self.proc.pid)

    def stop(self) -> dict[str, Any]:
        """Stop it and return the counters it prints on the way out."""
        stats: dict[str, Any] = {}
        proc = self.proc
        if proc is not None:
            try:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                out, _ = proc.communicate(timeout=10)
                for line in out.splitlines():
                    if line.startswith("{"):
                        stats = json.loads(line)
            except subprocess.TimeoutExpired:
                stop_process(proc, "acker")
            self.proc = None
        if self._err is not None:
            self._err.close()
            self._err = None
        return stats


# -- 1. outbox ---------------------------------------------------------------------------


def _event_rows(n: int, boot: int) -> list[tuple[int, int, str, bytes, bool]]:
    """``n`` signed ``sensor.changed`` events, as the controller hands them to the outbox."""
    from protocol.envelope import make_event

    key = os.urandom(32)
    ts = datetime.fromisoformat(NIGHT)
    rows = []
    for seq in range(1, n + 1):
        topic, payload = make_event(
            key,
            site=SITE,
            room=ROOM,
            controller=CONTROLLER,
            boot=boot,
            seq=seq,
            ts=ts,
            type="sensor.changed",
            data={"point": "door", "kind": "door", "state": "open" if seq % 2 else "closed"},
        )
        rows.append((boot, seq, topic, payload, False))
    return rows


def _raw_sqlite(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE ev (boot INTEGER, seq INTEGER, alarm INTEGER, topic TEXT, payload BLOB)"
    )
    return db


def bench_outbox(root: Path, plan: Plan) -> dict[str, Any]:
    from firmware_bridge.outbox import Outbox

    folder = root / "outbox"
    folder.mkdir()
    log.info(
        "outbox: %d single appends, %d in batches of %d, in %s (%s)",
        plan.outbox_single,
        plan.outbox_batched,
        plan.outbox_batch,
        folder,
        filesystem_of(folder),
    )
    single_rows = _event_rows(plan.outbox_single, boot=1)
    batched_rows = _event_rows(plan.outbox_batched, boot=1)
    batches = [
        batched_rows[i : i + plan.outbox_batch]
        for i in range(0, len(batched_rows), plan.outbox_batch)
    ]
    insert = "INSERT INTO ev (boot, seq, alarm, topic, payload) VALUES (?,?,?,?,?)"
    blocks = 4  # outbox and baseline take turns, so a slow spell of the disk hits both

    def block(items: list[Any], k: int) -> list[Any]:
        size = math.ceil(len(items) / blocks)
        return items[k * size : (k + 1) * size]

    obs = Outbox(folder / "single.sqlite3")
    obb = Outbox(folder / "batched.sqlite3")
    raws = _raw_sqlite(folder / "raw-single.sqlite3")
    rawb = _raw_sqlite(folder / "raw-batched.sqlite3")
    lat: list[int] = []
    single_ns = raw_single_ns = batched_ns = raw_batched_ns = 0
    try:
        for k in range(blocks):
            # the outbox, one event per append (one fsync'd transaction each)
            start = time.perf_counter_ns()
            for row in block(single_rows, k):
                t = time.perf_counter_ns()
                obs.append([row])
                lat.append(time.perf_counter_ns() - t)
            single_ns += time.perf_counter_ns() - start
            # raw sqlite3, same durability settings, same payloads
            start = time.perf_counter_ns()
            for b, s, topic, payload, alarm in block(single_rows, k):
                raws.execute("BEGIN")
                raws.execute(insert, (b, s, int(alarm), topic, payload))
                raws.execute("COMMIT")
            raw_single_ns += time.perf_counter_ns() - start
            # batches of events per transaction, both ways
            start = time.perf_counter_ns()
            for batch in block(batches, k):
                obb.append(batch)
            batched_ns += time.perf_counter_ns() - start
            start = time.perf_counter_ns()
            for batch in block(batches, k):
                rawb.execute("BEGIN")
                rawb.executemany(insert, [(b, s, int(a), t, p) for b, s, t, p, a in batch])
                rawb.execute("COMMIT")
            raw_batched_ns += time.perf_counter_ns() - start
        if obs.depth() != len(single_rows) or obb.depth() != len(batched_rows):
            raise BenchError("the outbox does not hold every event appended")
    finally:
        obs.close()
        obb.close()
        raws.close()
        rawb.close()

    single = rate(len(single_rows), single_ns)
    raw_single = rate(len(single_rows), raw_single_ns)
    batched = rate(len(batched_rows), batched_ns)
    raw_batched = rate(len(batched_rows), raw_batched_ns)
    return {
        "outbox_appends_per_s": single,
        "outbox_append_p50_ms": ms(percentile([float(x) for x in lat], 50)),
        "outbox_append_p99_ms": ms(percentile([float(x) for x in lat], 99)),
        "outbox_events": len(single_rows),
        "sqlite_baseline_commits_per_s": raw_single,
        "outbox_vs_baseline": ratio(single, raw_single),
        "outbox_batch_appends_per_s": batched,
        "outbox_batch_size": plan.outbox_batch,
        "outbox_batch_events": len(batched_rows),
        "sqlite_baseline_batch_inserts_per_s": raw_batched,
        "outbox_batch_vs_baseline": ratio(batched, raw_batched),
        "outbox_dir": str(folder),
        "outbox_filesystem": filesystem_of(folder),
    }


# -- 2. M100 parser and presence ---------------------------------------------------------


def m100_stream(
    rng: random.Random, reads: int, *, tags: int = 200, jitter_db: int = 2, wide: bool = False
) -> tuple[list[list[bytes]], int, int]:
    """Inventory rounds of tag notifications, each round cut into 64..512-byte chunks.

    Each round every tag is heard with 93 % probability, 1..3 times (duplicates), RSSI
    around its own level +-``jitter_db`` (``wide``: anywhere in -90..-30 dBm, so few
    frames repeat byte for byte). Returns (rounds, notifications, distinct frames).
    """
    from devices.rfid.m100 import encode_m100_notification

    epcs = [f"E2801170000002{i:010X}" for i in range(tags)]
    level = {epc: rng.randint(-72, -42) for epc in epcs}
    encoded: dict[tuple[str, int], bytes] = {}
    rounds: list[list[bytes]] = []
    total = 0
    while total < reads:
        frames: list[bytes] = []
        for epc in epcs:
            if rng.random() >= 0.93:
                continue
            for _ in range(rng.randint(1, 3)):
                if wide:
                    rssi = rng.randint(-90, -30)
                else:
                    rssi = level[epc] + rng.randint(-jitter_db, jitter_db)
                frame = encoded.get((epc, rssi))
                if frame is None:
                    frame = encoded[(epc, rssi)] = encode_m100_notification(epc, rssi)
                frames.append(frame)
        rng.shuffle(frames)
        total += len(frames)
        data = b"".join(frames)
        chunks = []
        pos = 0
        while pos < len(data):
            size = rng.randint(64, 512)
            chunks.append(data[pos : pos + size])
            pos += size
        rounds.append(chunks)
    return rounds, total, len(encoded)


def _run_parser(rounds: list[list[bytes]], *, presence: bool) -> tuple[int, int]:
    """Feed every chunk to a fresh parser (and tracker); (tag reads, elapsed ns)."""
    from devices.rfid.m100 import M100Parser, TagNotification
    from devices.rfid.presence import PresenceTracker

    parser = M100Parser()
    tracker = PresenceTracker(missing_rounds=3)
    observe = tracker.observe
    reader = "cabinet:c1"
    t = 1000.0
    n = 0
    start = time.perf_counter_ns()
    for chunks in rounds:
        for chunk in chunks:
            for frame in parser.feed(chunk):
                if isinstance(frame, TagNotification):
                    n += 1
                    if presence:
                        observe(reader, frame.epc, frame.rssi, t)
        if presence:
            tracker.end_round(reader, t)
        t += 0.1
    return n, time.perf_counter_ns() - start


def _run_split_baseline(rounds: list[list[bytes]]) -> tuple[int, int]:
    """The floor: cut the stream at every 0x7E byte, nothing checked or decoded."""
    pieces = 0
    start = time.perf_counter_ns()
    for chunks in rounds:
        rest = b""
        for chunk in chunks:
            parts = (rest + chunk).split(b"\x7e")
            rest = parts.pop()
            pieces += len(parts)
    return pieces, time.perf_counter_ns() - start


def bench_m100(plan: Plan) -> dict[str, Any]:
    rng = random.Random(20261127)
    rounds, notes, distinct = m100_stream(rng, plan.m100_reads)
    size = sum(len(c) for r in rounds for c in r)
    log.info(
        "m100: %d notifications in %d rounds, %d bytes, %d distinct frames",
        notes,
        len(rounds),
        size,
        distinct,
    )
    full: list[int] = []
    parse_only: list[int] = []
    split: list[int] = []
    for _ in range(plan.m100_repeats):
        n, ns = _run_parser(rounds, presence=True)
        if n != notes:
            raise BenchError(f"parser yielded {n} tag reads from {notes} notifications")
        full.append(ns)
        n, ns = _run_parser(rounds, presence=False)
        parse_only.append(ns)
        _, ns = _run_split_baseline(rounds)
        split.append(ns)
    # the same with RSSI spread wide, so the parser's frame cache rarely hits
    wide_rounds, wide_notes, wide_distinct = m100_stream(
        random.Random(7), max(notes // 4, 10_000), wide=True
    )
    wide_n, wide_ns = _run_parser(wide_rounds, presence=True)
    if wide_n != wide_notes:
        raise BenchError(f"parser yielded {wide_n} tag reads from {wide_notes} notifications")

    def median(values: list[int]) -> int:
        return sorted(values)[len(values) // 2]

    reads = rate(notes, median(full))
    baseline = rate(notes, median(split))
    return {
        "m100_reads_per_s": reads,
        "m100_parser_only_reads_per_s": rate(notes, median(parse_only)),
        "m100_baseline_split_reads_per_s": baseline,
        "m100_vs_baseline": ratio(reads, baseline),
        "m100_notifications": notes,
        "m100_rounds": len(rounds),
        "m100_stream_bytes": size,
        "m100_distinct_frames": distinct,
        "m100_repeats": plan.m100_repeats,
        "m100_wide_rssi_reads_per_s": rate(wide_n, wide_ns),
        "m100_wide_rssi_distinct_frames": wide_distinct,
    }


# -- 3. edge to siren on the running bridge ------------------------------------------------


@contextmanager
def patched(obj: Any, name: str, replacement: Any) -> Iterator[None]:
    """Set an attribute of this one instance for the duration (the class is left alone)."""
    original = getattr(obj, name)
    setattr(obj, name, replacement)
    try:
        yield
    finally:
        setattr(obj, name, original)


def bench_edge(root: Path, plan: Plan) -> dict[str, Any]:
    from simulators.clock import SimClock
    from simulators.room import SimulatedRoom, load_sim_config

    broker = Broker(root / "edge-broker")
    acker: AckerProcess | None = None
    room: SimulatedRoom | None = None
    acker_stats: dict[str, Any] = {}
    try:
        broker.start()
        cfg = load_sim_config(None, root / "edge-data").with_overrides(broker=broker.url)
        clock = SimClock(datetime.fromisoformat(NIGHT))
        room = SimulatedRoom(cfg, clock=clock, badges=False)
        assert room.cfg.key_file is not None
        # the acker subscribes before the bridge's first event, so every seq reaches it
        acker = AckerProcess(broker.port, room.cfg.key_file, root / "edge-acker.log")
        acker.start()
        room.start()
        link = room.bridge.link
        assert link is not None
        wait_until(lambda: link.connected, 10, "the bridge's MQTT link")
        wait_until(
            lambda: room is not None and room.bridge.outbox.depth() == 0,
            10,
            "the acker to acknowledge the start-up events",
        )
        result = _sample_edges(room, clock, plan)
        # everything the samples made must reach the broker and come back acknowledged
        drained = True
        try:
            wait_until(
                lambda: room is not None and room.bridge.outbox.depth() == 0,
                20,
                "the outbox to drain",
            )
        except BenchError as exc:
            log.warning("%s", exc)
            drained = False
        result["edge_events_made"] = room.controller.seq
        result["edge_events_published"] = link.sent
        result["edge_outbox_depth_end"] = room.bridge.outbox.depth()
        result["edge_outbox_drained"] = drained
    finally:
        if room is not None:
            room.close()
        if acker is not None:
            acker_stats = acker.stop()
        broker.stop()
    result["edge_acker"] = acker_stats
    return result


class _WaitTimer:
    """Stands in for a ``threading.Lock``: adds the time the thread ``ident`` waits to
    acquire it to ``marks[key]``; other threads go straight through."""

    def __init__(self, inner: Any, ident: int, marks: dict[str, int], key: str) -> None:
        self.inner = inner
        self.ident = ident
        self.marks = marks
        self.key = key

    def __enter__(self) -> bool:
        if threading.get_ident() != self.ident:
            return bool(self.inner.acquire())
        start = time.perf_counter_ns()
        got = bool(self.inner.acquire())
        self.marks[self.key] = self.marks.get(self.key, 0) + time.perf_counter_ns() - start
        return got

    def __exit__(self, *exc: object) -> None:
        self.inner.release()


def _sample_edges(room: Any, clock: Any, plan: Plan) -> dict[str, Any]:
    siren_cfg = next(o for o in room.cfg.outputs if o.name == "siren")
    door_cfg = next(i for i in room.cfg.inputs if i.point == "door")
    siren_pin = room.factory.pin(siren_cfg.pin)
    asserted = bool(siren_cfg.active_high)  # the pin level that means "siren on"
    clear_s = max(i.debounce_s for i in room.cfg.inputs) + 0.01
    door = room.bridge.inputs[door_cfg.point]
    outbox = room.bridge.outbox
    me = threading.get_ident()
    marks: dict[str, int] = {}

    # How the siren is timed: an observer on the siren's MockPin. MockPin routes every
    # write of its state through ``_change_state``; wrapping it on this one pin instance
    # stamps perf_counter_ns() right after the level actually changes to "on". That is
    # the moment a real relay would be driven, before the controller signs the events,
    # writes them to the outbox (fsync) and wakes the MQTT sender. Reading
    # room.gpio.siren after drive returns would include all of that, so the time at
    # which drive returns is reported separately (edge_callback_return_*).
    pin_change = siren_pin._change_state

    def siren_observer(value: bool) -> bool:
        changed: bool = pin_change(value)
        if changed and value == asserted and "siren" not in marks:
            marks["siren"] = time.perf_counter_ns()
        return changed

    # Two more stamps split the path: when the debounced edge reaches the controller's
    # callback, and how long the outbox append made in this thread took.
    door_callback = door.on_change

    def door_observer(inp: Any, active: bool, t: float) -> None:
        if active and "input" not in marks:
            marks["input"] = time.perf_counter_ns()
        door_callback(inp, active, t)

    outbox_append = outbox.append

    def append_observer(rows: Any) -> int:
        if threading.get_ident() != me:
            return int(outbox_append(rows))
        start = time.perf_counter_ns()
        try:
            return int(outbox_append(rows))
        finally:
            marks["append"] = marks.get("append", 0) + time.perf_counter_ns() - start

    # Inside the append: time spent waiting for the outbox's lock, which the MQTT sender
    # also takes (reading rows to send, deleting acknowledged ones in fsync'd commits).
    timed_lock = _WaitTimer(outbox._lock, me, marks, "lock_wait")

    rng = random.Random(5)
    total = plan.edge_warmup + plan.edge_samples
    siren_ns: list[float] = []
    return_ns: list[float] = []
    to_input: list[float] = []
    input_to_siren: list[float] = []
    after_siren: list[float] = []
    append_ns: list[float] = []
    lock_wait_ns: list[float] = []
    late = 0
    with (
        patched(siren_pin, "_change_state", siren_observer),
        patched(door, "on_change", door_observer),
        patched(outbox, "append", append_observer),
        patched(outbox, "_lock", timed_lock),
    ):
        log.info(
            "edge: %d samples (+%d warm-up) on the running bridge",
            plan.edge_samples,
            plan.edge_warmup,
        )
        started = time.monotonic()
        for i in range(total):
            # back to rest: door closed (past the debounce window of the last edge),
            # alarms reset, siren off
            clock.advance(clear_s)
            room.gpio.close(door_cfg.point)
            clock.advance(clear_s)
            room.controller.reset(None, "bench")
            if room.gpio.siren:
                raise BenchError("the siren is still on after a reset with the door closed")
            # land the edge at a random moment of the background work (rule loop ticks,
            # reader rounds, MQTT sending of the previous sample's events)
            time.sleep(rng.uniform(0, plan.edge_pause_ms / 1000))
            marks.clear()
            t0 = time.perf_counter_ns()
            room.gpio.open(door_cfg.point)
            t1 = time.perf_counter_ns()
            if "siren" not in marks:
                # not asserted in the callback path: wait for it (the rule loop's poll)
                late += 1
                wait_until(lambda: "siren" in marks, 2, "the siren after a door edge")
            if i < plan.edge_warmup:
                continue
            siren = marks["siren"]
            siren_ns.append(float(siren - t0))
            return_ns.append(float(t1 - t0))
            if "input" in marks:
                to_input.append(float(marks["input"] - t0))
                input_to_siren.append(float(siren - marks["input"]))
            after_siren.append(float(t1 - siren))
            append_ns.append(float(marks.get("append", 0)))
            lock_wait_ns.append(float(marks.get("lock_wait", 0)))
        elapsed = time.monotonic() - started
    log.info("edge: %d samples in %.1f s", total, elapsed)

    def stats(values: list[float]) -> dict[str, float]:
        return {
            "p50": ms(percentile(values, 50)),
            "p99": ms(percentile(values, 99)),
            "max": ms(max(values)),
        }

    return {
        "edge_to_siren_p50_ms": ms(percentile(siren_ns, 50)),
        "edge_to_siren_p99_ms": ms(percentile(siren_ns, 99)),
        "edge_to_siren_max_ms": ms(max(siren_ns)),
        "edge_samples": len(siren_ns),
        "edge_siren_after_callback": late,
        "edge_callback_return_p50_ms": ms(percentile(return_ns, 50)),
        "edge_callback_return_p99_ms": ms(percentile(return_ns, 99)),
        "edge_breakdown_ms": {
            "pin_to_controller_callback": stats(to_input),
            "controller_callback_to_siren": stats(input_to_siren),
            "siren_to_callback_return": stats(after_siren),
            "of_which_outbox_append": stats(append_ns),
            "of_which_outbox_lock_wait": stats(lock_wait_ns),
        },
        "edge_run_s": round(elapsed, 2),
    }


# -- 4. bridge memory --------------------------------------------------------------------


def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in kB; empty once the process is gone."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    name, value = line.split(":", 1)
                    out[name] = int(value.split()[0])
    except (OSError, ValueError):
        return {}
    return out


def _check_is_bridge(proc: subprocess.Popen[bytes], timeout: float = 2.0) -> None:
    """Make sure ``proc.pid`` runs ``ironroom.cli`` (its cmdline can read empty for a
    moment right after the exec)."""
    deadline = time.monotonic() + timeout
    cmdline: list[bytes] = []
    while proc.poll() is None:
        try:
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            return  # already gone: the exit code tells why
        if b"ironroom.cli" in cmdline:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"pid {proc.pid} is not the bridge: {cmdline!r}")
        time.sleep(0.01)


def bench_rss(root: Path, plan: Plan, scenario: str, prefix: str) -> dict[str, Any]:
    """Peak VmRSS of ``ironroom sim room --scenario NAME`` run as its own process."""
    from simulators.room import write_key

    work = root / f"rss-{scenario}"
    broker = Broker(work / "broker")
    data = work / "data"
    acker: AckerProcess | None = None
    proc: subprocess.Popen[bytes] | None = None
    child_log = work / "bridge.log"
    rss_kb: list[int] = []
    hwm_kb = 0
    acker_stats: dict[str, Any] = {}
    try:
        broker.start()
        # the bridge creates its key when missing; making it first lets the acker verify
        key_file = data / "controller.key"
        write_key(key_file, 32)
        acker = AckerProcess(broker.port, key_file, work / "acker.log")
        acker.start()
        cmd = [
            project_python(),
            "-m",
            "ironroom.cli",
            "sim",
            "room",
            "--scenario",
            scenario,
            "--no-badges",
            "--broker",
            broker.url,
            "--data-dir",
            str(data),
            "--seconds",
            f"{plan.rss_seconds:g}",
        ]
        log.info("rss: %s", " ".join(cmd))
        with open(child_log, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_DIR)
        # the pid sampled is the interpreter running the bridge itself, not a wrapper
        _check_is_bridge(proc)
        deadline = time.monotonic() + plan.rss_seconds + 30
        while proc.poll() is None:
            st = _proc_status(proc.pid)
            if "VmRSS" in st:
                rss_kb.append(st["VmRSS"])
                hwm_kb = st.get("VmHWM", hwm_kb)
            if time.monotonic() > deadline:
                raise BenchError("the bridge process did not stop after --seconds")
            time.sleep(0.2)
        code = proc.returncode
    finally:
        stop_process(proc, "bridge")
        if acker is not None:
            acker_stats = acker.stop()
        broker.stop()
    text = tail(child_log, 500_000)
    if code != 0 or not rss_kb:
        raise BenchError(f"bridge process exited with {code}: {text[-2000:]}")
    steps = re.search(r"scenario \S+: (\d+) of (\d+) steps played", text)
    if "scenario " + scenario + " failed" in text:
        log.warning(
            "rss: scenario %s stopped early in the bridge process (see %s)", scenario, child_log
        )
    return {
        f"{prefix}_mb": round(max(rss_kb) / 1024, 1),
        f"{prefix}_hwm_mb": round(hwm_kb / 1024, 1),
        f"{prefix}_samples": len(rss_kb),
        f"{prefix}_seconds": plan.rss_seconds,
        f"{prefix}_scenario": scenario,
        f"{prefix}_scenario_steps": f"{steps.group(1)}/{steps.group(2)}" if steps else None,
        f"{prefix}_acker": acker_stats,
    }


# -- main --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="IronRoom controller benchmark (one JSON line)")
    ap.add_argument("--quick", action="store_true", help="a short run (smoke tests)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
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

    plan = QUICK if args.quick else FULL
    root = Path(tempfile.mkdtemp(prefix="ironroom-bench-"))
    result: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "quick": args.quick,
        "tmp_dir": str(root),
        "tmp_filesystem": filesystem_of(root),
    }
    code = 0
    started = time.monotonic()
    try:
        result.update(bench_outbox(root, plan))
        result.update(bench_m100(plan))
        result.update(bench_edge(root, plan))
        result.update(bench_rss(root, plan, "day", "bridge_rss"))
        result.update(bench_rss(root, plan, "stream", "bridge_rss_stream"))
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        result["error"] = f"{type(exc).__name__}: {exc}"
        code = 1
    finally:
        result["bench_seconds"] = round(time.monotonic() - started, 1)
        result["targets"] = targets_of(result, TARGETS)
        if args.keep:
            log.info("kept %s", root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
