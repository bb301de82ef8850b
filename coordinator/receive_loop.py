"""The coordinator's receive loop: one wake-up drains what is queued on the inbound socket,
applies it to the core in arrival order, solves once and sends at most one PlanDelta (write-offs
and PlanSnapshots ahead of it), journaling every input, batch boundary and output. The live
process and the replay drive the same loop (the replay with recorded inputs and batch sizes).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from arbsphere.clock import Clock
from arbsphere.contracts import default_registry
from arbsphere.coordinator.core import (
    CAUSE_REPORT,
    ORIGIN_TS,
    REPORT_HEAD,
    REPORT_TIMES,
    TICK_N_ASSETS,
    Coordinator,
)
from arbsphere.coordinator.recorder import JournalRecorder
from arbsphere.coordinator.solve_marks import mark_solved
from arbsphere.coordinator.traces import FILL_TRACE_DTYPE, SOLVE_TRACE_DTYPE
from arbsphere.errors import DecodeError
from arbsphere.tracebuf import TraceBuffer

#: plain ints for the per-message readiness check (zmq's IntFlag ``&`` runs enum code in Python)
_ZMQ_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
# envelope positions in the decode_values tuples (bound once: the hot path indexes plain ints)
_SENDER = default_registry().envelope_fields.sender_id
_NONCE = default_registry().envelope_fields.nonce

#: messages queued per sender on the coordinator's inbound socket before ZeroMQ stops reading
INBOUND_HWM = 16

#: records the loop may hold noted but not framed while messages keep arriving (see drain)
COMMIT_BACKLOG = 256


class ReceiveLoop:
    """The receive loop: drain what is queued, apply it in arrival order, solve once.

    A wake-up takes up to ``max_batch`` queued messages (never waiting for more), applies every
    LocalArbProblem and ExecutionReport in arrival order, then solves once on the resulting
    state and emits at most one PlanDelta, attributed to the newest tick of the batch (its
    trigger). A tick whose (venue, asset) quote a later tick of the same batch overwrote never
    reached a solve: it is *superseded* (counted, flagged in the trace, never silently lost).
    The other ticks of the batch did reach the solve; their trace rows carry the batch's solve
    times. With ``max_batch = 1`` every tick is solved on its own. Batch boundaries depend on
    arrival timing, so they are recorded (``batch`` in the trace) for replay.
    """

    def __init__(self, core: Coordinator, clock: Clock, push: Any, max_batch: int) -> None:
        self.core = core
        self.clock = clock
        self.push = push
        self.max_batch = max_batch
        reg = core.reg
        self.reg = reg
        self.problem_id = reg.schema("LocalArbProblem").id
        self.quote_id = reg.schema("VenueQuote").id
        self.signals_id = reg.schema("SharedSignals").id
        self.share_id = reg.schema("SignalShare").id
        self.report_id = reg.schema("ExecutionReport").id
        self.replica_status_id = reg.schema("ReplicaStatus").id
        self.trace = TraceBuffer(SOLVE_TRACE_DTYPE)
        self.fills = TraceBuffer(FILL_TRACE_DTYPE, 16_384)
        self.solve_rows = np.zeros(4096, np.int64)  # trace row of each solve's trigger tick
        self.last_error = ""
        self.batches = 0
        self.max_seen_batch = 0
        self.superseded = 0
        self.batched_ticks = 0  # ticks solved together with a later trigger tick
        #: journals every input, batch boundary and PlanDelta when set (see .recorder); with
        #: ``interleave_ns`` (a benchmark mode) it is ``journal_recorder`` during even periods of
        #: the clock and None during odd ones, switched at the start of a wake-up
        self.recorder: JournalRecorder | None = None
        self.journal_recorder: JournalRecorder | None = None
        self.interleave_ns = 0
        self.batches_unrecorded = 0
        #: stamp each wake-up's PlanDeltas and PlanSnapshots with its time (Coordinator
        #: .send_ts_ns); False only to replay a journal recorded before (no CONFIG ``stamp``)
        self.stamp_wakeup = True
        #: the origin stamps of this wake-up's ReplicaStatus inputs: each is answered with a
        #: PlanSnapshot once the receive loop is done (journaled after the BATCH record)
        self._snapshot_asks: list[int] = []
        #: called with every PlanDelta sent and its send time (the governance ledger's
        #: PLAN_DELTA events, queued: see coordinator/plan_events.py)
        self.on_delta: Callable[[bytes, int], None] | None = None

    def set_recorder(self, recorder: JournalRecorder, interleave_ns: int = 0) -> None:
        self.journal_recorder = self.recorder = recorder
        self.interleave_ns = interleave_ns

    def batch_counters(self) -> dict[str, int]:
        return {
            "batches": self.batches,
            "max_batch": self.max_seen_batch,
            "max_batch_limit": self.max_batch,
            "superseded_ticks": self.superseded,
            "ticks_solved_with_later_trigger": self.batched_ticks,
        }

    def _decode_error(self, exc: DecodeError) -> None:
        self.core.counts["decode_errors"] += 1
        self.last_error = str(exc)

    def drain(self, pull: Any) -> None:
        """One wake-up: receive what is queued on ``pull`` (up to ``max_batch``), close the
        batch, decide once, then frame the journal's records and sum the signal shares."""
        core = self.core
        if self.interleave_ns:
            on = (self.clock.now_ns() // self.interleave_ns) % 2 == 0
            self.recorder = self.journal_recorder if on else None
        # the socket's own getsockopt (int result; not the SecureSocket delegation nor pyzmq's
        # ``get``, which wraps it in Python: 1.6 against 0.9 us a call)
        queued = getattr(pull, "sock", pull).getsockopt
        first_row = self.trace.n
        shares: list[tuple[Any, ...]] = []  # SignalShares: summed after the decision
        n, trigger, share_bits = self._receive(pull, queued, shares)
        if n == 0:
            return
        self._close_batch(n)
        self._decide(first_row, trigger)
        recorder = self.recorder
        if recorder is not None and (
            recorder.pending >= COMMIT_BACKLOG or not queued(_ZMQ_EVENTS) & _POLLIN
        ):
            # the decision is out and nothing is waiting: frame the noted records now (with a
            # message already queued, the next wake-up's end does it, up to COMMIT_BACKLOG)
            recorder.after_batch()
        if core.signal_agg is not None:
            core.on_shares(shares, share_bits)  # per epoch, after the decision (else O(1))

    def _receive(
        self, pull: Any, queued: Callable[[int], int], shares: list[tuple[Any, ...]]
    ) -> tuple[int, tuple[Any, ...] | None, int]:
        """Apply what is queued, in arrival order, up to ``max_batch`` messages (never waiting
        for more): ticks, execution reports; ReplicaStatus asks and SignalShares are kept for
        after the decision (``shares``). Returns (messages taken, the trigger tick or None,
        the signal participants as the first share arrived)."""
        core = self.core
        reg = self.reg
        clock = self.clock
        latest: dict[tuple[int, int], int] = {}  # (venue, asset) -> newest row in this batch
        trigger: tuple[Any, ...] | None = None
        record_input = self.recorder.input if self.recorder is not None else None
        share_bits = 0
        n = 0
        while n < self.max_batch:
            # After the first message, ask whether another is queued (ZMQ_EVENTS) rather than
            # let recv raise zmq.Again: constructing that exception is a few µs per wake-up.
            if n and not queued(_ZMQ_EVENTS) & _POLLIN:
                break
            try:
                frames = pull.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                break
            n += 1
            rx = clock.now_ns()
            if record_input is not None:
                record_input(frames, rx)
            try:
                msgs = reg.messages_of(frames)  # a tick: its problem, then its signals
                schema, values = reg.decode_values(msgs[0])
            except DecodeError as exc:
                self._decode_error(exc)
                continue
            sid = schema.id
            if sid == self.problem_id or sid == self.quote_id:  # nonces checked per tick
                trigger = self._ticks(msgs, schema, values, rx, latest) or trigger
                continue
            # envelope values: magic, schema_id, version, sender, payload_len, nonce, origin_ts
            if not core.check_nonce(values[_SENDER], values[_NONCE]):
                core.counts["stale_messages"] += 1
                continue
            if sid == self.report_id:
                self._reports(msgs, values, rx)
            elif sid == self.replica_status_id:
                self._snapshot_asks.append(values[ORIGIN_TS])  # answered after the loop
            elif sid == self.share_id and core.signal_agg is not None:
                if not shares:  # the participants as the share arrived (a solve may change them)
                    share_bits = core.signal_participants()
                shares.append(values)
            else:
                core.counts["unknown_messages"] += 1
        return n, trigger, share_bits

    def _close_batch(self, n: int) -> None:
        """Count and journal the wake-up's batch, stamp its outputs with its time and answer
        its ReplicaStatus asks."""
        core = self.core
        self.batches += 1
        self.max_seen_batch = max(self.max_seen_batch, n)
        now = self.clock.now_ns()  # the wake-up's time (a replay's clock reads the BATCH record's)
        if self.recorder is not None:
            self.recorder.batch(n, now)
        elif self.interleave_ns:
            self.batches_unrecorded += 1
        if self.stamp_wakeup:
            core.send_ts_ns = now
        if self._snapshot_asks:
            # A diverged replica's ReplicaStatus: the whole plan (the receive loop changed no
            # plan cell, so it is the plan as the status arrived), sent and journaled as an
            # output, ahead of this wake-up's PlanDeltas on the same ordered stream.
            for ts in self._snapshot_asks:
                self._send_snapshot(ts)
            self._snapshot_asks.clear()

    def _decide(self, first_row: int, trigger: tuple[Any, ...] | None) -> None:
        """Write off the batch's shortfalls, then solve once: on the trigger tick, or (only
        shortfalls in the batch) on the current state for the compensating delta."""
        core = self.core
        # Shortfalls reported in this batch are written off first; the batch's solve (or, with
        # no tick in the batch, a solve of its own) then sends the compensating TRADE delta.
        had_shortfalls = bool(core.shortfalls)
        if had_shortfalls:
            self._write_offs()
        if trigger is not None and core.ready():
            row, venue, seq, budget, ts = trigger
            self._solve(first_row, row, venue, seq, budget, ts, compensating=had_shortfalls)
        elif had_shortfalls and core.ready():
            self._compensating_solve()

    def _ticks(
        self, msgs: list[bytes], schema: Any, values: tuple[Any, ...], rx: int,
        latest: dict[tuple[int, int], int],
    ) -> tuple[Any, ...] | None:  # fmt: skip
        """Apply the ticks of one received message — each a LocalArbProblem or VenueQuote,
        optionally followed by its SharedSignals; a venue adapter that fell behind sends the
        ticks its link delivered together in one frame — and return the newest as the
        trigger (None when none applied). The first message is decoded by the caller; every
        message is counted whatever becomes of it (a stale nonce skips that tick only)."""
        core = self.core
        trigger = None
        for k, msg in enumerate(msgs):
            if k:
                try:
                    schema, values = self.reg.decode_values(msg)
                except DecodeError as exc:
                    self._decode_error(exc)
                    continue
                if schema.id == self.signals_id:
                    core.counts["signals"] += 1
                    continue
                if schema.id != self.problem_id and schema.id != self.quote_id:
                    core.counts["unknown_messages"] += 1
                    self.last_error = f"{schema.name} in a tick frame from sender {values[_SENDER]}"
                    continue
            if not core.check_nonce(values[_SENDER], values[_NONCE]):
                core.counts["stale_messages"] += 1
                continue
            if (schema.id == self.quote_id) != (core.rounds is not None):
                core.counts["unknown_messages"] += 1  # the other coordination mode's input
                self.last_error = f"{schema.name} from sender {values[_SENDER]}: wrong mode"
                continue
            venue, asset, seq, budget = (
                core.on_quote(values) if schema.id == self.quote_id else core.on_problem(values)
            )
            row = self.trace.n
            if values[TICK_N_ASSETS] == 1:  # single-asset: a later one for the cell replaces it
                prev = latest.get((venue, asset))
                if prev is not None:
                    self.trace.view()[prev]["superseded"] = 1
                    self.superseded += 1
                latest[(venue, asset)] = row
            self.trace.append(
                (venue, asset, seq, rx, 0, 0, 0, 0, 0, 0, 0, np.nan, 0, self.batches, 0, 0, 0)
            )
            trigger = (row, venue, seq, budget, values[ORIGIN_TS])
        return trigger

    def _solve(
        self, first_row: int, row: int, venue: int, seq: int, budget: int, ts: int,
        compensating: bool = False,
    ) -> None:  # fmt: skip
        core = self.core
        clock = self.clock
        iterations, converged = core.solve(budget)
        solve_done = clock.now_ns()
        delta = core.emit_delta(ts, venue, seq)
        merge_done = clock.now_ns()
        sent = 0
        n_legs = 0
        if delta is not None:
            sent = self._send_delta(delta)
            n_legs = core.last_n_legs
            if compensating:
                core.counts["compensating_deltas"] += 1
        self._register_solve(row)
        live = mark_solved(
            self.trace.view(), first_row, row, solve_done, merge_done, sent,
            core.delta_id if delta is not None else 0, n_legs, iterations, int(converged),
            core.max_abs_net_lots,
        )  # fmt: skip
        self.batched_ticks += live - 1

    def _send_delta(self, delta: bytes) -> int:
        """Send a PlanDelta, journal it and queue its ledger event; returns its send time.

        No hand-off sleep after the send (sessions 6-11 slept 50 us here so that ZeroMQ's I/O
        thread got this CPU): a 50 us sleep takes ~150 us on this host (timer slack, wake-up),
        and in a burst of trades the next tick waited for it — per-wake-up event logs of the
        coordinator put 88 us of the traded ticks' mean adapter -> coordinator time (336 us) in
        that sleep. Without it, 2 x 12 s runs each: adapter -> coordinator p50 of traded ticks
        253-259 against 312-319 us, tick_to_trade p50 1018-1032 against 1041-1117 us, p99
        2.2 against 2.3 ms."""
        self.push.send(delta, copy=True)
        sent = self.clock.now_ns()
        if self.recorder is not None:
            self.recorder.delta(delta, sent)
        if self.on_delta is not None:
            self.on_delta(delta, sent)
        return sent

    def _send_snapshot(self, status_ts: int) -> None:
        """Answer a ReplicaStatus (origin stamp ``status_ts``) with a PlanSnapshot, journaled
        (a replay reproduces it byte for byte, in order with the PlanDeltas)."""
        snapshot = self.core.plan_snapshot(status_ts)
        self.push.send(snapshot, copy=True)
        if self.recorder is not None:
            self.recorder.snapshot(snapshot, self.clock.now_ns())

    def _reports(self, frames: list[bytes], values: tuple[Any, ...], rx: int) -> None:
        core = self.core
        core.on_report(values)
        self.fills.append((*values[REPORT_HEAD], *values[REPORT_TIMES], rx))
        for frame in frames[1:]:  # further reports of the same frame (or message)
            try:
                more_schema, more = self.reg.decode_values(frame)
            except DecodeError as exc:
                self._decode_error(exc)
                continue
            if more_schema.id != self.report_id or not core.check_nonce(
                more[_SENDER], more[_NONCE]
            ):
                core.counts[
                    "stale_messages" if more_schema.id == self.report_id else "unknown_messages"
                ] += 1
                continue
            core.on_report(more)
            self.fills.append((*more[REPORT_HEAD], *more[REPORT_TIMES], rx))
        core.realized.observe(core.executed, rx)

    def _register_solve(self, row: int) -> None:
        """The trace row of the solve just run (-1: a compensating solve, no tick) and its
        snapshot for the baseline comparison."""
        core = self.core
        k = core.counts["solves"] - 1  # this solve's index
        if k == self.solve_rows.shape[0]:
            self.solve_rows = np.concatenate([self.solve_rows, np.zeros_like(self.solve_rows)])
        self.solve_rows[k] = row
        core.coordination.keep_inputs()

    def _write_offs(self) -> None:
        """A WRITE_OFF delta for every shortfall of the batch, in arrival order."""
        core = self.core
        for order_id, venue, asset, lots in core.shortfalls:
            delta = core.write_off(core.shortfall_ts, order_id, venue, asset, lots)
            self._send_delta(delta)
        core.last_shortfall_order = core.shortfalls[-1][0]
        core.shortfalls.clear()

    def _compensating_solve(self) -> None:
        """A batch with shortfalls and no tick: solve on the current state for the compensating
        TRADE delta (attributed to the last short order)."""
        core = self.core
        core.solve(core.last_budget_ns)
        self._register_solve(-1)
        trade = core.emit_delta(core.shortfall_ts, CAUSE_REPORT, core.last_shortfall_order)
        if trade is not None:
            core.counts["compensating_deltas"] += 1
            self._send_delta(trade)

    def save(self, out_dir: Path) -> None:
        """The solve trace (with each solve's objective gap, central coordination), the solve
        records (federated), the signal epochs and the execution reports, at the stop."""
        core = self.core
        trace = self.trace.view()
        trace["objective_gap"][:] = np.nan
        core.coordination.save(out_dir, trace, self.solve_rows)
        if core.signal_agg is not None:
            core.signal_agg.save(out_dir / "coordinator.signal_epochs.npy")
        self.trace.save(out_dir / "coordinator.trace.npy")
        self.fills.save(out_dir / "coordinator.fills.npy")
