"""PLAN_DELTA ledger events: queued while deltas burst, ledgered in send order once it is over."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from arbsphere.contracts import PLAN_LEG_DTYPE, default_registry
from arbsphere.coordinator.plan_events import PlanEvents
from arbsphere.security.ledger import EventKind

REG = default_registry()
MS = 1_000_000


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[EventKind, int, dict[str, Any]]] = []

    def event(self, kind: EventKind, subject: int, details: Mapping[str, Any]) -> None:
        self.events.append((kind, subject, dict(details)))


def delta(delta_id: int, kind: int = 1, n_legs: int = 2) -> bytes:
    pd = REG.schema("PlanDelta", 2)
    hdr = np.zeros(1, pd.header_dtype)
    hdr["delta_id"] = delta_id
    hdr["n_legs"] = n_legs
    hdr["kind"] = kind
    hdr["cause_venue"] = 1
    hdr["cause_seq"] = 100 + delta_id
    hdr["plan_hash"] = 0xABC
    legs = np.zeros(n_legs, PLAN_LEG_DTYPE)
    legs["size_lots"] = 1
    return REG.encode(pd, hdr, legs, sender_id=1, nonce=delta_id, origin_ts_ns=delta_id)


def test_a_burst_is_ledgered_once_it_is_quiet_in_send_order() -> None:
    sink = Sink()
    ev = PlanEvents(sink, REG, broker_sender_id=9, quiet_ns=5 * MS, max_defer_ns=100 * MS)
    raws = [delta(i) for i in (1, 2, 3)]
    for i, raw in enumerate(raws):
        ev(raw, 10 * MS + i * MS)  # three deltas 1 ms apart: one burst
    assert ev.pending == 3 and ev.due_in_ns(12 * MS) == 5 * MS
    assert ev.maybe_flush(16 * MS) == 0 and not sink.events  # 4 ms after the last: still queued
    assert ev.maybe_flush(17 * MS) == 3 and ev.pending == 0
    assert [e[2]["delta_id"] for e in sink.events] == [1, 2, 3]
    kind, subject, details = sink.events[0]
    assert kind == EventKind.PLAN_DELTA and subject == 9
    assert details == {
        "delta_id": 1, "n_legs": 2, "cause_venue": 1, "cause_seq": 101, "kind": "trade",
        "plan_hash": f"{0xABC:016x}", "sent_ns": 10 * MS,
        "sha256": hashlib.sha256(raws[0]).hexdigest(),
    }  # fmt: skip
    assert ev.due_in_ns(17 * MS) is None and ev.ledgered == 3 and ev.flushes == 1


def test_a_burst_that_never_pauses_is_ledgered_after_max_defer() -> None:
    sink = Sink()
    ev = PlanEvents(sink, REG, 9, quiet_ns=5 * MS, max_defer_ns=20 * MS)
    t = 0
    flushed_at = []
    for i in range(1, 60):  # a delta every 1 ms for 59 ms: never 5 ms quiet
        t = i * MS
        ev(delta(i), t)
        if ev.maybe_flush(t):
            flushed_at.append(t)
    assert flushed_at == [21 * MS, 42 * MS]  # the oldest (1 ms, then 22 ms) waited 20 ms
    assert len(sink.events) == 42 and ev.pending == 17
    ev.flush()
    assert [e[2]["delta_id"] for e in sink.events] == list(range(1, 60))


def test_a_full_queue_is_ledgered_at_once_and_nothing_is_lost() -> None:
    sink = Sink()
    ev = PlanEvents(sink, REG, 9, max_queued=4)
    for i in range(1, 10):
        ev(delta(i, kind=2 if i % 3 == 0 else 1), i)
    assert len(sink.events) == 8 and ev.pending == 1
    assert ev.flush() == 1 and [e[2]["delta_id"] for e in sink.events] == list(range(1, 10))
    assert [e[2]["kind"] for e in sink.events[:3]] == ["trade", "trade", "write_off"]


def test_undecodable_bytes_are_counted_not_ledgered() -> None:
    sink = Sink()
    ev = PlanEvents(sink, REG, 9)
    ev(b"\x00" * 10, 1)
    ev(delta(5), 2)
    assert ev.flush() == 1 and ev.errors == 1 and sink.events[0][2]["delta_id"] == 5
