"""The coordinator's governance events for the PlanDeltas it emits, ledgered off the trading path.

Every PlanDelta (TRADE or WRITE_OFF) that leaves the coordinator is ledgered as a PLAN_DELTA
event: its id, kind, leg count, cause, plan hash, the time it was sent (``sent_ns``, rig
timebase) and the SHA-256 of its bytes as sent (before tag and attestation) — the same bytes the
replay journal holds, so the ledger and the journal can be cross-checked.

Deltas come in bursts (a mispricing episode trades on tick after tick), and an event sent the
moment its delta leaves wakes ZeroMQ's I/O thread and the registry while the delta itself, the
broker's orders and the burst's next ticks are still on their way: on the 2-vCPU loopback rig a
wake-up carrying a PlanDelta took 720 µs (p50) with the event sent at once against 440 µs with no
event. So a delta is only queued here (its bytes and send time); the queue is ledgered, in send
order, once the burst is over — no delta for :data:`QUIET_NS` — or when its oldest event has
waited :data:`MAX_DEFER_NS`, or when :data:`MAX_QUEUED` are waiting; and on :meth:`flush` at
the end. Nothing is dropped: every queued delta becomes an event. The ledger entry's own time is
when the registry appended it; ``sent_ns`` says when the delta left.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Protocol

from arbsphere.contracts import SchemaRegistry, default_registry
from arbsphere.errors import DecodeError
from arbsphere.security.ledger import EventKind

#: PlanDelta v2 positions in its decode_values tuple
_D = default_registry().fields("PlanDelta", 2)
(_KIND_TRADE,) = default_registry().codes("PlanDeltaKind", "TRADE")

#: a spell this long with no PlanDelta ends a burst: its events are ledgered then
QUIET_NS = 5_000_000
#: no event waits longer than this (a burst that never pauses still gets ledgered)
MAX_DEFER_NS = 100_000_000
#: nor more events than this
MAX_QUEUED = 512


class EventSink(Protocol):
    """The part of :class:`~arbsphere.security.role_security.RoleSecurity` used here."""

    def event(self, kind: EventKind, subject: int, details: Mapping[str, Any]) -> None: ...


class PlanEvents:
    """Callable: ``plan_events(delta_bytes, sent_ns)`` after each PlanDelta sent (queues it);
    :meth:`maybe_flush` after each wake-up of the loop, :meth:`flush` at the end."""

    def __init__(
        self,
        sec: EventSink,
        reg: SchemaRegistry,
        broker_sender_id: int,
        *,
        quiet_ns: int = QUIET_NS,
        max_defer_ns: int = MAX_DEFER_NS,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self.sec = sec
        self.reg = reg
        self.plan_id = reg.schema("PlanDelta", 2).id
        self.subject = broker_sender_id
        self.quiet_ns = quiet_ns
        self.max_defer_ns = max_defer_ns
        self.max_queued = max_queued
        self.errors = 0
        self.ledgered = 0
        self.flushes = 0
        self._queue: list[tuple[bytes, int]] = []

    @property
    def pending(self) -> int:
        return len(self._queue)

    def __call__(self, delta: bytes, sent_ns: int) -> None:
        self._queue.append((delta, sent_ns))
        if len(self._queue) >= self.max_queued:
            self.flush()

    def due_in_ns(self, now_ns: int) -> int | None:
        """How long until the queue is due (0: now); None when it is empty."""
        if not self._queue:
            return None
        quiet_at = self._queue[-1][1] + self.quiet_ns
        oldest_at = self._queue[0][1] + self.max_defer_ns
        return max(0, min(quiet_at, oldest_at) - now_ns)

    def maybe_flush(self, now_ns: int) -> int:
        """Ledger the queue if it is due at ``now_ns``; returns how many events were sent."""
        due = self.due_in_ns(now_ns)
        return self.flush() if due == 0 else 0

    def flush(self) -> int:
        """Ledger every queued delta, in send order; returns how many events were sent."""
        queue, self._queue = self._queue, []
        sent = 0
        for delta, sent_ns in queue:
            try:
                schema, v = self.reg.decode_values(delta)
            except DecodeError:
                self.errors += 1
                continue
            if schema.id != self.plan_id:
                continue
            self.sec.event(
                EventKind.PLAN_DELTA,
                self.subject,
                {
                    "delta_id": v[_D.delta_id], "n_legs": v[_D.n_legs],
                    "cause_venue": v[_D.cause_venue], "cause_seq": v[_D.cause_seq],
                    "kind": "trade" if v[_D.kind] == _KIND_TRADE else "write_off",
                    "plan_hash": f"{v[_D.plan_hash]:016x}",
                    "sent_ns": sent_ns, "sha256": hashlib.sha256(delta).hexdigest(),
                },
            )  # fmt: skip
            sent += 1
        self.ledgered += sent
        if queue:
            self.flushes += 1
        return sent
