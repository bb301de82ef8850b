"""The coordinator's decisions: the deterministic core, with no sockets and no clock reads.

Local problems (central coordination) or public quotes (federated) and execution reports in;
a solve on the resulting state; the legs moving the plan to the target merged into the plan and
packed as a PlanDelta; write-offs of what will never fill; PlanSnapshots for a diverged replica;
per-solve snapshots of the inputs for the exact centralized baseline. The federated solve and the
venue outages around it are in :mod:`.federated_solve`; the receive loop that feeds this core in
arrival order is :mod:`.receive_loop`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from arbsphere.contracts import PLAN_LEG_DTYPE, default_registry
from arbsphere.coordinator.admm import AdmmSettings, ExchangeADMM
from arbsphere.coordinator.baseline import centralized_solve, gaps_batch, keep_inputs, objective
from arbsphere.coordinator.federated_solve import FederatedRounds, FederatedSolve, VenueOutages
from arbsphere.coordinator.neutralize import neutralize_lots
from arbsphere.coordinator.signal_aggregate import SignalAggregator
from arbsphere.coordinator.solve_marks import mark_solved
from arbsphere.coordinator.traces import SOLVE_TRACE_DTYPE, RealizedNet
from arbsphere.errors import ContractError, PipelineError
from arbsphere.firmware_interfaces.messages import PRICE_SCALE
from arbsphere.plan.digest import plan_hash
from arbsphere.plan.merge import STAT_MAX_ABS_NET, DeltaMerger, emit_and_merge
from arbsphere.sender_ids import COORDINATOR_SENDER_ID

#: field positions in a PlanDelta leg row (``ndarray.tolist`` tuples)
_LEG_VENUE, _LEG_ASSET, _LEG_SIDE, _LEG_LOTS = (
    (PLAN_LEG_DTYPE.names or ()).index(f) for f in ("venue", "asset", "side", "size_lots")
)
_REG = default_registry()
KIND_TRADE, KIND_WRITE_OFF = _REG.codes("PlanDeltaKind", "TRADE", "WRITE_OFF")
#: cause_venue of a delta caused by an execution report (a shortfall), not by a tick
CAUSE_REPORT = 0xFFFF
_FILL, _PARTIAL, _REJECT = _REG.codes("ReportStatus", "FILL", "PARTIAL", "REJECT")
_FILLED = (_FILL, _PARTIAL)
#: immediate-or-cancel: after these, nothing more of the order will fill
STATUS_FINAL = (_FILL, _PARTIAL, _REJECT)
# Positions in the decode_values tuples (bound once: the hot path indexes with plain ints)
_ENV = _REG.envelope_fields
ORIGIN_TS = _ENV.origin_ts_ns
_PROBLEM = _REG.fields("LocalArbProblem", 1)
_QUOTE = _REG.fields("VenueQuote", 1)
_TICK_HEAD = ("venue_id", "n_assets", "tick_seq", "tick_intended_ns", "budget_ns")
_PROBLEM_HEAD = _PROBLEM.span(*_TICK_HEAD)
_PROBLEM_ITEM = _PROBLEM.item_span(
    "asset_id", "c", "gamma", "phi", "limit_lots", "bid_px", "ask_px"
)
_QUOTE_HEAD = _QUOTE.span(*_TICK_HEAD)
_QUOTE_ITEM = _QUOTE.item_span("asset_id", "bid_px", "ask_px")
_PROBLEM_STRIDE, _QUOTE_STRIDE = _PROBLEM.stride, _QUOTE.stride
#: the tick loop reads a problem's or a quote's asset count at one position
TICK_N_ASSETS = _PROBLEM.n_assets
if _QUOTE.n_assets != TICK_N_ASSETS:  # pragma: no cover - declaration guard
    raise ContractError("LocalArbProblem and VenueQuote must carry n_assets at one position")
# The PlanDelta packer takes values in declared order: _pack_delta passes them so
_REG.fields("PlanDelta", 2).expect(
    ("delta_id", "ts_ns", "sender", "n_legs", "cause_venue", "cause_seq", "kind", "plan_hash")
)
_REPORT = _REG.fields("ExecutionReport", 1)
#: an ExecutionReport's head: order_id, delta_id, venue, asset, status, filled_lots
REPORT_HEAD = _REPORT.span("order_id", "delta_id", "venue", "asset", "status", "filled_lots")
#: what a FILL_TRACE_DTYPE row takes after the head (then the coordinator's receive time)
REPORT_TIMES = _REPORT.span("device_rx_ns", "device_tx_ns", "rig_tx_ns", "rig_rx_ns")


class Coordinator:
    """The deterministic core: state and per-message handlers (no sockets, no clock reads)."""

    def __init__(
        self,
        n_venues: int,
        n_assets: int,
        settings: AdmmSettings,
        budget_iterations_cap: int,
        min_delta_lots: int,
        ns_per_iteration: float = 50.0,
    ) -> None:
        self.n_venues = n_venues
        self.n_assets = n_assets
        self.reg = default_registry()
        self.admm = ExchangeADMM(n_venues, n_assets, settings)
        self.settings = settings
        self.iter_cap = budget_iterations_cap
        self.ns_per_iteration = ns_per_iteration
        self.min_delta_lots = min_delta_lots
        shape = (n_venues, n_assets)
        self.c = np.zeros(shape)
        self.gamma = np.ones(shape)
        self.phi = np.zeros(shape)
        self.limit = np.zeros(shape)
        self.limit_lots = np.zeros(shape, np.int64)
        self.bid_px = np.zeros(shape, np.int64)
        self.ask_px = np.zeros(shape, np.int64)
        self.quoted = np.zeros(shape, np.bool_)
        self._all_quoted = False
        self.target = np.zeros(shape, np.int64)
        self.x_star = np.zeros(shape)
        self.lam_star = np.zeros(n_assets)
        self.merger = DeltaMerger(n_venues, n_assets, n_senders=4)
        self.legs = np.zeros(n_venues * n_assets, PLAN_LEG_DTYPE)
        self.executed = np.zeros(shape, np.int64)
        self.delta_id = 0
        self.last_n_legs = 0
        self.nonce = 0
        #: the envelope origin stamp of the PlanDeltas and PlanSnapshots packed now: the
        #: receive loop sets it to each wake-up's time (journaled: the BATCH record's ts), so the
        #: broker's skew window judges the message, not how long its tick queued here. None:
        #: the causing input's stamp (journals without CONFIG ``stamp``)
        self.send_ts_ns: int | None = None
        self.plan_schema = self.reg.schema("PlanDelta", 2)
        self.snapshot_schema = self.reg.schema("PlanSnapshot")
        self._plan_head = self.reg.packer(self.plan_schema, 0)
        self.counts = {
            "problems": 0, "signals": 0, "solves": 0, "deltas": 0, "legs": 0,
            "early_stops": 0, "reports": 0, "fills": 0, "rejects": 0, "unknown_messages": 0,
            "decode_errors": 0, "stale_messages": 0, "neutralize_repairs": 0,
            "shortfalls": 0, "write_offs": 0, "compensating_deltas": 0, "unknown_orders": 0,
            "snapshots_sent": 0, "frozen_solves": 0, "freezes": 0, "neutralize_refused": 0,
            "aborted_solves": 0, "unresponsive_venues": 0,
        }  # fmt: skip
        #: the quotes' origin stamps (rig timebase): venue outages are judged on them
        self.last_quote_ts = np.zeros(n_venues, np.int64)
        self.latest_quote_ts = 0
        self.outages = VenueOutages(n_venues)
        #: legs sent and not yet finally acknowledged: order_id -> (venue, asset, signed lots)
        self.open_legs: dict[int, tuple[int, int, int]] = {}
        #: final reports that left lots unfilled, to write off: (order_id, venue, asset, lots)
        self.shortfalls: list[tuple[int, int, int, int]] = []
        self.last_budget_ns = 0
        self.shortfall_ts = 0
        self.last_shortfall_order = 0
        self.realized = RealizedNet(n_assets)
        self._one_leg = np.zeros(1, PLAN_LEG_DTYPE)
        self.max_abs_net_lots = 0
        self.last_nonce: dict[int, int] = {}
        #: federated coordination (see use_rounds): the rounds' driver; None: central
        self.rounds: FederatedRounds | None = None
        #: how a solve is made: central (here) or federated (in rounds with the venues)
        self.coordination: CentralSolve | FederatedSolve = CentralSolve(self)
        self.mid = np.zeros(shape)  # public mid prices from the venues' quotes
        #: federated + secure aggregation: the venues' SignalShares summed per release epoch
        #: (off the decision path; not part of the decision state)
        self.signal_agg: SignalAggregator | None = None

    def use_rounds(self, rounds: FederatedRounds) -> None:
        """Coordinate federated from now on: every solve is made in rounds with the venues."""
        self.rounds = rounds
        self.coordination = FederatedSolve(self, rounds)

    def warm_up(self) -> None:
        """Run every kernel once so compilation / cache loading happens before timing."""
        c = np.full((self.n_venues, self.n_assets), 100.0)
        c[0] -= 1.0
        g = np.ones_like(c)
        phi = np.full_like(c, 0.01)
        lim = np.full_like(c, 10.0)
        res = self.admm.solve(c, g, phi, lim, 50)
        out = np.zeros(c.shape, np.int64)
        neutralize_lots(res.x, lim.astype(np.int64), out)
        centralized_solve(c, g, phi, lim, self.x_star, self.lam_star)
        objective(c, g, phi, lim, self.x_star)
        gaps_batch(c[None], g[None], phi[None], lim[None], c[None], 1.0, np.zeros(1))
        keep_inputs(np.zeros((1, 5, *c.shape)), 0, c, g, phi, lim, c)
        mark_solved(np.zeros(2, SOLVE_TRACE_DTYPE), 0, 1, 1, 1, 1, 0, 0, 1, 1, 0)
        scratch = DeltaMerger(self.n_venues, self.n_assets, n_senders=4)
        legs = np.zeros(self.n_venues * self.n_assets, PLAN_LEG_DTYPE)
        emit_and_merge(
            scratch.plan, out, 1, 1, COORDINATOR_SENDER_ID, 1, self.bid_px, self.ask_px, legs,
            scratch.high_water, scratch.seen, scratch.stats,
        )  # fmt: skip
        self.admm.reset()

    def check_nonce(self, sender_id: int, nonce: int) -> bool:
        """Per-sender strictly increasing nonce; a repeat or an older one is refused."""
        if nonce <= self.last_nonce.get(sender_id, -1):
            return False
        self.last_nonce[sender_id] = nonce
        return True

    def on_problem(self, values: tuple[Any, ...]) -> tuple[int, int, int, int]:
        """Apply a LocalArbProblem given as :meth:`SchemaRegistry.decode_values` values.

        Returns (venue, first asset, tick_seq, budget_ns)."""
        venue, n_assets, seq, _intended, budget = values[_PROBLEM_HEAD]
        if venue >= self.n_venues:
            raise PipelineError(f"LocalArbProblem from venue {venue}, campaign has {self.n_venues}")
        first = -1
        lo, hi = _PROBLEM_ITEM
        for _ in range(n_assets):
            a, c, gamma, phi, limit, bid, ask = values[lo:hi]
            lo += _PROBLEM_STRIDE
            hi += _PROBLEM_STRIDE
            if a >= self.n_assets:
                raise PipelineError(f"LocalArbProblem asset {a}, campaign has {self.n_assets}")
            if first < 0:
                first = a
            self.c[venue, a] = c
            self.gamma[venue, a] = gamma
            self.phi[venue, a] = phi
            self.limit_lots[venue, a] = limit
            self.limit[venue, a] = limit
            self.bid_px[venue, a] = bid
            self.ask_px[venue, a] = ask
            self.quoted[venue, a] = True
        self.counts["problems"] += 1
        return venue, first, seq, budget

    def on_quote(self, values: tuple[Any, ...]) -> tuple[int, int, int, int]:
        """Apply a VenueQuote (federated mode) given as decode values: public prices only.

        Returns (venue, first asset, tick_seq, budget_ns)."""
        venue, n_assets, seq, _intended, budget = values[_QUOTE_HEAD]
        if venue >= self.n_venues:
            raise PipelineError(f"VenueQuote from venue {venue}, campaign has {self.n_venues}")
        first = -1
        lo, hi = _QUOTE_ITEM
        for _ in range(n_assets):
            a, bid, ask = values[lo:hi]
            lo += _QUOTE_STRIDE
            hi += _QUOTE_STRIDE
            if a >= self.n_assets:
                raise PipelineError(f"VenueQuote asset {a}, campaign has {self.n_assets}")
            if first < 0:
                first = a
            self.bid_px[venue, a] = bid
            self.ask_px[venue, a] = ask
            self.mid[venue, a] = (bid + ask) / (2 * PRICE_SCALE)  # as the venue prices c
            self.quoted[venue, a] = True
        ts = values[ORIGIN_TS]
        self.last_quote_ts[venue] = ts
        self.latest_quote_ts = max(self.latest_quote_ts, ts)
        self.counts["problems"] += 1
        return venue, first, seq, budget

    def ready(self) -> bool:
        """Every (venue, asset) has quoted (once true, stays true: quotes are never unset)."""
        if not self._all_quoted:
            self._all_quoted = bool(self.quoted.all())
        return self._all_quoted

    def signal_participants(self) -> int:
        """The participants the venues' signal shares must be masked among: the masked rounds'
        current set (0: no solve yet — every venue)."""
        ex = self.rounds.ex if self.rounds is not None else None
        return int(getattr(ex, "participants", 0)) if ex is not None and ex.masked else 0

    def on_shares(self, shares: list[tuple[Any, ...]], current: int) -> None:
        """A wake-up's SignalShares (after its decision), judged against ``current``, the
        participants when they arrived (before the wake-up's solve); then the epochs'
        timeouts, judged on the latest quote's origin stamp."""
        agg = self.signal_agg
        assert agg is not None
        for values in shares:
            agg.on_share(values, current)
        agg.expire(self.latest_quote_ts)

    def solve(self, budget_ns: int) -> tuple[int, bool]:
        """A solve into ``self.target``, its iterations (rounds) capped by the budget via the
        nominal cost of one. Returns (iterations, converged)."""
        self.last_budget_ns = budget_ns
        max_iter = max(1, min(self.iter_cap, int(budget_ns // self.ns_per_iteration)))
        return self.coordination.solve(max_iter)

    def emit_delta(self, ts_ns: int, cause_venue: int, cause_seq: int) -> bytes | None:
        """Legs moving the plan to the target, merged into the plan; the PlanDelta bytes."""
        m = self.merger
        n = int(
            emit_and_merge(
                m.plan, self.target, self.min_delta_lots, ts_ns, COORDINATOR_SENDER_ID,
                self.delta_id + 1, self.bid_px, self.ask_px, self.legs, m.high_water, m.seen,
                m.stats,
            )
        )  # fmt: skip
        if n == 0:
            return None
        self.delta_id += 1
        legs = self.legs[:n]
        self.last_n_legs = n
        net = int(m.stats[STAT_MAX_ABS_NET])
        self.max_abs_net_lots = max(self.max_abs_net_lots, net)
        self.counts["deltas"] += 1
        self.counts["legs"] += n
        base = self.delta_id << 8  # the broker adapter's order ids: (delta_id << 8) | leg
        # rows as Python tuples in one call (a field read per leg is ~1 us each)
        for i, row in enumerate(legs.tolist()):
            self.open_legs[base | i] = (row[_LEG_VENUE], row[_LEG_ASSET],
                                        row[_LEG_SIDE] * row[_LEG_LOTS])  # fmt: skip
        return self._pack_delta(legs, ts_ns, cause_venue, cause_seq, KIND_TRADE)

    def _pack_delta(
        self, legs: np.ndarray, ts_ns: int, cause_venue: int, cause_seq: int, kind: int
    ) -> bytes:
        """Envelope + v2 header (with the plan's hash after the delta) + the legs' bytes (they
        are already in their wire layout)."""
        self.nonce += 1
        n = len(legs)
        stamp = ts_ns if self.send_ts_ns is None else self.send_ts_ns
        head = self._plan_head.pack(
            *self.reg.envelope_values(self.plan_schema, n, COORDINATOR_SENDER_ID, self.nonce,
                                      stamp),
            self.delta_id, ts_ns, COORDINATOR_SENDER_ID, n, cause_venue, cause_seq, kind,
            plan_hash(self.merger.plan),
        )  # fmt: skip
        return head + legs.tobytes()

    def write_off(self, ts_ns: int, order_id: int, venue: int, asset: int, lots: int) -> bytes:
        """A WRITE_OFF PlanDelta taking ``lots`` (signed, as ordered) that will never fill off
        the plan; the plan is then as executed for that leg (and no longer neutral: the
        compensating TRADE delta that follows restores it)."""
        self.delta_id += 1
        leg = self._one_leg
        leg["ts_ns"] = ts_ns
        leg["delta_id"] = self.delta_id
        leg["sender"] = COORDINATOR_SENDER_ID
        leg["venue"] = venue
        leg["asset"] = asset
        leg["side"] = -1 if lots > 0 else 1
        leg["size_lots"] = abs(lots)
        leg["limit_px"] = 0
        if self.merger.merge(leg) != 1:
            raise PipelineError(f"write-off of order {order_id} was not applied to the plan")
        self.counts["write_offs"] += 1
        return self._pack_delta(leg, ts_ns, CAUSE_REPORT, order_id, KIND_WRITE_OFF)

    def plan_snapshot(self, ts_ns: int) -> bytes:
        """The whole plan as a PlanSnapshot (for a replica that diverged); stamped like a
        PlanDelta (``ts_ns``: the ReplicaStatus's origin stamp)."""
        if self.send_ts_ns is not None:
            ts_ns = self.send_ts_ns
        plan = self.merger.plan
        self.nonce += 1
        self.counts["snapshots_sent"] += 1
        h = np.zeros(1, self.snapshot_schema.header_dtype)
        h["delta_id"] = self.delta_id
        h["plan_hash"] = plan_hash(plan)
        h["n_venues"], h["n_assets"] = plan.shape
        h["n_cells"] = plan.size
        items = np.zeros(plan.size, self.snapshot_schema.item_dtype)
        items["lots"] = plan.ravel()
        return self.reg.encode(self.snapshot_schema, h, items, sender_id=COORDINATOR_SENDER_ID,
                               nonce=self.nonce, origin_ts_ns=ts_ns)  # fmt: skip

    def on_report(self, values: tuple[Any, ...]) -> None:
        """Apply an ExecutionReport given as decode values."""
        self.counts["reports"] += 1
        order_id, _delta, venue, asset, status, filled = values[REPORT_HEAD]
        if status == _REJECT:
            self.counts["rejects"] += 1
        elif status in _FILLED:
            self.counts["fills"] += 1
            self.executed[venue, asset] += filled
        if status in STATUS_FINAL:
            leg = self.open_legs.pop(order_id, None)
            if leg is None:
                self.counts["unknown_orders"] += 1
            else:
                unfilled = leg[2] - filled
                if unfilled:
                    self.counts["shortfalls"] += 1
                    self.shortfalls.append((order_id, leg[0], leg[1], unfilled))
                    self.shortfall_ts = values[ORIGIN_TS]  # the report's: the deltas' ts


class CentralSolve:
    """Central coordination: exchange ADMM on the venues' local problems, in this process,
    and integer neutralization within their limits. Each solve's inputs and ADMM consensus
    iterate are kept for the comparison with the exact centralized optimum at the stop."""

    takes_quotes = False

    def __init__(self, core: Coordinator) -> None:
        self.core = core
        # per-solve snapshots (c, gamma, phi, limit, z)
        self._snap = np.zeros((4096, 5, core.n_venues, core.n_assets))
        self.n_snap = 0

    def solve(self, max_iter: int) -> tuple[int, bool]:
        core = self.core
        admm = core.admm
        iterations, converged = admm.solve_in_place(
            core.c, core.gamma, core.phi, core.limit, max_iter
        )
        counts = core.counts
        counts["neutralize_repairs"] += int(neutralize_lots(admm.x, core.limit_lots, core.target))
        counts["solves"] += 1
        if not converged:
            counts["early_stops"] += 1
        return iterations, converged

    def keep_inputs(self) -> None:
        """Keep this solve's inputs and ADMM consensus iterate for the baseline comparison."""
        if self.n_snap == self._snap.shape[0]:
            grown = np.zeros((self._snap.shape[0] * 2, *self._snap.shape[1:]))
            grown[: self.n_snap] = self._snap
            self._snap = grown
        # The consensus iterate z: exactly neutral (Σz = 0), within limits up to the primal
        # residual. The x iterate is off neutral by ~the residual, which at shadow prices ~100
        # would dominate the gap with an infeasibility artefact.
        core = self.core
        keep_inputs(self._snap, self.n_snap, core.c, core.gamma, core.phi, core.limit, core.admm.z)
        self.n_snap += 1

    def baseline_gaps(self, scale: float = 1.0) -> np.ndarray:
        """Relative objective gap of every solve against the exact centralized optimum."""
        snap = self._snap[: self.n_snap]
        out = np.zeros(self.n_snap)
        gaps_batch(
            np.ascontiguousarray(snap[:, 0]), np.ascontiguousarray(snap[:, 1]),
            np.ascontiguousarray(snap[:, 2]), np.ascontiguousarray(snap[:, 3]),
            np.ascontiguousarray(snap[:, 4]), scale, out,
        )  # fmt: skip
        return out

    def save(self, out_dir: Path, trace: np.ndarray, solve_rows: np.ndarray) -> None:
        """Each solve's objective gap into the trace row of its trigger tick (a compensating
        solve, row -1, has none)."""
        gaps = self.baseline_gaps()
        rows = solve_rows[: self.n_snap]
        trace["objective_gap"][rows[rows >= 0]] = gaps[rows >= 0]
