"""``arbsphere sim SCENARIO``: the pipeline's coordination in one process on the synthetic market.

No devices, sockets or processes, but the pipeline's own code on every side, exchanging its own
messages as bytes. Each venue is the venue adapter's :class:`TickTranslator` (a quote priced
into the venue's private local problem; the VenueQuote and SharedSignals it sends) and its
answer code for the rounds (:class:`VenuePrices` or :class:`VenueRounds`, chosen by the
adapter's :func:`venue_rounds_for` from the scenario's ``protocol``). The coordinator is the
real core (:class:`Coordinator` with its federated solve) fed by the real
:class:`ReceiveLoop`; its rounds driver reaches the venues through an
:class:`~arbsphere.rig.in_process.InProcessLink`. The broker (:class:`SimBroker`) fills the
PlanDeltas the core sends with the broker emulator's fill policy and answers with
ExecutionReports.

One wake-up of the receive loop per market tick (every venue quotes every asset, in one frame
per venue): the broker's reports on the previous wake-up's delta come first, then the ticks.
The loop writes off the shortfalls, solves once (rounds up to the budget's cap; a venue whose
last quote is older than ``stale_after_ms`` is frozen at its lots and the others hedge around
it), merges the legs and sends the PlanDelta, which the broker fills at once. After the last
tick, wake-ups with the reports alone (the loop's compensating solves) until no report is
outstanding. Deterministic: same scenario and seed, same result set (only the measured wall
times differ). The loop, the venues and the broker read the simulation's clock (a wake-up's
time is its tick's); the rounds driver reads the wall clock, which only stamps its rounds and
times them (``solve_us``): the in-process link never waits for an answer (one not queued
when the driver asks for it never comes), so no deadline is ever read.

Scenarios (:data:`SCENARIOS`): ``calm``, ``volatile``, ``outage`` (one of three venues stops
quoting for a third of the run: once its quotes are stale it is frozen at its lots, the others
hedge around it), ``flash-spread`` (one venue's spread widens twenty-fold for a while),
``wide`` (8 venues x 16 assets). The result set (``results/sim-<scenario>/<run-id>/``):
``kpi.json``, ``trace.parquet`` (one row per wake-up), ``report.html``, ``manifest.json``
(hashes every file).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from arbsphere.adapters.venue_adapter import TickTranslator, VenueCosts, venue_rounds_for
from arbsphere.adapters.venue_prices import VenuePrices
from arbsphere.adapters.venue_rounds import VenueRounds
from arbsphere.adapters.venue_signals import EwmaCorrelation
from arbsphere.adapters.venue_solver import VenueSolver
from arbsphere.clock import Clock, RealtimeClock
from arbsphere.contracts import default_registry
from arbsphere.coordinator.admm import AdmmSettings
from arbsphere.coordinator.baseline import gaps_batch
from arbsphere.coordinator.core import KIND_WRITE_OFF, Coordinator
from arbsphere.coordinator.federated_solve import FederatedSolve, federated_driver
from arbsphere.coordinator.receive_loop import ReceiveLoop
from arbsphere.errors import ConfigError
from arbsphere.firmware_interfaces.emulators.fill_policy import FillPolicy
from arbsphere.firmware_interfaces.emulators.market import MarketConfig, VenueQuoteStream
from arbsphere.kpi.analysis import pcts
from arbsphere.kpi.federated_baseline import responses
from arbsphere.kpi.report import render_report
from arbsphere.kpi.resultset import ResultSetWriter
from arbsphere.plan.digest import plan_hash
from arbsphere.plan.merge import STAT_MAX_ABS_NET
from arbsphere.rig.in_process import InProcessLink, QueuedSocket, SentMessages, SimClock
from arbsphere.sender_ids import BROKER_SENDER_ID, VENUE_SENDER_BASE

PROTOCOLS = ("price", "admm")


@dataclass(frozen=True)
class Scenario:
    name: str
    doc: str
    n_venues: int = 2
    n_assets: int = 1
    seconds: float = 10.0
    rate_hz: float = 200.0
    market: dict[str, Any] = field(default_factory=dict)
    #: (venue, start fraction, end fraction) of the run the venue does not quote
    outage: tuple[int, float, float] | None = None
    #: (venue, start fraction, end fraction, spread factor)
    flash: tuple[int, float, float, float] | None = None
    fills: dict[str, Any] = field(default_factory=dict)
    fee_bp: float = 0.5
    gamma: float = 1e-4
    position_limit_lots: int = 100
    #: the federated protocol: "price" (the campaigns' default) or "admm"
    protocol: str = "price"
    #: generous by default: in process a round costs microseconds, and the sim is where the
    #: algorithm's convergence (not the transport) is under test; budget / ns_per_round rounds
    budget_us: float = 50_000.0
    ns_per_round: float = 100_000.0
    #: a venue without a quote for this long (quote time) is frozen (the campaigns' default)
    stale_after_ms: float = 250.0
    admm: AdmmSettings = field(default_factory=AdmmSettings)
    seed: int = 7


MIXED = {"mode": "mixed", "reject": 0.02, "partial": 0.05, "seed": 7}
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("calm", "two venues, quiet market, few mispricings",
                 market={"vol_bp_per_sqrt_s": 10.0, "episode_rate_per_s": 0.5}, fills=MIXED),
        Scenario("volatile", "two venues, 4x the volatility, frequent large mispricings",
                 market={"vol_bp_per_sqrt_s": 80.0, "episode_rate_per_s": 4.0,
                         "episode_size_bp": 15.0}, fills=MIXED),
        Scenario("outage", "three venues; venue 2 stops quoting from 30 % to 60 % of the run",
                 n_venues=3, outage=(2, 0.3, 0.6),
                 market={"episode_rate_per_s": 3.0}, fills=MIXED),
        Scenario("flash-spread", "two venues; venue 1's spread widens 20x from 40 % to 50 %",
                 flash=(1, 0.4, 0.5, 20.0), market={"episode_rate_per_s": 3.0}, fills=MIXED),
        Scenario("wide", "8 venues x 16 assets", n_venues=8, n_assets=16, seconds=2.0,
                 rate_hz=100.0, market={"episode_rate_per_s": 2.0}, fills=MIXED),
    )
}  # fmt: skip

#: wake-ups after the last tick that deliver the outstanding reports (and compensate)
CLOSING_WAKEUPS = 20

STEP_DTYPE = np.dtype(
    [
        ("step", "<i8"),
        ("t_s", "<f8"),
        ("solved", "u1"),  # the wake-up solved (a closing one may only take reports)
        ("rounds", "<u4"),
        ("converged", "u1"),
        ("aborted", "u1"),  # a venue did not answer, or (price) the live venues cannot offset
        ("primal_res", "<f8"),
        ("dual_res", "<f8"),
        ("solve_us", "<f8"),  # wall time of the rounds (measured, not used for decisions)
        ("legs", "<u4"),
        ("write_offs", "<u4"),
        ("frozen", "<u2"),  # venues out of the market this solve
        ("plan_net_max", "<i8"),  # max |Σ plan| over assets after the wake-up's deltas
        ("realized_net_max", "<i8"),  # max |Σ executed| over assets, as reported so far
        ("neutralize_refused", "u1"),
        ("frozen_traded", "u1"),  # a leg at a venue out of the market (must never happen)
        ("objective_gap", "<f8"),  # vs the centralized optimum (NaN with a frozen venue)
    ]
)


def _quotes(s: Scenario) -> tuple[MarketConfig, np.ndarray]:
    """(config, quotes (steps, venues, assets) of QUOTE_DTYPE)."""
    cfg = MarketConfig(seed=s.seed, n_venues=s.n_venues, n_assets=s.n_assets, rate_hz=s.rate_hz,
                       **s.market)  # fmt: skip
    steps = round(s.seconds * s.rate_hz)
    q = np.zeros((steps, s.n_venues, s.n_assets), VenueQuoteStream(cfg, 0, 0).next_batch(1).dtype)
    for v in range(s.n_venues):
        for a in range(s.n_assets):
            q[:, v, a] = VenueQuoteStream(cfg, v, a).next_batch(steps)
    if s.flash is not None:
        venue, lo, hi, factor = s.flash
        k0, k1 = round(lo * steps), round(hi * steps)
        mid = (q["bid_px"][k0:k1, venue] + q["ask_px"][k0:k1, venue]) // 2
        half = (q["ask_px"][k0:k1, venue] - q["bid_px"][k0:k1, venue]) // 2
        q["bid_px"][k0:k1, venue] = mid - half * factor
        q["ask_px"][k0:k1, venue] = mid + half * factor
    return cfg, q


class SimBroker:
    """The broker's side: every TRADE PlanDelta read off the wire as the broker adapter reads
    it, each leg (order id ``delta_id << 8 | leg``) decided at once by the fill policy, the
    delta's ExecutionReports packed back to back in one frame (as the adapter sends a
    datagram's) and held until the next wake-up. WRITE_OFF deltas are never ordered."""

    def __init__(self, policy: FillPolicy, clock: Clock) -> None:
        reg = default_registry()
        self.reg = reg
        self.policy = policy
        self.clock = clock
        self.plan_schema = reg.schema("PlanDelta", 2)
        self.report_schema = reg.schema("ExecutionReport")
        self.report_packer = reg.packer(self.report_schema)
        self.nonce = 0
        self.outstanding: list[list[bytes]] = []  # report frames not yet delivered

    def on_deltas(self, deltas: list[bytes]) -> np.ndarray:
        """Fill the TRADE deltas; returns the venues of their legs."""
        venues: list[np.ndarray] = []
        for raw in deltas:
            msg = self.reg.decode(raw)
            if msg.schema.id != self.plan_schema.id:
                continue  # a PlanSnapshot: the sim's broker never asks for one
            head = msg.header[0]
            if int(head["kind"]) == KIND_WRITE_OFF:
                continue
            delta_id = int(head["delta_id"])
            venues.append(msg.items["venue"].astype(np.int64))
            self.outstanding.append([b"".join(self._report(delta_id, i, leg)
                                              for i, leg in enumerate(msg.items))])  # fmt: skip
        return np.concatenate(venues) if venues else np.zeros(0, np.int64)

    def _report(self, delta_id: int, i: int, leg: np.void) -> bytes:
        """The ExecutionReport of leg ``i`` (status, filled lots signed by the leg's side)."""
        order_id = (delta_id << 8) | i
        side = int(leg["side"])
        status, filled, _hold = self.policy.decide(order_id, int(leg["size_lots"]))
        now = self.clock.now_ns()
        self.nonce += 1
        return self.report_packer.pack(
            *self.reg.envelope_values(self.report_schema, 0, BROKER_SENDER_ID, self.nonce, now),
            order_id, delta_id, int(leg["venue"]), int(leg["asset"]), status, side * filled,
            int(leg["limit_px"]), now, now, now, now,
        )  # fmt: skip

    def take(self) -> list[list[bytes]]:
        out, self.outstanding = self.outstanding, []
        return out


class SimPipeline:
    """The venues, the coordinator (core, receive loop, rounds driver) and the broker of one
    scenario, wired in process; :meth:`wake` is one wake-up of the coordinator."""

    def __init__(self, s: Scenario) -> None:
        if s.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol {s.protocol!r}: must be 'price' or 'admm'",
                              key="protocol")  # fmt: skip
        n, m = s.n_venues, s.n_assets
        self.clock = SimClock()
        costs = VenueCosts(s.fee_bp, s.gamma, s.position_limit_lots)
        budget_ns = int(s.budget_us * 1000)
        self.translators = [
            TickTranslator(
                v,
                VENUE_SENDER_BASE + v,
                costs,
                budget_ns,
                solver=VenueSolver(m),
                correlation=EwmaCorrelation(m),
            )
            for v in range(n)
        ]
        # the venues' sockets: the in-process link delivers their answers instead
        sink = SentMessages(keep=False)
        self.venues: list[VenueRounds | VenuePrices] = [
            venue_rounds_for(s.protocol, sink, t, v, self.clock)
            for v, t in enumerate(self.translators)
        ]
        link = InProcessLink(self.venues)
        link.keep_sent = False
        # as the coordinator process builds and federates its core (coordinator/service.py)
        core = Coordinator(n, m, s.admm, budget_iterations_cap=s.admm.max_iter,
                           min_delta_lots=1, ns_per_iteration=s.ns_per_round)  # fmt: skip
        # the driver's clock stamps the rounds (their wall time is measured, never decided on)
        core.use_rounds(federated_driver(s.protocol, link, core, s.admm, False,
                                         RealtimeClock(), round_timeout_ms=1000))  # fmt: skip
        core.outages.stale_after_ns = int(s.stale_after_ms * 1e6)
        core.warm_up()
        VenueSolver.warm_up()
        VenuePrices.warm_up()
        self.core = core
        assert isinstance(core.coordination, FederatedSolve)
        self.solve: FederatedSolve = core.coordination
        self.pull = QueuedSocket()
        self.push = SentMessages()
        self.loop = ReceiveLoop(core, self.clock, self.push, max_batch=65_536)
        self.broker = SimBroker(FillPolicy(**s.fills) if s.fills else FillPolicy(), self.clock)
        #: each solve's consensus iterate (what the coordinator records for the baseline)
        self.solves_z: list[np.ndarray] = []

    def tick_frame(self, v: int, quotes: np.ndarray, seq: int, t_ns: int) -> list[bytes]:
        """Venue ``v``'s ticks of every asset (``quotes``: its QUOTE_DTYPE row per asset) as
        its adapter sends ticks delivered together: one frame of each tick's VenueQuote and
        SharedSignals."""
        tr = self.translators[v]
        parts: list[bytes] = []
        for a, q in enumerate(quotes.tolist()):
            _seq, _off, bid, ask, bid_size, ask_size = q
            tick = (0, 0, 0, 0, v, a, seq, t_ns, t_ns, bid, ask, bid_size, ask_size)
            parts.extend(tr.translate(tick, t_ns, 0))
        return [b"".join(parts)]

    def wake(self, k: int, t_ns: int, frames: list[list[bytes]], row: np.void) -> None:
        """One wake-up at ``t_ns``: the broker's outstanding reports, then ``frames`` (the
        venues' ticks); the loop decides; the broker fills the delta. Fills ``row``."""
        core = self.core
        self.clock.t_ns = t_ns
        for frame in (*self.broker.take(), *frames):
            self.pull.put(frame)
        before = dict(core.counts)
        n_solves = self.solve.solves.n
        self.loop.drain(self.pull)
        traded = self.broker.on_deltas(self.push.take())
        plan = core.merger.plan
        row["step"], row["t_s"] = k, t_ns / 1e9
        row["legs"] = core.counts["legs"] - before["legs"]
        row["write_offs"] = core.counts["write_offs"] - before["write_offs"]
        row["neutralize_refused"] = core.counts["neutralize_refused"] > before["neutralize_refused"]
        row["plan_net_max"] = int(np.abs(plan.sum(axis=0)).max())
        row["realized_net_max"] = int(np.abs(core.executed.sum(axis=0)).max())
        row["objective_gap"] = np.nan
        if self.solve.solves.n == n_solves:
            row["primal_res"] = row["dual_res"] = row["solve_us"] = np.nan
            return
        ex = self.solve.rounds.ex
        rec = self.solve.solves.view()[-1]
        self.solves_z.append(ex.consensus_z.copy())
        row["solved"] = 1
        row["rounds"], row["converged"], row["aborted"] = (rec["rounds"], rec["converged"],
                                                           rec["aborted"])  # fmt: skip
        row["primal_res"], row["dual_res"] = rec["primal_res"], rec["dual_res"]
        row["solve_us"] = (int(rec["ended_ns"]) - int(rec["started_ns"])) / 1e3
        row["frozen"] = int(ex.frozen.sum())
        row["frozen_traded"] = bool(ex.frozen[traded].any()) if len(traded) else False


def simulate(s: Scenario) -> tuple[np.ndarray, dict[str, Any]]:
    """Run the scenario; (one STEP_DTYPE row per wake-up, counters and the baselines)."""
    _, quotes = _quotes(s)
    steps, n, _m = quotes.shape
    sim = SimPipeline(s)
    rows = np.zeros(steps + CLOSING_WAKEUPS, STEP_DTYPE)
    out_lo = out_hi = -1
    if s.outage is not None:
        out_lo, out_hi = round(s.outage[1] * steps), round(s.outage[2] * steps)
    dt_ns = round(1e9 / s.rate_hz)
    n_done = 0
    stepping_started = time.perf_counter()
    for k in range(steps + CLOSING_WAKEUPS):
        if k >= steps and not sim.broker.outstanding:
            break
        t_ns = k * dt_ns
        frames = []
        if k < steps:
            out_venue = s.outage[0] if s.outage is not None and out_lo <= k < out_hi else -1
            frames = [sim.tick_frame(v, quotes[k, v], k, t_ns) for v in range(n) if v != out_venue]
        sim.wake(k, t_ns, frames, rows[k])
        n_done = k + 1
    # the stepping alone: the baseline gaps below (every recorded round's, for the convergence
    # plot) are analysis, not simulation speed
    stepping_s = time.perf_counter() - stepping_started
    rows = rows[:n_done]
    solved = np.flatnonzero(rows["solved"])
    rows["objective_gap"][solved] = _solve_gaps(sim)
    return rows, {"counts": _counts(sim, len(rows) - steps, rows), "convergence": _round_gaps(sim),
                  "realized": sim.core.realized.summary(), "stepping_s": stepping_s}  # fmt: skip


def _counts(sim: SimPipeline, closing: int, rows: np.ndarray) -> dict[str, Any]:
    """The core's counters the result set reports, and the plan at the end."""
    c = sim.core.counts
    plan = sim.core.merger.plan
    return {
        **{key: c[key] for key in ("solves", "deltas", "legs", "early_stops", "shortfalls",
                                   "write_offs", "compensating_deltas", "neutralize_refused",
                                   "aborted_solves", "freezes")},
        "infeasible_solves": sim.solve.rounds.counts.get("infeasible_solves", 0),
        "frozen_steps": int((rows["frozen"] > 0).sum()),
        "closing_steps": max(0, closing),
        "final_plan_net": int(np.abs(plan.sum(axis=0)).max()),
        "final_plan_hash": plan_hash(plan),
        "max_plan_net_after_trades": int(sim.core.merger.stats[STAT_MAX_ABS_NET]),
    }  # fmt: skip


def _problems_by_solve(sim: SimPipeline) -> np.ndarray:
    """(4, solves + 1, n, m): c, γ, φ, L each venue froze for each solve id (as the venues
    record them for the rig's baseline); NaN where a venue sat the solve out."""
    core = sim.core
    n_ids = sim.solve.rounds.solve_id + 1
    out = np.full((4, n_ids, core.n_venues, core.n_assets), np.nan)
    for v, venue in enumerate(sim.venues):
        rec = venue.solves.view()
        ids = rec["solve_id"].astype(np.int64)
        assets = rec["asset"].astype(np.int64)
        for i, name in enumerate(("c", "gamma", "phi", "limit")):
            out[i, ids, v, assets] = rec[name]
    return out


def _gaps(problems: np.ndarray, ids: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Relative gap of each z (K, n, m) against the centralized optimum of solve ``ids[k]``'s
    problems; NaN where a venue's problem is missing (it sat the solve out)."""
    gaps = np.full(len(ids), np.nan)
    ok = ~np.isnan(problems[0][ids]).reshape(len(ids), -1).any(axis=1) & ~np.isnan(
        z.reshape(len(ids), -1)
    ).any(axis=1)
    for lo in range(0, len(ids), 4096):  # in chunks: `wide` records ~10^5 rounds of 8 x 16
        sel = np.flatnonzero(ok[lo : lo + 4096]) + lo
        if len(sel):
            c, g, f, lim = (np.ascontiguousarray(problems[i][ids[sel]]) for i in range(4))
            out = np.zeros(len(sel))
            gaps_batch(c, g, f, lim, np.ascontiguousarray(z[sel]), 1.0, out)
            gaps[sel] = out
    return gaps


def _solve_gaps(sim: SimPipeline) -> np.ndarray:
    """Each solve's gap (aborted ones: NaN) as the rig's federated baseline computes it."""
    recs = sim.solve.solves.view()
    if not len(recs):
        return np.zeros(0)
    gaps = _gaps(_problems_by_solve(sim), recs["solve_id"].astype(np.int64),
                 np.array(sim.solves_z))  # fmt: skip
    gaps[recs["aborted"] == 1] = np.nan
    return gaps


def _round_gaps(sim: SimPipeline) -> dict[str, np.ndarray]:
    """Per round of the first solves (the driver's convergence record): round, gap of that
    round's consensus iterate (price protocol: the venues' responses to the round's prices,
    minus their mean) and the round's residuals."""
    driver: Any = sim.solve.rounds
    ids = np.array(driver.round_ids, np.int64).reshape(-1, 2)
    if not len(ids):
        return {}
    problems = _problems_by_solve(sim)
    if driver.protocol == "price":
        c, g, f, lim = (np.ascontiguousarray(problems[i][ids[:, 0]]) for i in range(4))
        z = np.full(c.shape, np.nan)
        responses(c, g, f, lim, np.array(driver.round_prices), z)
        z -= z.mean(axis=1, keepdims=True)
    else:
        z = np.array(driver.round_z)
    recorded = driver.rounds.view()
    recorded = recorded[recorded["solve_id"] <= ids[-1, 0]]
    res = dict(zip(zip(recorded["solve_id"].tolist(), recorded["round"].tolist(), strict=True),
                   zip(recorded["primal_res"].tolist(), recorded["dual_res"].tolist(),
                       strict=True), strict=True))  # fmt: skip
    primal, dual = (np.array([res.get((a, b), (np.nan, np.nan))[i] for a, b in ids.tolist()])
                    for i in range(2))  # fmt: skip
    return {"round": ids[:, 1], "objective_gap": _gaps(problems, ids[:, 0], z),
            "primal_res": primal, "dual_res": dual}  # fmt: skip


def sim_kpi(s: Scenario, rows: np.ndarray, info: dict[str, Any], wall_s: float) -> dict[str, Any]:
    c = info["counts"]
    stepping_s = float(info["stepping_s"])
    trade_steps = rows["legs"] > 0
    solved = rows[rows["solved"] == 1]
    return {
        "hedge": {
            "coordination": f"federated, {s.protocol} protocol (in process)",
            "solves": c["solves"],
            "deltas": c["deltas"],
            "legs": c["legs"],
            "early_stops": c["early_stops"],
            "rounds_per_tick": pcts(solved["rounds"].astype(float)),
            "objective_gap_vs_centralized": {
                **pcts(rows["objective_gap"]), "unit": "relative",
                "count": int((~np.isnan(rows["objective_gap"])).sum()),
                "not_compared_frozen": int((rows["frozen"] > 0).sum()),
            },
            "final_primal_residual": pcts(solved["primal_res"]),
            "time_to_tolerance_us": pcts(solved["solve_us"][solved["converged"] == 1]),
            "max_abs_net_delta": int(rows["plan_net_max"][trade_steps].max())
            if trade_steps.any() else 0,
            "final_plan_net": c["final_plan_net"],
            "neutralize_refused": c["neutralize_refused"],
            "compensation": {k: c[k] for k in ("shortfalls", "write_offs",
                                               "compensating_deltas")},
            "realized_net_delta": info["realized"],
        },
        "sim": {
            "scenario": s.name, "steps": len(rows), "venues": s.n_venues, "assets": s.n_assets,
            "frozen_steps": c["frozen_steps"], "wall_s": round(wall_s, 3),
            "stepping_s": round(stepping_s, 6),
            "analysis_s": round(max(wall_s - stepping_s, 0.0), 3),
            "steps_per_s": round(len(rows) / stepping_s, 1) if stepping_s > 0 else None,
        },
    }  # fmt: skip


def scenario(name: str, seconds: float | None = None, protocol: str | None = None) -> Scenario:
    """Scenario ``name``, its length or protocol overridden; ConfigError names what is wrong."""
    if name not in SCENARIOS:
        raise ConfigError(f"unknown scenario {name!r}; scenarios: {', '.join(SCENARIOS)}",
                          key="scenario")  # fmt: skip
    s = SCENARIOS[name]
    if seconds is not None:
        if not 0 < seconds <= 3600:
            raise ConfigError(f"--seconds {seconds!r}: must be in (0, 3600]", key="seconds")
        s = replace(s, seconds=seconds)
    if protocol is not None:
        if protocol not in PROTOCOLS:
            raise ConfigError(f"--protocol {protocol!r}: must be 'price' or 'admm'",
                              key="protocol")  # fmt: skip
        s = replace(s, protocol=protocol)
    return s


def run_sim(
    name: str, clock: Clock, results_dir: Path, seconds: float | None = None,
    protocol: str | None = None,
) -> Path:  # fmt: skip
    """Simulate scenario ``name`` and write its result set; returns the run directory."""
    s = scenario(name, seconds, protocol)
    out = ResultSetWriter.new(results_dir, f"sim-{name}", clock.now_ns())
    t0 = time.perf_counter()
    rows, info = simulate(s)
    wall = time.perf_counter() - t0
    kpi = sim_kpi(s, rows, info, wall)
    out.write_with("trace.parquet", lambda p: pd.DataFrame(rows).to_parquet(p, index=False))
    out.write_json("kpi.json", kpi, sort_keys=False)
    out.set_status(complete=True)
    out.add({
        "scenario": {**asdict(s), "admm": asdict(s.admm)},
        "method": f"the coordinator's core and receive loop, federated ({s.protocol} protocol) "
        "with the venue adapters' tick translation and round answers behind an in-process "
        "link, on the synthetic market; fills from the broker emulator's fill policy, "
        "reported at the next wake-up; no devices, no wall clock in any decision",
    })  # fmt: skip
    out.write_with("report.html", lambda p: render_report(
        kpi, None, out.manifest(), p, convergence=info["convergence"] or None
    ))  # fmt: skip
    out.finish()
    return out.run_dir
