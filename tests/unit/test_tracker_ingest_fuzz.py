"""Fuzzing the tracker's ingest with validly signed events, then mutated: every message is
either applied once or refused and counted, nothing escapes the pipeline, and the ledger
and its audit chain stay whole."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from protocol.canonical import canonical
from protocol.signing import sign
from tests.unit.test_tracker_ingest import CTL, FOLDER, KEY, ROOM, SECRETARY, SITE, make_world
from tracker.store import models as m
from tracker.store.audit import verify

_WORLD: dict[str, Any] = {}


def world() -> Any:
    if "w" not in _WORLD:
        _WORLD["w"] = make_world(Path(tempfile.mkdtemp(prefix="ironroom-fuzz-")))
        _WORLD["seq"] = 0
    return _WORLD["w"]


EPCS = st.sampled_from([FOLDER, "E28011700000020A1B2C3D99", "0A1B2C3D4E"])
READERS = st.sampled_from(["cabinet:c1", "cabinet:c2", "cabinet:c9"])
DATA = st.one_of(
    st.tuples(st.just("tag.departed"), st.fixed_dictionaries({"reader": READERS, "epc": EPCS})),
    st.tuples(st.just("tag.arrived"), st.fixed_dictionaries({"reader": READERS, "epc": EPCS})),
    st.tuples(
        st.just("tag.seen"),
        st.fixed_dictionaries(
            {
                "reader": st.sampled_from(["desk", "portal"]),
                "epc": EPCS,
                "rssi": st.integers(-128, 127),
            }
        ),
    ),
    st.tuples(
        st.just("badge.presented"),
        st.fixed_dictionaries(
            {
                "reader": st.sampled_from(["desk", "cabinet:c1", "portal"]),
                "uid": st.sampled_from([SECRETARY, "0011223344556677"]),
                "auth": st.sampled_from(["verified", "uid-only", "failed"]),
            }
        ),
    ),
    st.tuples(
        st.just("alarm.raised"),
        st.fixed_dictionaries(
            {
                "alarm_id": st.text("abc:123", min_size=1, max_size=8),
                "cause": st.sampled_from(["tamper", "forced_open", "panic"]),
                "point": st.sampled_from(["tamper:t1", "door"]),
                "severity": st.sampled_from(["critical", "warning"]),
            }
        ),
    ),
    st.tuples(
        st.just("controller.heartbeat"),
        st.fixed_dictionaries(
            {
                "uptime_s": st.integers(0, 10**6),
                "outbox_depth": st.integers(0, 3),
                "armed": st.booleans(),
            }
        ),
    ),
)

MUTATIONS = st.sampled_from(
    [
        "none",
        "resign-bad-type",
        "resign-drop-field",
        "resign-huge-seq",
        "resign-float",
        "flip-byte",
        "other-topic",
        "duplicate",
        "resign-extra-field",
        "resign-wrong-ctl",
    ]
)


def _signed(topic: str, env: dict[str, Any]) -> bytes:
    env = dict(env)
    env.pop("sig", None)
    env["sig"] = sign(KEY, topic, env)
    return canonical(env)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DATA, MUTATIONS, st.integers(0, 2**31))
def test_signed_then_mutated_events(
    item: tuple[str, dict[str, Any]], mutation: str, salt: int
) -> None:
    w = world()
    type_, data = item
    _WORLD["seq"] += 1
    seq = _WORLD["seq"]
    w.clock.advance(1)
    topic = f"ironroom/v1/{SITE}/{ROOM}/evt/{type_.split('.')[0]}"
    env: dict[str, Any] = {
        "v": 1,
        "controller": CTL,
        "boot": 1,
        "seq": seq,
        "ts": w.clock.now().strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "type": type_,
        "data": data,
    }
    payload = _signed(topic, env)
    valid = True
    if mutation == "resign-bad-type":
        first = sorted(data)[0]
        wrong = "x" if not isinstance(data[first], str) else 7
        payload, valid = _signed(topic, {**env, "data": {**data, first: wrong}}), False
    elif mutation == "resign-drop-field":
        payload, valid = _signed(topic, {**env, "data": {}}), False
    elif mutation == "resign-huge-seq":
        payload, valid = _signed(topic, {**env, "seq": 2**63 + salt}), False
    elif mutation == "resign-float":
        payload, valid = payload.replace(b'"v":1', b'"v":1.0'), False
    elif mutation == "resign-extra-field":
        payload, valid = _signed(topic, {**env, "extra": salt}), False
    elif mutation == "resign-wrong-ctl":
        payload, valid = _signed(topic, {**env, "controller": "someone-else"}), False
    elif mutation == "flip-byte":
        i = salt % len(payload)
        payload, valid = payload[:i] + bytes([payload[i] ^ 0x01]) + payload[i + 1 :], False
    elif mutation == "other-topic":
        topic, valid = f"ironroom/v1/{SITE}/{ROOM}/evt/sensor", False
    before = _counts(w)
    msgs = [w.room.raw(topic, payload)]
    if mutation == "duplicate":
        msgs.append(w.room.raw(topic, payload))
    w.proc.process(msgs)  # must not raise
    after = _counts(w)
    applied = after["events"] - before["events"]
    refused = sum(after[k] - before[k] for k in after if k.startswith("refused"))
    if valid:
        assert applied == 1 and refused == 0
        if mutation == "duplicate":
            assert after["duplicate"] - before["duplicate"] == 1
    else:
        assert applied == 0 and refused == len(msgs)
        forged = after["refused.forged"] - before["refused.forged"]
        # moved to another topic or claimed by another controller: a forgery, recorded
        if mutation in ("other-topic", "resign-wrong-ctl"):
            assert forged == 1
        _WORLD["seq"] -= 1  # the refused seq is made again by the next example


def _counts(w: Any) -> dict[str, int]:
    with w.store.readers() as s:
        out = {c.name: c.value for c in s.scalars(select(m.Counter))}
        out["events"] = s.scalar(select(func.count()).select_from(m.Event)) or 0
    out.setdefault("duplicate", 0)
    for k in ("refused.forged", "refused.malformed", "refused.topic", "refused.oversized"):
        out.setdefault(k, 0)
    return out


def test_the_fuzzer_reached_the_rules() -> None:
    """Run after the fuzz test: folders moved, loans and alarms were written."""
    w = world()
    with w.store.readers() as s:
        kinds = {t for (t,) in s.execute(select(m.Event.type).distinct())}
        actions = {a for (a,) in s.execute(select(m.AuditEntry.action).distinct())}
        details = [json.loads(x) for (x,) in s.execute(select(m.Incident.detail))]
    assert {"tag.departed", "tag.arrived", "badge.presented"} <= kinds
    assert {"alarm.raise", "document.move"} <= actions
    assert details  # unknown tags, refused badges, misplaced folders were recorded
    with w.store.readers() as s:
        v = verify(s)
    assert v.ok, v.problem
